"""Flowable tasks driven: the branches of child tasks a flowable hands back, run here as
its `Children` say (in order or at once, in a shared working directory), round after round
while it hands back more (a loop), then its `errors` and `finally` tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

from daemon.engine.attempts import RunState, TaskRuns
from daemon.engine.contexts import TaskContext
from daemon.engine.retries import flowable_retry, reset_for_retry
from daemon.engine.variables import Scope, set_output, value_text
from daemon.sdk.errors import ExitRequested, TaskFailed, TemplateError
from daemon.sdk.execution import TaskRun
from daemon.sdk.plugin import Branch, Children, FlowableTask, Task
from daemon.sdk.state import State


class RunList(Protocol):
    """The executor's way to run a list of tasks (in order, or as a DAG by `dag`)."""

    def __call__(
        self,
        tasks: Sequence[Task],
        scope: Scope,
        dag: Mapping[str, Sequence[str]] | None = None,
    ) -> Awaitable[State]: ...


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


class FlowableRuns:
    """Runs the flowable task runs of one execution; lists of tasks go back to `run_list`."""

    def __init__(self, tasks: TaskRuns, state: RunState, run_list: RunList) -> None:
        self.tasks = tasks
        self.state = state
        self.run_list = run_list

    async def run(self, task: FlowableTask, tr: TaskRun, ctx: TaskContext, scope: Scope) -> State:
        """A flowable task run: its rounds of children, then errors/finally; with `retry`,
        the failed children run again as new attempts of their task runs (Kestra PR
        #3473), and only then does AllowFailure turn a failure into a warning."""
        runs = self.tasks
        replay = tr.state.current.terminated  # ended before a restart: walk it for outputs
        if not replay and tr.state.current != State.RUNNING:
            runs.set_state(tr, State.RUNNING)
            await runs.save(tr, wait=False)
        retry = flowable_retry(task, replay, ctx.clock)
        while True:
            attempt = retry.begin(tr)
            try:
                state, handlers, tolerated = await self._attempt(task, tr, ctx, scope, replay)
            except ExitRequested as exit_:
                if exit_.task_run_id is None:  # the flowable itself ends the execution
                    exit_.task_run_id = tr.id
                raise
            if replay:
                return tr.state.current
            retry.end(attempt, state)
            delay = retry.delay(tr, state)
            if delay is None:
                break
            ctx.logger.warning(f"attempt {len(tr.attempts)} failed, retrying in {delay:g}s")
            runs.set_state(tr, State.RETRYING)
            await runs.save(tr, wait=False)
            await ctx.clock.sleep(delay)
            reset_for_retry(self.state.execution, tr, handlers, self.state.earlier, ctx.clock.now())
            runs.set_state(tr, State.RUNNING)
        if state.failed and tolerated:
            state = State.WARNING
        if state == State.WARNING and task.allow_warning:
            state = State.SUCCESS
        return await runs.end(tr, state)

    async def _attempt(
        self, task: FlowableTask, tr: TaskRun, ctx: TaskContext, scope: Scope, replay: bool
    ) -> tuple[State, set[str], bool]:
        """One run of the flowable: rendered, its rounds, its errors/finally. Its state, the
        ids of its errors/finally tasks, and whether a failure is only a warning."""
        try:
            try:
                flowable = await self.tasks.render(task, ctx)
                ctx.warning = False
                children = await flowable.children(ctx)
                children, state = await self._rounds(flowable, children, tr, ctx, scope, replay)
            finally:
                await ctx.cleanup()  # the flowable's own directory (shared by its children)
        except (TaskFailed, TemplateError) as exc:
            ctx.logger.error(str(exc))
            if self.state.first_failure is None and not task.allow_failure:
                self.state.first_failure = f"task '{task.id}': {exc}"
            return State.FAILED, set(), task.allow_failure
        if state.failed and children.errors:
            await self.run_list(children.errors, scope.inside(tr))
        if children.finally_:
            await self.run_list(children.finally_, scope.inside(tr))
        if state == State.SUCCESS and ctx.warning:  # a Pause's WARN behaviour
            state = State.WARNING
        if children.ends_execution is not None and not state.failed:
            state = self.state.ending = children.ends_execution
        handlers = {t.id for t in [*children.errors, *children.finally_]}
        return state, handlers, children.failure_is_warning or task.allow_failure

    async def _rounds(
        self,
        task: FlowableTask,
        children: Children,
        tr: TaskRun,
        ctx: TaskContext,
        scope: Scope,
        replay: bool,
    ) -> tuple[Children, State]:
        """The flowable's children, round after round while its `then` hands back more
        (a loop); returns the last round's Children and the state they ended in."""
        if replay and tr.outputs:
            set_output(self.state.outputs, task.id, scope.values, tr.outputs)
        while True:
            working_dir = None
            if children.shared_working_dir:
                # A shared directory lives as long as this run of the flowable: children
                # a previous process ran worked in one that is gone, so all run again.
                self._forget_children(tr)
                working_dir = str(await ctx.working_dir())
            if not replay:
                if children.outputs is not None:
                    self._set_outputs(task, tr, scope, children.outputs)
                    await self.tasks.save(tr, wait=False)
                elif children.branches:
                    tr.outputs = {"branches": len(children.branches)}
            state = await self._branches(children, tr, scope, working_dir)
            if replay or children.then is None or self.state.stopped(scope):
                return children, state
            try:
                after = await children.then(state)
            except (TaskFailed, TemplateError) as exc:
                ctx.logger.error(str(exc))
                if self.state.first_failure is None:
                    self.state.first_failure = f"task '{task.id}': {exc}"
                return children, State.FAILED
            if not isinstance(after, Children):
                if after:
                    self._set_outputs(task, tr, scope, after)
                elif children.outputs is None:
                    tr.outputs = {}  # a flowable with a say in its outputs has none
                return children, state
            children = after

    def _forget_children(self, parent: TaskRun) -> None:
        """Task runs under `parent` left by a previous run are not found again: they run
        anew (the earlier ones stay in the execution as its history)."""
        earlier = self.state.earlier
        for key in [k for k, run in earlier.items() if run.parent_task_run_id == parent.id]:
            del earlier[key]

    def _set_outputs(
        self, task: Task, tr: TaskRun, scope: Scope, outputs: Mapping[str, Any]
    ) -> None:
        tr.outputs = dict(outputs)
        set_output(self.state.outputs, task.id, scope.values, tr.outputs)

    async def _branches(
        self, children: Children, parent: TaskRun, scope: Scope, working_dir: str | None
    ) -> State:
        branches, concurrency = children.branches, children.concurrency
        limit = asyncio.Semaphore(max(concurrency, 1)) if concurrency > 0 else None
        # `parent` inside: the flowable's task run, its outputs as they are (a Template's
        # `args`, a loop's `iterationCount`).
        parent_info = {
            "taskrun": {"id": parent.id, "value": parent.value},
            "outputs": parent.outputs,
        }

        async def one(index: int, branch: Branch) -> State:
            iteration = branch.iteration
            if iteration is None and branch.has_value:
                iteration = index
            child_scope = Scope(
                parent=parent,
                values=scope.values + ((str(branch.value),) if branch.has_value else ()),
                value=value_text(branch.value) if branch.has_value else scope.value,
                iteration=scope.iteration if iteration is None else iteration,
                parents=(parent_info, *scope.parents),
                working_dir=working_dir,
                handling=scope.handling,
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
