"""Kestra's log endpoints: the lines of an execution as JSON or as a text download, and
the deletion of an execution's lines (or some of them) or of a flow's."""

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
from daemon.store.purge import LogPurge

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


@routes.operation(
    "DELETE",
    "/api/v1/logs/{executionId}",
    "Delete the log lines of an execution, or those the filters select",
    params=_FILTERS,
    replies={200: Reply("Deleted (nothing when nothing matched)"), 400: _REPLIES[400]},
)
async def delete_logs(request: web.Request) -> web.Response:
    """LogController.deleteLogsFromExecution: as Kestra, an unknown execution is no error;
    `minLevel` deletes the lines at that level and above."""
    query = request.query
    level = min_level(query)
    await _purge(
        request,
        LogPurge(
            execution_id=request.match_info["executionId"],
            levels=None if level is None else [n for n in LEVELS.values() if n >= LEVELS[level]],
            task_id=query.get("taskId"),
            task_run_id=query.get("taskRunId"),
            attempt=_attempt(query),
        ),
    )
    return web.Response(status=200)


@routes.operation(
    "DELETE",
    "/api/v1/logs/{namespace}/{flowId}",
    "Delete the log lines of a flow's executions, or of one of its triggers",
    params=(Param("triggerId", "Only the lines of this trigger"),),
    replies={200: Reply("Deleted (nothing when nothing matched)")},
)
async def delete_flow_logs(request: web.Request) -> web.Response:
    """LogController.deleteLogsFromFlow: the flow's lines, not those of a flow of the same
    id in a sub-namespace. podium keeps only executions' lines (a trigger logs to the
    daemon's own log), so with `triggerId` only lines that name that trigger go."""
    info = request.match_info
    purge = LogPurge(
        namespace=info["namespace"],
        flow_id=info["flowId"],
        trigger_id=request.query.get("triggerId"),
    )
    await _purge(request, purge)
    return web.Response(status=200)


async def _purge(request: web.Request, purge: LogPurge) -> None:
    store = request.app[ENGINE].store
    await store.flush()  # lines queued by running tasks are deleted too
    await store.purges.logs(purge)


def _attempt(query: Mapping[str, str]) -> int | None:
    attempt = query.get("attempt")
    if attempt is not None and not (attempt.isascii() and attempt.isdigit()):
        raise HttpError(400, f"Bad Request: attempt must be a number, not {attempt!r}")
    return None if attempt is None else int(attempt)


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
    attempt = _attempt(query)
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
        and (attempt is None or line.get("attemptNumber") == attempt)
    ]
