"""Kestra's backfill actions: pause, resume (unpause) or delete the backfill of a trigger
(started with `PUT /api/v1/triggers`), of each listed trigger or of each trigger a query
selects. A paused backfill holds back the slots it has not run, while its trigger's live
events go on; resumed, it runs them (daemon/engine/supervisor.py).
"""

from __future__ import annotations

from aiohttp import web

from daemon.api.body_parsing import json_body
from daemon.api.common import Body, Param, Reply, Routes, error, supervisor
from daemon.api.query_filters import TRIGGER_FILTERS, filter_params
from daemon.api.trigger_targets import (
    BULK,
    TRIGGER,
    TRIGGERS,
    Action,
    context_of,
    each_listed,
    each_selected,
    listed_triggers,
    loaded_flow,
    trigger_ids,
)

routes = Routes("Triggers")

_QUERY = (
    Param("q", "Text found in the trigger id or flow id (any case)"),
    Param("namespace", "This namespace and the ones under it"),
    *filter_params(TRIGGER_FILTERS),
)
_NO_TRIGGERS = error("This server runs no triggers")
_ONE = {
    200: Reply("The trigger's context", "application/json", TRIGGER),
    400: error("The trigger has no backfill, or a malformed body"),
    404: error("No such flow or trigger"),
    409: _NO_TRIGGERS,
    415: error("Not JSON"),
    422: error("Not a trigger object"),
}
_LISTED = {
    200: BULK,
    400: error("A malformed body"),
    409: _NO_TRIGGERS,
    415: error("Not JSON"),
    422: error("Not an array of triggers"),
}
_SELECTED = {200: BULK, 400: error("A malformed filter"), 409: _NO_TRIGGERS}


def _pause(request: web.Request) -> Action:
    triggers = supervisor(request)
    return lambda flow, trigger_id: triggers.pause_backfill(flow, trigger_id, True)


def _unpause(request: web.Request) -> Action:
    triggers = supervisor(request)
    return lambda flow, trigger_id: triggers.pause_backfill(flow, trigger_id, False)


def _delete(request: web.Request) -> Action:
    return supervisor(request).delete_backfill


async def _one(request: web.Request, action: Action) -> web.Response:
    """The action on the trigger the body names; its context after it."""
    ids = trigger_ids(await json_body(request, "a trigger object"), "the body")
    flow = loaded_flow(request, ids)
    await action(flow, ids[2])
    return await context_of(request, flow, ids[2])


@routes.operation(
    "PUT",
    "/api/v1/triggers/backfill/pause",
    "Pause the backfill of a trigger (a Kestra Trigger object: namespace, flowId, triggerId)",
    body=Body(("application/json",), TRIGGER),
    replies=_ONE,
)
async def pause_backfill(request: web.Request) -> web.Response:
    """TriggerController.pauseBackfill: 400 "No backfill found" when it has none."""
    return await _one(request, _pause(request))


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/pause/by-triggers",
    "Pause the backfill of each listed trigger that has one",
    body=Body(("application/json",), TRIGGERS),
    replies=_LISTED,
)
async def pause_backfill_listed(request: web.Request) -> web.Response:
    """TriggerController.pauseBackfillByIds: a trigger without one is passed over."""
    action = _pause(request)
    return await each_listed(request, await listed_triggers(request), action)


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/pause/by-query",
    "Pause the backfill of each trigger the query selects that has one",
    params=_QUERY,
    replies=_SELECTED,
)
async def pause_backfill_selected(request: web.Request) -> web.Response:
    """TriggerController.pauseBackfillByQuery."""
    return await each_selected(request, _pause(request))


@routes.operation(
    "PUT",
    "/api/v1/triggers/backfill/unpause",
    "Resume the paused backfill of a trigger: the slots it had not run run",
    body=Body(("application/json",), TRIGGER),
    replies=_ONE,
)
async def unpause_backfill(request: web.Request) -> web.Response:
    """TriggerController.unpauseBackfill: 400 "No backfill found" when it has none."""
    return await _one(request, _unpause(request))


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/unpause/by-triggers",
    "Resume the backfill of each listed trigger that has one",
    body=Body(("application/json",), TRIGGERS),
    replies=_LISTED,
)
async def unpause_backfill_listed(request: web.Request) -> web.Response:
    """TriggerController.unpauseBackfillByIds."""
    action = _unpause(request)
    return await each_listed(request, await listed_triggers(request), action)


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/unpause/by-query",
    "Resume the backfill of each trigger the query selects that has one",
    params=_QUERY,
    replies=_SELECTED,
)
async def unpause_backfill_selected(request: web.Request) -> web.Response:
    """TriggerController.unpauseBackfillByQuery."""
    return await each_selected(request, _unpause(request))


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/delete",
    "Delete the backfill of a trigger: the slots it had not run never run",
    body=Body(("application/json",), TRIGGER),
    replies=_ONE,
)
async def delete_backfill(request: web.Request) -> web.Response:
    """TriggerController.deleteBackfill: 400 "No backfill found" when it has none."""
    return await _one(request, _delete(request))


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/delete/by-triggers",
    "Delete the backfill of each listed trigger that has one",
    body=Body(("application/json",), TRIGGERS),
    replies=_LISTED,
)
async def delete_backfill_listed(request: web.Request) -> web.Response:
    """TriggerController.deleteBackfillByIds."""
    action = _delete(request)
    return await each_listed(request, await listed_triggers(request), action)


@routes.operation(
    "POST",
    "/api/v1/triggers/backfill/delete/by-query",
    "Delete the backfill of each trigger the query selects that has one",
    params=_QUERY,
    replies=_SELECTED,
)
async def delete_backfill_selected(request: web.Request) -> web.Response:
    """TriggerController.deleteBackfillByQuery."""
    return await each_selected(request, _delete(request))
