"""The engine's dispatcher in a cluster: executions are stored without an owner and some
node claims them; waiting, killing and resuming reach whichever node runs one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from daemon.cluster.channels import Channels
from daemon.engine.dispatcher import pause_here, resume_here, wait_here_or_stored
from daemon.engine.local import LocalExecutions
from daemon.engine.pauses import Pauses, resume_inputs, waiting_reviews
from daemon.engine.resources import Resources
from daemon.flows.catalog import FlowCatalog
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import Reviewable
from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.inputs import coerce_inputs
from daemon.sdk.review import Decision, Review
from daemon.sdk.state import State, iso
from daemon.store.postgres_cluster import ClusterTables

log = logging.getLogger(__name__)


class ClusterDispatcher:
    def __init__(
        self,
        resources: Resources,
        local: LocalExecutions,
        pauses: Pauses,
        catalog: FlowCatalog,
        tables: ClusterTables,
        channels: Channels,
    ) -> None:
        self._resources = resources
        self._local = local
        self._pauses = pauses
        self._catalog = catalog
        self._tables = tables
        self._channels = channels
        local.on_finished(channels.ended)
        channels.handle(control=self._control)

    async def existing(self, execution_id: str) -> Execution | None:
        return None  # `create` inserts only if absent: one statement decides

    async def create(self, flow: Flow, execution: Execution, *, idempotent: bool) -> Execution:
        store = self._resources.store
        doc = execution.to_json(task_runs=False)
        if idempotent:
            if not await store.create_execution(doc):
                existing = await store.get_execution(execution.id)
                if existing is not None:
                    return Execution.from_json(existing)
        else:
            await store.save_execution(doc)
        self._resources.events.execution(execution)
        self._channels.offer()
        return execution

    def prepare(self, execution: Execution) -> None:
        pass  # whichever node claims it waits for it

    async def rerun(self, flow: Flow, execution: Execution, *, restarted: bool) -> None:
        if restarted:
            await self._tables.release(execution.id)
        else:
            await self._resources.store.flush()  # its task runs are read by the claimer
        self._channels.offer()

    async def wait(self, execution_id: str) -> Execution:
        if self._local.waiter(execution_id) is None:
            await self._channels.wait_ended(execution_id)
        return await wait_here_or_stored(self._resources, self._local, execution_id)

    async def kill(self, execution_id: str) -> bool:
        """Kill an execution whichever node runs it (or none yet)."""
        if await self._local.kill(execution_id):
            return True
        store = self._resources.store
        doc = await store.get_execution(execution_id)
        if doc is None or State(doc["state"]["current"]).terminated:
            return False
        if await self._tables.claim_one(execution_id):
            execution = Execution.from_json(doc)
            execution.state.set(State.KILLED, self._resources.clock.now())
            await store.save_execution(execution.to_json(task_runs=False))
            self._local.ended_unstarted(execution)
            return True
        owner = await self._tables.owner(execution_id)
        await self._channels.control("kill", execution_id, owner)
        return True

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        """An execution paused on another node is resumed by that node; its inputs are
        checked here too, so that the caller hears about bad ones."""
        if self._pauses.holds(execution_id) or self._pauses.held(execution_id):
            return await resume_here(
                self._resources, self._local, self._pauses, execution_id, inputs
            )
        doc = await self._resources.store.get_execution(execution_id)
        if doc is None or doc["state"]["current"] != State.PAUSED.value:
            return False
        stored = Execution.from_json(doc)
        flow = await self._catalog.at(stored.namespace, stored.flow_id, stored.flow_revision)
        await asyncio.to_thread(coerce_inputs, resume_inputs(flow, doc), inputs)
        owner = await self._tables.owner(execution_id)
        await self._channels.control("resume", execution_id, owner, inputs=dict(inputs))
        return True

    async def pause(self, execution_id: str) -> bool:
        """Paused by the node that runs it."""
        if await pause_here(self._resources, self._local, self._pauses, execution_id):
            return True
        return await self._forward("pause", execution_id)

    async def unqueue(self, execution_id: str, state: State) -> bool:
        """Unqueued by the node whose queue holds it."""
        if await self._local.unqueue(execution_id, state):
            return True
        return await self._forward("unqueue", execution_id, state=state.value)

    async def _forward(self, action: str, execution_id: str, **extra: Any) -> bool:
        owner = await self._tables.owner(execution_id)
        if owner is None:
            return False
        await self._channels.control(action, execution_id, owner, **extra)
        return True

    async def review(self, execution_id: str, task_run_id: str, review: Review) -> bool:
        """A request waiting on another node is decided by that node; the review is checked
        here too against the task as written, so that the caller hears about a bad one."""
        if self._pauses.holds(execution_id, task_run_id):
            return await self._pauses.review(execution_id, task_run_id, review)
        doc = await self._resources.store.get_execution(execution_id)
        if doc is None:
            return False
        stored = Execution.from_json(doc)
        flow = await self._catalog.at(stored.namespace, stored.flow_id, stored.flow_revision)
        run = next((tr for tr in waiting_reviews(flow, doc) if tr["id"] == task_run_id), None)
        task = flow.task_by_id(run["taskId"]) if run else None
        if not isinstance(task, Reviewable):
            return False
        form = task.review_form()
        form.check_comment(review.decision, review.comment)
        await asyncio.to_thread(coerce_inputs, form.inputs, review.inputs)
        owner = await self._tables.owner(execution_id)
        await self._channels.control(
            "review",
            execution_id,
            owner,
            taskRunId=task_run_id,
            decision=review.decision.value,
            comment=review.comment,
            inputs=dict(review.inputs),
            by=review.by,
            on=iso(review.on),
        )
        return True

    async def _control(self, action: str, execution_id: str, message: dict[str, Any]) -> None:
        if action == "kill":
            await self._local.kill(execution_id)
        elif action == "resume":
            inputs = message.get("inputs") or {}
            await resume_here(self._resources, self._local, self._pauses, execution_id, inputs)
        elif action == "pause":
            await pause_here(self._resources, self._local, self._pauses, execution_id)
        elif action == "unqueue" and message.get("state") in State.__members__:
            await self._local.unqueue(execution_id, State(message["state"]))
        elif action == "review":
            review = Review(
                Decision(message["decision"]),
                datetime.fromisoformat(message["on"]),
                message.get("comment"),
                message.get("inputs") or {},
                message.get("by"),
            )
            try:
                await self._pauses.review(execution_id, message["taskRunId"], review)
            except PodiumError as exc:  # checked where it was sent; its expressions here
                log.warning("the review of execution %s is refused: %s", execution_id, exc)
