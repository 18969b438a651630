"""The UI's pages beyond flows and executions: dashboard, logs, triggers, KV store,
namespaces, plug-in documentation, and the HTML "not found" page. Each is a template with
its own ES module; the data comes from the public API like every other page's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.ui.assets import ASSETS

routes = web.RouteTableDef()


async def page(
    request: web.Request, template: str, title: str, section: str, script: str, **data: str
) -> web.Response:
    return await request.app[ASSETS].page(
        template, title=title, section=section, script=script, data=data
    )


async def not_found(request: web.Request, what: str | None = None) -> web.Response:
    """The HTML 404: what was not found, and the way back."""
    return await request.app[ASSETS].page(
        "404.html",
        status=404,
        title="Not found",
        section="",
        script="notfound.js",
        data={},
        what=what or f"There is no page at {request.path}.",
    )


@routes.get("/ui/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    return await page(request, "dashboard.html", "Dashboard", "dashboard", "dashboard.js")


@routes.get("/ui/logs")
async def logs(request: web.Request) -> web.Response:
    return await page(request, "logs.html", "Logs", "logs", "logsearch.js")


@routes.get("/ui/triggers")
async def triggers(request: web.Request) -> web.Response:
    return await page(request, "triggers.html", "Triggers", "triggers", "triggers.js")


@routes.get("/ui/kv")
async def kv_store(request: web.Request) -> web.Response:
    return await page(request, "kv.html", "KV Store", "kv", "kv.js")


@routes.get("/ui/namespaces")
async def namespaces(request: web.Request) -> web.Response:
    return await page(request, "namespaces.html", "Namespaces", "namespaces", "namespaces.js")


@routes.get("/ui/namespaces/{namespace}")
async def namespace(request: web.Request) -> web.Response:
    name = request.match_info["namespace"]
    return await request.app[ASSETS].page(
        "namespace.html",
        title=f"Namespace {name}",
        section="namespaces",
        script="namespace.js",
        data={"namespace": name},
        namespace=name,
    )


@routes.get("/ui/plugins")
async def plugins(request: web.Request) -> web.Response:
    return await page(request, "plugins.html", "Plugins", "plugins", "plugins.js")


@routes.get("/ui/plugins/{type}")
async def plugin(request: web.Request) -> web.Response:
    kind = request.match_info["type"]
    data: dict[str, Any] = {"type": kind}
    return await request.app[ASSETS].page(
        "plugins.html",
        title=kind.rsplit(".", 1)[-1],
        section="plugins",
        script="plugins.js",
        data=data,
    )
