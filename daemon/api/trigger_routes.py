"""Kestra's trigger endpoints: each trigger with its context (disabled, last event, next fire
time, backfill), and `PUT /api/v1/triggers` to disable or enable one or start a backfill.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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
    error,
    in_utc_range,
    json_response,
    ok,
    page_of,
    paging,
    parse_json,
    supervisor,
)
from daemon.api.flow_routes import flow_json
from daemon.api.query_filters import TRIGGER_FILTERS, filter_params, in_namespace, parse_filters
from daemon.api.uploads import bounded, json_kind
from daemon.flows.definition import Flow

routes = Routes("Triggers")

_UPDATE = {
    "type": "object",
    "required": ["namespace", "flowId", "triggerId"],
    "properties": {
        "namespace": {"type": "string"},
        "flowId": {"type": "string"},
        "triggerId": {"type": "string"},
        "disabled": {"type": "boolean"},
        "backfill": {
            "type": "object",
            "required": ["start"],
            "properties": {
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "inputs": {"type": "object"},
            },
        },
    },
}


@routes.operation(
    "GET",
    "/api/v1/triggers/search",
    "The triggers of the loaded flows",
    params=(
        Param("namespace", "This namespace and the ones under it"),
        Param("flowId", "Triggers of this flow"),
        Param("q", "Text found in the trigger id or flow id (any case)"),
        PAGE,
        SIZE,
        *filter_params(TRIGGER_FILTERS),
    ),
    replies={
        200: ok("TriggerPage"),
        400: error("A malformed filter"),
        409: error("No flows directory"),
    },
)
async def search_triggers(request: web.Request) -> web.Response:
    page, size = paging(request.query)
    found = []
    for flow, context in await selected(request, request.query):
        sources = {t.get("id"): t for t in _source_triggers(flow)}
        found.append(
            {"abstractTrigger": sources.get(context["triggerId"]), "triggerContext": context}
        )
    return json_response(page_of(found, page, size))


async def selected(
    request: web.Request, query: Mapping[str, str]
) -> list[tuple[Flow, dict[str, Any]]]:
    """The triggers of the loaded flows that `query` selects, each with its flow and
    context: Kestra's filters, and the older `namespace` (and those under it), `flowId` and
    `q` (text in the trigger id or flow id, any case) parameters."""
    triggers = supervisor(request)
    namespace, flow_id = query.get("namespace"), query.get("flowId")
    ns_op, text, trigger_id = "PREFIX", query.get("q", ""), None
    for one in parse_filters(query, TRIGGER_FILTERS, "triggers"):
        if one.field == "namespace":
            namespace, ns_op = one.value, one.op
        elif one.field == "flowId":
            flow_id = one.value
        elif one.field == "triggerId":
            trigger_id = one.value
        else:
            text = one.value
    text = text.lower()
    found = []
    for flow in sorted(request.app[ENGINE].catalog, key=lambda f: f.uid):
        if namespace is not None and not in_namespace(flow.namespace, namespace, ns_op):
            continue
        if flow_id is not None and flow.id != flow_id:
            continue
        for context in await triggers.contexts(flow):
            if trigger_id is not None and context["triggerId"] != trigger_id:
                continue
            if text and text not in context["triggerId"].lower() and text not in flow.id.lower():
                continue
            found.append((flow, context))
    return found


def _source_triggers(flow: Flow) -> list[dict[str, Any]]:
    listed = flow_json(flow.source, flow.revision, with_source=False).get("triggers")
    return [t for t in listed if isinstance(t, dict)] if isinstance(listed, list) else []


@routes.operation(
    "GET",
    "/api/v1/triggers/{namespace}/{flowId}",
    "The triggers of one flow",
    params=(PAGE, SIZE),
    replies={
        200: ok("TriggerContextPage"),
        400: error("A malformed parameter"),
        404: error("No such flow"),
        409: error("No flows directory"),
    },
)
async def flow_triggers(request: web.Request) -> web.Response:
    triggers = supervisor(request)
    page, size = paging(request.query)
    flow = await request.app[ENGINE].catalog.find(
        request.match_info["namespace"], request.match_info["flowId"]
    )
    return json_response(page_of(await triggers.contexts(flow), page, size))


@routes.operation(
    "PUT",
    "/api/v1/triggers",
    "Disable or enable a trigger (`disabled`), or start a backfill of a "
    "Schedule (`backfill`: start, end, inputs)",
    body=Body(("application/json",), _UPDATE),
    replies={
        200: ok("TriggerContext"),
        400: error("A malformed update"),
        404: error("No such flow or trigger"),
        409: error("The trigger is disabled, or no flows directory"),
        415: error("Not JSON"),
        422: error("Backfill inputs that do not fit"),
    },
)
async def update_trigger(request: web.Request) -> web.Response:
    triggers = supervisor(request)
    body = await _json_object(bounded(request))
    namespace, flow_id, trigger_id = (body.get(k) for k in ("namespace", "flowId", "triggerId"))
    if not (
        isinstance(namespace, str)
        and isinstance(flow_id, str)
        and isinstance(trigger_id, str)
        and namespace
        and flow_id
        and trigger_id
    ):
        raise HttpError(400, "Bad Request: namespace, flowId and triggerId are required")
    flow = request.app[ENGINE].catalog.get(namespace, flow_id)
    if flow is None:
        raise HttpError(404, f"Not Found: flow {namespace}.{flow_id} not found")
    where = f"trigger {trigger_id} of {namespace}.{flow_id}"
    backfill, disabled = body.get("backfill"), body.get("disabled")
    if backfill is not None:
        if not triggers.enabled(flow, trigger_id):
            raise HttpError(409, f"Illegal state: {where} is disabled")
        start, end, inputs = _backfill(backfill)
        await triggers.backfill(flow, trigger_id, start, end, inputs)
    elif isinstance(disabled, bool):
        source = next((t for t in flow.triggers if t.id == trigger_id), None)
        if not disabled and source is not None and (flow.disabled or source.disabled):
            raise HttpError(409, f"Illegal state: {where} is disabled in the flow's source")
        await triggers.set_disabled(flow, trigger_id, disabled)
    else:
        raise HttpError(
            400, "Bad Request: send disabled (true or false) or backfill ({start, end, inputs})"
        )
    return json_response(
        next(c for c in await triggers.contexts(flow) if c["triggerId"] == trigger_id)
    )


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise HttpError(
            415,
            "Unsupported Media Type: send the trigger as application/json, "
            f"not {request.content_type}",
        )
    data = parse_json(await request.read())
    if not isinstance(data, dict):
        raise HttpError(400, f"Bad Request: the body must be a JSON object, not {json_kind(data)}")
    return data


def _backfill(raw: Any) -> tuple[datetime, datetime | None, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise HttpError(400, f"Bad Request: backfill must be an object, not {json_kind(raw)}")
    unknown = sorted(set(raw) - {"start", "end", "inputs"})
    if unknown:
        raise HttpError(400, f"Bad Request: backfill has unknown properties: {', '.join(unknown)}")
    start = _moment(raw.get("start"), "start")
    if start is None:
        raise HttpError(400, "Bad Request: backfill.start is required")
    end = _moment(raw.get("end"), "end")
    if end is not None and end < start:
        raise HttpError(400, "Bad Request: backfill.end is before backfill.start")
    inputs = raw.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise HttpError(
            400, f"Bad Request: backfill.inputs must be an object, not {json_kind(inputs)}"
        )
    return start, end, inputs


def _moment(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise HttpError(400, f"Bad Request: backfill.{name} {value!r} is not an ISO-8601 date-time")
    return in_utc_range(
        moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC),
        f"backfill.{name} {value!r}",
    )
