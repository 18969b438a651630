"""Kestra's FlowController endpoints under a namespace or a flow: the flows of a namespace
(and updating them all at once), a flow's FlowGraph, its dependencies and its namespace's,
one task's definition, and deleting revisions.

Registered after daemon/api/flow_routes.py and the literal flow routes
(`/flows/search`, `/flows/bulk`, `/flows/source`...), which `/flows/{namespace}` would
otherwise take for a namespace.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.api.common import (
    ENGINE,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    flag,
    flows_dir,
    json_response,
    ok,
    parse_json,
)
from daemon.api.flow_bulk_routes import update_many
from daemon.api.flow_routes import documents, flow_json
from daemon.api.flow_view_routes import GRAPH, OBJECT, SUBFLOWS
from daemon.api.flow_writes import FLOW_LOCK, YAML_TYPES, decoded, limited_body, remove
from daemon.api.graph_service import WrittenTasks, flow_graph
from daemon.api.tenant import TENANT
from daemon.flows.definition import Flow
from daemon.flows.dependencies import linked, namespace_graph, topology_graph
from daemon.flows.written import written_tasks
from daemon.sdk.errors import NotFound

routes = Routes("Flows")

_NOT_FOUND = error("No such flow")
_REVISION = Param("revision", "This revision rather than the latest", {"type": "integer"})
_TOPOLOGY = Reply(
    "Kestra's FlowTopologyGraph: nodes (flows) and edges (FLOW_TASK, FLOW_TRIGGER)",
    "application/json",
    {
        "type": "object",
        "required": ["nodes", "edges"],
        "properties": {
            "nodes": {"type": "array", "items": OBJECT},
            "edges": {"type": "array", "items": OBJECT},
        },
    },
)
# Fields Kestra's API adds to a flow: not part of its source.
_SERVED = ("revision", "deleted", "source", "tenantId", "updated")
_NAMESPACE_LINE = re.compile(r"(?m)^namespace:.+")


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}",
    "The flows of a namespace (not the ones under it)",
    replies={200: ok("FlowWithSource", array=True)},
)
async def list_flows_by_namespace(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    found = [
        flow_json(f.source, f.revision, with_source=False)
        for f in sorted(request.app[ENGINE].catalog, key=lambda f: f.id)
        if f.namespace == namespace
    ]
    return json_response(found)


@routes.operation(
    "POST",
    "/api/v1/flows/{namespace}",
    "Update a whole namespace: the flows sent (multi-document YAML, a JSON list, or "
    "multipart `flows` files) are created or updated, the others deleted unless delete=false",
    params=(
        Param("delete", "Delete the namespace's flows not sent", {"type": "boolean"}),
        Param("override", "Multipart: set each file's namespace to this one", {"type": "boolean"}),
    ),
    body=Body(
        (*YAML_TYPES, "application/json", "multipart/form-data"),
        {"type": ["string", "array", "object"]},
        required=False,
    ),
    replies={
        200: ok("FlowWithSource", array=True),
        400: error("A malformed body or parameter"),
        409: error("No flows directory, or a flow not defined by one of its files"),
        415: error("Not YAML, JSON or multipart"),
        422: error("A flow does not validate, is in another namespace, or is sent twice"),
    },
)
async def update_flows_in_namespace(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    delete = flag(request.query, "delete") if "delete" in request.query else True
    override = flag(request.query, "override")
    flows_dir(request)
    kind = request.content_type
    if kind == "multipart/form-data":
        texts = [(0, text) for text in await _parts(request, namespace if override else None)]
    elif kind == "application/json":
        texts = [(0, text) for text in _from_json(parse_json(await limited_body(request)))]
    elif kind in YAML_TYPES or not request.body_exists:
        text = decoded(await limited_body(request))
        texts = documents(text) if text.strip() else []
    else:
        raise HttpError(
            415,
            "Unsupported Media Type: send the flows as application/x-yaml, application/json "
            f"or multipart/form-data, not {kind}",
        )
    found = await update_many(request, texts, namespace, delete=delete)
    if kind == "application/json":  # Kestra's JSON variant answers the flows without source
        for doc in found:
            doc.pop("source", None)
    return json_response(found)


def _from_json(data: Any) -> list[str]:
    """Kestra's deprecated JSON variant: each flow's `source` when it has one, else the
    flow itself written as YAML (`sourceOrGenerateIfNull`)."""
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise HttpError(400, "Bad Request: the JSON body must be a list of flows")
    texts = []
    for item in data:
        source = item.get("source")
        if isinstance(source, str):
            texts.append(source)
            continue
        kept = {k: v for k, v in item.items() if k not in _SERVED}
        texts.append(yaml.safe_dump(kept, sort_keys=False, allow_unicode=True))
    return texts


async def _parts(request: web.Request, override: str | None) -> list[str]:
    """The `flows` file parts; with `override`, each file's `namespace:` line set to it."""
    texts = []
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise HttpError(400, "Bad Request: nested multipart bodies are not supported")
            if part.name != "flows":
                await part.release()
                continue
            text = decoded(bytes(await part.read())).strip()
            if override is not None:
                text = _NAMESPACE_LINE.sub(f"namespace: {override}", text, count=1)
            texts.append(text + "\n")
    except (HttpProcessingError, ValueError) as exc:
        raise HttpError(400, f"Bad Request: the multipart body is malformed ({exc})") from None
    return texts


async def _flow_at(request: web.Request) -> Flow:
    """The flow of the path, at `revision` when given (404 when there is none)."""
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    revision = request.query.get("revision")
    catalog = request.app[ENGINE].catalog
    if revision is None:
        loaded = catalog.get(namespace, flow_id)
        if loaded is None:
            raise NotFound(f"Unable to find flow {TENANT}_{namespace}_{flow_id}")
        return loaded
    if not (revision.isascii() and revision.isdigit() and 0 < int(revision) < 2**31):
        raise HttpError(400, f"Bad Request: revision must be a positive number, not {revision!r}")
    try:
        return await catalog.at(namespace, flow_id, int(revision))
    except NotFound:
        raise NotFound(f"Unable to find flow {TENANT}_{namespace}_{flow_id}_{revision}") from None


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}/{id}/graph",
    "Kestra's FlowGraph of a flow",
    params=(_REVISION, SUBFLOWS),
    replies={
        200: GRAPH,
        400: error("A malformed revision"),
        404: error("No such flow, or no such subflow to draw"),
        422: error("A subflow to draw whose ids are expressions"),
    },
)
async def generate_flow_graph(request: web.Request) -> web.Response:
    """Kestra's generateFlowGraph: GraphService.flowGraph(flow, subflows), no execution."""
    flow = await _flow_at(request)
    return json_response(await flow_graph(request, flow, written=WrittenTasks()))


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}/{id}/tasks/{taskId}",
    "One task of a flow, as written (nested tasks included)",
    params=(_REVISION,),
    replies={
        200: Reply("The task", "application/json", OBJECT),
        400: error("A malformed revision"),
        404: error("No such flow or task"),
    },
)
async def task_from_flow(request: web.Request) -> web.Response:
    flow = await _flow_at(request)
    task_id = request.match_info["taskId"]
    found = written_tasks(flow).get(task_id)
    if found is None or flow.task_by_id(task_id) is None:
        raise NotFound(f"task {task_id} of flow {flow.namespace}.{flow.id} not found")
    return json_response(found)


def _flag(request: web.Request, name: str) -> bool:
    return flag(request.query, name)


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}/{id}/dependencies",
    "The flows this flow starts and that start it (FLOW_TASK, FLOW_TRIGGER)",
    params=(
        Param(
            "destinationOnly",
            "Only the edges into the flow (the flows that start it)",
            {"type": "boolean", "default": False},
        ),
        Param(
            "expandAll",
            "Those of every flow reached too, recursively",
            {"type": "boolean", "default": False},
        ),
    ),
    replies={200: _TOPOLOGY, 400: error("A malformed parameter")},
)
async def flow_dependencies_of(request: web.Request) -> web.Response:
    """Kestra's flowDependencies: FlowService.findDependencies as a FlowTopologyGraph."""
    found = linked(
        sorted(request.app[ENGINE].catalog, key=lambda f: f.uid),
        request.match_info["namespace"],
        request.match_info["id"],
        destination_only=_flag(request, "destinationOnly"),
        expand_all=_flag(request, "expandAll"),
    )
    return json_response(topology_graph(found, TENANT))


@routes.operation(
    "GET",
    "/api/v1/namespaces/{namespace}/dependencies",
    "The dependencies of a namespace's flows, and its flows that have none",
    params=(
        Param(
            "destinationOnly",
            "Accepted, as Kestra does, and ignored",
            {"type": "boolean", "default": False},
        ),
    ),
    replies={200: _TOPOLOGY, 400: error("A malformed parameter")},
)
async def flow_dependencies_from_namespace(request: web.Request) -> web.Response:
    _flag(request, "destinationOnly")
    namespace = request.match_info["namespace"]
    found = namespace_graph(request.app[ENGINE].catalog, namespace, TENANT)
    return json_response(found)


@routes.operation(
    "DELETE",
    "/api/v1/flows/{namespace}/{id}/revisions",
    "Delete revisions of a flow (the latest among them deletes the flow)",
    params=(Param("revisions", "Revision numbers, comma-separated or repeated", required=True),),
    replies={
        204: Reply("Deleted"),
        400: error("No revision, or one that is not a positive number"),
        404: _NOT_FOUND,
        409: error("The flow is not defined by a file of the flows directory"),
    },
)
async def delete_revisions(request: web.Request) -> web.Response:
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    revisions = _revisions(request.query.getall("revisions", []))
    engine = request.app[ENGINE]
    async with request.app[FLOW_LOCK]:
        latest = await engine.store.get_flow(namespace, flow_id)
        if latest is None:
            raise NotFound(f"flow {namespace}.{flow_id} not found")
        loaded = engine.catalog.get(namespace, flow_id)
        if latest[0] in revisions and loaded is not None:
            await remove(request, loaded)  # the flow itself goes, as its file
        await engine.store.revisions.delete(namespace, flow_id, revisions)
    return web.Response(status=204)


def _revisions(values: list[str]) -> list[int]:
    """Kestra's `@NotEmpty List<@Min(1) Integer> revisions`: `1,2` or repeated."""
    found = []
    for item in (part.strip() for value in values for part in value.split(",")):
        if not (item.isascii() and item.isdigit() and 0 < int(item) < 2**31):
            raise HttpError(400, f"Bad Request: revisions must be positive numbers, not {item!r}")
        found.append(int(item))
    if not found:
        raise HttpError(400, "Bad Request: Required QueryValue [revisions] not specified")
    return found
