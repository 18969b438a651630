"""One task run of an execution: its properties rendered, its attempts run under the retry
policy and the timeout, its state and outputs stored, its failure described in one line."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from daemon.engine.contexts import ExecutionLog, Launcher, TaskContext
from daemon.engine.events import TaskRunChanged
from daemon.engine.pauses import Pauses
from daemon.engine.resources import Resources
from daemon.engine.retries import task_policy
from daemon.engine.taskruns_extra import FileLog, TaskCache
from daemon.engine.variables import Scope, execution_variables, set_output, task_variables
from daemon.engine.workers import AttemptLost, render_task
from daemon.flows.definition import Flow
from daemon.sdk.context import TaskLogger
from daemon.sdk.errors import ExitRequested, PodiumError, TaskFailed
from daemon.sdk.execution import Execution, TaskRun, new_id
from daemon.sdk.plugin import Task
from daemon.sdk.retry import RetryPolicy
from daemon.sdk.state import State, StateHistory

log = logging.getLogger(__name__)
T = TypeVar("T", bound=Task)
# Errors of a disk (full, read-only, refused) that fail a task without a traceback.
DISK_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


@dataclass
class RunState:
    """What the task runs of one execution share while it runs."""

    flow: Flow
    execution: Execution
    outputs: dict[str, Any] = field(default_factory=dict)
    # Task runs of an execution resumed after a restart, found again by where they sit.
    earlier: dict[tuple[str, str | None, str | None], TaskRun] = field(default_factory=dict)
    first_failure: str | None = None
    unsaved: bool = False  # the store refused a write: save every task run at the end
    # Called each time a task run ends (the SLA assertions are checked then).
    changed: Callable[[], None] | None = None
    # Variables in place of the execution's own (an iteration of a Loop: `execution`, `item`).
    variables: dict[str, Any] = field(default_factory=dict)
    # The state an Approval's decision ended the execution in: no task starts any more
    # outside errors/finally, what runs finishes, and the execution ends in it.
    ending: State | None = None
    # Flowables interrupting their running children (onChildFailure), by task run id.
    interrupting: dict[str, Interruption] = field(default_factory=dict)

    def stopped(self, scope: Scope) -> bool:
        """Whether a task may no longer start at this place (see `ending`)."""
        return self.ending is not None and not scope.handling

    def __post_init__(self) -> None:
        self.earlier = {
            (tr.task_id, tr.value, tr.parent_task_run_id): tr for tr in self.execution.task_runs
        }

    def interruption(self, tr: TaskRun) -> Interruption | None:
        """Why a task run whose attempt was cancelled stopped: a flowable above it
        interrupting its children (onChildFailure), or None (the execution was killed)."""
        if not self.interrupting:
            return None
        by_id = {run.id: run for run in self.execution.task_runs}
        parent = tr.parent_task_run_id
        while parent is not None:
            if parent in self.interrupting:
                return self.interrupting[parent]
            above = by_id.get(parent)
            parent = above.parent_task_run_id if above else None
        return None


@dataclass(frozen=True)
class Interruption:
    """A flowable's children stopped because one of them failed: the state they end in
    and the line their logs say it with."""

    state: State
    reason: str


class TaskRuns:
    """Runs the task runs of one execution."""

    def __init__(
        self, resources: Resources, launcher: Launcher, pauses: Pauses, state: RunState
    ) -> None:
        self._resources = resources
        self._launcher = launcher
        self._pauses = pauses
        self.state = state
        self._tmp = f"{resources.scratch.root}/{state.execution.id}"
        self._cache = TaskCache(resources)
        # The commits of task-run ends queued by `end` and not yet seen (see `ended`).
        self._ending: list[asyncio.Future[Any]] = []

    def find_or_create(self, task: Task, scope: Scope) -> TaskRun:
        """This task's run at this place: the one a previous process left, or a new one."""
        key = (task.id, scope.value, scope.parent.id if scope.parent else None)
        tr = self.state.earlier.pop(key, None)
        if tr is not None:
            return tr
        ex = self.state.execution
        tr = TaskRun(
            id=new_id(),
            execution_id=ex.id,
            namespace=ex.namespace,
            flow_id=ex.flow_id,
            task_id=task.id,
            state=StateHistory(State.CREATED, self._resources.clock.now()),
            parent_task_run_id=scope.parent.id if scope.parent else None,
            value=scope.value,
            iteration=scope.iteration,
        )
        ex.task_runs.append(tr)
        return tr

    def context(self, task: Task, tr: TaskRun, scope: Scope) -> TaskContext:
        state, resources = self.state, self._resources
        base = execution_variables(
            state.flow,
            state.execution,
            state.outputs,
            resources.envs,
            globals_=resources.options.globals,
            url=resources.options.public_url,
        )
        base.update(state.variables)
        working_dir = scope.working_dir or f"{self._tmp}/{tr.id}"
        variables = task_variables(base, task, tr, scope, working_dir)
        logger: TaskLogger = ExecutionLog(resources, state.execution, tr, task.log_level)
        if task.log_to_file:
            path = Path(self._tmp) / f"{tr.id}.log"
            logger = FileLog(resources, state.execution, tr, path, task.log_level)
        shared = Path(scope.working_dir) if scope.working_dir else None
        return TaskContext(
            resources, self._launcher, self._pauses, state.flow, state.execution, tr, variables,
            logger, shared,
        )  # fmt: skip

    async def render(self, task: T, ctx: TaskContext) -> T:
        """The task with its dynamic properties rendered and type-checked, per attempt."""
        return await render_task(task, ctx)

    async def run_attempts(self, task: Task, tr: TaskRun, ctx: TaskContext, scope: Scope) -> State:
        try:
            return await self._run_attempts(task, tr, ctx, scope)
        finally:
            if isinstance(ctx.logger, FileLog):
                await asyncio.shield(ctx.logger.close(ctx.put_file))

    async def _run_attempts(self, task: Task, tr: TaskRun, ctx: TaskContext, scope: Scope) -> State:
        clock = self._resources.clock
        policy = task_policy(task, self.state.flow)
        started = clock.now()
        # An attempt an executor that stopped left unfinished: waited for where it goes on
        # (a cluster's worker), else retried as interrupted.
        going_on = False
        if tr.attempts and not tr.attempts[-1].current.terminated:
            going_on = await self._resources.workers.still_running(tr)
            if not going_on:
                reason = self._interrupted(tr, policy, "podium stopped while it ran")
                if reason is not None:
                    return await self.fail(task, tr, ctx.logger, reason)
        while True:
            if going_on:
                attempt, going_on = tr.attempts[-1], False
            else:
                attempt = StateHistory(State.RUNNING, clock.now())
                tr.attempts.append(attempt)
            # Kestra counts the attempts that ended: 0 while the first one runs.
            ctx.variables["taskrun"]["attemptsCount"] = len(tr.attempts) - 1
            ctx.warning = False
            self.set_state(tr, State.RUNNING)
            await self.save(tr, wait=False)
            try:
                outputs, cached = await self._cached_or_run(task, tr, ctx)
            except asyncio.CancelledError:
                if not self._resources.options.handing_over:
                    interruption = self.state.interruption(tr)
                    ended = interruption.state if interruption else State.KILLED
                    if interruption:
                        ctx.logger.warning(interruption.reason)
                    attempt.set(ended, clock.now())
                    self.set_state(tr, ended)
                    await asyncio.shield(self.save(tr))
                await asyncio.shield(ctx.cleanup())
                raise
            except AttemptLost as lost:
                await ctx.cleanup()
                reason = self._interrupted(tr, policy, str(lost))
                if reason is not None:
                    return await self.fail(task, tr, ctx.logger, reason)
                continue
            except ExitRequested as exit_:
                # Kestra's Exit: its task run (and the flowables around it) end in its state.
                attempt.set(exit_.state, clock.now())
                await self.end(tr, exit_.state)
                await ctx.cleanup()
                exit_.task_run_id = tr.id
                raise exit_ from None
            except Exception as exc:
                attempt.set(State.FAILED, clock.now())
                message = self._describe(task, exc, ctx)
                # A render error is retried like any error, as in Kestra (the expression may
                # read something an `errors` task or time fixes).
                retryable = not (isinstance(exc, TaskFailed) and exc.non_retryable)
                delay = (
                    policy.next_delay(len(tr.attempts), clock.now() - started)
                    if policy and retryable
                    else None
                )
                if delay is None:
                    await ctx.cleanup()
                    if isinstance(exc, TaskFailed) and exc.outputs:
                        tr.outputs = dict(exc.outputs)
                        set_output(self.state.outputs, task.id, scope.values, tr.outputs)
                    return await self.fail(task, tr, ctx.logger, message)
                ctx.logger.warning(
                    f"{message}; attempt {len(tr.attempts)} failed, retrying in {delay:g}s"
                )
                await ctx.cleanup()  # each attempt starts from a fresh working directory
                self.set_state(tr, State.RETRYING)
                await self.save(tr, wait=False)
                await clock.sleep(delay)
                continue
            attempt.set(State.SUCCESS, clock.now())
            await ctx.cleanup()
            if cached is not None and outputs is not None:
                await self._cache.put(cached, task, dict(outputs))
            if outputs:
                tr.outputs = dict(outputs)
                set_output(self.state.outputs, task.id, scope.values, tr.outputs)
            final = State.SUCCESS
            if ctx.warning or (policy and policy.warning_on_retry and len(tr.attempts) > 1):
                final = State.SUCCESS if task.allow_warning else State.WARNING
            return await self.end(tr, final)

    def _interrupted(self, tr: TaskRun, policy: RetryPolicy | None, why: str) -> str | None:
        """An attempt cut short by a crash (of podium, or of the worker node that ran it):
        retried per the retry policy, once without one.

        Returns why it is not retried, or None to run another attempt.
        """
        now = self._resources.clock.now()
        tr.attempts[-1].set(State.FAILED, now)
        attempts = len(tr.attempts)
        message = f"attempt {attempts} was interrupted: {why}"
        if policy is None:
            if attempts > 1:
                return f"{message}, and it had already been retried once"
        elif policy.next_delay(attempts, now - tr.state.start) is None:
            return f"{message}, and its retry policy allows no further attempt"
        ExecutionLog(self._resources, self.state.execution, tr).warning(
            f"{message}; running it again"
        )
        return None

    async def _cached_or_run(
        self, task: Task, tr: TaskRun, ctx: TaskContext
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """The task's outputs: from `taskCache` when it holds them (the key is returned to
        store new outputs under when it does not), else from running it."""
        workers = self._resources.workers
        if not TaskCache.wanted(task):
            return await workers.attempt(task, ctx), None
        rendered = await self.render(task, ctx)
        key = self._cache.key(self.state.execution, rendered, tr)
        hit = await self._cache.get(key)
        if hit is not None:
            ctx.logger.info("outputs taken from the task cache (taskCache)")
            return hit, None
        return await workers.attempt(task, ctx, rendered), key

    def _describe(self, task: Task, exc: BaseException, ctx: TaskContext) -> str:
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
            self.state.execution.id,
            "".join(traceback.format_exception(exc)),
        )
        return f"{type(exc).__name__}: {exc}"

    async def fail(self, task: Task, tr: TaskRun, logger: TaskLogger, message: str) -> State:
        logger.error(message)
        if task.allow_failure:
            # Kestra's clamp: a failure allowed is a WARNING, and `allowWarning` makes that
            # WARNING a SUCCESS (TaskWithAllowWarningTest.runnableTask)
            return await self.end(tr, State.SUCCESS if task.allow_warning else State.WARNING)
        if self.state.first_failure is None:
            self.state.first_failure = f"task '{task.id}': {message}"
        return await self.end(tr, State.FAILED)

    async def interrupted(self, tr: TaskRun, ending: State, reason: str) -> None:
        """A task run stopped by its flowable's onChildFailure ends in `ending`, saying why."""
        if tr.attempts and not tr.attempts[-1].current.terminated:
            tr.attempts[-1].set(ending, self._resources.clock.now())
        ExecutionLog(self._resources, self.state.execution, tr).warning(reason)
        await self.end(tr, ending)

    def set_state(self, tr: TaskRun, state: State) -> None:
        tr.state.set(state, self._resources.clock.now())
        self._resources.events.publish(TaskRunChanged(self.state.execution, tr))

    async def end(self, tr: TaskRun, state: State) -> State:
        """The task run ends in `state`. Its row is queued and held back (`soon=False`), its
        commit not waited for here: the next task flushes it and waits for it before it
        starts (`ended`), and the execution's final state, queued after it, commits with
        it: a short execution's last task run and final state share one commit (issue #18)."""
        self.set_state(tr, state)
        committed = asyncio.ensure_future(self.save(tr, soon=False))
        committed.add_done_callback(_retrieved)
        self._ending.append(committed)
        if self.state.changed is not None:
            self.state.changed()
        return state

    async def ended(self) -> None:
        """Once every task run ended so far is committed: what starts next may rely on it
        (a task never runs before the end of one it follows is durable)."""
        if self._ending:
            if not all(committed.done() for committed in self._ending):
                await self._resources.store.flush()  # ends held back for company: now
            await asyncio.wait(self._ending)
        self.raise_refused()

    def raise_refused(self) -> None:
        """The store's refusal (`StoreError`) of a task run's end, if there was one. Once a
        write queued after them committed, all were answered: the writer keeps their order."""
        refused = [c.exception() for c in self._ending if c.done() and not c.cancelled()]
        self._ending = [c for c in self._ending if not c.done()]
        for exc in refused:
            if exc is not None:
                raise exc

    def save(self, tr: TaskRun, *, wait: bool = True, soon: bool = True) -> Awaitable[Any]:
        """The task run's row, queued at the call (`Store.save_task_run`): its commit."""
        resources = self._resources
        doc = resources.masked(tr.to_json())
        return resources.store.save_task_run(doc, wait=wait, soon=soon)


def _retrieved(committed: asyncio.Future[Any]) -> None:
    """A refusal nobody asks about (the execution was killed before) must not end up as
    asyncio's "exception was never retrieved": the final save meets the same store."""
    if not committed.cancelled():
        committed.exception()
