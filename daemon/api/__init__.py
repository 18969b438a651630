"""The daemon's HTTP API: Kestra's paths and JSON shapes under `/api/v1`, plus `/health`.

Routes are grouped per area (executions, flows, logs, live events, triggers, KV, webhooks)
in `Routes` tables that `create_app` applies explicitly, in an order that matters (see
`daemon.api.executions`); the OpenAPI document is built from the same tables. Errors
answer Kestra's JSON shape, `{"message": "Reason: detail"}`, which Kestra's clients
already know how to show.

Everything but `/health` and the webhook route needs the configured basic-auth credentials.
The webhook key is a secret: it is masked wherever a path is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from daemon.api import events, executions, flows, kv, logs, metrics, misc, openapi, triggers
from daemon.api.common import FLOWS, READY, RUNTIME, SETTINGS, WEBHOOKS, HttpError, json_response
from daemon.api.flows import FLOW_LOCK
from daemon.api.middleware import WEBHOOK_PATH, access_log, basic_auth, errors, loggable_path
from daemon.api.misc import WEBHOOK_NOT_FOUND
from daemon.config import Settings
from daemon.flowdir import FlowDirectory
from daemon.runtime import Runtime
from daemon.webhooks import WebhookRegistry

__all__ = [
    "FLOWS",
    "READY",
    "ROUTE_TABLES",
    "RUNTIME",
    "SETTINGS",
    "WEBHOOKS",
    "WEBHOOK_NOT_FOUND",
    "WEBHOOK_PATH",
    "HttpError",
    "create_app",
    "json_response",
    "loggable_path",
]

# Literal routes before the parameterised ones they would otherwise be taken for.
ROUTE_TABLES = (
    misc.health_routes,
    openapi.routes,
    events.execution_routes,
    executions.routes,
    events.log_routes,
    logs.routes,
    flows.routes,
    triggers.routes,
    kv.routes,
    metrics.routes,
    misc.webhook_routes,
)


def create_app(
    runtime: Runtime,
    settings: Settings,
    webhooks: WebhookRegistry,
    *,
    flows: FlowDirectory | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> web.Application:
    """The API application; run it with `web.AppRunner(app, access_log=None)`.

    aiohttp's own access log would print webhook keys in clear: this app logs each
    request itself, key masked. `settings` is read per request, so a reload of the
    credentials or of the body limit takes effect at once. Without `flows` (the flows
    directory, which also runs the triggers) flows can be read but not changed, and the
    trigger endpoints answer 409.
    """
    app = web.Application(
        middlewares=[access_log, errors, basic_auth], client_max_size=settings.webhook_max_body
    )
    app[RUNTIME] = runtime
    app[SETTINGS] = settings
    app[WEBHOOKS] = webhooks
    app[READY] = ready
    app[FLOWS] = flows
    app[FLOW_LOCK] = asyncio.Lock()
    app[events.STREAMS] = events.Streams()
    app[openapi.TABLES] = ROUTE_TABLES
    app.on_shutdown.append(events.close_streams)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    metrics.setup_metrics(app)
    from daemon.ui import setup_ui  # here: daemon.ui imports daemon.api.common

    setup_ui(app)
    return app
