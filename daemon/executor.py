"""Runs one execution: the task graph, as concurrently as its dependencies allow.

Sequential lists run in order (Kestra semantics); a list in which any task has
`dependsOn` runs as a DAG; flowable tasks hand back branches that run here.
Every state change goes to the store; a task's terminal state is committed
before anything that depends on it starts.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from daemon.context import RunContext, TaskLogger
from daemon.sdk.durations import format_duration
from daemon.sdk.errors import ExitRequested, PodiumError, TaskFailed, TemplateError
from daemon.sdk.execution import Execution, TaskRun, new_id
from daemon.sdk.plugin import Branch, FlowableTask, Task
from daemon.sdk.properties import templated_values, with_rendered
from daemon.sdk.retry import RetryPolicy
from daemon.sdk.state import State, StateHistory
from daemon.store.base import StoreError

if TYPE_CHECKING:
    from daemon.flow import Flow
    from daemon.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T", bound=Task)
BLOCKING_FUNCTIONS = ("read(", "kv(")
# Errors of a disk (full, read-only, refused) that fail a task without a traceback.
DISK_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)
# An execution's final state that the store refuses is offered again after 1 s, 2 s, 4 s...
MAX_STORE_RETRY_DELAY = 30.0

_RANK = {
    State.SUCCESS: 0,
    State.SKIPPED: 0,
    State.WARNING: 1,
    State.CANCELLED: 1,
    State.FAILED: 2,
    State.KILLED: 3,
}


def worst(*states: State) -> State:
    return max(states, key=lambda s: _RANK.get(s, 0), default=State.SUCCESS)


@dataclass(frozen=True)
class Scope:
    """Where a task run sits: its parent task run and the ForEach values above it."""

    parent: TaskRun | None = None
    values: tuple[str, ...] = ()
    value: str | None = None
    iteration: int | None = None
    parents: tuple[dict[str, Any], ...] = ()


class ExecutionRunner:
    """The run of one execution of one flow, from RUNNING to its final state."""

    def __init__(self, runtime: Runtime, flow: Flow, execution: Execution) -> None:
        self.runtime = runtime
        self.flow = flow
        self.execution = execution
        self.outputs: dict[str, Any] = {}
        # Task runs of an execution resumed after a restart, found again by where they sit.
        self._earlier = {
            (tr.task_id, tr.value, tr.parent_task_run_id): tr for tr in execution.task_runs
        }
        self._first_failure: str | None = None
        self._unsaved = False  # the store refused a write: save every task run at the end
        self._tmp = str(runtime.data_dir / "tmp" / execution.id)

    # -- the execution ------------------------------------------------------------------

    async def run(self) -> Execution:
        ex = self.execution
        store = self.runtime.store
        now = self.runtime.clock.now
        if ex.state.current != State.RUNNING:
            ex.state.set(State.RUNNING, now())
        await store.save_execution(ex.to_json(task_runs=False), wait=False)
        self.runtime.publish("execution", ex, None)
        try:
            state = await self.run_list(self.flow.tasks, Scope())
            if state.failed and self.flow.errors:
                await self.run_list(self.flow.errors, Scope())
            if self.flow.finally_:
                await self.run_list(self.flow.finally_, Scope())
        except ExitRequested as exit_:
            state = exit_.state
            await self._kill_unfinished()
        except asyncio.CancelledError:
            if self.runtime.handing_over:
                # Left as a crash would leave it: another node resumes it, retrying the
                # interrupted task run per its policy.
                await asyncio.shield(self.runtime.store.flush())
                raise
            await asyncio.shield(self._finish_killed())
            raise
        except StoreError as exc:
            state = self._store_refused(exc)
        else:
            state = self._final_state(state)
        if state in (State.SUCCESS, State.WARNING) and self.flow.outputs:
            state = self._flow_outputs(state)
        if state.failed and self._first_failure and not ex.error:
            ex.error = self._first_failure
        ex.state.set(state, now())
        if self.flow.after_execution:
            await self._after_execution(state)
        await self._store_final()
        return ex

    async def _after_execution(self, final: State) -> None:
        """Kestra's `afterExecution`: tasks that see the final state as `execution.state`.

        As in Kestra, their failure is logged and never changes that state, so flows
        triggered on the state see it once, after these tasks have run.
        """
        ex = self.execution
        try:
            result = await self.run_list(self.flow.after_execution, Scope())
        except ExitRequested:
            result = State.SUCCESS  # the execution has ended already: nothing left to exit
        except StoreError as exc:
            log.error(
                "execution %s of %s.%s: afterExecution stopped, the store refused a write: %s",
                ex.id,
                ex.namespace,
                ex.flow_id,
                exc,
            )
            self._unsaved = True
            result = State.FAILED
        except asyncio.CancelledError:
            if not self.runtime.handing_over:
                await asyncio.shield(self._save_final())
            raise
        if ex.state.current != final:  # a Pause in there moved it; the final state stands
            ex.state.set(final, self.runtime.clock.now())
        if result.failed:
            log.warning(
                "execution %s of %s.%s: an afterExecution task failed; the execution stays %s",
                ex.id,
                ex.namespace,
                ex.flow_id,
                final.value,
            )

    def _final_state(self, state: State) -> State:
        if state.failed:
            return State.FAILED if state == State.FAILED else state
        if any(tr.state.current == State.WARNING for tr in self.execution.task_runs):
            return State.WARNING
        return State.SUCCESS

    async def _save_final(self) -> None:
        doc = self.runtime.masked(self.execution.to_json(task_runs=False))
        await self.runtime.store.save_execution(doc)
        self.runtime.publish("execution", self.execution, None)

    def _store_refused(self, exc: StoreError) -> State:
        """A write the store refused (its disk full) ends the execution FAILED: going on
        with nothing recorded would be lost at the next restart, or run twice."""
        ex = self.execution
        log.error("execution %s of %s.%s fails: %s", ex.id, ex.namespace, ex.flow_id, exc)
        now = self.runtime.clock.now()
        for tr in ex.task_runs:
            if not tr.state.current.terminated:
                if tr.attempts and not tr.attempts[-1].current.terminated:
                    tr.attempts[-1].set(State.FAILED, now)
                tr.state.set(State.FAILED, now)
        if self._first_failure is None:
            self._first_failure = f"the store refused a write: {exc}"
        self._unsaved = True
        return State.FAILED

    async def _store_final(self) -> None:
        """The final state, offered to the store until it takes it: an execution must not
        stay RUNNING in the store because the disk was full for a while. After a refusal
        the task runs go again too, since their writes may have been refused as well."""
        ex = self.execution
        delay = 1.0
        while True:
            try:
                if self._unsaved:
                    await asyncio.shield(
                        asyncio.gather(*(self._save_run(tr) for tr in ex.task_runs))
                    )
                await asyncio.shield(self._save_final())
            except StoreError as exc:
                if delay == 1.0:
                    log.error(
                        "execution %s of %s.%s: its final state %s cannot be stored "
                        "(%s); trying again, backing off up to %.0fs",
                        ex.id,
                        ex.namespace,
                        ex.flow_id,
                        ex.state.current.value,
                        exc,
                        MAX_STORE_RETRY_DELAY,
                    )
                self._unsaved = True
            else:
                if delay > 1.0:
                    log.info(
                        "execution %s: its final state %s is stored", ex.id, ex.state.current.value
                    )
                return
            await self.runtime.clock.sleep(delay)
            delay = min(delay * 2, MAX_STORE_RETRY_DELAY)

    async def _finish_killed(self) -> None:
        await self._kill_unfinished()
        self.execution.state.set(State.KILLED, self.runtime.clock.now())
        await self._save_final()

    async def _kill_unfinished(self) -> None:
        now = self.runtime.clock.now()
        for tr in self.execution.task_runs:
            if not tr.state.current.terminated:
                if tr.attempts and not tr.attempts[-1].current.terminated:
                    tr.attempts[-1].set(State.KILLED, now)
                tr.state.set(State.KILLED, now)
                await self._save_run(tr, wait=False)
                self.runtime.publish("taskrun", self.execution, tr)
        await self.runtime.store.flush()

    def _flow_outputs(self, state: State) -> State:
        variables = self._variables(None, None, Scope())
        out: dict[str, Any] = {}
        for output in self.flow.outputs:
            try:
                out[output.id] = self.runtime.renderer.render_value(
                    output.value, variables, self.runtime.functions(None)
                )
            except TemplateError as exc:
                self._first_failure = f"flow output '{output.id}': {exc}"
                TaskLogger(self.runtime, self.execution, None).error(self._first_failure)
                return State.FAILED
        self.execution.outputs = out
        return state

    # -- lists of tasks -----------------------------------------------------------------

    async def run_list(
        self, tasks: Sequence[Task], scope: Scope, dag: Mapping[str, Sequence[str]] | None = None
    ) -> State:
        active = [t for t in tasks if not t.disabled]
        if dag is None and any(t.depends_on for t in active):
            dag = {t.id: t.depends_on for t in active}
        if dag is not None:
            return await self._run_dag(active, dag, scope)
        state = State.SUCCESS
        for task in active:
            result = await self.run_task(task, scope)
            state = worst(state, result)
            if result.failed:
                break
        return state

    async def _run_dag(
        self, tasks: Sequence[Task], deps: Mapping[str, Sequence[str]], scope: Scope
    ) -> State:
        ids = {t.id for t in tasks}
        waiting = {t.id: {d for d in deps.get(t.id, ()) if d in ids} for t in tasks}
        by_id = {t.id: t for t in tasks}
        state = State.SUCCESS
        running: dict[asyncio.Task[State], str] = {}
        failed = False
        try:
            while True:
                if not failed:
                    for task_id in [i for i, w in waiting.items() if not w]:
                        del waiting[task_id]
                        job = asyncio.create_task(self.run_task(by_id[task_id], scope))
                        running[job] = task_id
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for job in done:
                    task_id = running.pop(job)
                    result = job.result()
                    state = worst(state, result)
                    if result.failed:
                        failed = True
                    for w in waiting.values():
                        w.discard(task_id)
        finally:
            for job in running:
                job.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return state

    async def _run_branches(
        self, branches: Sequence[Branch], concurrency: int, parent: TaskRun, scope: Scope
    ) -> State:
        limit = asyncio.Semaphore(max(concurrency, 1)) if concurrency > 0 else None
        parent_info = {"taskrun": {"id": parent.id, "value": parent.value}, "outputs": {}}

        async def one(index: int, branch: Branch) -> State:
            child_scope = Scope(
                parent=parent,
                values=scope.values + ((str(branch.value),) if branch.has_value else ()),
                value=_value_text(branch.value) if branch.has_value else scope.value,
                iteration=index if branch.has_value else scope.iteration,
                parents=(parent_info, *scope.parents),
            )
            if limit is None:
                return await self.run_list(branch.tasks, child_scope, branch.dag)
            async with limit:
                return await self.run_list(branch.tasks, child_scope, branch.dag)

        if len(branches) == 1 or concurrency == 1:
            state = State.SUCCESS
            for i, branch in enumerate(branches):
                result = await one(i, branch)
                state = worst(state, result)
                if result.failed:
                    break
            return state
        results = await asyncio.gather(*(one(i, b) for i, b in enumerate(branches)))
        return worst(*results)

    # -- one task -----------------------------------------------------------------------

    async def run_task(self, task: Task, scope: Scope) -> State:
        tr = self._earlier.pop(
            (task.id, scope.value, scope.parent.id if scope.parent else None), None
        )
        if tr is not None and tr.state.current.terminated and not isinstance(task, FlowableTask):
            # Finished before a restart: never run twice, but its outputs are needed.
            if tr.outputs:
                self._set_output(task.id, scope.values, tr.outputs)
            return tr.state.current
        if tr is None:
            tr = TaskRun(
                id=new_id(),
                execution_id=self.execution.id,
                namespace=self.execution.namespace,
                flow_id=self.execution.flow_id,
                task_id=task.id,
                state=StateHistory(State.CREATED, self.runtime.clock.now()),
                parent_task_run_id=scope.parent.id if scope.parent else None,
                value=scope.value,
                iteration=scope.iteration,
            )
            self.execution.task_runs.append(tr)
        variables = self._variables(task, tr, scope)
        logger = TaskLogger(self.runtime, self.execution, tr, task.log_level)
        ctx = RunContext(self.runtime, self.flow, self.execution, tr, variables, logger)
        try:
            if task.run_if is not None and not ctx.render_bool(task.run_if):
                return await self._end(tr, State.SKIPPED)
            if isinstance(task, FlowableTask):
                flowable = await self._render(task, ctx)
        except (TemplateError, TaskFailed) as exc:
            return await self._fail(task, tr, logger, str(exc))
        if isinstance(task, FlowableTask):
            return await self._run_flowable(flowable, tr, ctx, scope)
        return await self._run_attempts(task, tr, ctx, scope)

    async def _render(self, task: T, ctx: RunContext) -> T:
        """The task with its dynamic properties rendered and type-checked, per attempt."""
        templated = templated_values(task)
        if not templated:
            return task
        if any(name in repr(templated) for name in BLOCKING_FUNCTIONS):
            # read() opens stored files, kv() waits for the store: render off the loop.
            rendered = await asyncio.to_thread(ctx.render, templated)
        else:
            rendered = ctx.render(templated)
        return with_rendered(task, rendered)

    async def _run_flowable(
        self, task: FlowableTask, tr: TaskRun, ctx: RunContext, scope: Scope
    ) -> State:
        replay = tr.state.current.terminated  # ended before a restart: walk it for outputs
        if not replay and tr.state.current != State.RUNNING:
            self._set_state(tr, State.RUNNING)
            await self._save_run(tr, wait=False)
        try:
            children = await task.children(ctx)
        except (TaskFailed, TemplateError) as exc:
            return await self._fail(task, tr, ctx.logger, str(exc))
        if children.branches:
            outputs = {"branches": len(children.branches)}
            tr.outputs = outputs
        state = await self._run_branches(children.branches, children.concurrency, tr, scope)
        if state.failed and children.errors:
            await self.run_list(
                children.errors,
                Scope(tr, scope.values, scope.value, scope.iteration, scope.parents),
            )
        if children.finally_:
            await self.run_list(
                children.finally_,
                Scope(tr, scope.values, scope.value, scope.iteration, scope.parents),
            )
        if state.failed and (children.failure_is_warning or task.allow_failure):
            state = State.WARNING
        if replay:
            return tr.state.current
        return await self._end(tr, state)

    async def _run_attempts(self, task: Task, tr: TaskRun, ctx: RunContext, scope: Scope) -> State:
        clock = self.runtime.clock
        policy = RetryPolicy.from_model(task.retry) if task.retry else None
        started = clock.now()
        if tr.attempts and not tr.attempts[-1].current.terminated:
            reason = self._interrupted(tr, policy)
            if reason is not None:
                return await self._fail(task, tr, ctx.logger, reason)
        while True:
            attempt = StateHistory(State.RUNNING, clock.now())
            tr.attempts.append(attempt)
            ctx.variables["taskrun"]["attemptsCount"] = len(tr.attempts)
            ctx.warning = False
            self._set_state(tr, State.RUNNING)
            await self._save_run(tr, wait=False)
            try:
                outputs = await self._attempt(await self._render(task, ctx), ctx)
            except asyncio.CancelledError:
                if not self.runtime.handing_over:
                    attempt.set(State.KILLED, clock.now())
                    self._set_state(tr, State.KILLED)
                    await asyncio.shield(self._save_run(tr))
                await asyncio.shield(ctx.cleanup())
                raise
            except ExitRequested as exit_:
                attempt.set(State.SUCCESS, clock.now())
                await self._end(tr, State.SUCCESS)
                await ctx.cleanup()
                raise exit_ from None
            except Exception as exc:
                attempt.set(State.FAILED, clock.now())
                message = self._describe(task, exc, ctx)
                retryable = not isinstance(exc, TemplateError) and not (
                    isinstance(exc, TaskFailed) and exc.non_retryable
                )
                delay = (
                    policy.next_delay(len(tr.attempts), clock.now() - started)
                    if policy and retryable
                    else None
                )
                if delay is None:
                    await ctx.cleanup()
                    return await self._fail(task, tr, ctx.logger, message)
                ctx.logger.warning(
                    f"{message}; attempt {len(tr.attempts)} failed, retrying in {delay:g}s"
                )
                await ctx.cleanup()  # each attempt starts from a fresh working directory
                self._set_state(tr, State.RETRYING)
                await self._save_run(tr, wait=False)
                await clock.sleep(delay)
                continue
            attempt.set(State.SUCCESS, clock.now())
            await ctx.cleanup()
            if outputs:
                tr.outputs = dict(outputs)
                self._set_output(task.id, scope.values, tr.outputs)
            final = State.SUCCESS
            if ctx.warning or (policy and policy.warning_on_retry and len(tr.attempts) > 1):
                final = State.WARNING
            return await self._end(tr, final)

    def _interrupted(self, tr: TaskRun, policy: RetryPolicy | None) -> str | None:
        """An attempt cut short by a crash: retried per the retry policy, once without one.

        Returns why it is not retried, or None to run another attempt.
        """
        now = self.runtime.clock.now()
        tr.attempts[-1].set(State.FAILED, now)
        attempts = len(tr.attempts)
        message = f"attempt {attempts} was interrupted: podium stopped while it ran"
        if policy is None:
            if attempts > 1:
                return f"{message}, and it had already been retried once"
        elif policy.next_delay(attempts, now - tr.state.start) is None:
            return f"{message}, and its retry policy allows no further attempt"
        TaskLogger(self.runtime, self.execution, tr).warning(f"{message}; running it again")
        return None

    async def _attempt(self, task: Task, ctx: RunContext) -> Mapping[str, Any] | None:
        slots = self.runtime.task_slots
        if slots is None:
            return await self._timed(task, ctx)
        async with slots:
            return await self._timed(task, ctx)

    async def _timed(self, task: Task, ctx: RunContext) -> Mapping[str, Any] | None:
        if task.timeout is None:
            return await task.run(ctx)
        seconds = task.timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                return await task.run(ctx)
        except TimeoutError:
            raise TaskFailed(f"timed out after {format_duration(task.timeout)}") from None

    def _describe(self, task: Task, exc: BaseException, ctx: RunContext) -> str:
        if isinstance(exc, PodiumError):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            # The machine's condition, not a bug: one line, with the path. A write that fails
            # half-way names no file; the task was most likely writing in its directory.
            if exc.filename is not None:
                return f"{exc.strerror}: {os.fsdecode(exc.filename)}"
            return f"{exc.strerror} (in the task's working directory {ctx.working_dir_path})"
        log.error(
            "task %s of execution %s raised:\n%s",
            task.id,
            self.execution.id,
            "".join(traceback.format_exception(exc)),
        )
        return f"{type(exc).__name__}: {exc}"

    async def _fail(self, task: Task, tr: TaskRun, logger: TaskLogger, message: str) -> State:
        logger.error(message)
        if task.allow_failure:
            return await self._end(tr, State.WARNING)
        if self._first_failure is None:
            self._first_failure = f"task '{task.id}': {message}"
        return await self._end(tr, State.FAILED)

    def _set_state(self, tr: TaskRun, state: State) -> None:
        tr.state.set(state, self.runtime.clock.now())
        self.runtime.publish("taskrun", self.execution, tr)

    async def _end(self, tr: TaskRun, state: State) -> State:
        self._set_state(tr, state)
        await self._save_run(tr)
        return state

    async def _save_run(self, tr: TaskRun, *, wait: bool = True) -> None:
        await self.runtime.store.save_task_run(self.runtime.masked(tr.to_json()), wait=wait)

    # -- variables ----------------------------------------------------------------------

    def _set_output(self, task_id: str, values: Sequence[str], outputs: dict[str, Any]) -> None:
        if not values:
            self.outputs[task_id] = outputs
            return
        node = self.outputs.setdefault(task_id, {})
        for value in values[:-1]:
            node = node.setdefault(value, {})
        node[values[-1]] = outputs

    def _variables(self, task: Task | None, tr: TaskRun | None, scope: Scope) -> dict[str, Any]:
        ex, flow = self.execution, self.flow
        variables: dict[str, Any] = {
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": ex.flow_revision},
            "execution": {
                "id": ex.id,
                "startDate": ex.state.start_iso,
                "state": ex.state.current.value,
                "originalId": ex.id,
            },
            "inputs": ex.inputs,
            "vars": flow.variables,
            "outputs": self.outputs,
            "labels": ex.labels,
            "envs": self.runtime.envs,
        }
        if ex.trigger is not None:
            variables["trigger"] = ex.trigger.get("variables") or {}
        if task is not None and tr is not None:
            variables["task"] = {"id": task.id, "type": task.type}
            variables["taskrun"] = {
                "id": tr.id,
                "startDate": tr.state.start_iso,
                "attemptsCount": len(tr.attempts),
                "value": scope.value,
                "iteration": scope.iteration,
                "parentId": tr.parent_task_run_id,
            }
            variables["workingDir"] = f"{self._tmp}/{tr.id}"
            if scope.parents:
                variables["parent"] = scope.parents[0]
                variables["parents"] = list(scope.parents)
        return variables


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)
