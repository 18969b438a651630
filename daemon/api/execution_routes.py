"""Kestra's execution endpoints: create, read, search, kill, restart, replay, delete, labels,
resume and output-file download.

Routes with a literal last segment (`/{executionId}/restart`) are declared before the
create route `/{namespace}/{flowId}`, which would match them too: aiohttp tries routes in
the order they were added.
"""

from __future__ import annotations

import posixpath
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from daemon.api.common import (
    ENGINE,
    PAGE,
    REVISION,
    SIZE,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    date_param,
    error,
    flag,
    json_response,
    kestra_execution,
    label_pairs,
    masked_json,
    ok,
    paging,
    parse_json,
    revision_param,
    settable_labels,
    stored_execution,
)
from daemon.api.query_filters import EXECUTION_FILTERS, execution_filters, filter_params
from daemon.api.uploads import Uploads, bounded, json_kind, read_inputs, refuse_server_paths
from daemon.engine.pauses import waiting_reviews
from daemon.sdk.errors import FlowDisabled, NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.files import SCHEME
from daemon.sdk.state import State

routes = Routes("Executions")

STATES = tuple(state.value for state in State)
_NOT_FOUND = error("No such execution")
_STATE_CONFLICT = error("The execution is not in a state that allows this")
_LABEL_LIST = {"type": "array", "items": {"$ref": "#/components/schemas/Label"}}


def _terminated(doc: dict[str, Any]) -> bool:
    return State(doc["state"]["current"]).terminated


@routes.operation(
    "GET",
    "/api/v1/executions/search",
    "Search executions, newest first",
    params=(
        Param("namespace", "This namespace and the ones under it"),
        Param("flowId", "Executions of this flow"),
        Param("q", "Text found (any case) in the id, the namespace or the flow id"),
        Param(
            "state",
            "Executions in one of these states",
            {"type": "string", "enum": list(STATES)},
            repeated=True,
        ),
        Param("labels", "Labels as key:value, all of them must match", repeated=True),
        Param("startDate", "Started at or after", {"type": "string", "format": "date-time"}),
        Param("endDate", "Started before", {"type": "string", "format": "date-time"}),
        PAGE,
        SIZE,
        *filter_params(EXECUTION_FILTERS),
    ),
    replies={200: ok("ExecutionPage"), 400: error("A malformed filter")},
)
async def search_executions(request: web.Request) -> web.Response:
    page, size = paging(request.query)
    results, total = await request.app[ENGINE].store.search_executions(
        **search_terms(request.query), page=page, size=size
    )
    return json_response({"results": [kestra_execution(r) for r in results], "total": total})


def search_terms(query: MultiMapping[str]) -> dict[str, Any]:
    """The store's search arguments for Kestra's execution search: its query filters and
    the deprecated parameters (`namespace`, `state`, `labels`...); a 400 for a bad one."""
    states = query.getall("state", [])
    for state in states:
        if state not in STATES:
            raise HttpError(400, f"Bad Request: state {state!r} is not one of {', '.join(STATES)}")
    wanted = execution_filters(query, STATES)
    start = wanted.start_after or date_param(query, "startDate")
    end = wanted.start_before or date_param(query, "endDate")
    labels = {**label_pairs(query.getall("labels", [])), **wanted.labels}
    return {
        "namespace": wanted.namespace or query.get("namespace"),
        "exact_namespace": wanted.exact_namespace,
        "flow_id": wanted.flow_id or query.get("flowId"),
        "states": wanted.states or states or None,
        "labels": labels or None,
        "start_after": start.isoformat() if start else None,
        "start_before": end.isoformat() if end else None,
        "q": wanted.q or query.get("q") or None,
    }


@routes.operation(
    "GET",
    "/api/v1/executions",
    "The executions of one flow, newest first",
    params=(
        Param("namespace", "The flow's namespace (exactly)", required=True),
        Param("flowId", "The flow's id", required=True),
        PAGE,
        SIZE,
    ),
    replies={200: ok("ExecutionPage"), 400: error("No namespace or flowId")},
)
async def flow_executions(request: web.Request) -> web.Response:
    """Kestra's `searchExecutionsByFlowId`: one flow's executions, its sub-namespaces'
    flows of the same id left out."""
    query = request.query
    page, size = paging(query)
    namespace, flow_id = query.get("namespace"), query.get("flowId")
    if not namespace or not flow_id:
        raise HttpError(400, "Bad Request: namespace and flowId are required")
    results, total = await request.app[ENGINE].store.search_executions(
        namespace=namespace, exact_namespace=True, flow_id=flow_id, page=page, size=size
    )
    return json_response({"results": [kestra_execution(r) for r in results], "total": total})


@routes.operation(
    "DELETE",
    "/api/v1/executions/{executionId}/kill",
    "Kill a running or queued execution; it ends KILLED",
    replies={
        202: ok("Execution", "Killed"),
        404: _NOT_FOUND,
        409: error("The execution has ended, or is neither running nor queued here"),
    },
)
async def kill_execution(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    doc = await stored_execution(request)
    if _terminated(doc):
        raise HttpError(
            409,
            f"Illegal state: execution {doc['id']} has already ended ({doc['state']['current']})",
        )
    if not await engine.kill(doc["id"]):
        raise HttpError(
            409,
            f"Illegal state: execution {doc['id']} is "
            f"{doc['state']['current']} and neither running nor queued in this process",
        )
    return json_response(kestra_execution(await stored_execution(request)), 202)


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/restart",
    "Run a FAILED or KILLED execution again from its failed task runs",
    replies={200: ok("Execution"), 404: _NOT_FOUND, 409: _STATE_CONFLICT},
)
async def restart_execution(request: web.Request) -> web.Response:
    execution = await request.app[ENGINE].restart(request.match_info["executionId"])
    return json_response(masked_json(request, execution))


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/replay",
    "A new execution of the same flow revision and inputs, from a chosen task run",
    params=(
        Param("taskRunId", "Run again from this task run's task; every task when absent"),
        REVISION,
    ),
    replies={
        200: ok("Execution", "The new execution"),
        404: error("No such execution, task run or flow revision"),
        409: error("The flow is disabled"),
        422: error("A revision that is not a number"),
    },
)
async def replay_execution(request: web.Request) -> web.Response:
    execution = await request.app[ENGINE].replay(
        request.match_info["executionId"],
        request.query.get("taskRunId"),
        revision=revision_param(request.query),
    )
    return json_response(masked_json(request, execution))


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/labels",
    "Set labels of an ended execution (added to or replacing its labels)",
    body=Body(("application/json",), _LABEL_LIST),
    replies={200: ok("Execution"), 404: _NOT_FOUND, 409: _STATE_CONFLICT, 415: error("Not JSON")},
)
async def set_labels(request: web.Request) -> web.Response:
    labels = settable_labels(label_list(await json_body(bounded(request), "labels")))
    doc = await request.app[ENGINE].controls.set_labels(request.match_info["executionId"], labels)
    return json_response(kestra_execution(doc))


async def json_body(request: web.Request, what: str) -> Any:
    """The JSON body, refused with a 415 when it is sent as another type."""
    if request.content_type != "application/json":
        raise HttpError(
            415,
            f"Unsupported Media Type: send {what} as application/json, not {request.content_type}",
        )
    return parse_json(await request.read())


def label_list(data: Any) -> dict[str, str]:
    """Kestra's `List<Label>` body: `[{"key": ..., "value": ...}]`. Other fields are
    ignored, as Kestra's JSON binding does: kestrapy's Label sends `additional_properties`."""
    shape = 'labels must be a JSON array of {"key": "...", "value": "..."} objects'
    if not isinstance(data, list):
        raise HttpError(400, f"Bad Request: {shape}, not {json_kind(data)}")
    labels: dict[str, str] = {}
    for index, item in enumerate(data):
        if not (
            isinstance(item, dict)
            and {"key", "value"} <= set(item)
            and isinstance(item["key"], str)
            and item["key"]
            and isinstance(item["value"], str)
        ):
            raise HttpError(400, f"Bad Request: {shape}; item {index} is not")
        labels[item["key"]] = item["value"]
    return labels


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/resume",
    "Resume a PAUSED execution",
    replies={
        204: Reply("Resumed"),
        404: _NOT_FOUND,
        409: error("The execution is not PAUSED"),
        422: error("The inputs do not fit the Pause task's onResume"),
    },
)
async def resume_execution(request: web.Request) -> web.Response:
    """The Pause task's `onResume` inputs as form fields or a JSON object."""
    engine = request.app[ENGINE]
    doc = await stored_execution(request)
    if doc["state"]["current"] != State.PAUSED:
        raise HttpError(409, f"Illegal state: execution {doc['id']} is not PAUSED")
    async with Uploads(engine.data_dir / "uploads") as uploads:
        inputs = await read_inputs(bounded(request), uploads)
        if not await engine.resume(doc["id"], inputs):
            stored = Execution.from_json(doc)
            flow = await engine.catalog.at(stored.namespace, stored.flow_id, stored.flow_revision)
            if waiting_reviews(flow, doc):
                raise HttpError(
                    409,
                    f"Illegal state: execution {doc['id']} waits for a review of an Approval "
                    "task: approve or deny it with POST .../actions/review",
                )
            raise HttpError(
                409, f"Illegal state: execution {doc['id']} is not waiting in this daemon"
            )
    return web.Response(status=204)


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/file",
    "Download a file of the execution by its kestra:// URI",
    params=(Param("path", "The file's URI, kestra:///...", required=True),),
    replies={
        200: Reply("The file", "application/octet-stream", {"type": "string", "format": "binary"}),
        400: error("No path, or not a kestra:// URI"),
        403: error("The file is not one of this execution"),
        404: error("No such execution or file"),
    },
)
async def download_file(request: web.Request) -> web.StreamResponse:
    uri = await execution_file(request)
    storage = request.app[ENGINE].resources.storage
    name = uri.rsplit("/", 1)[-1].replace('"', "")
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    try:
        if storage.blobs.local:
            return web.FileResponse(await storage.path(uri), headers=headers)
        size = await storage.size(uri)
        stream = storage.open(uri)
        first = await anext(stream, b"")  # a missing file is still a 404 here
    except NotFound:
        raise HttpError(404, f"Not Found: no file {uri}") from None
    response = web.StreamResponse(headers=headers)
    response.content_length = size
    await response.prepare(request)
    await response.write(first)
    async for chunk in stream:
        await response.write(chunk)
    await response.write_eof()
    return response


async def execution_file(request: web.Request) -> str:
    """The `kestra:///` URI named by `?path=`, after checking that it is one of this
    execution's files."""
    uri = request.query.get("path")
    if not uri:
        raise HttpError(400, "Bad Request: path is required (a kestra:/// URI)")
    if not uri.startswith(SCHEME):
        raise HttpError(400, f"Bad Request: path {uri!r} is not a kestra:/// URI")
    doc = await stored_execution(request)
    storage = request.app[ENGINE].resources.storage
    prefix = storage.execution_prefix(doc["namespace"], doc["flowId"], doc["id"])
    key = uri[len(SCHEME) :]
    if (
        "\\" in key
        or "\x00" in key
        or not posixpath.normpath(key).startswith(prefix + "/")
        or ".." in key.split("/")
    ):
        raise HttpError(403, f"Forbidden: {uri} is not a file of execution {doc['id']}")
    try:
        if not await storage.exists(uri):
            raise NotFound(uri)
    except NotFound:
        raise HttpError(404, f"Not Found: no file {uri} in execution {doc['id']}") from None
    return uri


@routes.operation(
    "POST",
    "/api/v1/executions/{namespace}/{flowId}",
    "Create an execution: inputs as form fields (files as file parts) or JSON",
    params=(
        Param("labels", "Labels as key:value", repeated=True),
        Param("wait", "Answer once the execution has ended", {"type": "boolean", "default": False}),
    ),
    body=Body(
        ("multipart/form-data", "application/json", "application/x-www-form-urlencoded"),
        {"type": "object", "additionalProperties": {"type": "string"}},
        required=False,
    ),
    replies={
        200: ok("Execution"),
        404: error("No such flow"),
        409: error("The flow is disabled"),
        415: error("Unknown body type"),
        422: error("Inputs that do not fit the flow, or the flow's checks blocking them"),
    },
)
async def create_execution(request: web.Request) -> web.Response:
    """Kestra's create call: inputs as form fields (files as file parts), labels and wait."""
    return await create_for(request, request.match_info["namespace"], request.match_info["flowId"])


async def create_for(request: web.Request, namespace: str, flow_id: str) -> web.Response:
    engine = request.app[ENGINE]
    request = bounded(request)
    flow = await engine.catalog.find(namespace, flow_id)
    if flow.disabled:
        raise FlowDisabled(f"flow {flow.namespace}.{flow.id} is disabled")
    labels = settable_labels(label_pairs(request.query.getall("labels", [])))
    wait = flag(request.query, "wait")
    async with Uploads(engine.data_dir / "uploads") as uploads:
        inputs = await read_inputs(request, uploads)
        refuse_server_paths(flow, inputs, uploads)
        execution = await engine.submit(flow, inputs, labels=labels, checks=True)
    if wait:
        execution = await engine.wait(execution.id)
    return json_response(masked_json(request, execution))


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}",
    "An execution with its task runs",
    replies={200: ok("Execution"), 404: _NOT_FOUND},
)
async def get_execution(request: web.Request) -> web.Response:
    return json_response(kestra_execution(await stored_execution(request)))


DELETE_FLAGS = (
    Param("deleteLogs", "Delete its logs too", {"type": "boolean", "default": True}),
    Param("deleteMetrics", "Delete its metrics too", {"type": "boolean", "default": True}),
    Param("deleteStorage", "Delete its files too", {"type": "boolean", "default": True}),
)


def delete_flags(query: MultiMapping[str]) -> dict[str, bool]:
    """Kestra's deleteLogs, deleteMetrics and deleteStorage, each true unless given."""
    names = {"logs": "deleteLogs", "metrics": "deleteMetrics", "storage": "deleteStorage"}
    return {what: flag({name: query.get(name, "true")}, name) for what, name in names.items()}


@routes.operation(
    "DELETE",
    "/api/v1/executions/{executionId}",
    "Delete an ended execution with its task runs, and its logs, metrics and files",
    params=DELETE_FLAGS,
    replies={
        204: Reply("Deleted"),
        400: error("A flag that is not true or false"),
        404: _NOT_FOUND,
        409: error("The execution has not ended"),
    },
)
async def delete_execution(request: web.Request) -> web.Response:
    flags = delete_flags(request.query)
    await request.app[ENGINE].controls.delete(request.match_info["executionId"], **flags)
    return web.Response(status=204)
