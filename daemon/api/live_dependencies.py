"""Server-sent events of an execution's dependencies: the executions that share its
correlation id (its subflows, the executions its end triggered, and theirs) of the flows
linked to its flow, until each of those flows has one that ended.

Kestra's ExecutionController.followDependenciesExecutions and its
ExecutionDependenciesStreamingService: a `start` event, then for each execution a
`progress` event per change and an `end` event once it has ended; once every linked flow
has ended an execution, `end-all`. Like the live follow (daemon/api/live.py) the stream
subscribes to the engine's events before it reads the store, and follows through the store
what other nodes of a cluster run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from daemon.api.common import ENGINE, Param, Routes, error, flag, stored_execution
from daemon.api.live import EVENTS, REMOTE_POLL, EventStream
from daemon.api.tenant import TENANT
from daemon.engine.core import Engine
from daemon.engine.events import Event, ExecutionChanged, TaskRunChanged
from daemon.flows.dependencies import dependencies
from daemon.sdk.state import State
from daemon.store.base import Store

routes = Routes("Executions")

CORRELATION_ID = "system.correlationId"
_PAGE = 1000


def _correlation(doc: dict[str, Any]) -> str:
    """The execution's `system.correlationId` label (its own id when it has none)."""
    labels = {label["key"]: label["value"] for label in doc.get("labels") or []}
    return str(labels.get(CORRELATION_ID, doc["id"]))


def _ended(doc: dict[str, Any]) -> bool:
    """Kestra's isStopFollow: the execution and each of its task runs have ended."""
    runs = doc.get("taskRunList") or []
    return State(doc["state"]["current"]).terminated and all(
        State(run["state"]["current"]).terminated for run in runs
    )


def status(doc: dict[str, Any]) -> dict[str, Any]:
    """Kestra's ExecutionStatusEvent of an execution."""
    return {
        "executionId": doc["id"],
        "tenantId": TENANT,
        "namespace": doc["namespace"],
        "flowId": doc["flowId"],
        "state": doc["state"],
    }


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/follow-dependencies",
    "The executions of the flows linked to the execution's, as they change: `id: progress`, "
    "`id: end` once one has ended, `id: end-all` once each linked flow has one that ended",
    params=(
        Param(
            "destinationOnly",
            "Only the flows leading to the execution's flow, not those it leads to",
            {"type": "boolean", "default": False},
        ),
        Param(
            "expandAll",
            "The flows linked to those too, recursively",
            {"type": "boolean", "default": False},
        ),
    ),
    replies={200: EVENTS, 400: error("A malformed flag"), 404: error("No such execution")},
)
async def follow_dependencies(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    destination_only = flag(request.query, "destinationOnly")
    expand_all = flag(request.query, "expandAll")
    pending: list[dict[str, Any]] = []
    stream: EventStream | None = None
    correlation: str | None = None

    def changed(event: Event) -> None:
        if not isinstance(event, ExecutionChanged | TaskRunChanged):
            return
        execution = event.execution
        if correlation is not None and execution.labels.get(CORRELATION_ID) != correlation:
            return
        doc = engine.resources.masked(execution.to_json())
        if stream is None:
            pending.append(doc)
        else:
            stream.queue.put_nowait(doc)

    unsubscribe = engine.subscribe(changed)
    poller: asyncio.Task[None] | None = None
    try:
        await engine.store.flush()
        doc = await stored_execution(request)
        correlation = _correlation(doc)
        linked = dependencies(
            engine.catalog,
            doc["namespace"],
            doc["flowId"],
            destination_only=destination_only,
            expand_all=expand_all,
        )
        waiting = set(linked)
        async with EventStream(request) as stream:
            await stream.send({"executionId": doc["id"]}, id="start")
            for other in await correlated(engine.store, correlation):
                uid = (other["namespace"], other["flowId"])
                if uid in waiting:
                    ended = _ended(other)
                    await stream.send(status(other), id="end" if ended else "progress")
                    if ended:
                        waiting.discard(uid)
            if not waiting:
                return stream.response
            for item in pending:
                if _correlation(item) == correlation:
                    stream.queue.put_nowait(item)
            if engine.store.shared:
                poller = asyncio.create_task(_poll(engine, stream, correlation))
            async for item in stream.items():
                uid = (item["namespace"], item["flowId"])
                if uid not in waiting:
                    continue
                ended = _ended(item)
                await stream.send(status(item), id="end" if ended else "progress")
                if ended:
                    waiting.discard(uid)
                    if not waiting:
                        await stream.send({"executionId": item["id"]}, id="end-all")
                        break
    finally:
        unsubscribe()
        if poller is not None:
            poller.cancel()
    return stream.response


async def correlated(store: Store, correlation: str) -> list[dict[str, Any]]:
    """Every stored execution of that correlation id (without its task runs)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        docs, total = await store.search_executions(
            labels={CORRELATION_ID: correlation}, page=page, size=_PAGE
        )
        found += docs
        if not docs or len(found) >= total:
            return found
        page += 1


async def _poll(engine: Engine, stream: EventStream, correlation: str) -> None:
    """A cluster node follows the executions other nodes run through the store: their
    events are published on those nodes only."""
    last: dict[str, Any] = {}
    while True:
        await asyncio.sleep(REMOTE_POLL)
        for doc in await correlated(engine.store, correlation):
            if engine.local.runs_here(doc["id"]):
                continue  # this node's own events are fresher than the store
            if last.get(doc["id"]) != doc["state"]:
                last[doc["id"]] = doc["state"]
                stream.queue.put_nowait(doc)
