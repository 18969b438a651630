"""Where a new or re-run execution goes once it is built: the one seam between a single
daemon and a cluster.

On one node (`LocalDispatcher`) it is stored and started here, through admission. In a
cluster (`daemon.cluster.node.dispatch.ClusterDispatcher`) it is stored without an owner and
whichever node has room claims it; waiting, killing and resuming then reach whichever
node runs it. The engine only ever talks to this interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from daemon.engine.local import LocalExecutions
from daemon.engine.pauses import Pauses
from daemon.engine.resources import Resources
from daemon.flows.definition import Flow
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.review import Review
from daemon.sdk.state import State


class Dispatcher(Protocol):
    async def existing(self, execution_id: str) -> Execution | None:
        """An idempotent submission's execution, when an earlier attempt created it and
        this dispatcher can tell before the inputs are even checked."""
        ...

    async def create(self, flow: Flow, execution: Execution, *, idempotent: bool) -> Execution:
        """Store a new execution durably and have it run (or queue, or be refused by its
        flow's limit). With `idempotent`, an execution stored under the same id meanwhile
        is returned instead."""
        ...

    def prepare(self, execution: Execution) -> None:
        """A restarted or replayed execution is about to be stored."""
        ...

    async def rerun(self, flow: Flow, execution: Execution, *, restarted: bool) -> None:
        """Run a restarted or replayed execution, already stored with its task runs."""
        ...

    async def wait(self, execution_id: str) -> Execution:
        """The execution once it has ended (as stored, when it runs nowhere)."""
        ...

    async def kill(self, execution_id: str) -> bool: ...

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        """End the wait of a Pause task, and a manual pause, whichever node holds them;
        False when the execution waits nowhere."""
        ...

    async def pause(self, execution_id: str) -> bool:
        """Hold a RUNNING execution (a manual pause), whichever node runs it; False when it
        runs nowhere."""
        ...

    async def unqueue(self, execution_id: str, state: State) -> bool:
        """Take a QUEUED execution out of its queue, whichever node queued it: started now
        (RUNNING) or ended in `state`; False when it waits nowhere."""
        ...

    async def review(self, execution_id: str, task_run_id: str, review: Review) -> bool:
        """Decide the request of a task run waiting for a review, whichever node holds it;
        False when it waits nowhere. ReviewRefused or InputError when it does not fit."""
        ...


class LocalDispatcher:
    """Every execution of this daemon runs in this process."""

    def __init__(self, resources: Resources, local: LocalExecutions, pauses: Pauses) -> None:
        self._resources = resources
        self._local = local
        self._pauses = pauses

    async def existing(self, execution_id: str) -> Execution | None:
        doc = await self._resources.store.get_execution(execution_id)
        return None if doc is None else Execution.from_json(doc)

    async def create(self, flow: Flow, execution: Execution, *, idempotent: bool) -> Execution:
        local = self._local
        admitted = local.admit(flow, execution)
        local.expect(execution)
        try:
            await self._resources.store.save_execution(execution.to_json(task_runs=False))
        except BaseException:
            local.withdraw(flow, execution, admitted)  # never stored: it never happened
            raise
        self._resources.events.execution(execution)
        if admitted:
            local.start(flow, execution)
        return execution

    def prepare(self, execution: Execution) -> None:
        self._local.expect(execution)

    async def rerun(self, flow: Flow, execution: Execution, *, restarted: bool) -> None:
        await self._local.enter(flow, execution)

    async def wait(self, execution_id: str) -> Execution:
        return await wait_here_or_stored(self._resources, self._local, execution_id)

    async def kill(self, execution_id: str) -> bool:
        return await self._local.kill(execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        return await resume_here(self._resources, self._local, self._pauses, execution_id, inputs)

    async def pause(self, execution_id: str) -> bool:
        return await pause_here(self._resources, self._local, self._pauses, execution_id)

    async def unqueue(self, execution_id: str, state: State) -> bool:
        return await self._local.unqueue(execution_id, state)

    async def review(self, execution_id: str, task_run_id: str, review: Review) -> bool:
        return await self._pauses.review(execution_id, task_run_id, review)


async def wait_here_or_stored(
    resources: Resources, local: LocalExecutions, execution_id: str
) -> Execution:
    """The end of an execution queued or running here, else the execution as stored."""
    ended = local.waiter(execution_id)
    if ended is not None:
        return await asyncio.shield(ended)
    doc = await resources.store.get_execution(execution_id)
    if doc is None:
        raise NotFound(f"execution {execution_id} not found")
    return Execution.from_json(doc)


async def pause_here(
    resources: Resources, local: LocalExecutions, pauses: Pauses, execution_id: str
) -> bool:
    """Hold an execution RUNNING here, stored PAUSED at once: what runs finishes, nothing
    starts (see Pauses). False when it is not RUNNING here."""
    execution = local.live(execution_id)
    if execution is None or execution.state.current != State.RUNNING:
        return False
    pauses.hold(execution_id)
    execution.state.set(State.PAUSED, resources.clock.now())
    await resources.store.save_execution(resources.masked(execution.to_json(task_runs=False)))
    resources.events.execution(execution)
    return True


async def resume_here(
    resources: Resources,
    local: LocalExecutions,
    pauses: Pauses,
    execution_id: str,
    inputs: Mapping[str, Any],
) -> bool:
    """Kestra's resume of a PAUSED execution waiting here: its Pause task's wait ends (the
    inputs checked first: InputError resumes nothing), and a manual pause too, RUNNING
    again at once. False when nothing holds it here."""
    resumed = await pauses.resume(execution_id, inputs)
    if not pauses.unhold(execution_id):
        return resumed
    execution = local.live(execution_id)
    if (
        execution is not None
        and execution.state.current == State.PAUSED
        and not pauses.holds(execution_id)
    ):
        execution.state.set(State.RUNNING, resources.clock.now())
        doc = resources.masked(execution.to_json(task_runs=False))
        await resources.store.save_execution(doc)
        resources.events.execution(execution)
    return True
