"""The runtime: store, storage, clock, renderer, flows, and the one way in — `submit`.

Every event (CLI, API, triggers, subflows) becomes an execution through `submit`,
which coerces inputs, applies the flow's concurrency limit, stores the execution
durably and only then starts it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.executor import ExecutionRunner
from daemon.flow import Flow, load_flow
from daemon.registry import Plugins, default_plugins
from daemon.sdk.clock import Clock
from daemon.sdk.errors import FlowDisabled, NotFound, PodiumError
from daemon.sdk.execution import Execution, TaskRun, new_id
from daemon.sdk.inputs import InputSpec, coerce_inputs
from daemon.sdk.state import State, StateHistory
from daemon.storage import Storage

if TYPE_CHECKING:
    from daemon.cluster import Cluster
    from daemon.context import RunContext
    from daemon.expr import Renderer
    from daemon.store.base import Store

log = logging.getLogger(__name__)

Listener = Callable[[str, Execution, TaskRun | None, dict[str, Any] | None], None]


class RestartRefused(PodiumError):
    """Only a FAILED or KILLED execution can be restarted."""


class Runtime:
    """Shared services of one podium process and the executions it is running."""

    def __init__(
        self,
        data_dir: Path,
        store: Store,
        *,
        clock: Clock | None = None,
        plugins: Plugins | None = None,
        keep_working_dirs: bool = False,
        max_executions: int = 0,
        max_tasks: int = 0,
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.storage = Storage(data_dir / "storage")
        self.clock = clock or Clock()
        self._renderer: Renderer | None = None
        self.plugins = plugins or default_plugins()
        self.keep_working_dirs = keep_working_dirs
        self.flows: dict[tuple[str, str], Flow] = {}
        self.flow_lookup: Callable[[str, str], Flow | None] | None = None
        self.envs = {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}
        self._secrets: set[str] = set()
        self.secrets: dict[str, str] = {}  # from the secrets file, already decoded
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self._running: dict[str, asyncio.Task[Execution]] = {}
        # Executions of this process not ended yet (queued or running), for `wait`.
        self._ended: dict[str, asyncio.Future[Execution]] = {}
        self._active: dict[tuple[str, str], int] = defaultdict(int)
        self._queued: dict[tuple[str, str], deque[tuple[Flow, Execution]]] = defaultdict(deque)
        self._listeners: list[Listener] = []
        self._closers: dict[str, Callable[[], Awaitable[None]]] = {}
        # PAUSED executions of this process: the inputs their Pause task expects, and the
        # future that `resume` completes with the coerced values.
        self._pauses: dict[str, tuple[Sequence[InputSpec], asyncio.Future[dict[str, Any]]]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.max_executions = max_executions
        self._starting = 0  # admitted by the gate, task not created yet
        self._waiting: deque[tuple[Flow, Execution]] = deque()
        # Caps task attempts running at once across all executions (0: no cap).
        self.task_slots = asyncio.Semaphore(max_tasks) if max_tasks > 0 else None
        self.stats: dict[str, int] = defaultdict(int)
        # Set by the daemon when several nodes share a PostgreSQL store: this node's name,
        # and the cluster through which executions are claimed instead of started here.
        self.node_id: str | None = None
        self.cluster: Cluster | None = None
        # Set while a cluster node stops: interrupted executions are left for another node.
        self.handing_over = False
        # Public address of the UI (the `url` setting), for links in notifications.
        self.public_url: str | None = None
        # Idempotent submissions in progress here, by execution id.
        self._submitting: dict[str, asyncio.Future[Execution]] = {}

    @property
    def renderer(self) -> Renderer:
        """Created on first use: a flow without expressions never pays for Jinja's import."""
        if self._renderer is None:
            from daemon.expr import Renderer

            self._renderer = Renderer(clock=self.clock)
        return self._renderer

    # -- flows --------------------------------------------------------------------------

    def add_flow(self, flow: Flow) -> None:
        self.flows[flow.uid] = flow

    async def find_flow(self, namespace: str, flow_id: str) -> Flow:
        flow = self.flows.get((namespace, flow_id))
        if flow is None and self.flow_lookup is not None:
            flow = await asyncio.to_thread(self.flow_lookup, namespace, flow_id)
        if flow is None:
            stored = await self.store.get_flow(namespace, flow_id)
            if stored is not None:
                flow = await asyncio.to_thread(
                    load_flow,
                    stored[1],
                    f"<{namespace}.{flow_id} revision {stored[0]}>",
                    self.plugins,
                )
                flow.revision = stored[0]
        if flow is None:
            raise NotFound(f"flow {namespace}.{flow_id} not found")
        return flow

    # -- the one way in -----------------------------------------------------------------

    async def submit(
        self,
        flow: Flow,
        inputs: Mapping[str, Any] | None = None,
        *,
        trigger: dict[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        parent: dict[str, Any] | None = None,
        execution_id: str | None = None,
    ) -> Execution:
        """Create one execution of `flow`, durably, and start it (or queue/refuse it).

        `trigger` is Kestra's execution trigger: `{"id", "type", "variables"}`; flows read
        its variables as `trigger.*`. An `execution_id` given by the caller makes the call
        idempotent: when that execution exists already it is returned and nothing starts.
        In a cluster the execution is stored without an owner and some node claims it.
        """
        if flow.disabled:
            raise FlowDisabled(f"flow {flow.namespace}.{flow.id} is disabled")
        if execution_id is None:
            return await self._submit(flow, inputs, trigger, labels, parent, new_id(), False)
        pending = self._submitting.get(execution_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._submitting[execution_id] = future
        try:
            execution = await self._submit(
                flow, inputs, trigger, labels, parent, execution_id, True
            )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a concurrent duplicate may not be waiting
            raise
        else:
            future.set_result(execution)
            return execution
        finally:
            del self._submitting[execution_id]

    async def _submit(
        self,
        flow: Flow,
        inputs: Mapping[str, Any] | None,
        trigger: dict[str, Any] | None,
        labels: Mapping[str, str] | None,
        parent: dict[str, Any] | None,
        execution_id: str,
        idempotent: bool,
    ) -> Execution:
        if idempotent and self.cluster is None:
            existing = await self.store.get_execution(execution_id)
            if existing is not None:
                return Execution.from_json(existing)
        prefix = self.storage.execution_prefix(flow.namespace, flow.id, execution_id)

        def store_file(name: str, value: Any) -> str:
            source = Path(str(value))
            if not source.is_file():
                raise ValueError(f"no such file {str(value)!r}")
            return self.storage.put(source, prefix=f"{prefix}/inputs/{name}", name=source.name)

        values = await asyncio.to_thread(
            coerce_inputs, flow.inputs, inputs or {}, store_file=store_file
        )
        if flow.revision is None:
            flow.revision = await self.store.save_flow(flow.namespace, flow.id, flow.source)
        execution = Execution(
            id=execution_id,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=flow.revision,
            state=StateHistory(State.CREATED, self.clock.now()),
            inputs=values,
            labels={**flow.labels, **(labels or {})},
            trigger=trigger,
            parent=parent,
        )
        if self.cluster is not None:
            doc = execution.to_json(task_runs=False)
            if idempotent:
                if not await self.store.create_execution(doc):
                    existing = await self.store.get_execution(execution_id)
                    if existing is not None:
                        return Execution.from_json(existing)
            else:
                await self.store.save_execution(doc)
            self.publish("execution", execution, None)
            self.cluster.offer()
            return execution
        start = self._gate(flow, execution)
        if not execution.state.current.terminated:
            self._ended[execution.id] = asyncio.get_running_loop().create_future()
        try:
            await self.store.save_execution(execution.to_json(task_runs=False))
        except BaseException:
            self._ungate(flow, execution, start)  # never stored: it never happened
            raise
        self.publish("execution", execution, None)
        if start:
            self._start(flow, execution)
        return execution

    def _ungate(self, flow: Flow, execution: Execution, started: bool) -> None:
        """Undo `_gate` for an execution that could not be stored."""
        ended = self._ended.pop(execution.id, None)
        if ended is not None:
            ended.cancel()
        if started:
            self._active[flow.uid] -= 1
            self._starting = max(self._starting - 1, 0)
            return
        for queue in (self._queued[flow.uid], self._waiting):
            for item in list(queue):
                if item[1] is execution:
                    queue.remove(item)

    async def submit_by_id(
        self, namespace: str, flow_id: str, inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Execution:
        return await self.submit(await self.find_flow(namespace, flow_id), inputs, **kwargs)

    def _gate(self, flow: Flow, execution: Execution) -> bool:
        """Apply `concurrency`: start now, or QUEUE / CANCEL / FAIL past the limit.

        Past the daemon-wide `max_executions`, executions wait QUEUED whatever the flow says.
        """
        limit = flow.concurrency
        now = self.clock.now()
        if limit is None or self._active[flow.uid] < limit.limit:
            if self.max_executions and len(self._running) + self._starting >= self.max_executions:
                execution.state.set(State.QUEUED, now)
                self._waiting.append((flow, execution))
                return False
            self._active[flow.uid] += 1
            self._starting += 1
            return True
        if limit.behavior == "QUEUE":
            execution.state.set(State.QUEUED, now)
            self._queued[flow.uid].append((flow, execution))
        else:
            execution.error = (
                f"flow {flow.namespace}.{flow.id} has reached its concurrency "
                f"limit of {limit.limit}"
            )
            execution.state.set(State.FAILED if limit.behavior == "FAIL" else State.CANCELLED, now)
        return False

    def _start(self, flow: Flow, execution: Execution) -> None:
        self._starting = max(self._starting - 1, 0)
        self._idle.clear()
        runner = ExecutionRunner(self, flow, execution)
        job = asyncio.create_task(runner.run(), name=f"execution {execution.id}")
        self._running[execution.id] = job
        job.add_done_callback(lambda _: self._finished(flow, execution))

    def _finished(self, flow: Flow, execution: Execution) -> None:
        self._running.pop(execution.id, None)
        ended = self._ended.pop(execution.id, None)
        if ended is not None and not ended.done():
            ended.set_result(execution)
        self._active[flow.uid] -= 1
        self.stats[execution.state.current.value] += 1
        if self.cluster is not None and execution.state.current.terminated:
            self.cluster.ended(execution)
        queue = self._queued[flow.uid]
        if queue:
            next_flow, next_execution = queue.popleft()
            self._active[flow.uid] += 1
            self._start(next_flow, next_execution)
        while self._waiting and (
            not self.max_executions or len(self._running) < self.max_executions
        ):
            waiting_flow, waiting = self._waiting.popleft()
            if self._gate_again(waiting_flow, waiting):
                self._start(waiting_flow, waiting)
        if not self._running:
            self._idle.set()

    def _gate_again(self, flow: Flow, execution: Execution) -> bool:
        """A globally queued execution whose turn came: its flow's own limit still applies."""
        limit = flow.concurrency
        if limit is None or self._active[flow.uid] < limit.limit:
            self._active[flow.uid] += 1
            self._starting += 1
            return True
        self._queued[flow.uid].append((flow, execution))
        return False

    async def recover(self) -> int:
        """Resume what a previous process left unfinished; returns how many executions.

        RUNNING ones continue where they stopped (finished task runs are not run again);
        QUEUED ones queue again in the order they arrived.
        """
        unfinished: list[dict[str, Any]] = []
        page = 1
        while True:
            docs, total = await self.store.search_executions(
                states=[
                    "CREATED",
                    "RUNNING",
                    "QUEUED",
                    "RETRYING",
                    "KILLING",
                    "PAUSED",
                    "RESTARTED",
                ],
                page=page,
                size=200,
            )
            unfinished.extend(docs)
            if not docs or len(unfinished) >= total:
                break
            page += 1
        unfinished.sort(key=lambda d: d["state"]["startDate"])
        for summary in unfinished:
            doc = await self.store.get_execution(summary["id"])
            if doc is not None:
                await self.adopt(Execution.from_json(doc))
        return len(unfinished)

    async def adopt(self, execution: Execution) -> None:
        """Run a stored execution here: one a previous process left unfinished, or one this
        node claimed in a cluster. CREATED and QUEUED ones pass the concurrency gate; RUNNING
        ones continue where they stopped (finished task runs are not run again)."""
        if execution.state.current.terminated:
            return
        try:
            flow = await self._flow_revision(execution)
        except PodiumError as exc:
            execution.error = f"cannot resume: {exc}"
            execution.state.set(State.FAILED, self.clock.now())
            await self.store.save_execution(execution.to_json(task_runs=False))
            log.error("execution %s: %s", execution.id, execution.error)
            if self.cluster is not None:
                self.cluster.ended(execution)
            return
        self._ended[execution.id] = asyncio.get_running_loop().create_future()
        if execution.state.current in (State.QUEUED, State.CREATED):
            if self._gate(flow, execution):
                self._start(flow, execution)
            elif execution.state.current.terminated:  # refused by the flow's limit
                await self.store.save_execution(execution.to_json(task_runs=False))
                self._finished_unstarted(execution)
            return
        self._active[flow.uid] += 1
        self._starting += 1
        self._start(flow, execution)
        log.info(
            "resumed execution %s of %s.%s (%s)",
            execution.id,
            execution.namespace,
            execution.flow_id,
            execution.state.current.value,
        )

    def _finished_unstarted(self, execution: Execution) -> None:
        ended = self._ended.pop(execution.id, None)
        if ended is not None and not ended.done():
            ended.set_result(execution)
        self.publish("execution", execution, None)
        if self.cluster is not None:
            self.cluster.ended(execution)

    async def _flow_revision(self, execution: Execution) -> Flow:
        """The flow exactly as it was when the execution started: the loaded one when it is
        that revision, else read back from the store."""
        loaded = self.flows.get((execution.namespace, execution.flow_id))
        if loaded is not None and loaded.revision == execution.flow_revision:
            return loaded
        stored = await self.store.get_flow(
            execution.namespace, execution.flow_id, execution.flow_revision
        )
        if stored is None:
            raise NotFound(
                f"flow {execution.namespace}.{execution.flow_id} revision "
                f"{execution.flow_revision} is not in the store"
            )
        flow = await asyncio.to_thread(
            load_flow,
            stored[1],
            f"<{execution.namespace}.{execution.flow_id} revision {stored[0]}>",
            self.plugins,
        )
        flow.revision = stored[0]
        return flow

    # -- waiting and killing ------------------------------------------------------------

    async def wait(self, execution_id: str) -> Execution:
        """The execution once it has ended (or as stored, if it is not queued or running here)."""
        ended = self._ended.get(execution_id)
        if ended is not None:
            return await asyncio.shield(ended)
        if self.cluster is not None:
            await self.cluster.wait_ended(execution_id)
            ended = self._ended.get(execution_id)  # claimed here meanwhile
            if ended is not None:
                return await asyncio.shield(ended)
        doc = await self.store.get_execution(execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id} not found")
        return Execution.from_json(doc)

    async def restart(self, execution_id: str) -> Execution:
        """Run a FAILED or KILLED execution again from its failed task runs.

        Finished task runs keep their state and outputs and are not run again; each failed
        one (and the flowable tasks around it) gets a new attempt.
        """
        doc = await self.store.get_execution(execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id} not found")
        execution = Execution.from_json(doc)
        if execution.state.current not in (State.FAILED, State.KILLED):
            raise RestartRefused(
                f"execution {execution_id} is {execution.state.current.value}; "
                "only FAILED or KILLED executions can be restarted"
            )
        flow = await self._flow_revision(execution)
        now = self.clock.now()
        for run in execution.task_runs:
            if run.state.current in (State.FAILED, State.KILLED):
                run.state.set(State.RESTARTED, now)
                await self.store.save_task_run(run.to_json(), wait=False)
        execution.error = None
        execution.state.set(State.RESTARTED, now)
        if self.cluster is not None:
            await self.store.save_execution(execution.to_json(task_runs=False))
            await self.cluster.release(execution.id)
            self.publish("execution", execution, None)
            self.cluster.offer()
            return execution
        self._ended[execution.id] = asyncio.get_running_loop().create_future()
        await self.store.save_execution(execution.to_json(task_runs=False))
        self.publish("execution", execution, None)
        if self._gate(flow, execution):
            self._start(flow, execution)
        return execution

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        """A new execution of the same flow revision and inputs, keeping the task runs that
        ended before `task_run_id`'s task (all of them run again when it is None)."""
        doc = await self.store.get_execution(execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id} not found")
        original = Execution.from_json(doc)
        flow = await self._flow_revision(original)
        order = [t.id for t in flow.all_tasks()]
        cut = 0
        if task_run_id is not None:
            chosen = next((r for r in original.task_runs if r.id == task_run_id), None)
            if chosen is None:
                raise NotFound(f"task run {task_run_id} not found in execution {execution_id}")
            cut = order.index(chosen.task_id) if chosen.task_id in order else 0
        keep = set(order[:cut])
        copy = Execution(
            id=new_id(),
            namespace=original.namespace,
            flow_id=original.flow_id,
            flow_revision=original.flow_revision,
            state=StateHistory(State.CREATED, self.clock.now()),
            inputs=original.inputs,
            labels={**original.labels, "system.replay": "true"},
            trigger=original.trigger,
            parent={"replayOf": original.id},
        )
        ids = {r.id: new_id() for r in original.task_runs}
        for run in original.task_runs:
            if run.task_id in keep and run.state.current.terminated:
                clone = TaskRun.from_json(
                    {**run.to_json(), "id": ids[run.id], "executionId": copy.id}
                )
                clone.parent_task_run_id = ids.get(run.parent_task_run_id or "")
                copy.task_runs.append(clone)
        if self.cluster is None:
            self._ended[copy.id] = asyncio.get_running_loop().create_future()
        await self.store.save_execution(copy.to_json(task_runs=False))
        for run in copy.task_runs:
            await self.store.save_task_run(run.to_json(), wait=False)
        self.publish("execution", copy, None)
        if self.cluster is not None:
            await self.store.flush()  # its task runs are read by whichever node claims it
            self.cluster.offer()
            return copy
        if self._gate(flow, copy):
            self._start(flow, copy)
        return copy

    def pause_point(
        self, execution_id: str, on_resume: Sequence[InputSpec]
    ) -> asyncio.Future[dict[str, Any]]:
        """Where a Pause task waits; `resume` completes it. Removed with `unpause`."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pauses[execution_id] = (on_resume, future)
        return future

    def unpause(self, execution_id: str) -> None:
        self._pauses.pop(execution_id, None)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        """Resume a PAUSED execution with the inputs its Pause task declares (`onResume`).

        False when no execution waits under that id; `InputError` (nothing resumed) when the
        inputs do not fit. In a cluster, an execution paused on another node is resumed by
        that node (its inputs are checked there).
        """
        if self.cluster is not None and execution_id not in self._pauses:
            doc = await self.store.get_execution(execution_id)
            if doc is None or doc["state"]["current"] != State.PAUSED.value:
                return False
            # Checked here too, so that a caller hears about bad inputs; the node that
            # runs the execution coerces them again.
            await asyncio.to_thread(coerce_inputs, await self._resume_specs(doc), inputs)
            owner = await self.cluster.owner(execution_id)
            await self.cluster.control("resume", execution_id, owner, inputs=dict(inputs))
            return True
        return await self.resume_local(execution_id, inputs)

    async def _resume_specs(self, doc: dict[str, Any]) -> Sequence[InputSpec]:
        """The `onResume` inputs of the task run that holds a stored execution PAUSED."""
        paused = next(
            (
                tr
                for tr in doc.get("taskRunList", [])
                if tr["state"]["current"] == State.PAUSED.value
            ),
            None,
        )
        if paused is None:
            return []
        flow = await self._flow_revision(Execution.from_json(doc))
        task = next((t for t in flow.all_tasks() if t.id == paused["taskId"]), None)
        specs: Sequence[InputSpec] = getattr(task, "on_resume", None) or []
        return specs

    async def resume_local(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        waiting = self._pauses.get(execution_id)
        if waiting is None or waiting[1].done():
            return False
        specs, future = waiting
        values = await asyncio.to_thread(coerce_inputs, specs, inputs)
        if not future.done():
            future.set_result(values)
        return True

    async def kill(self, execution_id: str) -> bool:
        """Kill an execution; in a cluster, whichever node runs it (or none yet)."""
        if await self.kill_local(execution_id):
            return True
        if self.cluster is None:
            return False
        doc = await self.store.get_execution(execution_id)
        if doc is None or State(doc["state"]["current"]).terminated:
            return False
        if await self.cluster.claim_one(execution_id):
            execution = Execution.from_json(doc)
            execution.state.set(State.KILLED, self.clock.now())
            await self.store.save_execution(execution.to_json(task_runs=False))
            self._finished_unstarted(execution)
            return True
        owner = await self.cluster.owner(execution_id)
        await self.cluster.control("kill", execution_id, owner)
        return True

    async def kill_local(self, execution_id: str) -> bool:
        job = self._running.get(execution_id)
        if job is None:
            return False
        job.cancel()
        await asyncio.wait([job])
        return True

    @property
    def running(self) -> int:
        return len(self._running)

    def runs_here(self, execution_id: str) -> bool:
        """Queued or running in this process (in a cluster, another node may run it)."""
        return execution_id in self._running or execution_id in self._ended

    @property
    def starting(self) -> int:
        """Admitted and about to run, or queued here by a concurrency limit."""
        return self._starting + len(self._waiting) + sum(len(q) for q in self._queued.values())

    async def drain(self) -> None:
        """Wait until nothing is running (tests' "until idle" step)."""
        await self._idle.wait()

    def on_close(self, key: str, closer: Callable[[], Awaitable[None]]) -> None:
        """Have `closer` run once when the runtime closes (plug-ins' pools, clients).

        The first closer registered under a key is kept; later ones are ignored.
        """
        self._closers.setdefault(key, closer)

    async def close(self, *, hand_over: bool = False) -> None:
        """Kill what runs (stored KILLED); queued executions stay QUEUED for the next start;
        then plug-ins' resources are closed.

        With `hand_over` (a cluster node shutting down) running executions are interrupted
        without being stored KILLED, as a crash would leave them, so that another node
        resumes them; the interrupted task runs are retried per their policy there.
        """
        self.handing_over = hand_over
        for job in list(self._running.values()):
            job.cancel()
        if self._running:
            await asyncio.wait(list(self._running.values()))
        for ended in self._ended.values():
            ended.cancel()
        self._ended.clear()
        closers, self._closers = self._closers, {}
        for key, closer in closers.items():
            try:
                await closer()
            except Exception:
                log.exception("closing %s failed", key)
        await self.store.flush()

    # -- events, expressions, secrets ---------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(
        self,
        kind: str,
        execution: Execution,
        task_run: TaskRun | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        for listener in self._listeners:
            try:
                listener(kind, execution, task_run, extra)
            except Exception:
                log.exception("event listener failed")

    def functions(self, ctx: RunContext | None) -> dict[str, Callable[..., Any]]:
        """Expression functions that need podium's services.

        `read` and `kv` do I/O: templates that call them are rendered off the event loop
        (see `BLOCKING_FUNCTIONS`), and `kv` hops back into the loop for the store.
        """
        default_namespace = ctx.execution.namespace if ctx is not None else None
        loop = self.loop

        def kv(key: str, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
            target = namespace or default_namespace
            if target is None:
                raise ValueError("kv() needs a namespace here")
            if loop is None:
                raise RuntimeError("kv() needs the daemon's event loop")
            found, value = asyncio.run_coroutine_threadsafe(
                self.store.kv_get(target, str(key)), loop
            ).result(timeout=30)
            if not found and errorOnMissing:
                raise KeyError(f"no KV pair '{key}' in namespace {target}")
            return value

        return {"read": self._read, "secret": self.secret, "kv": kv}

    def _read(self, uri: str) -> str:
        return self.storage.read_text(str(uri))

    def secret(self, name: str) -> str:
        """Kestra's convention: SECRET_<NAME> holds the base64 of the value; podium also reads
        plain values from the secrets file (`secrets-file:` setting). Every value read is
        masked as ****** in stored logs and outputs from then on."""
        key = str(name)
        value = self.secrets.get(key)
        if value is None:
            encoded = os.environ.get(f"SECRET_{key}")
            if encoded is None:
                raise KeyError(
                    f"secret '{key}' is not set (environment variable SECRET_{key}, "
                    "base64-encoded, or the secrets file)"
                )
            try:
                value = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(f"secret '{key}': SECRET_{key} is not base64 text") from None
        self.add_secret(value)
        return value

    def add_secret(self, value: str) -> None:
        if value:
            self._secrets.add(value)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "******")
        return text

    def masked(self, value: Any) -> Any:
        """`value` with every secret read so far replaced by ****** in all its strings.

        Applied to what is stored (task-run outputs, execution outputs and errors); tasks of
        the running execution keep the clear values in memory.
        """
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.masked(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.masked(v) for v in value]
        return value
