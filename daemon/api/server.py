"""The API application: every area's routes applied in order, the middlewares, the UI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiohttp import web

from daemon.api import (
    concurrency_routes,
    execution_bulk_routes,
    execution_control_routes,
    execution_extra_routes,
    execution_flow_routes,
    execution_routes,
    flow_bulk_routes,
    flow_namespace_routes,
    flow_routes,
    flow_transfer_routes,
    flow_view_routes,
    inspect_routes,
    kv_routes,
    live,
    live_dependencies,
    log_routes,
    misc,
    namespace_file_routes,
    namespace_routes,
    openapi,
    plugin_routes,
    prometheus,
    review_routes,
    stats_routes,
    trigger_action_routes,
    trigger_backfill_routes,
    trigger_routes,
    worker_routes,
)
from daemon.api.common import (
    ENGINE,
    FLOWS,
    READY,
    SETTINGS,
    SUPERVISOR,
    WEBHOOKS,
    HttpError,
    Routes,
    json_response,
)
from daemon.api.csrf import same_site_only
from daemon.api.flow_writes import FLOW_LOCK
from daemon.api.middleware import (
    WEBHOOK_PATH,
    WEBHOOK_PATHS,
    access_log,
    basic_auth,
    errors,
    loggable_path,
)
from daemon.api.misc import WEBHOOK_NOT_FOUND
from daemon.api.tenant import AREAS, areas, tenant_routes, unknown_tenant
from daemon.api.ui import setup_ui
from daemon.config.settings import Settings
from daemon.engine.core import Engine
from daemon.engine.supervisor import TriggerSupervisor
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.directory import FlowDirectory

__all__ = [
    "ENGINE",
    "FLOWS",
    "READY",
    "ROUTE_TABLES",
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
    live.execution_routes,
    live_dependencies.routes,
    execution_extra_routes.routes,
    execution_flow_routes.routes,
    inspect_routes.routes,
    review_routes.routes,
    execution_bulk_routes.routes,
    execution_control_routes.routes,
    execution_routes.routes,
    stats_routes.routes,
    live.log_routes,
    log_routes.routes,
    flow_bulk_routes.routes,
    flow_transfer_routes.routes,
    flow_view_routes.routes,
    flow_routes.routes,
    flow_namespace_routes.routes,
    concurrency_routes.routes,
    trigger_backfill_routes.routes,
    trigger_action_routes.routes,
    trigger_routes.routes,
    kv_routes.routes,
    namespace_routes.routes,
    namespace_file_routes.routes,
    plugin_routes.routes,
    worker_routes.routes,
    prometheus.routes,
    misc.webhook_routes,
)


# A worker-only cluster node (`podium serve --role worker`) answers these and no more.
WORKER_ROUTE_TABLES = (misc.health_routes, prometheus.routes)
# Webhooks are meant to be called from anywhere: their key is their credential.
_OPEN_TO_ALL_SITES = WEBHOOK_PATHS


def create_app(
    engine: Engine,
    settings: Settings,
    webhooks: WebhookRegistry,
    *,
    flows: FlowDirectory | None = None,
    supervisor: TriggerSupervisor | None = None,
    ready: Callable[[], bool] = lambda: True,
    routes: Sequence[Routes] = ROUTE_TABLES,
    ui: bool = True,
) -> web.Application:
    """The API application; run it with `web.AppRunner(app, access_log=None)`.

    aiohttp's own access log would print webhook keys in clear: this app logs each
    request itself, key masked. `settings` is read per request, so a reload of the
    credentials or of the body limit takes effect at once. Without `flows` (the flows
    directory) flows can be read but not changed; without `supervisor` (the triggers'
    supervisor) the trigger endpoints answer 409. Every `/api/v1` route is also served
    under Kestra's tenant, `/api/v1/main/...` (daemon/api/tenant.py).
    """
    app = web.Application(
        middlewares=[
            access_log,
            errors,
            same_site_only(_OPEN_TO_ALL_SITES),
            basic_auth,
            unknown_tenant,
        ],
        client_max_size=settings.webhook_max_body,
    )
    app[ENGINE] = engine
    app[SETTINGS] = settings
    app[WEBHOOKS] = webhooks
    app[READY] = ready
    app[FLOWS] = flows
    app[SUPERVISOR] = supervisor
    app[FLOW_LOCK] = asyncio.Lock()
    app[live.STREAMS] = live.Streams()
    app[openapi.TABLES] = tuple(routes)
    app.on_shutdown.append(live.close_streams)
    for table in routes:
        app.add_routes(table)
        app.add_routes(tenant_routes(table))
    prometheus.setup_metrics(app)
    if ui:
        setup_ui(app)
    app[AREAS] = areas(app.router)
    return app
