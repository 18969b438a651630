"""Admission: which executions of this process may start now, and which wait.

Two limits apply. A flow's `concurrency` caps its executions running at once; past it,
an execution is QUEUED, CANCELLED or FAILED as the flow's `behavior` says. With QUEUE, the
flow's `queueSize` caps the executions waiting: one more arriving is CANCELLED at once
(one already QUEUED, recovered after a restart, keeps its place). The flow's `duration`
bounds how long an execution holds its slot: `expire` releases it and the next in line
starts, while the execution runs on without counting (its end frees nothing: Kestra's
JdbcExecutor releases again when it ends, which a counter clamped at 0 absorbs only while
no other execution took the slot). The daemon's `max_executions` caps all executions of
the process; past it, executions wait QUEUED whatever their flow says, and their flow's
own limit is applied again when their turn comes. An iteration of a Loop task is part of
an execution already admitted: its flow's limit does not apply to it (it would wait for
its own parent). Pure bookkeeping: starting what is admitted, and timing the `duration`,
are the caller's job.
"""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime

from daemon.flows.definition import Concurrency, Flow
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

Entry = tuple[Flow, Execution]

# The states an execution is in before it takes its slot (or waits for one).
_BEFORE_SLOT = (State.CREATED, State.QUEUED, State.RESTARTED)


class Admission:
    def __init__(self, max_executions: int = 0) -> None:
        self.max_executions = max_executions
        self._active: dict[tuple[str, str], int] = defaultdict(int)
        self._queued: dict[tuple[str, str], deque[Entry]] = defaultdict(deque)
        self._waiting: deque[Entry] = deque()  # past max_executions, in arrival order
        self._starting = 0  # admitted, not started yet
        self._released: set[str] = set()  # running, their slot released by `duration`

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
        cap = limit.queue_cap
        if limit.behavior == "QUEUE" and (
            cap is None
            or execution.state.current == State.QUEUED
            or len(self._queued[flow.uid]) < cap
        ):
            _queue(execution, now)
            self._queued[flow.uid].append((flow, execution))
            return False
        execution.error = (
            f"flow {flow.namespace}.{flow.id} has reached its concurrency limit of {limit.limit}"
        )
        if limit.behavior == "QUEUE":
            execution.error += f" and its queue is full (at most {cap} may wait)"
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

    def unqueue(self, execution_id: str) -> Entry | None:
        """Take a waiting execution out of its queue (killed, or unqueued to an end): it
        held no slot, so nothing else starts, and one more may queue behind a `queueSize`."""
        for queue in (*self._queued.values(), self._waiting):
            for item in queue:
                if item[1].id == execution_id:
                    queue.remove(item)
                    return item
        return None

    def force(self, execution_id: str) -> Entry | None:
        """Take a waiting execution out of its queue to start it now, its flow's limit and
        the daemon's notwithstanding (Kestra's unqueue / force-run): it holds a slot, which
        its end frees as any other's."""
        entry = self.unqueue(execution_id)
        if entry is not None:
            self._take(*entry)
        return entry

    def finished(self, flow: Flow, execution: Execution, running: int) -> list[Entry]:
        """An execution of `flow` ended: the executions whose turn it is now, to start."""
        if execution.loop is None and execution.id not in self._released:
            self._active[flow.uid] -= 1  # an iteration's end frees no slot of its flow
        self._released.discard(execution.id)
        ready = self._next(flow, running)
        while self._waiting and (
            not self.max_executions or running + len(ready) < self.max_executions
        ):
            waiting_flow, waiting = self._waiting.popleft()
            if self._again(waiting_flow, waiting):
                ready.append((waiting_flow, waiting))
        return ready

    def expire(self, flow: Flow, execution: Execution, running: int) -> list[Entry]:
        """`execution` has held its slot for its flow's `duration`: the slot is free again
        (the execution runs on, and its end frees nothing). The executions to start now."""
        if execution.loop is not None or execution.id in self._released:
            return []
        self._released.add(execution.id)
        self._active[flow.uid] -= 1
        return self._next(flow, running)

    def recount(self, flow: Flow, active: int, running: int) -> list[Entry]:
        """Set how many executions of `flow` hold its slots (Kestra's concurrency-limit
        update, which mends a count gone wrong): the queued ones whose turn it is now."""
        self._active[flow.uid] = max(active, 0)
        return self._next(flow, running)

    def _next(self, flow: Flow, running: int) -> list[Entry]:
        """Pop the flows' queues while their limits (this flow's first) and the daemon's
        allow: a slot freed here, or room freed for a queue the daemon's cap held back."""
        ready: list[Entry] = []
        order = [flow.uid] + [uid for uid, q in self._queued.items() if q and uid != flow.uid]
        for uid in order:
            queue = self._queued[uid]
            while queue and (not self.max_executions or running + len(ready) < self.max_executions):
                next_flow, next_execution = queue[0]
                limit = next_flow.concurrency
                if limit is not None and self._active[uid] >= limit.limit:
                    break
                queue.popleft()
                self._take(next_flow, next_execution)
                ready.append((next_flow, next_execution))
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


def slot_taken(execution: Execution, now: datetime) -> datetime:
    """When the execution took its flow's concurrency slot: its first RUNNING since it was
    last created, queued or restarted (stored, so it holds across a restart); `now` when
    it has not run yet."""
    since: datetime | None = None
    for state, at in execution.state.histories:
        if state in _BEFORE_SLOT:
            since = None
        elif state == State.RUNNING and since is None:
            since = at
    return since or now


def _queue(execution: Execution, now: datetime) -> None:
    if execution.state.current != State.QUEUED:  # one recovered QUEUED stays as it was
        execution.state.set(State.QUEUED, now)


def _limit(flow: Flow, execution: Execution) -> Concurrency | None:
    """The flow's limit, unless the execution is an iteration of a Loop task of it."""
    return flow.concurrency if execution.loop is None else None
