"""Kestra 1.x's tenant in the path: `/api/v1/{tenant}/...` beside the tenant-less `/api/v1/...`.

Kestra's open-source edition serves a single tenant, `main`, and its clients (the UI, the
`kestrapy` SDK, blueprints' webhook URLs) put it in every path. podium serves every API
route both ways, once, here: `tenant_routes` derives the tenant twin of each `/api/v1`
route, whose path variable only matches `main`, so the handlers never see the difference.
A path naming any other tenant answers a 404 that says which tenant podium serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp import web

from daemon.api.common import HttpError
from daemon.engine.webhooks import Handler

TENANT = "main"
API_PREFIX = "/api/v1/"
TENANT_PREFIX = API_PREFIX + "{tenant}/"
# The form the router matches: the variable's regular expression admits `main` only.
_ROUTED_PREFIX = API_PREFIX + "{tenant:" + re.escape(TENANT) + "}/"
AREAS: web.AppKey[frozenset[str]] = web.AppKey("areas")


def tenant_path(path: str) -> str:
    """The documented tenant twin of a tenant-less API path (`/api/v1/{tenant}/...`)."""
    if not path.startswith(API_PREFIX):
        raise ValueError(f"{path!r} is not under {API_PREFIX}")
    return TENANT_PREFIX + path[len(API_PREFIX) :]


def tenant_routes(routes: Iterable[web.AbstractRouteDef]) -> list[web.RouteDef]:
    """The tenant twin of every `/api/v1` route of a table, same method and handler.

    A tenant-less route whose first segment were a variable would also match
    `/api/v1/main/...` and make the two forms ambiguous: refused here, at start-up.
    """
    twins: list[web.RouteDef] = []
    for route in routes:
        if not isinstance(route, web.RouteDef) or not route.path.startswith(API_PREFIX):
            continue
        if route.path[len(API_PREFIX) :].startswith("{"):
            raise ValueError(f"{route.path}: an API path must start with a literal segment")
        path = _ROUTED_PREFIX + route.path[len(API_PREFIX) :]
        twins.append(web.RouteDef(route.method, path, route.handler, dict(route.kwargs)))
    return twins


def areas(router: web.UrlDispatcher) -> frozenset[str]:
    """The first segments of the tenant-less API paths (`executions`, `flows`, ...): a path
    starting with one of them names no tenant."""
    found = set()
    for resource in router.resources():
        canonical = resource.canonical
        if canonical.startswith(API_PREFIX) and not canonical.startswith(TENANT_PREFIX):
            found.add(canonical[len(API_PREFIX) :].split("/", 1)[0])
    return frozenset(found)


def unknown_tenant_message(tenant: str) -> str:
    return (
        f"Not Found: tenant {tenant!r} does not exist: podium serves one tenant, "
        f"{TENANT!r} (as Kestra's open-source edition does), at /api/v1/{TENANT}/... "
        "and at /api/v1/..."
    )


@web.middleware
async def unknown_tenant(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A path that matched no route and names a tenant other than `main` is refused with a
    message naming the tenant podium serves, instead of a bare 404."""
    if isinstance(getattr(request.match_info, "http_exception", None), web.HTTPNotFound):
        path = request.path
        if path.startswith(API_PREFIX):
            first, sep, _ = path[len(API_PREFIX) :].partition("/")
            if sep and first and first != TENANT and first not in request.app[AREAS]:
                raise HttpError(404, unknown_tenant_message(first))
    return await handler(request)
