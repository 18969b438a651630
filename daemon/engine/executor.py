"""Runs one execution: the task graph, as concurrently as its dependencies allow.

Sequential lists run in order (Kestra semantics); a list in which any task has
`dependsOn` runs as a DAG; flowable tasks hand back branches that run here.
Every state change goes to the store; a task's terminal state is committed
before anything that depends on it starts.
"""

from __future__ import annotations

import asyncio
import graphlib
import logging
from collections.abc import Mapping, Sequence

from daemon.engine.attempts import RunState, TaskRuns
from daemon.engine.contexts import ExecutionLog, Launcher
from daemon.engine.endings import Endings
from daemon.engine.events import ExecutionChanged, TaskRunChanged
from daemon.engine.flowables import FlowableRuns, OnFailure, worst
from daemon.engine.iterations import Iteration, IterationLost, enter
from daemon.engine.pauses import Pauses
from daemon.engine.resources import Resources
from daemon.engine.sla import SlaWatch
from daemon.engine.variables import Scope, set_output
from daemon.flows.definition import Flow
from daemon.sdk.errors import ExitRequested, TaskFailed, TemplateError
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import FlowableTask, Task
from daemon.sdk.retry import Backoff
from daemon.sdk.state import State, StateHistory
from daemon.store.base import StoreError, StoreLost

log = logging.getLogger(__name__)
# An execution's final state that the store refuses is offered again after 1 s, 2 s, 4 s...
MAX_STORE_RETRY_DELAY = 30.0


class ExecutionRunner:
    """The run of one execution of one flow, from RUNNING to its final state."""

    def __init__(
        self,
        resources: Resources,
        launcher: Launcher,
        pauses: Pauses,
        flow: Flow,
        execution: Execution,
    ) -> None:
        self.resources = resources
        self.pauses = pauses
        self.flow = flow
        self.execution = execution
        self.state = RunState(flow, execution)
        self.tasks = TaskRuns(resources, launcher, pauses, self.state)
        self.flowables = FlowableRuns(self.tasks, self.state, self.run_list)
        # Set when the execution is one iteration of a Loop task (see iterations.py).
        self.iteration: Iteration | None = None

    # -- the execution ------------------------------------------------------------------

    async def run(self) -> Execution:
        try:
            return await self._run()
        finally:
            self.pauses.unhold(self.execution.id)

    async def _run(self) -> Execution:
        ex, flow = self.execution, self.flow
        resources = self.resources
        endings = Endings(self)
        resources.scratch.wanted(ex.id)  # restarted soon after it ended: its directory stays
        if ex.state.current == State.PAUSED and all(
            tr.state.current != State.PAUSED for tr in ex.task_runs
        ):
            self.pauses.hold(ex.id)  # paused by a person before this process started
        elif ex.state.current != State.RUNNING:
            ex.state.set(State.RUNNING, resources.clock.now())
        await resources.store.save_execution(ex.to_json(task_runs=False), wait=False)
        resources.events.publish(ExecutionChanged(ex))
        try:
            if ex.loop is not None:
                state = await self._iteration()
            else:
                state = await (SlaWatch(self).guard(self._lists()) if flow.sla else self._lists())
            await self.unless_held()  # a manual pause keeps it from ending
        except ExitRequested as exit_:
            state = exit_.state
            await self._exit_parents(exit_)
            await self._kill_unfinished()
        except asyncio.CancelledError:
            if resources.options.handing_over:
                # Left as a crash would leave it: another node resumes it, retrying the
                # interrupted task run per its policy.
                await asyncio.shield(resources.store.flush())
                raise
            await asyncio.shield(self._finish_killed())
            raise
        except StoreError as exc:
            state = self._store_refused(exc)
        else:
            state = self._final_state(state)
        if ex.loop is not None:  # an iteration: its flow's endings are its parent's
            declared = self.iteration.outputs if self.iteration else ()
            if state in (State.SUCCESS, State.WARNING) and declared:
                state = await endings.flow_outputs(state, declared)
            if state.failed and self.state.first_failure and not ex.error:
                ex.error = self.state.first_failure
            ex.state.set(state, resources.clock.now())
            await self._store_final()
            resources.scratch.ended(ex.id)
            return ex
        if flow.listeners or flow.after_execution:
            state = await self._ends_before_endings(state)
        if state in (State.SUCCESS, State.WARNING) and flow.outputs:
            state = await endings.flow_outputs(state)
        if state.failed and self.state.first_failure and not ex.error:
            ex.error = self.state.first_failure
        state = endings.retried(state)
        ex.state.set(state, resources.clock.now())
        if flow.listeners:
            await endings.listeners(state)
        if flow.after_execution:
            await endings.run_after(flow.after_execution, state, "an afterExecution task")
        await self._store_final()
        # its directory under data/tmp: left, it would stay (empty) forever
        resources.scratch.ended(ex.id)
        return ex

    async def unless_held(self) -> None:
        """Wait while a person holds the execution paused (Pauses.hold); RUNNING again once
        resumed, unless a Pause task of it still waits."""
        ex, pauses = self.execution, self.pauses
        if not pauses.held(ex.id) or ex.state.current.terminated:
            return
        await pauses.until_unheld(ex.id)
        if ex.state.current == State.PAUSED and not pauses.holds(ex.id):
            ex.state.set(State.RUNNING, self.resources.clock.now())
            await self.save_final()

    async def _lists(self) -> State:
        """The flow's tasks, then `errors` when they failed, then `finally`."""
        flow = self.flow
        state = await self.run_list(flow.tasks, Scope())
        if state.failed and flow.errors:
            await self.run_list(flow.errors, Scope(handling=True))
        if flow.finally_:
            await self.run_list(flow.finally_, Scope(handling=True))
        return state

    async def _iteration(self) -> State:
        """One iteration of a Loop task: the loop's tasks, `errors`, `finally`."""
        try:
            iteration = await enter(self.resources, self.flow, self.execution)
        except IterationLost as exc:
            ExecutionLog(self.resources, self.execution, None).error(str(exc))
            self.state.first_failure = str(exc)
            return State.FAILED
        self.iteration = iteration
        self.state.variables = iteration.variables
        self.state.outputs.update(iteration.seen_outputs)
        state = await self.run_list(iteration.tasks, Scope())
        if state.failed and iteration.errors:
            await self.run_list(iteration.errors, Scope(handling=True))
        if iteration.finally_:
            await self.run_list(iteration.finally_, Scope(handling=True))
        return state

    async def _ends_before_endings(self, state: State) -> State:
        """Listeners and afterExecution tasks see the final state: an end of the flow's own
        tasks the store refused fails the execution now, not the first of them to start."""
        try:
            await self.tasks.ended()
        except StoreError as exc:
            return self._store_refused(exc)
        return state

    def _final_state(self, state: State) -> State:
        if state.failed:
            return State.FAILED if state == State.FAILED else state
        if self.state.ending is not None:  # an Approval's decision ended it
            return self.state.ending
        if any(tr.state.current == State.WARNING for tr in self.execution.task_runs):
            return State.WARNING
        return State.SUCCESS

    async def save_final(self) -> None:
        resources = self.resources
        doc = resources.masked(self.execution.to_json(task_runs=False))
        await resources.store.save_execution(doc)
        resources.events.publish(ExecutionChanged(self.execution))

    def _store_refused(self, exc: StoreError) -> State:
        """A write the store refused (its disk full) ends the execution FAILED: going on
        with nothing recorded would be lost at the next restart, or run twice."""
        ex = self.execution
        log.error("execution %s of %s.%s fails: %s", ex.id, ex.namespace, ex.flow_id, exc)
        now = self.resources.clock.now()
        for tr in ex.task_runs:
            if not tr.state.current.terminated:
                if tr.attempts and not tr.attempts[-1].current.terminated:
                    tr.attempts[-1].set(State.FAILED, now)
                tr.state.set(State.FAILED, now)
        if self.state.first_failure is None:
            self.state.first_failure = f"the store refused a write: {exc}"
        self.state.unsaved = True
        return State.FAILED

    async def _store_final(self) -> None:
        """The final state, offered to the store until it takes it: an execution must not
        stay RUNNING in the store because the disk was full for a while. After a refusal
        the task runs go again too, since their writes may have been refused as well."""
        ex = self.execution
        backoff = Backoff(1.0, MAX_STORE_RETRY_DELAY, clock=self.resources.clock)
        while True:
            try:
                if self.state.unsaved:
                    await asyncio.shield(
                        asyncio.gather(*(self.tasks.save(tr) for tr in ex.task_runs))
                    )
                await asyncio.shield(self.save_final())
                self._ends_stored()
            except StoreLost as exc:
                # its file gone or its writer stopped: no retry can succeed before a restart,
                # and a daemon asked to stop would wait out its whole grace period for one
                log.error(
                    "execution %s of %s.%s: its final state %s cannot be stored: %s",
                    ex.id,
                    ex.namespace,
                    ex.flow_id,
                    ex.state.current.value,
                    exc,
                )
                return
            except StoreError as exc:
                if backoff.attempts == 0:
                    log.error(
                        "execution %s of %s.%s: its final state %s cannot be stored (%s); "
                        "trying again, backing off up to %.0fs",
                        ex.id,
                        ex.namespace,
                        ex.flow_id,
                        ex.state.current.value,
                        exc,
                        MAX_STORE_RETRY_DELAY,
                    )
                self.state.unsaved = True
            else:
                if backoff.attempts:
                    log.info(
                        "execution %s: its final state %s is stored", ex.id, ex.state.current.value
                    )
                return
            await backoff.sleep()

    def _ends_stored(self) -> None:
        """A task run's end the store refused, found once the final state committed after
        it: the execution fails as when a write is refused while it runs, stored again."""
        try:
            self.tasks.raise_refused()
        except StoreError as exc:
            ex = self.execution
            ex.state.set(self._store_refused(exc), self.resources.clock.now())
            ex.error = ex.error or self.state.first_failure
            raise

    async def _finish_killed(self) -> None:
        await self._kill_unfinished()
        ex = self.execution
        ex.state.set(State.KILLED, self.resources.clock.now())
        await self.save_final()
        try:  # answered by now: the final state committed after every end queued before it
            self.tasks.raise_refused()
        except StoreError as exc:
            # an end refused before the kill: its row would stay RUNNING under KILLED
            log.error("execution %s of %s.%s: storing its task runs again after a refused "
                      "write: %s", ex.id, ex.namespace, ex.flow_id, exc)  # fmt: skip
            try:
                await asyncio.gather(*(self.tasks.save(tr) for tr in ex.task_runs))
            except StoreError as again:
                log.error("execution %s: its task runs cannot be stored: %s", ex.id, again)

    async def _exit_parents(self, exit_: ExitRequested) -> None:
        """Kestra's Exit ends its task run and every flowable around it in its state."""
        if exit_.state == State.KILLED or exit_.task_run_id is None:
            return
        by_id = {tr.id: tr for tr in self.execution.task_runs}
        run = by_id.get(exit_.task_run_id)
        while run is not None:
            if not run.state.current.terminated:
                await self.tasks.end(run, exit_.state)
            run = by_id.get(run.parent_task_run_id or "")

    async def _kill_unfinished(self) -> None:
        resources = self.resources
        now = resources.clock.now()
        for tr in self.execution.task_runs:
            if not tr.state.current.terminated:
                if tr.attempts and not tr.attempts[-1].current.terminated:
                    tr.attempts[-1].set(State.KILLED, now)
                tr.state.set(State.KILLED, now)
                await self.tasks.save(tr, wait=False)
                resources.events.publish(TaskRunChanged(self.execution, tr))
        await resources.store.flush()

    # -- lists of tasks -----------------------------------------------------------------

    async def run_list(
        self,
        tasks: Sequence[Task],
        scope: Scope,
        dag: Mapping[str, Sequence[str]] | None = None,
        *,
        concurrency: int = 0,
        on_failure: OnFailure | None = None,
    ) -> State:
        active = [t for t in tasks if not t.disabled]
        if dag is None and any(t.depends_on for t in active):
            dag = {t.id: t.depends_on for t in active}
        if dag is not None:
            return await self._run_dag(active, dag, scope, concurrency, on_failure)
        state = State.SUCCESS
        for task in active:
            if self.state.stopped(scope):
                break
            result = await self.run_task(task, scope)
            state = worst(state, result)
            if result.failed:
                break
        return state

    async def _run_dag(
        self,
        tasks: Sequence[Task],
        deps: Mapping[str, Sequence[str]],
        scope: Scope,
        concurrency: int = 0,
        on_failure: OnFailure | None = None,
    ) -> State:
        """Every task whose dependencies ended starts at once (graphlib's ready set), at
        most `concurrency` at a time (0: no cap); after a failure nothing more starts and
        what runs is let finish, or interrupted by `on_failure` (onChildFailure)."""
        ids = {t.id for t in tasks}
        by_id = {t.id: t for t in tasks}
        graph = graphlib.TopologicalSorter(
            {t.id: [d for d in deps.get(t.id, ()) if d in ids] for t in tasks}
        )
        graph.prepare()
        state = State.SUCCESS
        ready: list[str] = []
        running: dict[asyncio.Task[State], str] = {}
        failed = False
        try:
            while True:
                if not failed and not self.state.stopped(scope):
                    ready.extend(graph.get_ready())
                    while ready and (concurrency <= 0 or len(running) < concurrency):
                        task_id = ready.pop(0)
                        job = asyncio.create_task(self.run_task(by_id[task_id], scope))
                        running[job] = task_id
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                ended = {running.pop(job): job.result() for job in done}
                for task_id, result in ended.items():
                    state = worst(state, result)
                    failed = failed or result.failed
                    graph.done(task_id)
                if failed and on_failure is not None and running:
                    first = next(t for t, result in ended.items() if result.failed)
                    await on_failure(list(running), first)
                    running.clear()
        finally:
            for job in running:
                job.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return state

    # -- one task -----------------------------------------------------------------------

    async def run_task(self, task: Task, scope: Scope) -> State:
        runs = self.tasks
        await self.unless_held()
        # Its task run exists from the start (siblings started together all have one, as
        # Kestra creates them at once); it runs once the ends before it are durable.
        known = len(self.execution.task_runs)
        tr = runs.find_or_create(task, scope)
        try:
            await runs.ended()
        except Exception:
            # An earlier end the store refused: this task never started, so the run made
            # for it here (not stored yet) is dropped rather than left to end FAILED.
            if len(self.execution.task_runs) > known and tr in self.execution.task_runs:
                self.execution.task_runs.remove(tr)
            raise
        if tr.state.current.terminated and not isinstance(task, FlowableTask):
            # Finished before a restart: never run twice, but its outputs are needed.
            if tr.outputs:
                set_output(self.state.outputs, task.id, scope.values, tr.outputs)
            return tr.state.current
        ctx = runs.context(task, tr, scope)
        try:
            if task.run_if is not None and not await ctx.render_bool_async(task.run_if):
                # Kestra records the skip as the run's one attempt (TaskWithWhenTest)
                tr.attempts.append(StateHistory(State.SKIPPED, self.resources.clock.now()))
                return await runs.end(tr, State.SKIPPED)
        except (TemplateError, TaskFailed) as exc:
            return await runs.fail(task, tr, ctx.logger, str(exc))
        if isinstance(task, FlowableTask):
            return await self.flowables.run(task, tr, ctx, scope)
        return await runs.run_attempts(task, tr, ctx, scope)
