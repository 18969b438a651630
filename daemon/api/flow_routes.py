"""Kestra's flow endpoints. Flows are files: create and update validate the YAML, write it to
the flows directory and load it from there, as if a person had saved the file, so the
answer carries the revision the directory gave it.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from daemon.api.common import (
    ENGINE,
    PAGE,
    SETTINGS,
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
from daemon.api.middleware import problem_json, problem_text
from daemon.api.query_filters import FLOW_FILTERS, filter_params, in_namespace, parse_filters
from daemon.engine.core import Engine
from daemon.flows import checks
from daemon.flows.definition import Flow
from daemon.flows.directory import FlowDirectory
from daemon.flows.loader import load_flow, too_large
from daemon.sdk import yamlpos
from daemon.sdk.errors import FlowError, NotFound

routes = Routes("Flows")

FLOW_LOCK = web.AppKey("flow_lock", asyncio.Lock)
YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")
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


async def _yaml_body(request: web.Request) -> str:
    if request.content_type not in YAML_TYPES:
        raise HttpError(
            415,
            "Unsupported Media Type: send the flow as application/x-yaml, "
            f"not {request.content_type}",
        )
    limit = request.app[SETTINGS].max_flow_size
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, f"Payload Too Large: {too_large(request.content_length, limit)}")
    body = await request.read()
    if len(body) > limit:
        raise HttpError(413, f"Payload Too Large: {too_large(len(body), limit)}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"Bad Request: the body is not UTF-8 text: {exc}") from None


async def _validated(engine: Engine, text: str) -> Flow:
    flow = await asyncio.to_thread(
        load_flow, text, "<request>", engine.resources.plugins, engine.catalog.plugin_defaults
    )
    engine.catalog.check(flow)  # a flow starting itself through other flows is refused
    return flow


def _file_of(flows: FlowDirectory, flow: Flow) -> Path | None:
    """The file of the flows directory that defines `flow`, if it came from one."""
    path = Path(flow.path) if flow.path else None
    return path if path is not None and path.is_relative_to(flows.root) else None


def _write(path: Path, text: str) -> None:
    """Whole or not at all: the watcher ignores the temporary name (not .yaml)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(text.encode("utf-8"))
    os.replace(partial, path)


async def _save(request: web.Request, flow: Flow, path: Path) -> web.Response:
    engine = request.app[ENGINE]
    await asyncio.to_thread(_write, path, flow.source)
    await flows_dir(request).reload(path)
    loaded = engine.catalog.get(*flow.uid)
    if loaded is None or loaded.source != flow.source:
        raise HttpError(
            409,
            f"Illegal state: {path} was written but the flows directory did "
            f"not load {flow.namespace}.{flow.id}; see the daemon's log",
        )
    return json_response(flow_json(loaded.source, loaded.revision, with_source=True))


def _loaded(engine: Engine, namespace: str, flow_id: str) -> Flow:
    flow = engine.catalog.get(namespace, flow_id)
    if flow is None:
        raise NotFound(f"flow {namespace}.{flow_id} not found")
    return flow


@routes.operation(
    "GET",
    "/api/v1/flows/search",
    "Search the loaded flows",
    params=(
        Param("namespace", "This namespace and the ones under it"),
        Param("q", "Text found in the id, namespace or description (any case)"),
        PAGE,
        SIZE,
        *filter_params(FLOW_FILTERS),
    ),
    replies={200: ok("FlowPage"), 400: error("A malformed filter")},
)
async def search_flows(request: web.Request) -> web.Response:
    page, size = paging(request.query)
    namespace = request.query.get("namespace")
    ns_op, text = "PREFIX", request.query.get("q", "")
    for one in parse_filters(request.query, FLOW_FILTERS, "flows"):
        if one.field == "namespace":
            namespace, ns_op = one.value, one.op
        else:
            text = one.value
    text = text.lower()
    found = [
        flow_json(f.source, f.revision, with_source=False)
        for f in sorted(request.app[ENGINE].catalog, key=lambda f: f.uid)
        if (namespace is None or in_namespace(f.namespace, namespace, ns_op))
        and (not text or any(text in (v or "").lower() for v in (f.id, f.namespace, f.description)))
    ]
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
    for index, (offset, text) in enumerate(_documents(await _yaml_body(request))):
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
            flow = await _validated(engine, text)
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


def _documents(text: str) -> list[tuple[int, str]]:
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
    flows = flows_dir(request)
    engine = request.app[ENGINE]
    text = await _yaml_body(request)
    async with request.app[FLOW_LOCK]:
        flow = await _validated(engine, text)
        if flow.uid in engine.catalog:
            raise HttpError(422, f"Invalid entity: flow {flow.namespace}.{flow.id} already exists")
        path = flows.root / flow.namespace / f"{flow.id}.yaml"
        owner = next((f for f in engine.catalog if _file_of(flows, f) == path), None)
        if owner is not None:
            raise HttpError(
                409, f"Illegal state: {path} already defines {owner.namespace}.{owner.id}"
            )
        return await _save(request, flow, path)


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
    flows = flows_dir(request)
    engine = request.app[ENGINE]
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    text = await _yaml_body(request)
    async with request.app[FLOW_LOCK]:
        current = _loaded(engine, namespace, flow_id)
        flow = await _validated(engine, text)
        if flow.uid != current.uid:
            raise HttpError(
                422,
                f"Invalid entity: the id and namespace of a flow cannot change "
                f"({namespace}.{flow_id}, not {flow.namespace}.{flow.id})",
            )
        path = _file_of(flows, current) or flows.root / namespace / f"{flow_id}.yaml"
        return await _save(request, flow, path)


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
    flows = flows_dir(request)
    engine = request.app[ENGINE]
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    async with request.app[FLOW_LOCK]:
        flow = _loaded(engine, namespace, flow_id)
        path = _file_of(flows, flow)
        if path is None:
            raise HttpError(
                409,
                f"Illegal state: flow {namespace}.{flow_id} is not defined by "
                "a file of the flows directory",
            )
        await asyncio.to_thread(path.unlink, True)
        await flows.reload(path)
    return web.Response(status=204)


@routes.operation(
    "GET",
    "/api/v1/flows/{namespace}/{id}/revisions",
    "Every stored revision of a flow, oldest first, with its source",
    replies={200: ok("FlowWithSource", array=True), 404: _NOT_FOUND},
)
async def flow_revisions(request: web.Request) -> web.Response:
    namespace, flow_id = request.match_info["namespace"], request.match_info["id"]
    store = request.app[ENGINE].store
    latest = await store.get_flow(namespace, flow_id)
    if latest is None:
        raise NotFound(f"flow {namespace}.{flow_id} not found")
    revisions = []
    for number in range(1, latest[0] + 1):
        stored = await store.get_flow(namespace, flow_id, number)
        if stored is not None:
            revisions.append(flow_json(stored[1], stored[0], with_source=True))
    return json_response(revisions)
