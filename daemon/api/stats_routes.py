"""Kestra's statistics and search endpoints across executions: executions per period by
state with their durations (the dashboard), log lines of every execution searched by text,
level, flow and time (the logs page), and the namespaces flows live in.

Declared before the log routes: `/api/v1/logs/search` would otherwise be taken for the
logs of an execution whose id is "search".
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    PAGE,
    SIZE,
    Body,
    HttpError,
    Param,
    Routes,
    date_param,
    error,
    json_response,
    ok,
    paging,
    parse_json,
)
from daemon.api.log_routes import MIN_LEVEL, min_level
from daemon.api.uploads import bounded, json_kind
from daemon.sdk.state import State
from daemon.store.insights import Window

routes = Routes("Stats")

# Longer periods are counted per day, shorter ones per hour.
HOURLY_UP_TO = timedelta(days=2)
DEFAULT_PERIOD = timedelta(days=7)
MAX_BUCKETS = 24 * 400
_STATES = [state.value for state in State]
_REQUEST = {
    "type": "object",
    "properties": {
        "namespace": {"type": "string"},
        "flowId": {"type": "string"},
        "startDate": {"type": "string", "format": "date-time"},
        "endDate": {"type": "string", "format": "date-time"},
    },
}


def _moment(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HttpError(400, f"Bad Request: {name} must be an ISO-8601 date-time")
    return date_param({name: value}, name)


@routes.operation(
    "POST",
    "/api/v1/stats/executions/daily",
    "Executions per day (or per hour over two days or less) by state, with durations",
    body=Body(("application/json",), _REQUEST, required=False),
    replies={200: ok(None, "One entry per period, oldest first"), 400: error("A bad request")},
)
async def daily_statistics(request: web.Request) -> web.Response:
    raw = await bounded(request).read()
    body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise HttpError(400, f"Bad Request: the body must be a JSON object, not {json_kind(body)}")
    now = request.app[ENGINE].clock.now().astimezone(UTC)
    end = _moment(body, "endDate") or now
    start = _moment(body, "startDate") or end - DEFAULT_PERIOD
    if start >= end:
        raise HttpError(400, "Bad Request: startDate must be before endDate")
    hourly = end - start <= HOURLY_UP_TO
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    first = start.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        first = first.replace(hour=0)
    if (end - first) / step > MAX_BUCKETS:
        raise HttpError(400, f"Bad Request: the period is longer than {MAX_BUCKETS} {step}")
    window = Window.of(
        _text(body, "namespace"), _text(body, "flowId"), start.isoformat(), end.isoformat()
    )
    briefs = await request.app[ENGINE].store.insights.execution_briefs(window)
    buckets: dict[datetime, list[dict[str, Any]]] = {}
    moment = first
    while moment < end:
        buckets[moment] = []
        moment += step
    for brief in briefs:
        begun = datetime.fromisoformat(brief["startDate"])
        slot = first + step * int((begun - first) / step)
        buckets.setdefault(slot, []).append(brief)
    return json_response(
        [_period(slot, items, "hour" if hourly else "day") for slot, items in buckets.items()]
    )


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise HttpError(400, f"Bad Request: {name} must be text")
    return value or None


def _period(slot: datetime, items: list[dict[str, Any]], group: str) -> dict[str, Any]:
    counts = Counter(item["state"] for item in items)
    seconds = [
        (datetime.fromisoformat(i["endDate"]) - datetime.fromisoformat(i["startDate"]))
        .total_seconds()
        for i in items
        if i["endDate"]
    ]  # fmt: skip
    duration = {
        "count": len(seconds),
        "min": min(seconds, default=0.0),
        "max": max(seconds, default=0.0),
        "avg": sum(seconds) / len(seconds) if seconds else 0.0,
        "sum": sum(seconds),
    }
    return {
        "startDate": slot.isoformat().replace("+00:00", "Z"),
        "groupBy": group,
        "executionCounts": {state: counts.get(state, 0) for state in _STATES},
        "duration": duration,
    }


@routes.operation(
    "GET",
    "/api/v1/logs/search",
    "Log lines of every execution, newest first",
    params=(
        Param("q", "Text found in the message (any case)"),
        Param("namespace", "Executions of this namespace and the ones under it"),
        Param("flowId", "Executions of this flow"),
        MIN_LEVEL,
        Param("startDate", "Of executions started at or after", {"type": "string"}),
        Param("endDate", "Of executions started before", {"type": "string"}),
        PAGE,
        SIZE,
    ),
    replies={200: ok("LogPage"), 400: error("A malformed filter")},
)
async def search_logs(request: web.Request) -> web.Response:
    query = request.query
    page, size = paging(query)
    level = min_level(query)
    start, end = date_param(query, "startDate"), date_param(query, "endDate")
    window = Window.of(
        query.get("namespace") or None,
        query.get("flowId") or None,
        start.isoformat() if start else None,
        end.isoformat() if end else None,
    )
    store = request.app[ENGINE].store
    await store.flush()  # lines queued by running tasks become searchable
    results, total = await store.insights.search_logs(
        window, text=query.get("q") or None, min_level=level, page=page, size=size
    )
    return json_response({"results": results, "total": total})


@routes.operation(
    "GET",
    "/api/v1/flows/distinct-namespaces",
    "The namespaces of the loaded flows, and every namespace above them",
    params=(Param("q", "Text found in the namespace (any case)"),),
    replies={200: ok(None, "Namespace names, sorted")},
)
async def distinct_namespaces(request: web.Request) -> web.Response:
    text = request.query.get("q", "").lower()
    names: set[str] = set()
    for flow in request.app[ENGINE].catalog:
        parts = flow.namespace.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return json_response(sorted(n for n in names if text in n.lower()))
