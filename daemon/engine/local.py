"""The executions this process runs: admitted, started as asyncio tasks, waited for, killed.

Whatever decided an execution should run here (a submission on a single node, a claim
in a cluster, a recovery after a crash) hands it to `LocalExecutions`; admission decides
when it starts. When one ends, the next in line starts and the listeners hear of it; when
one holds its flow's concurrency slot past the flow's `duration`, the slot is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from daemon.engine.admission import Admission, slot_taken
from daemon.engine.resources import Resources
from daemon.flows.definition import Flow
from daemon.sdk.durations import format_duration
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

log = logging.getLogger(__name__)

Runner = Callable[[Flow, Execution], Coroutine[Any, Any, Execution]]


class LocalExecutions:
    def __init__(self, resources: Resources, run: Runner) -> None:
        self._resources = resources
        self._run = run
        self.admission = Admission(resources.options.max_executions)
        self._running: dict[str, asyncio.Task[Execution]] = {}
        # The live execution of each job above: what a manual pause changes.
        self._live: dict[str, Execution] = {}
        # Executions of this process not ended yet (queued or running), for `wait`.
        self._ended: dict[str, asyncio.Future[Execution]] = {}
        self._finish_listeners: list[Callable[[Execution], None]] = []
        # Running executions whose flow bounds how long a slot is held, by id.
        self._slot_timers: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats: dict[str, int] = defaultdict(int)

    def on_finished(self, listener: Callable[[Execution], None]) -> None:
        """Call `listener` with each execution that stops running here (its final state
        stored), or that ends without having started (refused, killed while queued)."""
        self._finish_listeners.append(listener)

    # -- admission ----------------------------------------------------------------------

    def expect(self, execution: Execution) -> None:
        """The execution will run or queue here: `wait` waits for it from now on."""
        if execution.id not in self._ended and not execution.state.current.terminated:
            self._ended[execution.id] = asyncio.get_running_loop().create_future()

    def admit(self, flow: Flow, execution: Execution) -> bool:
        """Apply the limits (see Admission); True when it may start now."""
        now = self._resources.clock.now()
        return self.admission.admit(flow, execution, len(self._running), now)

    async def enter(self, flow: Flow, execution: Execution) -> None:
        """Admit a stored execution (adopted, restarted, replayed): start it, or store it
        as admission left it, QUEUED or refused by its flow's limit."""
        if self.admit(flow, execution):
            self.start(flow, execution)
            return
        await self._resources.store.save_execution(execution.to_json(task_runs=False))
        if execution.state.current.terminated:
            self.ended_unstarted(execution)
        else:
            self._resources.events.execution(execution)

    def withdraw(self, flow: Flow, execution: Execution, admitted: bool) -> None:
        """An execution that could not be stored never happened here."""
        ended = self._ended.pop(execution.id, None)
        if ended is not None:
            ended.cancel()
        self.admission.withdraw(flow, execution, admitted)

    def start(self, flow: Flow, execution: Execution) -> None:
        """Run an admitted execution now."""
        self.admission.started()
        self._idle.clear()
        self.expect(execution)
        job = asyncio.create_task(self._run(flow, execution), name=f"execution {execution.id}")
        self._running[execution.id] = job
        self._live[execution.id] = execution
        job.add_done_callback(lambda _: self._finished(flow, execution))
        limit = flow.concurrency
        if limit is not None and limit.duration is not None and execution.loop is None:
            deadline = slot_taken(execution, self._resources.clock.now()) + limit.duration
            self._slot_timers[execution.id] = asyncio.create_task(
                self._release_at(flow, execution, deadline), name=f"slot {execution.id}"
            )

    def resume(self, flow: Flow, execution: Execution) -> None:
        """Continue an execution that was running when its process stopped."""
        self.admission.resume(flow, execution)
        self.start(flow, execution)

    def recount(self, flow: Flow, active: int) -> None:
        """Kestra's `PUT /concurrency-limit/{namespace}/{flowId}`: how many executions of
        `flow` hold its concurrency slots here; the queued ones whose turn it then is start."""
        for next_flow, next_execution in self.admission.recount(flow, active, len(self._running)):
            self.start(next_flow, next_execution)

    def ended_unstarted(self, execution: Execution) -> None:
        """An execution that ends without running here (refused by its flow's limit, killed
        while queued): its waiters and listeners hear of it."""
        ended = self._ended.pop(execution.id, None)
        if ended is not None and not ended.done():
            ended.set_result(execution)
        self._resources.events.execution(execution)
        self._tell(execution)

    async def _release_at(self, flow: Flow, execution: Execution, deadline: datetime) -> None:
        """Kestra's concurrency `duration`: past it, the slot goes to the next in line."""
        await self._resources.clock.sleep_until(deadline)
        self._slot_timers.pop(execution.id, None)
        limit = flow.concurrency
        assert limit is not None and limit.duration is not None
        log.warning(
            "execution %s of %s.%s has held its concurrency slot for %s (the flow's "
            "duration): slot released, the execution runs on",
            execution.id,
            flow.namespace,
            flow.id,
            format_duration(limit.duration),
        )
        for next_flow, next_execution in self.admission.expire(flow, execution, len(self._running)):
            self.start(next_flow, next_execution)

    def _finished(self, flow: Flow, execution: Execution) -> None:
        self._running.pop(execution.id, None)
        self._live.pop(execution.id, None)
        timer = self._slot_timers.pop(execution.id, None)
        if timer is not None:
            timer.cancel()
        ended = self._ended.pop(execution.id, None)
        if ended is not None and not ended.done():
            ended.set_result(execution)
        self.stats[execution.state.current.value] += 1
        if execution.state.current.terminated:
            self._tell(execution)
        if not self._closing:  # stopping: queued executions stay QUEUED for the next start
            ready = self.admission.finished(flow, execution, len(self._running))
            for next_flow, next_execution in ready:
                self.start(next_flow, next_execution)
        if not self._running:
            self._idle.set()

    def _tell(self, execution: Execution) -> None:
        for listener in self._finish_listeners:
            listener(execution)

    # -- waiting and killing --------------------------------------------------------------

    def waiter(self, execution_id: str) -> asyncio.Future[Execution] | None:
        """A future of the execution's end, if it is queued or running here."""
        return self._ended.get(execution_id)

    async def kill(self, execution_id: str) -> bool:
        """Cancel an execution running here, or take one waiting here out of its queue (it
        is stored KILLED, never having run); False when none runs or waits here."""
        job = self._running.get(execution_id)
        if job is not None:
            job.cancel()
            await asyncio.wait([job])
            return True
        return await self.unqueue(execution_id, State.KILLED)

    async def unqueue(self, execution_id: str, state: State) -> bool:
        """Take an execution waiting here out of its queue: RUNNING starts it now whatever
        the limits say; any other state ends it so, never having run. False when it does
        not wait here."""
        if state == State.RUNNING:
            entry = self.admission.force(execution_id)
            if entry is not None:
                self.start(*entry)
            return entry is not None
        entry = self.admission.unqueue(execution_id)
        if entry is None:
            return False
        execution = entry[1]
        execution.state.set(state, self._resources.clock.now())
        await self._resources.store.save_execution(execution.to_json(task_runs=False))
        self.ended_unstarted(execution)
        return True

    def live(self, execution_id: str) -> Execution | None:
        """The execution as its runner here holds it, while it runs here."""
        return self._live.get(execution_id)

    def runs_here(self, execution_id: str) -> bool:
        """Queued or running in this process (in a cluster, another node may run it)."""
        return execution_id in self._running or execution_id in self._ended

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def starting(self) -> int:
        return self.admission.starting

    async def drain(self) -> None:
        """Wait until nothing is running (tests' "until idle" step)."""
        await self._idle.wait()

    async def close(self, *, hand_over: bool = False) -> None:
        """Kill what runs (stored KILLED); queued executions stay QUEUED for the next start.

        With `hand_over` (a cluster node shutting down) running executions are interrupted
        without being stored KILLED, as a crash would leave them, so that another node
        resumes them; the interrupted task runs are retried per their policy there.
        """
        self._resources.options.handing_over = hand_over
        self._closing = True
        for job in list(self._running.values()):
            job.cancel()
        if self._running:
            await asyncio.wait(list(self._running.values()))
        timers = list(self._slot_timers.values())  # those of executions still running
        self._slot_timers.clear()
        for timer in timers:
            timer.cancel()
        if timers:
            await asyncio.wait(timers)
        for ended in self._ended.values():
            ended.cancel()
        self._ended.clear()
