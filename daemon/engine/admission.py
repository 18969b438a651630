"""Admission: which executions of this process may start now, and which wait.

Two limits apply. A flow's `concurrency` caps its executions running at once; past it,
an execution is QUEUED, CANCELLED or FAILED as the flow's `behavior` says. The daemon's
`max_executions` caps all executions of the process; past it, executions wait QUEUED
whatever their flow says, and their flow's own limit is applied again when their turn
comes. An iteration of a Loop task is part of an execution already admitted: its flow's
limit does not apply to it (it would wait for its own parent). Pure bookkeeping: starting
what is admitted is the caller's job.
"""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime

from daemon.flows.definition import Concurrency, Flow
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

Entry = tuple[Flow, Execution]


class Admission:
    def __init__(self, max_executions: int = 0) -> None:
        self.max_executions = max_executions
        self._active: dict[tuple[str, str], int] = defaultdict(int)
        self._queued: dict[tuple[str, str], deque[Entry]] = defaultdict(deque)
        self._waiting: deque[Entry] = deque()  # past max_executions, in arrival order
        self._starting = 0  # admitted, not started yet

    def admit(self, flow: Flow, execution: Execution, running: int, now: datetime) -> bool:
        """True: start it now. False: it was QUEUED (kept here) or refused (its state says
        which: CANCELLED or FAILED, with its error set). One created ended (FAILED by its
        flow's checks) has nothing to run."""
        if execution.state.current.terminated:
            return False
        limit = _limit(flow, execution)
        if limit is None or self._active[flow.uid] < limit.limit:
            if self.max_executions and running + self._starting >= self.max_executions:
                _queue(execution, now)
                self._waiting.append((flow, execution))
                return False
            self._take(flow, execution)
            return True
        if limit.behavior == "QUEUE":
            _queue(execution, now)
            self._queued[flow.uid].append((flow, execution))
        else:
            execution.error = (
                f"flow {flow.namespace}.{flow.id} has reached its concurrency "
                f"limit of {limit.limit}"
            )
            state = State.FAILED if limit.behavior == "FAIL" else State.CANCELLED
            execution.state.set(state, now)
        return False

    def resume(self, flow: Flow, execution: Execution) -> None:
        """Count an execution that resumes where it stopped (after a crash): it runs
        whatever the limits say, since it was admitted before."""
        self._take(flow, execution)

    def started(self) -> None:
        """One admitted execution has started."""
        self._starting = max(self._starting - 1, 0)

    def withdraw(self, flow: Flow, execution: Execution, admitted: bool) -> None:
        """Undo `admit` for an execution that could not be stored: it never happened."""
        if admitted:
            if execution.loop is None:
                self._active[flow.uid] -= 1
            self._starting = max(self._starting - 1, 0)
            return
        for queue in (self._queued[flow.uid], self._waiting):
            for item in list(queue):
                if item[1] is execution:
                    queue.remove(item)

    def finished(self, flow: Flow, execution: Execution, running: int) -> list[Entry]:
        """An execution of `flow` ended: the executions whose turn it is now, to start."""
        ready: list[Entry] = []
        queue = self._queued[flow.uid]
        if execution.loop is None:  # an iteration's end frees no slot of its flow's limit
            self._active[flow.uid] -= 1
            if queue:
                ready.append(queue.popleft())
                self._active[flow.uid] += 1
                self._starting += 1
        while self._waiting and (
            not self.max_executions or running + len(ready) < self.max_executions
        ):
            waiting_flow, waiting = self._waiting.popleft()
            if self._again(waiting_flow, waiting):
                ready.append((waiting_flow, waiting))
        return ready

    def _again(self, flow: Flow, execution: Execution) -> bool:
        """A globally queued execution whose turn came: its flow's own limit still applies."""
        limit = _limit(flow, execution)
        if limit is None or self._active[flow.uid] < limit.limit:
            self._take(flow, execution)
            return True
        self._queued[flow.uid].append((flow, execution))
        return False

    def _take(self, flow: Flow, execution: Execution) -> None:
        if execution.loop is None:
            self._active[flow.uid] += 1
        self._starting += 1

    @property
    def queued(self) -> int:
        """Executions waiting here: past a flow's limit or the daemon's."""
        return len(self._waiting) + sum(len(q) for q in self._queued.values())

    @property
    def starting(self) -> int:
        """Admitted and about to run, or queued here by a concurrency limit."""
        return self._starting + self.queued

    def active(self, flow: Flow) -> int:
        return self._active[flow.uid]


def _queue(execution: Execution, now: datetime) -> None:
    if execution.state.current != State.QUEUED:  # one recovered QUEUED stays as it was
        execution.state.set(State.QUEUED, now)


def _limit(flow: Flow, execution: Execution) -> Concurrency | None:
    """The flow's limit, unless the execution is an iteration of a Loop task of it."""
    return flow.concurrency if execution.loop is None else None
