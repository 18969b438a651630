"""Server-sent events: an execution's state changes and its log lines, live.

Each stream subscribes to the engine's events before it reads what is stored, so that
nothing falls between the two; lines seen both ways are sent once. A stream ends after
the execution's terminal state, when the client goes away (noticed at the latest by the
heartbeat), or when the app shuts down: `close_streams` runs on shutdown so that open
streams never hold up the daemon's HTTP stop stage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from daemon.api.common import ENGINE, Reply, Routes, error, kestra_execution, stored_execution
from daemon.api.log_routes import MIN_LEVEL, TASK_RUN, min_level
from daemon.engine.events import Event, ExecutionChanged, LogAppended, TaskRunChanged
from daemon.sdk.context import LEVELS
from daemon.sdk.state import State

HEARTBEAT = 15.0  # seconds between comment lines that keep proxies open and find dead clients
# In a cluster, an execution another node runs is followed through the store this often.
REMOTE_POLL = 0.5

execution_routes = Routes("Executions")
log_routes = Routes("Logs")

STREAMS: web.AppKey[Streams] = web.AppKey("streams")
_END = object()  # queued to end a stream


@dataclass(frozen=True)
class Ended:
    """Queued once the execution has ended: the log stream says so and closes."""

    state: str


# In OpenAPI 3.1 the schema of an event stream describes one event, not the whole text.
EVENTS = Reply(
    "Server-sent events, each `data` one JSON document",
    "text/event-stream",
    {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "string", "contentMediaType": "application/json"},
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    },
)


class Streams:
    """The open streams of an app; once it is stopping, a stream that opens ends at once."""

    def __init__(self) -> None:
        self.open: set[EventStream] = set()
        self.stopping = False


class EventStream:
    """One open `text/event-stream` response and the queue of what it still has to send."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )

    async def __aenter__(self) -> EventStream:
        await self.response.prepare(self.request)
        streams = self.request.app[STREAMS]
        streams.open.add(self)
        if streams.stopping:
            self.end()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.request.app[STREAMS].open.discard(self)
        with contextlib.suppress(ConnectionError):
            await self.response.write_eof()
        return exc_type is not None and issubclass(exc_type, ConnectionError)  # client left

    def end(self) -> None:
        self.queue.put_nowait(_END)

    async def send(self, data: Any, *, event: str | None = None, id: str | None = None) -> None:
        head = (f"id: {id}\n" if id else "") + (f"event: {event}\n" if event else "")
        await self.response.write(
            head.encode() + b"data: " + orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"
        )

    async def items(self) -> Any:
        """What was queued, in order, until `end()`; heartbeats in the quiet moments."""
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT):
                    item = await self.queue.get()
            except TimeoutError:
                if self.request.transport is None:
                    return
                await self.response.write(b": heartbeat\n\n")
                continue
            if item is _END or self.request.transport is None:
                return
            yield item


async def close_streams(app: web.Application) -> None:
    streams = app[STREAMS]
    streams.stopping = True
    for stream in list(streams.open):
        stream.end()


@execution_routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/follow",
    "Every change of the execution as it happens (`id: progress`), the last one with `id: end`",
    replies={200: EVENTS, 404: error("No such execution")},
)
async def follow_execution(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    target = request.match_info["executionId"]
    snapshots: list[dict[str, Any]] = []
    stream: EventStream | None = None

    def changed(event: Event) -> None:
        if not isinstance(event, ExecutionChanged | TaskRunChanged):
            return
        execution = event.execution
        if execution.id != target:
            return
        # now (the object keeps changing after this event), masked as the store keeps it
        doc = engine.resources.masked(execution.to_json())
        if stream is None:
            snapshots.append(doc)
        else:
            stream.queue.put_nowait(doc)

    unsubscribe = engine.subscribe(changed)
    poller: asyncio.Task[None] | None = None
    try:
        await engine.store.flush()
        doc = await stored_execution(request)
        async with EventStream(request) as stream:
            for item in [doc, *snapshots]:
                stream.queue.put_nowait(item)
            if engine.store.shared:
                poller = asyncio.create_task(_poll_execution(request, stream, doc))
            async for item in stream.items():
                ended = State(item["state"]["current"]).terminated
                await stream.send(kestra_execution(item), id="end" if ended else "progress")
                if ended:
                    break
    finally:
        unsubscribe()
        if poller is not None:
            poller.cancel()
    return stream.response


async def _poll_execution(request: web.Request, stream: EventStream, last: dict[str, Any]) -> None:
    """A cluster node follows an execution another node runs through the store: its
    events are published on that node only."""
    engine = request.app[ENGINE]
    target = request.match_info["executionId"]
    while True:
        await asyncio.sleep(REMOTE_POLL)
        if engine.local.runs_here(target):
            continue  # this node's own events are fresher than the store
        doc = await engine.store.get_execution(target)
        if doc is None:
            stream.end()
            return
        if doc != last:
            last = doc
            stream.queue.put_nowait(doc)


@log_routes.operation(
    "GET",
    "/api/v1/logs/{executionId}/follow",
    "The execution's log lines, stored ones first then new ones as they "
    "come; `event: end` once the execution has ended",
    params=(MIN_LEVEL, TASK_RUN),
    replies={200: EVENTS, 400: error("A malformed filter"), 404: error("No such execution")},
)
async def follow_logs(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    store = engine.store
    target = request.match_info["executionId"]
    level = min_level(request.query)
    lowest = LEVELS[level] if level else 0
    task_run_id = request.query.get("taskRunId")
    pending: list[Any] = []
    stream: EventStream | None = None

    def seen(event: Event) -> None:
        if not isinstance(event, LogAppended | ExecutionChanged):
            return
        execution = event.execution
        if execution.id != target:
            return
        if isinstance(event, LogAppended):
            line = event.line
            if LEVELS.get(line.get("level", "INFO"), 0) < lowest or (
                task_run_id is not None and line.get("taskRunId") != task_run_id
            ):
                return
            item: Any = line
        elif execution.state.current.terminated:
            item = Ended(execution.state.current.value)
        else:
            return
        if stream is None:
            pending.append(item)
        else:
            stream.queue.put_nowait(item)

    unsubscribe = engine.subscribe(seen)
    poller: asyncio.Task[None] | None = None
    try:
        await store.flush()
        doc = await stored_execution(request)
        stored = await store.logs(target, task_run_id=task_run_id, min_level=level)
        async with EventStream(request) as stream:
            for line in stored:
                await stream.send(line)
            already = Counter(_key(line) for line in stored)
            for item in pending:
                if not isinstance(item, Ended) and already[_key(item)] > 0:
                    already[_key(item)] -= 1  # stored and published: sent above
                    continue
                stream.queue.put_nowait(item)
            if State(doc["state"]["current"]).terminated:
                stream.queue.put_nowait(Ended(doc["state"]["current"]))
            elif engine.store.shared:
                poller = asyncio.create_task(_poll_logs(request, stream, len(stored)))
            async for item in stream.items():
                if isinstance(item, Ended):
                    await stream.send({"executionId": target, "state": item.state}, event="end")
                    break
                await stream.send(item)
    finally:
        unsubscribe()
        if poller is not None:
            poller.cancel()
    return stream.response


async def _poll_logs(request: web.Request, stream: EventStream, sent: int) -> None:
    """Log lines of an execution another node of the cluster runs, read from the store."""
    engine = request.app[ENGINE]
    target = request.match_info["executionId"]
    level = min_level(request.query)
    task_run_id = request.query.get("taskRunId")
    while True:
        await asyncio.sleep(REMOTE_POLL)
        if engine.local.runs_here(target):
            continue
        doc = await engine.store.get_execution(target)
        lines = await engine.store.logs(target, task_run_id=task_run_id, min_level=level)
        for line in lines[sent:]:
            stream.queue.put_nowait(line)
        sent = max(sent, len(lines))
        if doc is None or State(doc["state"]["current"]).terminated:
            stream.queue.put_nowait(Ended(doc["state"]["current"] if doc else "KILLED"))
            return


def _key(line: dict[str, Any]) -> bytes:
    return orjson.dumps(line, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
