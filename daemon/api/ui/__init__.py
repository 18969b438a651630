"""The web UI, served by the daemon itself: flows, editor, topology, executions, Gantt, logs.

Pages are Jinja2 templates rendered on the server (the frame, the names from the URL);
small ES modules of our own in `static/` fetch the data from the public `/api/v1` API,
so the UI shows exactly what any other client of the API sees, and the same basic-auth
middleware guards both. The one thing computed here rather than in the browser is a
flow's topology (`graph.py`), because laying it out is easier to get right, and to test,
in Python. Nothing is fetched from the network at run time and nothing is built at
install time: templates and assets ship inside the package.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.common import ENGINE, HttpError, json_response
from daemon.api.ui import flowfiles, pages
from daemon.api.ui.assets import ASSETS, Assets
from daemon.api.ui.topology import flow_graph
from daemon.flows.definition import Flow
from daemon.sdk.errors import NotFound


def setup_ui(app: web.Application) -> None:
    """Add the UI's pages, its topology endpoint and its static files to the API's app
    (once: a second call is a no-op)."""
    if ASSETS in app:
        return
    app[ASSETS] = Assets()
    for path in ("/", "/ui", "/ui/"):
        app.router.add_get(path, _to_dashboard)
    # Kestra's execution URL (webhook answers carry it): same page as /ui/executions/{id}.
    app.router.add_get("/ui/executions/{namespace}/{flowId}/{executionId}", _to_execution)
    app.router.add_routes(routes)
    app.router.add_routes(flowfiles.routes)
    app.router.add_routes(pages.routes)
    # Last: any other /ui/ address is the HTML "not found" page.
    app.router.add_get("/ui/{tail:.*}", pages.not_found)


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/dashboard")


async def _to_execution(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"/ui/executions/{request.match_info['executionId']}")


routes = web.RouteTableDef()


@routes.get("/ui/flows")
async def flows_page(request: web.Request) -> web.Response:
    return await request.app[ASSETS].page(
        "flows.html", title="Flows", section="flows", script="flows.js", data={}
    )


@routes.get("/ui/flows/new")
async def new_flow_page(request: web.Request) -> web.Response:
    return await request.app[ASSETS].page(
        "flow.html",
        title="New flow",
        section="flows",
        script="flow.js",
        data={"new": "true"},
        namespace="",
        flow_id="",
        new=True,
    )


@routes.get("/ui/flows/{namespace}/{id}")
async def flow_page(request: web.Request) -> web.Response:
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    if await request.app[ENGINE].store.get_flow(namespace, flow_id) is None:
        if request.app[ENGINE].catalog.get(namespace, flow_id) is None:
            return await pages.not_found(request, f"There is no flow {namespace}.{flow_id}.")
    return await request.app[ASSETS].page(
        "flow.html",
        title=f"{namespace}.{flow_id}",
        section="flows",
        script="flow.js",
        data={"namespace": namespace, "flow": flow_id},
        namespace=namespace,
        flow_id=flow_id,
        new=False,
    )


@routes.get("/ui/executions")
async def executions_page(request: web.Request) -> web.Response:
    return await request.app[ASSETS].page(
        "executions.html", title="Executions", section="executions", script="executions.js", data={}
    )


@routes.get("/ui/executions/{executionId}")
async def execution_page(request: web.Request) -> web.Response:
    execution_id = request.match_info["executionId"]
    if await request.app[ENGINE].store.get_execution(execution_id) is None:
        return await pages.not_found(request, f"There is no execution {execution_id}.")
    return await request.app[ASSETS].page(
        "execution.html",
        title=f"Execution {execution_id}",
        section="executions",
        script="execution.js",
        data={"execution": execution_id},
        execution_id=execution_id,
    )


@routes.get("/ui/static/{name}")
async def static_file(request: web.Request) -> web.Response:
    body, kind, etag = await request.app[ASSETS].asset(request.match_info["name"])
    headers = {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == f'"{etag}"':
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)


@routes.get("/ui/api/flows/{namespace}/{id}/graph")
async def flow_topology(request: web.Request) -> web.Response:
    """The laid-out topology of the loaded flow, or of one stored revision (`?revision=`),
    which is what an execution ran."""
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    engine = request.app[ENGINE]
    revision = request.query.get("revision")
    if revision is not None and not (
        revision.isascii() and revision.isdigit() and 0 < int(revision) < 2**31
    ):
        raise HttpError(400, f"Bad Request: revision must be a positive number, not {revision!r}")
    loaded = engine.catalog.get(namespace, flow_id)
    if revision is None and loaded is not None:
        return json_response(await _cached_graph(request.app[ASSETS], loaded))
    try:
        if revision is None:
            flow = await engine.catalog.find(namespace, flow_id)
        else:
            flow = await engine.catalog.at(namespace, flow_id, int(revision))
    except NotFound:
        which = f" revision {revision}" if revision is not None else ""
        raise NotFound(f"flow {namespace}.{flow_id}{which} not found") from None
    return json_response(await _cached_graph(request.app[ASSETS], flow))


async def _cached_graph(assets: Assets, flow: Flow) -> dict[str, Any]:
    """Revisions never change, so a layout is computed once per revision."""
    key = (flow.namespace, flow.id, flow.revision or 0)
    graph = assets.graphs.get(key)
    if graph is None or flow.revision is None:
        graph = flow_graph(flow).to_json()
        graph["revision"] = flow.revision
        assets.graphs.put(key, graph)
    return graph
