"""Kestra's actions on triggers: restart one, delete its state, unlock it, disable or enable
several, and export them as CSV; each for one trigger, for a list of triggers
(`by-triggers`) or for those a query selects (`by-query`), which answer Kestra's
BulkResponse, `{"count": n}`.

Deleting a trigger deletes its state, as in Kestra, whose scheduler then recreates it from
the flow: podium forgets what was set on it at run time and restarts it as its source has
it. A trigger is locked while it waits for the end of the execution it started (a polling
trigger without allowConcurrent); unlocking it lets it go on at once.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from aiohttp import web

from daemon.api.body_parsing import json_body, json_object
from daemon.api.common import (
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    supervisor,
)
from daemon.api.query_filters import TRIGGER_FILTERS, filter_params
from daemon.api.trigger_routes import selected
from daemon.api.trigger_targets import (
    BULK,
    TRIGGER,
    TRIGGERS,
    Action,
    NotApplicable,
    context_of,
    each_listed,
    each_selected,
    listed_triggers,
    loaded_flow,
    path_ids,
    trigger_ids,
)
from daemon.api.uploads import json_kind
from daemon.engine.trigger_locks import NotLocked
from daemon.flows.definition import Flow

routes = Routes("Triggers")

_QUERY = (
    Param("q", "Text found in the trigger id or flow id (any case)"),
    Param("namespace", "This namespace and the ones under it"),
    *filter_params(TRIGGER_FILTERS),
)
_NO_TRIGGERS = error("This server runs no triggers")
_UNKNOWN = error("No such flow or trigger")
_MALFORMED = error("A malformed filter or body")
_SET_DISABLED = {
    "type": "object",
    "required": ["triggers", "disabled"],
    "properties": {"triggers": {**TRIGGERS, "minItems": 1}, "disabled": {"type": "boolean"}},
}
_FILTERS_BODY = {
    "type": "object",
    "properties": {
        "filters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "operation": {"type": "string"}},
            },
        }
    },
}
_BULK_REPLIES = {200: BULK, 400: _MALFORMED, 409: _NO_TRIGGERS}
_BODY_REPLIES = {**_BULK_REPLIES, 415: error("Not JSON"), 422: error("Not an array of triggers")}


@routes.operation(
    "POST",
    "/api/v1/triggers/unlock/by-triggers",
    "Unlock each listed trigger that waits for the end of the execution it started",
    body=Body(("application/json",), TRIGGERS),
    replies=_BODY_REPLIES,
)
async def unlock_listed(request: web.Request) -> web.Response:
    """TriggerController.unlockTriggersByIds: a trigger that is not locked is passed over."""
    action = _unlock(request)
    return await each_listed(request, await listed_triggers(request), action)


@routes.operation(
    "POST",
    "/api/v1/triggers/unlock/by-query",
    "Unlock each trigger the query selects that waits for the end of its execution",
    params=_QUERY,
    replies=_BULK_REPLIES,
)
async def unlock_selected(request: web.Request) -> web.Response:
    """TriggerController.unlockTriggersByQuery: only locked triggers are counted."""
    return await each_selected(request, _unlock(request))


def _unlock(request: web.Request) -> Action:
    triggers = supervisor(request)

    async def action(flow: Flow, trigger_id: str) -> None:
        triggers.unlock(flow, trigger_id)

    return action


@routes.operation(
    "POST",
    "/api/v1/triggers/set-disabled/by-triggers",
    "Disable (or enable) the listed triggers",
    body=Body(("application/json",), _SET_DISABLED),
    replies={**_BODY_REPLIES, 422: error("Not {triggers: [...], disabled}")},
)
async def set_disabled_listed(request: web.Request) -> web.Response:
    """TriggerController.disabledTriggersByIds (SetDisabledRequest: triggers not empty,
    disabled required); a trigger its flow's source disables is not enabled."""
    supervisor(request)
    shape = "{triggers: [...], disabled: true|false}"
    body = json_object(await json_body(request, shape), shape)
    listed, disabled = body.get("triggers"), body.get("disabled")
    if not isinstance(listed, list) or not listed:
        raise HttpError(422, "Invalid entity: triggers must be a non-empty array of triggers")
    if not isinstance(disabled, bool):
        raise HttpError(
            422, f"Invalid entity: disabled must be true or false, not {json_kind(disabled)}"
        )
    ids = [trigger_ids(item, f"triggers[{i}]") for i, item in enumerate(listed)]
    return await each_listed(request, ids, _set_disabled(request, disabled))


@routes.operation(
    "POST",
    "/api/v1/triggers/set-disabled/by-query",
    "Disable (or enable, with disabled=false) the triggers the query selects",
    params=(*_QUERY, Param("disabled", "Disable (true, the default) or enable (false)")),
    replies=_BULK_REPLIES,
)
async def set_disabled_selected(request: web.Request) -> web.Response:
    """TriggerController.disabledTriggersByQuery: `disabled` defaults to true."""
    value = request.query.get("disabled", "true").lower()
    if value not in ("true", "false"):
        raise HttpError(400, f"Bad Request: disabled must be true or false, not {value!r}")
    return await each_selected(request, _set_disabled(request, value == "true"))


def _set_disabled(request: web.Request, disabled: bool) -> Action:
    triggers = supervisor(request)

    async def action(flow: Flow, trigger_id: str) -> None:
        source = next(t for t in flow.triggers if t.id == trigger_id)
        if not disabled and (flow.disabled or source.disabled):
            raise NotApplicable(f"trigger {trigger_id} is disabled in the flow's source")
        await triggers.set_disabled(flow, trigger_id, disabled)

    return action


@routes.operation(
    "DELETE",
    "/api/v1/triggers/delete/by-triggers",
    "Delete the state of the listed triggers: each restarts as its flow's source has it",
    body=Body(("application/json",), TRIGGERS),
    replies=_BODY_REPLIES,
)
async def delete_listed(request: web.Request) -> web.Response:
    """TriggerController.deleteTriggersByIds: an unknown trigger is passed over."""
    triggers = supervisor(request)
    return await each_listed(request, await listed_triggers(request), triggers.reset)


@routes.operation(
    "DELETE",
    "/api/v1/triggers/delete/by-query",
    "Delete the state of the triggers the filters select (in the query string, or in a "
    "body {filters: [...]} as kestrapy sends them)",
    params=tuple(filter_params(TRIGGER_FILTERS)),
    body=Body(("application/json",), _FILTERS_BODY, required=False),
    replies={**_BODY_REPLIES, 422: error("A body that is not {filters: [...]}")},
)
async def delete_selected(request: web.Request) -> web.Response:
    """TriggerController.deleteTriggersByQuery. Kestra reads the filters from the query
    string only, so a body sent with filters (kestrapy's DeleteTriggersByQueryRequest)
    deleted every trigger there: podium applies the body's filters too."""
    triggers = supervisor(request)
    query: dict[str, str] = dict(request.query)
    if request.can_read_body:
        raw = await json_body(request, "{filters: [...]}")
        query.update(_body_filters(json_object(raw, "{filters: [...]}").get("filters")))
    return await each_selected(request, triggers.reset, query)


def _body_filters(raw: Any) -> dict[str, str]:
    """Kestra QueryFilter objects ({field, operation, value}) as the query parameters
    `filters[field][OPERATION]=value` that daemon/api/query_filters.py reads."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise HttpError(422, f"Invalid entity: filters must be an array, not {json_kind(raw)}")
    found = {}
    for i, one in enumerate(raw):
        field = one.get("field") if isinstance(one, dict) else None
        op = one.get("operation") if isinstance(one, dict) else None
        value = one.get("value") if isinstance(one, dict) else None
        if isinstance(value, dict) and list(value) == ["value"]:
            value = value["value"]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if not (isinstance(field, str) and isinstance(op, str) and isinstance(value, str)):
            raise HttpError(
                422, f"Invalid entity: filters[{i}] must be {{field, operation, value}}"
            )
        found[f"filters[{_field_name(field)}][{op}]"] = value
    return found


def _field_name(field: str) -> str:
    """Kestra's QueryFilter field as its query form: QUERY is `q`, FLOW_ID is `flowId`."""
    if field == "QUERY":
        return "q"
    if field.isupper() or "_" in field:
        first, *rest = field.lower().split("_")
        return first + "".join(part.capitalize() for part in rest)
    return field


@routes.operation(
    "GET",
    "/api/v1/triggers/export/by-query/csv",
    "The triggers the filters select, as CSV (one row per trigger context)",
    params=tuple(filter_params(TRIGGER_FILTERS)),
    replies={
        200: Reply("RFC 4180 CSV, a header row first", "text/csv", {"type": "string"}),
        400: _MALFORMED,
        409: _NO_TRIGGERS,
    },
)
async def export_csv(request: web.Request) -> web.Response:
    """TriggerController.exportTriggers (CSVUtils): the first row's keys are the columns; a
    missing value is empty, an object or a list is written as JSON; nothing selected is
    an empty file."""
    contexts = [context for _, context in await selected(request, request.query)]
    out = io.StringIO()
    if contexts:
        writer = csv.writer(out)
        columns = list(contexts[0])
        writer.writerow(columns)
        writer.writerows([_cell(context.get(c)) for c in columns] for context in contexts)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": "attachment; filename=triggers.csv"},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


# -- one trigger, by its path (after the literal paths above) ---------------------------------


@routes.operation(
    "POST",
    "/api/v1/triggers/{namespace}/{flowId}/{triggerId}/unlock",
    "Unlock a trigger waiting for the end of the execution it started: it goes on at once",
    replies={
        200: Reply("The trigger's context", "application/json", TRIGGER),
        404: _UNKNOWN,
        409: error("The trigger is not locked, or this server runs no triggers"),
    },
)
async def unlock(request: web.Request) -> web.Response:
    """TriggerController.unlockTrigger: 404 for an unknown trigger, Kestra's
    IllegalStateException "Trigger is not locked" (409) for one that waits for nothing."""
    triggers = supervisor(request)
    ids = path_ids(request)
    flow = loaded_flow(request, ids)
    try:
        triggers.unlock(flow, ids[2])
    except NotLocked as exc:
        raise HttpError(409, f"Illegal state: {exc}") from None
    return await context_of(request, flow, ids[2])


@routes.operation(
    "POST",
    "/api/v1/triggers/{namespace}/{flowId}/{triggerId}/restart",
    "Restart a trigger: it is stopped and started again (a disabled one stays stopped)",
    replies={
        200: Reply("The trigger's context", "application/json", TRIGGER),
        404: _UNKNOWN,
        409: _NO_TRIGGERS,
    },
)
async def restart(request: web.Request) -> web.Response:
    """TriggerController.restartTrigger."""
    triggers = supervisor(request)
    ids = path_ids(request)
    flow = loaded_flow(request, ids)
    await triggers.restart(flow, ids[2])
    return await context_of(request, flow, ids[2])


@routes.operation(
    "DELETE",
    "/api/v1/triggers/{namespace}/{flowId}/{triggerId}",
    "Delete a trigger's state: it forgets what was set at run time and restarts as its "
    "flow's source has it",
    replies={204: Reply("Deleted"), 404: _UNKNOWN, 409: _NO_TRIGGERS},
)
async def delete(request: web.Request) -> web.Response:
    """TriggerController.deleteTrigger: 204, or 404 for an unknown trigger."""
    triggers = supervisor(request)
    ids = path_ids(request)
    await triggers.reset(loaded_flow(request, ids), ids[2])
    return web.Response(status=204)
