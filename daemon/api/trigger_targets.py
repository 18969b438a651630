"""Which triggers an action of Kestra's TriggerController is for: one named by its path, one
or several sent as Kestra `Trigger` objects (namespace, flowId, triggerId; their other
fields are ignored, as Kestra reads the trigger's state from its own store), or those a
query selects (daemon/api/trigger_routes.py `selected`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from daemon.api.body_parsing import json_body, json_list
from daemon.api.common import ENGINE, HttpError, Reply, json_response, supervisor
from daemon.api.trigger_routes import selected
from daemon.api.uploads import json_kind
from daemon.engine.supervisor import NoBackfill
from daemon.engine.trigger_locks import NotLocked
from daemon.flows.definition import Flow
from daemon.sdk.errors import NotFound, PodiumError

TriggerIds = tuple[str, str, str]  # namespace, flow id, trigger id
Action = Callable[[Flow, str], Awaitable[None]]


class NotApplicable(PodiumError):
    """The action does not apply to this trigger (enabling one its flow's source disables):
    a bulk action passes it over."""


TRIGGER = {
    "type": "object",
    "required": ["namespace", "flowId", "triggerId"],
    "properties": {
        "namespace": {"type": "string"},
        "flowId": {"type": "string"},
        "triggerId": {"type": "string"},
    },
}
TRIGGERS = {"type": "array", "items": TRIGGER}
BULK = Reply(
    "Kestra's BulkResponse: how many triggers it was done to",
    "application/json",
    {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}},
)


def trigger_ids(item: Any, where: str) -> TriggerIds:
    """The ids of a Kestra `Trigger` object; a 422 naming `where` when one is missing."""
    if not isinstance(item, dict):
        raise HttpError(
            422, f"Invalid entity: {where} must be a trigger object, not {json_kind(item)}"
        )
    ids = tuple(item.get(k) for k in ("namespace", "flowId", "triggerId"))
    if not all(isinstance(i, str) and i for i in ids):
        raise HttpError(
            422, f"Invalid entity: {where}: namespace, flowId and triggerId are required"
        )
    namespace, flow_id, trigger_id = ids
    return str(namespace), str(flow_id), str(trigger_id)


def path_ids(request: web.Request) -> TriggerIds:
    info = request.match_info
    return info["namespace"], info["flowId"], info["triggerId"]


def loaded_flow(request: web.Request, ids: TriggerIds) -> Flow:
    """The loaded flow of a trigger; NotFound (404) when there is none."""
    flow = request.app[ENGINE].catalog.get(ids[0], ids[1])
    if flow is None:
        raise NotFound(f"flow {ids[0]}.{ids[1]} not found")
    if all(t.id != ids[2] for t in flow.triggers):
        raise NotFound(f"flow {ids[0]}.{ids[1]} has no trigger {ids[2]!r}")
    return flow


async def context_of(request: web.Request, flow: Flow, trigger_id: str) -> web.Response:
    """The trigger's context as Kestra answers a trigger action."""
    contexts = await supervisor(request).contexts(flow)
    return json_response(next(c for c in contexts if c["triggerId"] == trigger_id))


async def listed_triggers(request: web.Request) -> list[TriggerIds]:
    """The body of a `by-triggers` action: an array of Kestra `Trigger` objects."""
    body = json_list(await json_body(request, "an array of triggers"), "an array of triggers")
    return [trigger_ids(item, f"trigger {i}") for i, item in enumerate(body)]


async def each_listed(
    request: web.Request, listed: list[TriggerIds], action: Action
) -> web.Response:
    """Do `action` to each listed trigger that exists and lets it be done; Kestra's
    BulkResponse counts those (an unknown trigger, or one the action does not apply to:
    without a backfill, not locked, disabled by its source, is passed over)."""
    supervisor(request)
    done = 0
    for ids in listed:
        try:
            flow = loaded_flow(request, ids)
            await action(flow, ids[2])
        except (NotFound, NoBackfill, NotLocked, NotApplicable):
            continue
        done += 1
    return json_response({"count": done})


async def each_selected(
    request: web.Request, action: Action, query: Mapping[str, str] | None = None
) -> web.Response:
    """`each_listed` over the triggers a query selects (the request's own by default)."""
    found = await selected(request, request.query if query is None else query)
    return await each_listed(
        request, [(f.namespace, f.id, c["triggerId"]) for f, c in found], action
    )
