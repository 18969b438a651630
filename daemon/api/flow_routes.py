"""Kestra's flow endpoints. Flows are files: create and update validate the YAML, write it to
the flows directory and load it from there, as if a person had saved the file, so the
answer carries the revision the directory gave it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from daemon.api.common import (
    ENGINE,
    PAGE,
    SIZE,
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
    page_of,
    paging,
)
from daemon.api.flow_query import QUERY_PARAMS, matching_flows
from daemon.api.flow_writes import FLOW_LOCK, YAML_TYPES, put, remove, validated, yaml_body
from daemon.api.middleware import problem_json, problem_text
from daemon.engine.core import Engine
from daemon.flows import checks
from daemon.flows.definition import Flow
from daemon.sdk import yamlpos
from daemon.sdk.errors import FlowError, NotFound

routes = Routes("Flows")

_YAML = Body(YAML_TYPES, {"type": "string"})
_SEPARATOR = re.compile(r"^---[ \t]*(#.*)?$")
_NOT_FOUND = error("No such flow")
_INVALID = error(
    "The YAML is not a valid flow; `_embedded.errors` has each error's line, "
    "column, path and message"
)


@lru_cache(maxsize=512)
def _parsed(source: str) -> dict[str, Any]:
    """The flow's YAML as JSON values (what Kestra answers); sources are valid flows."""
    raw, _ = yamlpos.load(source)
    return dict(raw) if isinstance(raw, dict) else {}


def flow_json(source: str, revision: int | None, *, with_source: bool) -> dict[str, Any]:
    """The flow as Kestra's API answers it (and `kestrapy`'s `FlowWithSource` validates):
    labels as a list, an input's `defaults`/`prefill` as the text of Kestra's `Property`,
    `concurrency.behavior` with its default; the rest as the YAML says."""
    doc = dict(_parsed(source))  # cached: copy what is changed, never change it in place
    labels = doc.get("labels")
    if isinstance(labels, dict):
        doc["labels"] = [{"key": k, "value": v} for k, v in labels.items()]
    inputs = doc.get("inputs")
    if isinstance(inputs, list):
        doc["inputs"] = [input_json(item) if isinstance(item, dict) else item for item in inputs]
    concurrency = doc.get("concurrency")
    if isinstance(concurrency, dict) and concurrency.get("behavior") is None:
        doc["concurrency"] = {**concurrency, "behavior": "QUEUE"}  # Kestra's default
    doc.setdefault("disabled", False)
    doc.update(revision=revision, deleted=False)
    if with_source:
        doc["source"] = source
    return doc


def input_json(item: dict[str, Any]) -> dict[str, Any]:
    """Kestra serialises a `Property` as its expression: a string as is, a number or a
    boolean as its text, a list or a map as JSON text."""
    out = dict(item)
    for name in ("defaults", "prefill"):
        value = out.get(name)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[name] = str(value)
        else:
            out[name] = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return out


def _loaded(engine: Engine, namespace: str, flow_id: str) -> Flow:
    flow = engine.catalog.get(namespace, flow_id)
    if flow is None:
        raise NotFound(f"flow {namespace}.{flow_id} not found")
    return flow


@routes.operation(
    "GET",
    "/api/v1/flows/search",
    "Search the loaded flows",
    params=(PAGE, SIZE, *QUERY_PARAMS),
    replies={200: ok("FlowPage"), 400: error("A malformed filter")},
)
async def search_flows(request: web.Request) -> web.Response:
    page, size = paging(request.query)
    found = [flow_json(f.source, f.revision, with_source=False) for f in matching_flows(request)]
    return json_response(page_of(found, page, size))


@routes.operation(
    "POST",
    "/api/v1/flows/validate",
    "Validate flows (several YAML documents separated by ---) without saving",
    body=_YAML,
    replies={200: ok("Validation", array=True), 415: error("Not YAML")},
)
async def validate_flows(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    results = []
    for index, (offset, text) in enumerate(documents(await yaml_body(request))):
        result: dict[str, Any] = {
            "index": index,
            "flow": None,
            "namespace": None,
            "outdated": False,
            "deprecationPaths": [],
            "warnings": [],
            "infos": [],
        }
        try:
            flow = await validated(engine, text)
        except FlowError as exc:
            # As Kestra: the constraint violations, and beside them what the parts of the
            # flow that did parse still say (deprecations, type names replaced).
            problems = [replace(p, line=p.line + offset) for p in exc.problems]
            result.update(
                _named(text),
                constraints="\n".join(map(problem_text, problems)),
                errors=[problem_json(p) for p in problems],
                deprecationPaths=exc.deprecation_paths,
                warnings=[problem_text(replace(w, line=w.line + offset)) for w in exc.warnings],
                infos=exc.infos,
            )
        else:
            # Kestra also warns of a subflow it does not know (or that is disabled).
            subflows = checks.subflow_problems(flow, engine.catalog.get)
            warnings = sorted([*flow.warnings, *subflows], key=lambda w: (w.line, w.column))
            result.update(
                flow=flow.id,
                namespace=flow.namespace,
                errors=[],
                deprecationPaths=flow.deprecation_paths,
                warnings=[problem_text(replace(w, line=w.line + offset)) for w in warnings],
                infos=flow.infos,
            )
        results.append(result)
    return json_response(results)


def documents(text: str) -> list[tuple[int, str]]:
    """(lines before it, text) of each non-empty YAML document."""
    documents: list[tuple[int, str]] = []
    start, lines = 0, text.splitlines(keepends=True)
    for number, line in enumerate([*lines, "---"]):
        if _SEPARATOR.match(line.rstrip("\r\n")):
            chunk = "".join(lines[start:number])
            if any(s.strip() and not s.lstrip().startswith("#") for s in chunk.splitlines()):
                documents.append((start, chunk))
            start = number + 1
    return documents or [(0, text)]


def _named(text: str) -> dict[str, Any]:
    """Id and namespace of a flow that does not validate, when they can be read."""
    try:
        raw, _ = yamlpos.load(text)
    except yamlpos.YamlProblem:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        k: v
        for k in ("flow", "namespace")
        if isinstance(v := raw.get("id" if k == "flow" else k), str)
    }


@routes.operation(
    "POST",
    "/api/v1/flows",
    "Create a flow from its YAML",
    body=_YAML,
    replies={
        200: ok("FlowWithSource"),
        409: error("Cannot be saved"),
        415: error("Not YAML"),
        422: _INVALID,
    },
)
async def create_flow(request: web.Request) -> web.Response:
    flows_dir(request)  # 409 before the body is read when there is no flows directory
    engine = request.app[ENGINE]
    text = await yaml_body(request)
    async with request.app[FLOW_LOCK]:
        flow = await validated(engine, text)
        if flow.uid in engine.catalog:
            raise HttpError(422, f"Invalid entity: flow {flow.namespace}.{flow.id} already exists")
        saved = await put(request, flow)
    return json_response(flow_json(saved.source, saved.revision, with_source=True))


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}/{id}",
    "A flow, as JSON",
    params=(
        Param("source", "Add the YAML source as `source`", {"type": "boolean", "default": False}),
        Param(
            "revision", "This revision rather than the latest", {"type": "integer", "minimum": 1}
        ),
    ),
    replies={200: ok("FlowWithSource"), 400: error("A malformed parameter"), 404: _NOT_FOUND},
)
async def get_flow(request: web.Request) -> web.Response:
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    with_source = flag(request.query, "source")
    revision = request.query.get("revision")
    engine = request.app[ENGINE]
    if revision is None and (flow := engine.catalog.get(namespace, flow_id)) is not None:
        return json_response(flow_json(flow.source, flow.revision, with_source=with_source))
    if revision is not None and not (
        revision.isascii() and revision.isdigit() and 0 < int(revision) < 2**31
    ):
        raise HttpError(400, f"Bad Request: revision must be a positive number, not {revision!r}")
    stored = await engine.store.get_flow(
        namespace, flow_id, int(revision) if revision is not None else None
    )
    if stored is None:
        which = f" revision {revision}" if revision is not None else ""
        raise NotFound(f"flow {namespace}.{flow_id}{which} not found")
    return json_response(flow_json(stored[1], stored[0], with_source=with_source))


@routes.operation(
    "PUT",
    "/api/v1/flows/{namespace}/{id}",
    "Replace a flow's YAML; its id and namespace cannot change",
    body=_YAML,
    replies={
        200: ok("FlowWithSource"),
        404: _NOT_FOUND,
        409: error("Cannot be saved"),
        415: error("Not YAML"),
        422: _INVALID,
    },
)
async def update_flow(request: web.Request) -> web.Response:
    flows_dir(request)
    engine = request.app[ENGINE]
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    text = await yaml_body(request)
    async with request.app[FLOW_LOCK]:
        current = _loaded(engine, namespace, flow_id)
        flow = await validated(engine, text)
        if flow.uid != current.uid:
            raise HttpError(
                422,
                f"Invalid entity: the id and namespace of a flow cannot change "
                f"({namespace}.{flow_id}, not {flow.namespace}.{flow.id})",
            )
        saved = await put(request, flow)
    return json_response(flow_json(saved.source, saved.revision, with_source=True))


@routes.operation(
    "DELETE",
    "/api/v1/flows/{namespace}/{id}",
    "Delete a flow: its file is removed and its triggers stop",
    replies={
        204: Reply("Deleted"),
        404: _NOT_FOUND,
        409: error("Not defined by a file of the flows directory"),
    },
)
async def delete_flow(request: web.Request) -> web.Response:
    flows_dir(request)
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    async with request.app[FLOW_LOCK]:
        await remove(request, _loaded(request.app[ENGINE], namespace, flow_id))
    return web.Response(status=204)


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}/{id}/revisions",
    "Every revision of a flow, oldest first, with its source (deleted ones with allowDelete)",
    params=(
        Param(
            "allowDelete",
            "Also the revisions deleted, and a deleted flow's",
            {"type": "boolean", "default": False},
        ),
    ),
    replies={200: ok("FlowWithSource", array=True), 404: _NOT_FOUND},
)
async def flow_revisions(request: web.Request) -> web.Response:
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    with_deleted = flag(request.query, "allowDelete")
    store = request.app[ENGINE].store
    if not with_deleted and await store.get_flow(namespace, flow_id) is None:
        raise NotFound(f"flow {namespace}.{flow_id} not found")
    found = await store.revisions.list(namespace, flow_id, deleted=with_deleted)
    if not found:
        raise NotFound(f"flow {namespace}.{flow_id} not found")
    return json_response([flow_json(source, rev, with_source=True) for rev, source in found])
