"""Executions after their first run: resumed after a crash, taken over from another node,
restarted from their failed task runs, or replayed as a new execution."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from daemon.engine.dispatcher import Dispatcher
from daemon.engine.endings import retry_metadata
from daemon.engine.local import LocalExecutions
from daemon.engine.resources import Resources
from daemon.flows.catalog import FlowCatalog
from daemon.flows.definition import Flow, task_lists
from daemon.sdk.errors import FlowDisabled, NotFound, PodiumError
from daemon.sdk.execution import Execution, TaskRun, new_id
from daemon.sdk.plugin import FlowableTask
from daemon.sdk.state import State, StateHistory

log = logging.getLogger(__name__)

UNFINISHED = ["CREATED", "RUNNING", "QUEUED", "RETRYING", "KILLING", "PAUSED", "RESTARTED"]
RECOVERY_PAGE = 200
# Not started yet: these pass admission again when adopted (the rest resume in their slot).
WAITING = (State.CREATED, State.QUEUED, State.RESTARTED)
# Kestra's Label.REPLAY (on the copy) and Label.REPLAYED (on the execution replayed).
REPLAY = "system.replay"
REPLAYED = "system.replayed"
# Inputs coerced against a flow for the execution of the given id (Submitter.coerce).
Coerce = Callable[[Flow, Mapping[str, Any], str], Awaitable[dict[str, Any]]]


class RestartRefused(PodiumError):
    """Only a FAILED or KILLED execution can be restarted (nor can a running one's task
    runs be changed)."""


class ControlRefused(PodiumError):
    """What a person asks of an execution does not apply to it (Kestra's
    IllegalArgumentException: an execution not RUNNING paused, a task run that is not
    there...)."""


class Lifecycle:
    def __init__(
        self,
        resources: Resources,
        catalog: FlowCatalog,
        local: LocalExecutions,
        dispatcher: Dispatcher,
        coerce: Coerce,
    ) -> None:
        self._resources = resources
        self._catalog = catalog
        self._local = local
        self._dispatcher = dispatcher
        self._coerce = coerce
        self._retrying: set[asyncio.Task[None]] = set()

    async def flow_of(self, execution: Execution) -> Flow:
        """The flow exactly as it was when the execution started."""
        return await self._catalog.at(
            execution.namespace, execution.flow_id, execution.flow_revision
        )

    async def recover(self) -> int:
        """Resume what a previous process left unfinished; returns how many executions.

        RUNNING ones continue where they stopped (finished task runs are not run again),
        then QUEUED ones queue again in the order they arrived.
        """
        store = self._resources.store
        unfinished: list[dict[str, Any]] = []
        page = 1
        while True:
            docs, total = await store.search_executions(
                states=UNFINISHED, page=page, size=RECOVERY_PAGE
            )
            unfinished.extend(docs)
            if not docs or len(unfinished) >= total:
                break
            page += 1
        unfinished.sort(key=lambda d: d["state"]["startDate"])
        found = []
        for summary in unfinished:
            doc = await store.get_execution(summary["id"])
            if doc is not None:
                found.append(Execution.from_json(doc))
                # waited for from now on: an execution resumed first may wait for this one
                # (a Subflow's child, a Loop's iteration) before it is adopted
                self._local.expect(found[-1])
        # Those that held a concurrency slot take it back before any waiting one is
        # admitted: a queued execution must not start in a slot still held.
        found.sort(key=lambda e: e.state.current in WAITING)  # stable: arrival order kept
        for execution in found:
            await self.adopt(execution)
        return len(unfinished)

    async def adopt(self, execution: Execution) -> None:
        """Run a stored execution here: one a previous process left unfinished, or one this
        node claimed in a cluster. CREATED, QUEUED and RESTARTED ones pass admission; RUNNING
        ones continue where they stopped (finished task runs are not run again)."""
        if execution.state.current.terminated:
            return
        local = self._local
        try:
            flow = await self.flow_of(execution)
        except PodiumError as exc:
            execution.error = f"cannot resume: {exc}"
            execution.state.set(State.FAILED, self._resources.clock.now())
            await self._resources.store.save_execution(execution.to_json(task_runs=False))
            log.error("execution %s: %s", execution.id, execution.error)
            local.ended_unstarted(execution)
            return
        local.expect(execution)
        if execution.state.current in WAITING:
            await local.enter(flow, execution)  # not started yet: the limits apply
            return
        local.resume(flow, execution)
        log.info(
            "resumed execution %s of %s.%s (%s)",
            execution.id,
            execution.namespace,
            execution.flow_id,
            execution.state.current.value,
        )

    async def restart(self, execution_id: str) -> Execution:
        """Run a FAILED or KILLED execution again from its failed task runs.

        Finished task runs keep their state and outputs and are not run again; each failed
        one (and the flowable tasks around it) gets a new attempt.
        """
        store = self._resources.store
        execution = await self._stored(execution_id)
        if execution.state.current not in (State.FAILED, State.KILLED):
            raise RestartRefused(
                f"execution {execution_id} is {execution.state.current.value}; "
                "only FAILED or KILLED executions can be restarted"
            )
        flow = await self.flow_of(execution)
        now = self._resources.clock.now()
        # As Kestra's ExecutionService.restart: the task runs of `errors` and `finally`
        # handlers (and what ran inside them) go, so that the handlers run again as the
        # restarted run ends.
        handlers = _handler_task_ids(flow)
        dropped = [run.id for run in execution.task_runs if run.task_id in handlers]
        execution.task_runs = [run for run in execution.task_runs if run.task_id not in handlers]
        await store.delete_task_runs(execution.id, dropped)
        for run in execution.task_runs:
            if run.state.current in (State.FAILED, State.KILLED):
                run.state.set(State.RESTARTED, now)
                await store.save_task_run(run.to_json(), wait=False)
        execution.error = None
        execution.state.set(State.RESTARTED, now)
        self._dispatcher.prepare(execution)
        await store.save_execution(execution.to_json(task_runs=False))
        self._resources.events.execution(execution)
        await self._dispatcher.rerun(flow, execution, restarted=True)
        return execution

    async def replay(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        *,
        latest: bool = False,
        revision: int | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Execution:
        """A new execution of the same flow revision (the flow's latest with `latest`, as
        Kestra's `latestRevision`, or `revision`) and inputs, keeping the task runs that
        ended before `task_run_id`'s task (all of them run again when it is None). With
        `inputs` (Kestra's replay-with-inputs) they replace the original's, coerced against
        the flow as for a new execution (InputError). As Kestra's innerReplay, the copy is
        labelled `system.replay` and an ended original `system.replayed`. NotFound for an
        unknown execution, task run or revision; FlowDisabled when that revision of the flow
        is disabled."""
        store = self._resources.store
        original = await self._stored(execution_id)
        if latest:
            flow = await self._catalog.find(original.namespace, original.flow_id)
            if flow.revision is None:
                flow.revision = await store.save_flow(flow.namespace, flow.id, flow.source)
        elif revision is None:
            flow = await self.flow_of(original)
        else:
            flow = await self._catalog.at(original.namespace, original.flow_id, revision)
        if flow.disabled:
            raise FlowDisabled(f"flow {flow.namespace}.{flow.id} is disabled")
        order = [t.id for t in flow.all_tasks()]
        cut = 0
        if task_run_id is not None:
            chosen = next((r for r in original.task_runs if r.id == task_run_id), None)
            if chosen is None:
                raise NotFound(f"task run {task_run_id} not found in execution {execution_id}")
            cut = order.index(chosen.task_id) if chosen.task_id in order else 0
        keep = set(order[:cut])
        copy_id = new_id()
        values = original.inputs if inputs is None else await self._coerce(flow, inputs, copy_id)
        copy = Execution(
            id=copy_id,
            namespace=original.namespace,
            flow_id=original.flow_id,
            flow_revision=flow.revision if flow.revision is not None else original.flow_revision,
            state=StateHistory(State.CREATED, self._resources.clock.now()),
            inputs=values,
            labels={**original.labels, REPLAY: "true"},
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
        if copy.task_runs:  # what kept task runs set (SetVariables) stays set
            copy.variables = original.variables
        self._dispatcher.prepare(copy)
        await store.save_execution(copy.to_json(task_runs=False))
        for run in copy.task_runs:
            await store.save_task_run(run.to_json(), wait=False)
        self._resources.events.execution(copy)
        await self._dispatcher.rerun(flow, copy, restarted=False)
        if original.state.current.terminated and original.labels.get(REPLAYED) != "true":
            # Only once it has ended: a running original is saved by whoever runs it.
            original.labels[REPLAYED] = "true"
            await store.save_execution(original.to_json(task_runs=False))
        return copy

    async def mark(self, execution_id: str, task_run_id: str, state: State) -> Execution:
        """Kestra's update of one task run's state (ExecutionService.markAs): an ended
        execution's task run is set to `state` (its last attempt too), the flowables around
        it run again, and the execution runs on from there as after a restart, labelled
        `system.restarted`. Its other task runs keep their states."""
        store = self._resources.store
        execution = await self._stored(execution_id)
        if not execution.state.current.terminated:
            raise RestartRefused(
                f"execution {execution_id} is {execution.state.current.value}; only the task "
                "runs of an ended execution can be changed (kill it first)"
            )
        if not state.terminated:
            raise ControlRefused(f"a task run can be set to an ended state only, not {state}")
        by_id = {run.id: run for run in execution.task_runs}
        run = by_id.get(task_run_id)
        if run is None:
            raise ControlRefused(
                f"no task run {task_run_id} in execution {execution_id} to restart it from"
            )
        flow = await self.flow_of(execution)
        if isinstance(flow.task_by_id(run.task_id), FlowableTask):
            raise ControlRefused(
                f"task run {task_run_id} is of the flowable task {run.task_id}, whose state "
                "follows its children's: change one of those"
            )
        now = self._resources.clock.now()
        run.state.set(state, now)
        if run.attempts:
            run.attempts[-1].set(state, now)
        changed = [run]
        parent = by_id.get(run.parent_task_run_id or "")
        while parent is not None:
            parent.state.set(State.RUNNING, now)
            changed.append(parent)
            parent = by_id.get(parent.parent_task_run_id or "")
        for each in changed:
            await store.save_task_run(each.to_json(), wait=False)
        execution.labels = {**execution.labels, "system.restarted": "true"}
        execution.error = None
        execution.state.set(State.RESTARTED, now)
        self._dispatcher.prepare(execution)
        await store.save_execution(execution.to_json(task_runs=False))
        self._resources.events.execution(execution)
        await self._dispatcher.rerun(flow, execution, restarted=True)
        return execution

    def retry_later(self, flow: Flow, execution: Execution) -> None:
        """Kestra's flow `retry` with CREATE_NEW_EXECUTION: a RETRIED execution is followed,
        after the policy's delay, by a new execution of the same flow revision with the same
        inputs, labels and trigger, one attempt further. A daemon stopped during the delay
        does not start it."""
        job = asyncio.create_task(self._retry(flow, execution))
        self._retrying.add(job)
        job.add_done_callback(self._retrying.discard)

    async def _retry(self, flow: Flow, original: Execution) -> None:
        clock = self._resources.clock
        await clock.sleep(float((original.metadata or {}).get("retryDelay", 0)))
        copy = Execution(
            id=new_id(),
            namespace=original.namespace,
            flow_id=original.flow_id,
            flow_revision=original.flow_revision,
            state=StateHistory(State.CREATED, clock.now()),
            inputs=original.inputs,
            labels=dict(original.labels),
            trigger=original.trigger,
            parent=original.parent,
            metadata=retry_metadata(original.metadata, original.state.start),
        )
        try:
            await self._dispatcher.create(flow, copy, idempotent=False)
        except PodiumError as exc:
            log.error("execution %s: its retry could not start: %s", original.id, exc)
        else:
            log.info("execution %s retried as %s", original.id, copy.id)

    async def close(self) -> None:
        """Drop the retries still waiting for their delay."""
        for job in list(self._retrying):
            job.cancel()
        for job in list(self._retrying):
            with contextlib.suppress(asyncio.CancelledError):
                await job

    async def _stored(self, execution_id: str) -> Execution:
        doc = await self._resources.store.get_execution(execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id} not found")
        return Execution.from_json(doc)


def _handler_task_ids(flow: Flow) -> set[str]:
    """Ids of every task of an `errors` or `finally` list, at any depth, and inside them."""
    return {
        task.id
        for tasks, path in task_lists(flow)
        if any(part in ("errors", "finally") for part in path)
        for task in tasks
    }
