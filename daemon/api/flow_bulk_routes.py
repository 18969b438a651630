"""Kestra's bulk flow endpoints (FlowController): update many flows from one multi-document
YAML (`POST /flows/bulk`, and `POST /flows/{namespace}` through `update_many`), and delete,
disable or enable flows by ids or by query, answering Kestra's BulkResponse `{"count": n}`.

Every change goes through the flows directory (daemon/api/flow_writes.py) under
`FLOW_LOCK`. What can be checked before anything is written is: every document
validates, every id is known, every file can be written; so a refused request changes
nothing (Kestra 1.3 deleted the flows before an unknown id and stopped there).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    Body,
    HttpError,
    Param,
    Routes,
    error,
    flag,
    flows_dir,
    json_response,
    ok,
    parse_json,
)
from daemon.api.flow_query import QUERY_PARAMS, matching_flows
from daemon.api.flow_routes import documents, flow_json
from daemon.api.flow_writes import (
    FLOW_LOCK,
    YAML_TYPES,
    file_of,
    put,
    remove,
    target,
    validated,
    with_disabled,
    yaml_body,
)
from daemon.flows.definition import Flow
from daemon.sdk import yamlpos
from daemon.sdk.errors import FlowError, NotFound, Problem

routes = Routes("Flows")

BULK = ok("BulkResponse")
IDS = Body(
    ("application/json",),
    {"type": "array", "items": {"$ref": "#/components/schemas/IdWithNamespace"}},
)
_BAD = error("A malformed body or parameter")
_UNKNOWN = error("An id names no flow; nothing was changed")
_NO_FILE = error("A flow is not defined by a file of the flows directory, or no flows directory")
_DELETE = Param(
    "delete", "Delete the flows not sent (of `namespace`, else all)", {"type": "boolean"}
)


async def update_many(
    request: web.Request,
    texts: list[tuple[int, str]],
    namespace: str | None,
    *,
    delete: bool,
    allow_child: bool = False,
) -> list[dict[str, Any]]:
    """FlowController.bulkUpdateOrCreate: the flows `texts` define (each with the lines
    before it) all validate, lie in `namespace` (or under it with `allow_child`), and have
    distinct ids; then with `delete` the other flows of the namespace (all of them without
    one) are deleted, and each flow sent is created or updated. The deleted flows, then the
    ones sent, as Kestra answers them."""
    engine = request.app[ENGINE]
    flows_dir(request)
    async with request.app[FLOW_LOCK]:
        flows = [await _validated_at(engine, text, offset) for offset, text in texts]
        problems = [
            _at(
                text,
                offset,
                "namespace",
                "flow.namespace",
                f"{flow.namespace}.{flow.id} - flow namespace is invalid, not {namespace}",
            )
            for flow, (offset, text) in zip(flows, texts, strict=True)
            if namespace is not None
            and flow.namespace != namespace
            and not (allow_child and flow.namespace.startswith(namespace))
        ]
        ids = [flow.id for flow in flows]
        problems += [
            _at(text, offset, "id", "flow.id", f"Duplicate flow id '{flow.id}'")
            for i, (flow, (offset, text)) in enumerate(zip(flows, texts, strict=True))
            if flow.id in ids[:i]
        ]
        if problems:
            raise FlowError(problems)
        gone = [
            flow
            for flow in sorted(engine.catalog, key=lambda f: f.uid)
            if delete and (namespace is None or flow.namespace == namespace) and flow.id not in ids
        ]
        _deletable(request, gone)
        for flow in flows:
            target(request, flow)
        for flow in gone:
            await remove(request, flow)
        saved = [await put(request, flow) for flow in flows]
    return [flow_json(f.source, f.revision, with_source=True) for f in [*gone, *saved]]


async def _validated_at(engine: Any, text: str, offset: int) -> Flow:
    try:
        return await validated(engine, text)
    except FlowError as exc:
        raise FlowError([replace(p, line=p.line + offset) for p in exc.problems]) from None


def _at(text: str, offset: int, key: str, path: str, message: str) -> Problem:
    """A problem at `key` of one document, its line counted in the whole body."""
    try:
        line, column = yamlpos.load(text)[1].of((key,))
    except yamlpos.YamlProblem:
        line, column = 1, 1
    return Problem("<request>", line + offset, column, path, message)


def _deletable(request: web.Request, flows: list[Flow]) -> None:
    directory = flows_dir(request)
    for flow in flows:
        if file_of(directory, flow) is None:
            raise HttpError(
                409,
                f"Illegal state: flow {flow.namespace}.{flow.id} is not defined by a file "
                "of the flows directory",
            )


@routes.operation(
    "POST",
    "/api/v1/flows/bulk",
    "Create or update the flows of a multi-document YAML (documents separated by ---)",
    params=(
        _DELETE,
        Param("namespace", "The namespace every flow sent must be in"),
        Param(
            "allowNamespaceChild",
            "Flows in a namespace under `namespace` are accepted too",
            {"type": "boolean", "default": False},
        ),
    ),
    body=Body(YAML_TYPES, {"type": "string"}, required=False),
    replies={
        200: ok("FlowWithSource", array=True),
        400: _BAD,
        409: _NO_FILE,
        415: error("Not YAML"),
        422: error("A flow does not validate, lies outside `namespace`, or is sent twice"),
    },
)
async def bulk_update_flows(request: web.Request) -> web.Response:
    delete = _flag(request, "delete", True)
    allow_child = _flag(request, "allowNamespaceChild", False)
    texts = await _texts(request)
    found = await update_many(
        request, texts, request.query.get("namespace"), delete=delete, allow_child=allow_child
    )
    return json_response(found)


async def _texts(request: web.Request) -> list[tuple[int, str]]:
    """The documents of a YAML body (none for an empty one, as Kestra's nullable body)."""
    if not request.body_exists and request.content_type == "application/octet-stream":
        return []
    text = await yaml_body(request)
    return [] if not text.strip() else documents(text)


def _flag(request: web.Request, name: str, default: bool) -> bool:
    if name not in request.query:
        return default
    return flag(request.query, name)


# -- by ids and by query ----------------------------------------------------------------------


async def ids_body(request: web.Request) -> list[tuple[str, str]]:
    """Kestra's `List<IdWithNamespace>`: `[{"namespace": ..., "id": ...}, ...]`."""
    data = parse_json(await request.read())
    if not isinstance(data, list):
        raise HttpError(400, "Bad Request: the body must be a JSON array of {namespace, id}")
    found = []
    for i, item in enumerate(data):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("namespace"), str)
            and isinstance(item.get("id"), str)
        ):
            raise HttpError(
                400, f"Bad Request: item {i} of the body is not {{namespace, id}}: {item!r}"
            )
        found.append((item["namespace"], item["id"]))
    return found


def loaded(request: web.Request, ids: list[tuple[str, str]]) -> list[Flow]:
    """The flows of `ids`, in order and once each; NotFound naming those unknown."""
    catalog = request.app[ENGINE].catalog
    missing = [f"{ns}.{fid}" for ns, fid in ids if catalog.get(ns, fid) is None]
    if missing:
        raise NotFound(f"flow {', '.join(missing)} not found; nothing was changed")
    flows: dict[tuple[str, str], Flow] = {}
    for uid in ids:
        flows.setdefault(uid, catalog[uid])
    return list(flows.values())


async def _delete(request: web.Request, flows: list[Flow]) -> web.Response:
    async with request.app[FLOW_LOCK]:
        _deletable(request, flows)
        for flow in flows:
            await remove(request, flow)
    return json_response({"count": len(flows)})


async def _set_disabled(request: web.Request, flows: list[Flow], disabled: bool) -> web.Response:
    """FlowController.setFlowsDisable*: the flows not already so get `disabled:` in their
    source, a new revision each."""
    engine = request.app[ENGINE]
    async with request.app[FLOW_LOCK]:
        changed = [
            await validated(engine, with_disabled(flow.source, disabled))
            for flow in flows
            if flow.disabled != disabled
        ]
        for flow in changed:
            target(request, flow)
        for flow in changed:
            await put(request, flow)
    return json_response({"count": len(changed)})


_IDS_REPLIES = {200: BULK, 400: _BAD, 404: _UNKNOWN, 409: _NO_FILE}
_QUERY_REPLIES = {200: BULK, 400: _BAD, 409: _NO_FILE}


@routes.operation(
    "DELETE",
    "/api/v1/flows/delete/by-ids",
    "Delete flows by their ids",
    body=IDS,
    replies=_IDS_REPLIES,
)
async def delete_flows_by_ids(request: web.Request) -> web.Response:
    flows_dir(request)
    return await _delete(request, loaded(request, await ids_body(request)))


@routes.operation(
    "DELETE",
    "/api/v1/flows/delete/by-query",
    "Delete the flows the query selects (every flow without one)",
    params=QUERY_PARAMS,
    replies=_QUERY_REPLIES,
)
async def delete_flows_by_query(request: web.Request) -> web.Response:
    flows_dir(request)
    return await _delete(request, matching_flows(request))


@routes.operation(
    "POST",
    "/api/v1/flows/disable/by-ids",
    "Disable flows by their ids",
    body=IDS,
    replies={**_IDS_REPLIES, 422: error("A flow's new source does not validate")},
)
async def disable_flows_by_ids(request: web.Request) -> web.Response:
    flows_dir(request)
    return await _set_disabled(request, loaded(request, await ids_body(request)), True)


@routes.operation(
    "POST",
    "/api/v1/flows/disable/by-query",
    "Disable the flows the query selects",
    params=QUERY_PARAMS,
    replies={**_QUERY_REPLIES, 422: error("A flow's new source does not validate")},
)
async def disable_flows_by_query(request: web.Request) -> web.Response:
    flows_dir(request)
    return await _set_disabled(request, matching_flows(request), True)


@routes.operation(
    "POST",
    "/api/v1/flows/enable/by-ids",
    "Enable flows by their ids",
    body=IDS,
    replies={**_IDS_REPLIES, 422: error("A flow's new source does not validate")},
)
async def enable_flows_by_ids(request: web.Request) -> web.Response:
    flows_dir(request)
    return await _set_disabled(request, loaded(request, await ids_body(request)), False)


@routes.operation(
    "POST",
    "/api/v1/flows/enable/by-query",
    "Enable the flows the query selects",
    params=QUERY_PARAMS,
    replies={**_QUERY_REPLIES, 422: error("A flow's new source does not validate")},
)
async def enable_flows_by_query(request: web.Request) -> web.Response:
    flows_dir(request)
    return await _set_disabled(request, matching_flows(request), False)
