"""Kestra's log endpoints: the lines of an execution as JSON or as a text download."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    ok,
    stored_execution,
)
from daemon.sdk.context import LEVELS

routes = Routes("Logs")

MIN_LEVEL = Param(
    "minLevel", "Only lines at this level or above", {"type": "string", "enum": list(LEVELS)}
)
TASK_RUN = Param("taskRunId", "Only lines of this task run")
_FILTERS = (
    MIN_LEVEL,
    TASK_RUN,
    Param("taskId", "Only lines of this task"),
    Param("attempt", "Only lines of this attempt", {"type": "integer", "minimum": 0}),
)
_REPLIES = {400: error("A malformed filter"), 404: error("No such execution")}


@routes.operation(
    "GET",
    "/api/v1/logs/{executionId}",
    "The log lines of an execution",
    params=_FILTERS,
    replies={200: ok("LogEntry", array=True), **_REPLIES},
)
async def list_logs(request: web.Request) -> web.Response:
    return json_response(await _logs(request))


@routes.operation(
    "GET",
    "/api/v1/logs/{executionId}/download",
    "The log lines as text: `timestamp LEVEL message`, one per line",
    params=_FILTERS,
    replies={200: Reply("The lines", "text/plain", {"type": "string"}), **_REPLIES},
)
async def download_logs(request: web.Request) -> web.Response:
    lines = await _logs(request)
    text = "\n".join(
        f"{line.get('timestamp')} {line.get('level')} {line.get('message')}" for line in lines
    )
    name = request.match_info["executionId"].replace('"', "")
    return web.Response(
        text=text,
        content_type="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{name}.log"'},
    )


def min_level(query: Mapping[str, str]) -> str | None:
    level = query.get("minLevel")
    if level is not None and level not in LEVELS:
        raise HttpError(400, f"Bad Request: minLevel {level!r} is not one of {', '.join(LEVELS)}")
    return level


async def _logs(request: web.Request) -> list[dict[str, Any]]:
    """Filters as Kestra: minLevel, taskRunId, taskId, attempt. The lines of an execution
    deleted with `deleteLogs=false` are still answered; an id without any is a 404."""
    query = request.query
    level = min_level(query)
    attempt = query.get("attempt")
    if attempt is not None and not (attempt.isascii() and attempt.isdigit()):
        raise HttpError(400, f"Bad Request: attempt must be a number, not {attempt!r}")
    store = request.app[ENGINE].store
    await store.flush()  # lines queued by running tasks become readable
    execution_id = request.match_info["executionId"]
    if await store.get_execution(execution_id) is None and not await store.logs(execution_id):
        await stored_execution(request)  # the 404
    lines = await store.logs(execution_id, task_run_id=query.get("taskRunId"), min_level=level)
    task_id = query.get("taskId")
    return [
        line
        for line in lines
        if (task_id is None or line.get("taskId") == task_id)
        and (attempt is None or line.get("attemptNumber") == int(attempt))
    ]
