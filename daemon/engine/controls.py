"""What a person does to an execution from outside, beyond kill, restart, replay and
resume: pause it, change an ended one's state, force a waiting one to run, take a queued
one out of its queue, set labels, delete it.

Each checks the state as Kestra's ExecutionService / ConcurrencyLimitService do and
refuses with ControlRefused (Kestra's IllegalArgumentException, a 422) or NotFound; the
change itself goes through the dispatcher when the execution may run on any node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.engine.dispatcher import Dispatcher
from daemon.engine.lifecycle import ControlRefused, RestartRefused
from daemon.engine.resources import Resources
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

# Kestra's ConcurrencyLimitService: where an unqueued execution may go.
UNQUEUE_STATES = (State.RUNNING, State.CANCELLED, State.FAILED)
# Kestra's State.Type.isRunning(): what a person may pause.
PAUSABLE = (State.RUNNING, State.KILLING)


class Controls:
    def __init__(self, resources: Resources, dispatcher: Dispatcher) -> None:
        self._resources = resources
        self._dispatcher = dispatcher

    async def pause(self, execution_id: str) -> Execution:
        """Kestra's ExecutionService.pause: a RUNNING execution is PAUSED at once; what runs
        finishes, nothing else starts and it does not end until it is resumed."""
        execution = await self.stored(execution_id)
        if execution.state.current not in PAUSABLE:
            raise ControlRefused(
                f"execution {execution_id} is {execution.state.current.value}, not RUNNING: "
                "only a running execution can be paused"
            )
        if not await self._dispatcher.pause(execution_id):
            raise RestartRefused(
                f"execution {execution_id} is RUNNING in the store but runs nowhere it could "
                "be paused (it is ending, or its node is gone)"
            )
        return await self.stored(execution_id)

    async def change_status(self, execution_id: str, state: State) -> Execution:
        """Kestra's updateExecutionStatus: an ended execution's state is replaced by another
        ended state; its task runs are left as they are and nothing runs. Only the store
        hears of it: it is a correction, not an end (no Flow trigger, no metric)."""
        if not state.terminated:
            raise ControlRefused(
                f"{state} is not an ended state: an execution's state can only be changed "
                "to an ended one"
            )
        execution = await self.stored(execution_id)
        if not execution.state.current.terminated:
            raise ControlRefused(
                f"execution {execution_id} is {execution.state.current.value}: only the state "
                "of an ended execution can be changed"
            )
        if execution.state.current != state:  # Kestra's State.withState: same state, no change
            execution.state.set(state, self._resources.clock.now())
            await self._resources.store.save_execution(execution.to_json(task_runs=False))
        return execution

    async def unqueue(self, execution_id: str, state: State = State.RUNNING) -> Execution:
        """Kestra's ConcurrencyLimitService.unqueue: a QUEUED execution leaves its queue,
        to run now whatever the limits say (RUNNING), or ended CANCELLED or FAILED."""
        if state not in UNQUEUE_STATES:
            raise ControlRefused(
                f"an unqueued execution goes to RUNNING, CANCELLED or FAILED, not {state}"
            )
        execution = await self.stored(execution_id)
        if execution.state.current != State.QUEUED:
            raise ControlRefused(
                f"execution {execution_id} is {execution.state.current.value}: only a QUEUED "
                "execution can be unqueued"
            )
        if not await self._dispatcher.unqueue(execution_id, state):
            raise RestartRefused(
                f"execution {execution_id} is QUEUED in the store but waits in no queue here"
            )
        return await self.stored(execution_id)

    async def force_run(self, execution_id: str) -> Execution:
        """Kestra's ExecutionService.forceRun: a waiting execution runs now (QUEUED ones, and
        CREATED ones still in a queue, leave it), a PAUSED one is resumed, any other
        unfinished one is left as it is. An ended one is refused."""
        execution = await self.stored(execution_id)
        current = execution.state.current
        if current.terminated:
            raise ControlRefused(
                f"execution {execution_id} has ended ({current.value}): only an unfinished "
                "execution can be forced to run"
            )
        if current in (State.QUEUED, State.CREATED):
            await self._dispatcher.unqueue(execution_id, State.RUNNING)
        elif current == State.PAUSED:
            await self._dispatcher.resume(execution_id, {})
        return await self.stored(execution_id)

    async def set_labels(self, execution_id: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """Labels added to an ended execution's, a key given replacing its value; the
        execution as stored."""
        store = self._resources.store
        doc = await store.get_execution(execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id} not found")
        if not State(doc["state"]["current"]).terminated:
            raise RestartRefused(
                f"execution {execution_id} is {doc['state']['current']}; labels can be set "
                "once it has ended"
            )
        merged = {label["key"]: label["value"] for label in doc.get("labels") or []}
        merged.update(labels)
        doc["labels"] = [{"key": k, "value": v} for k, v in merged.items()]
        await store.save_execution(doc)
        return doc

    async def delete(
        self,
        execution_id: str,
        *,
        logs: bool = True,
        metrics: bool = True,
        storage: bool = True,
        unfinished: bool = False,
    ) -> None:
        """Kestra's ExecutionService.delete: the execution and its task runs go, with its
        logs, metrics and files unless told to keep them. An unfinished one is refused,
        or with `unfinished` (Kestra's includeNonTerminated) killed first."""
        execution = await self.stored(execution_id)
        if not execution.state.current.terminated:
            if not unfinished:
                raise RestartRefused(
                    f"execution {execution_id} is {execution.state.current.value}; kill it "
                    "before deleting it"
                )
            await self._dispatcher.kill(execution_id)
        await self._resources.store.delete_execution(execution_id, logs=logs, metrics=metrics)
        if storage:
            files = self._resources.storage
            await files.delete_prefix(
                files.execution_prefix(execution.namespace, execution.flow_id, execution.id)
            )

    async def stored(self, execution_id: str) -> Execution:
        doc = await self._resources.store.get_execution(execution_id)
        if doc is None:
            raise NotFound(f"execution {execution_id} not found")
        return Execution.from_json(doc)
