"""The two routes without basic auth: `/health` for load balancers and systemd scripts, and
the webhook route that Webhook triggers attach to (their key is their credential).
"""

from __future__ import annotations

import asyncio
from functools import cache
from importlib import metadata

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    READY,
    WEBHOOKS,
    Body,
    HttpError,
    Reply,
    Routes,
    error,
    json_response,
)
from daemon.api.middleware import WEBHOOK_PATH, WEBHOOK_SUBPATH_PATH
from daemon.api.uploads import bounded
from daemon.engine.core import Engine
from daemon.sdk.errors import FlowDisabled, NotFound

health_routes = Routes("Health")
webhook_routes = Routes("Webhooks")

WEBHOOK_NOT_FOUND = "Not Found: webhook not found"


HEALTH_STORE_TIMEOUT = 2.0  # seconds /health waits for the store before calling it DOWN


@health_routes.operation(
    "GET",
    "/health",
    "UP once the flows are loaded, while the store can keep what it is given",
    public=True,
    replies={
        200: Reply("Up", "application/json", {"type": "object"}),
        503: Reply("Starting, or the store is gone", "application/json", {"type": "object"}),
    },
)
async def health(request: web.Request) -> web.Response:
    """The store is checked at each call (its file deleted or corrupted, its database out
    of reach): a daemon that answers webhooks it cannot keep is not UP. Why it is down
    goes to the daemon's log, not to this unauthenticated page."""
    engine = request.app[ENGINE]
    loaded = request.app[READY]()
    store_problem = await engine.metrics.probe_store(HEALTH_STORE_TIMEOUT)
    up = loaded and store_problem is None
    body = {
        "status": "UP" if up else "DOWN",
        "name": "podium",
        "version": await asyncio.to_thread(version),
        "runningExecutions": engine.local.running,
        "flows": len(engine.catalog),
        "store": {"status": "UP" if store_problem is None else "DOWN"},
    }
    return json_response(body, 200 if up else 503)


@cache
def version() -> str:
    try:
        return metadata.version("podium")
    except metadata.PackageNotFoundError:
        return "unknown"


_WEBHOOK_REPLIES = {
    200: Reply("What the flow's Webhook trigger answers (the execution)", "application/json", {}),
    404: error("No such webhook"),
    413: error("The body is too large"),
    422: error("The event does not fit the flow"),
}


async def webhook(request: web.Request) -> web.StreamResponse:
    """Hand the request to the Webhook trigger attached for this flow and key.

    No attached trigger (wrong flow, wrong key, disabled flow or trigger), a flow disabled
    meanwhile and a trigger that takes no path after its key (NotFound) all answer the same
    404, so that keys cannot be probed. The handler may raise `InputError` (422); it
    answers only once the execution is stored.
    """
    match = request.match_info
    handler = request.app[WEBHOOKS].find(match["namespace"], match["flowId"], match["key"])
    if handler is None:
        _refused(request.app[ENGINE])
        raise HttpError(404, WEBHOOK_NOT_FOUND)
    try:
        return await handler(bounded(request))
    except (FlowDisabled, NotFound):
        raise HttpError(404, WEBHOOK_NOT_FOUND) from None
    except web.HTTPRequestEntityTooLarge:
        _refused(request.app[ENGINE])
        raise


def _refused(engine: Engine) -> None:
    """A request refused before any trigger saw it (unknown key, body too large) counts
    as refused by the trigger type that receives webhooks (looked for among the types
    already imported first: the others are imported only if none of those does)."""
    triggers = engine.resources.plugins.triggers
    for classes in (triggers.classes(loaded_only=True), triggers.classes()):
        for cls in classes:
            if cls.receives_webhooks:
                engine.metrics.trigger_event(cls.types[0], rejected=True)
                return


async def webhook_with_path(request: web.Request) -> web.StreamResponse:
    """Kestra's `{key}{/path}`: the same trigger, the path in the request's match_info."""
    return await webhook(request)


# The plain route first: a request without a path never tries the other.
for _path, _handler, _more in (
    (WEBHOOK_PATH, webhook, ""),
    (WEBHOOK_SUBPATH_PATH, webhook_with_path, ", with a path after the key"),
):
    for _method in ("GET", "POST", "PUT"):
        webhook_routes.operation(
            _method,
            _path,
            f"Start an execution by {_method} webhook{_more}",
            public=True,
            body=None
            if _method == "GET"
            else Body(("application/json", "text/plain"), {}, required=False),
            replies=_WEBHOOK_REPLIES,
        )(_handler)
