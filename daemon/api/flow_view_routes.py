"""Kestra's FlowController views that change nothing: search in the flows' sources (with
highlighted fragments, Kestra's SearchResult), the flows using deprecated task types, the
FlowGraph of a YAML source, and the validation of one task or one trigger (Kestra's
ValidateConstraintViolation).
"""

from __future__ import annotations

import asyncio
from typing import Any

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
    json_response,
    page_of,
    paging,
)
from daemon.api.flow_routes import flow_json
from daemon.api.flow_writes import YAML_TYPES, decoded, limited_body, validated, yaml_body
from daemon.api.graph_service import WrittenTasks, flow_graph
from daemon.api.middleware import problem_text
from daemon.api.query_filters import in_namespace
from daemon.flows.definition import Flow
from daemon.flows.loader import load_plugin
from daemon.sdk.errors import FlowError
from daemon.sdk.plugin import PluginKind

routes = Routes("Flows")

OBJECT: dict[str, Any] = {"type": "object"}
GRAPH = Reply(
    "Kestra's FlowGraph: nodes, edges and clusters",
    "application/json",
    {
        "type": "object",
        "required": ["nodes", "edges", "clusters"],
        "properties": {
            "nodes": {"type": "array", "items": OBJECT},
            "edges": {"type": "array", "items": OBJECT},
            "clusters": {"type": "array", "items": OBJECT},
        },
    },
)
VIOLATION = Reply(
    "Kestra's ValidateConstraintViolation: `constraints` says what is wrong, if anything",
    "application/json",
    {
        "type": "object",
        "required": ["index"],
        "properties": {"index": {"type": "integer"}, "constraints": {"type": "string"}},
    },
)
SUBFLOWS = Param(
    "subflows", "Uids of subflow tasks to draw with their subflow's graph", repeated=True
)
_MARK, _END_MARK = "[mark]", "[/mark]"


def fragments(query: str | None, source: str) -> list[str]:
    """Kestra's AbstractJdbcRepository.fragments: from the line before the first line that
    holds `query` (any case), four lines, each first occurrence marked."""
    lines = [line for line in source.split("\n") if line]
    needle = (query or "").lower()
    first = next((i for i, line in enumerate(lines) if needle and needle in line.lower()), 0)
    start = max(0, first - 1)
    shown = []
    for line in lines[start : start + 4]:
        at = line.lower().find(needle) if needle else -1
        if at >= 0:
            end = at + len(needle)
            line = f"{line[:at]}{_MARK}{line[at:end]}{_END_MARK}{line[end:]}"
        shown.append(line)
    return ["\n".join(shown)]


@routes.operation(
    "GET",
    "/api/v1/flows/source",
    "Search the flows' YAML sources: each flow found with a fragment of its source",
    params=(
        Param("q", "Text the source holds (any case)"),
        Param("namespace", "This namespace and the ones under it"),
        PAGE,
        SIZE,
        Param("sort", "Kestra's sort (flows come by namespace, then id)", repeated=True),
    ),
    replies={
        200: Reply(
            "Kestra's PagedResults of SearchResult: `model` (the flow) and `fragments`",
            "application/json",
            {
                "type": "object",
                "required": ["results", "total"],
                "properties": {
                    "results": {"type": "array", "items": OBJECT},
                    "total": {"type": "integer"},
                },
            },
        ),
        400: error("A malformed parameter"),
    },
)
async def search_flows_by_source_code(request: web.Request) -> web.Response:
    page, size = paging(request.query)
    query, namespace = request.query.get("q"), request.query.get("namespace")
    found = [
        {
            "model": flow_json(flow.source, flow.revision, with_source=False),
            "fragments": fragments(query, flow.source),
        }
        for flow in sorted(request.app[ENGINE].catalog, key=lambda f: f.uid)
        if (namespace is None or in_namespace(flow.namespace, namespace, "PREFIX"))
        and (not query or query.lower() in flow.source.lower())
    ]
    return json_response(page_of(found, page, size))


def deprecated_tasks(flow: Flow) -> list[dict[str, Any]]:
    """FlowService.findDeprecatedTasks: each task written with an older type name (its
    replacement the current name, unless that type is deprecated too), or whose type is
    deprecated itself (no replacement)."""
    found = []
    for task in flow.all_tasks():
        cls = type(task)
        current = cls.types[0] if cls.types else task.type
        if task.type != current:
            replacement = None if cls.superseded_by else current
        elif cls.superseded_by:
            replacement = None
        else:
            continue
        found.append({"taskId": task.id, "taskType": task.type, "replacement": replacement})
    return found


@routes.operation(
    "GET",
    "/api/v1/flows/deprecated",
    "The flows whose tasks use deprecated types, with what replaces each",
    params=(Param("namespace", "This namespace and the ones under it"),),
    replies={
        200: Reply(
            "namespace, flowId, revision and deprecatedTasks of each such flow",
            "application/json",
            {"type": "array", "items": OBJECT},
        )
    },
)
async def list_deprecated(request: web.Request) -> web.Response:
    namespace = request.query.get("namespace")
    found = []
    for flow in sorted(request.app[ENGINE].catalog, key=lambda f: f.uid):
        if namespace is not None and not in_namespace(flow.namespace, namespace, "PREFIX"):
            continue
        tasks = deprecated_tasks(flow)
        if tasks:
            found.append(
                {
                    "namespace": flow.namespace,
                    "flowId": flow.id,
                    "revision": flow.revision,
                    "deprecatedTasks": tasks,
                }
            )
    return json_response(found)


@routes.operation(
    "POST",
    "/api/v1/flows/graph",
    "Kestra's FlowGraph of a flow's YAML source (not saved)",
    params=(SUBFLOWS,),
    body=Body(YAML_TYPES, {"type": "string"}),
    replies={
        200: GRAPH,
        404: error("A subflow to draw is not loaded"),
        415: error("Not YAML"),
        422: error("The YAML is not a valid flow, or a subflow to draw has expressions for ids"),
    },
)
async def generate_flow_graph_from_source(request: web.Request) -> web.Response:
    flow = await validated(request.app[ENGINE], await yaml_body(request))
    return json_response(await flow_graph(request, flow, written=WrittenTasks()))


_BODY = Body(("application/json", *YAML_TYPES), OBJECT)
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
_SECTIONS: dict[str, PluginKind] = {"TASKS": "task", "TRIGGERS": "trigger"}


async def _violation(request: web.Request, kind: PluginKind) -> web.Response:
    """Kestra's validateTask / validateTrigger: `constraints` lists what is wrong."""
    if request.content_type in _FORMS:  # a JSON or YAML text, typed or not (kestrapy sends
        raise HttpError(  # a string body untyped)
            415,
            "Unsupported Media Type: send the task as application/json or "
            f"application/x-yaml, not {request.content_type}",
        )
    text = decoded(await limited_body(request))
    if not text.strip():
        raise HttpError(400, f"Bad Request: Required Body [{kind}] not specified")
    engine = request.app[ENGINE]
    answer: dict[str, Any] = {"index": 0, "outdated": False}
    try:
        await asyncio.to_thread(
            load_plugin, text, kind, engine.resources.plugins, engine.catalog.plugin_defaults
        )
    except FlowError as exc:
        answer["constraints"] = "\n".join(problem_text(p) for p in exc.problems)
    return json_response(answer)


@routes.operation(
    "POST",
    "/api/v1/flows/validate/task",
    "Validate one task (or, with section=TRIGGERS, one trigger), JSON or YAML",
    params=(
        Param(
            "section",
            "TASKS (the default) or TRIGGERS",
            {"type": "string", "enum": list(_SECTIONS)},
        ),
    ),
    body=_BODY,
    replies={
        200: VIOLATION,
        400: error("An empty body or a bad section"),
        415: error("A form, not JSON or YAML"),
    },
)
async def validate_task(request: web.Request) -> web.Response:
    section = request.query.get("section", "TASKS")
    if section not in _SECTIONS:
        raise HttpError(400, f"Bad Request: section must be TASKS or TRIGGERS, not {section!r}")
    return await _violation(request, _SECTIONS[section])


@routes.operation(
    "POST",
    "/api/v1/flows/validate/trigger",
    "Validate one trigger, JSON or YAML",
    body=_BODY,
    replies={200: VIOLATION, 400: error("An empty body"), 415: error("A form, not JSON or YAML")},
)
async def validate_trigger(request: web.Request) -> web.Response:
    return await _violation(request, "trigger")
