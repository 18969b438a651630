"""Flowable tasks driven: the branches of child tasks a flowable hands back, run here as
its `Children` say (in order or at once, in a shared working directory), round after round
while it hands back more (a loop), then its `errors` and `finally` tasks."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import Any, Protocol

from daemon.engine.attempts import Interruption, RunState, TaskRuns
from daemon.engine.contexts import TaskContext
from daemon.engine.retries import flowable_retry, reset_for_retry
from daemon.engine.variables import Scope, set_output, value_text
from daemon.sdk.errors import ExitRequested, TaskFailed, TemplateError
from daemon.sdk.execution import TaskRun
from daemon.sdk.plugin import Branch, Children, FlowableTask, Task
from daemon.sdk.state import State


class OnFailure(Protocol):
    """What a list of tasks run at once does with its tasks still running once one failed:
    interrupt them (cancel the jobs, their task runs end as onChildFailure says)."""

    def __call__(
        self, running: Collection[asyncio.Task[State]], failed: str
    ) -> Awaitable[None]: ...


class RunList(Protocol):
    """The executor's way to run a list of tasks (in order, or as a DAG by `dag`, at most
    `concurrency` of its tasks at once, 0: no cap)."""

    def __call__(
        self,
        tasks: Sequence[Task],
        scope: Scope,
        dag: Mapping[str, Sequence[str]] | None = None,
        *,
        concurrency: int = 0,
        on_failure: OnFailure | None = None,
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
        on_failure = self._interrupter(children, parent)
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
            if branch.dag is None:
                return await self.run_list(branch.tasks, child_scope)
            return await self.run_list(
                branch.tasks,
                child_scope,
                branch.dag,
                concurrency=concurrency,
                on_failure=on_failure,
            )

        if len(branches) == 1 or concurrency == 1:
            state = State.SUCCESS
            for i, branch in enumerate(branches):
                result = await one(i, branch)
                state = worst(state, result)
                if result.failed:
                    break
            return state
        waiting = deque(enumerate(branches))
        running: dict[asyncio.Task[State], Branch] = {}
        state = State.SUCCESS
        try:
            while waiting or running:
                # as many as `concurrency` allows start together (0: all of them)
                while waiting and (concurrency <= 0 or len(running) < concurrency):
                    index, branch = waiting.popleft()
                    running[asyncio.ensure_future(one(index, branch))] = branch
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                ended = {job: (running.pop(job), job.result()) for job in done}
                state = worst(state, *(result for _, result in ended.values()))
                failed = [branch for branch, result in ended.values() if result.failed]
                if failed and on_failure is not None:
                    # onChildFailure: the others stop, and no more start
                    if running:
                        await on_failure(list(running), ", ".join(t.id for t in failed[0].tasks))
                        running.clear()
                    break
            return state
        finally:  # an Exit or a kill: none goes on alone
            for job in running:
                job.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _interrupter(self, children: Children, parent: TaskRun) -> OnFailure | None:
        """Kestra's onChildFailure for this flowable's children: None to let them run on."""
        ending = children.on_child_failure
        if ending is None:
            return None

        async def interrupt(running: Collection[asyncio.Task[State]], failed: str) -> None:
            reason = (
                f"interrupted ({ending.value}): sibling task '{failed}' failed "
                "and onChildFailure stops the others"
            )
            self.state.interrupting[parent.id] = Interruption(ending, reason)
            try:
                for job in running:
                    job.cancel()
                await asyncio.gather(*running, return_exceptions=True)
            finally:
                del self.state.interrupting[parent.id]
            await self._end_under(parent, ending, reason)

        return interrupt

    async def _end_under(self, parent: TaskRun, ending: State, reason: str) -> None:
        """The task runs under `parent` the interruption left unfinished (a flowable, a
        retry waiting, a task not yet started) end in `ending` too."""
        children: dict[str | None, list[TaskRun]] = defaultdict(list)
        for tr in self.state.execution.task_runs:
            children[tr.parent_task_run_id].append(tr)
        below = list(children[parent.id])
        while below:
            tr = below.pop()
            below.extend(children[tr.id])
            if not tr.state.current.terminated:
                await self.tasks.interrupted(tr, ending, reason)
