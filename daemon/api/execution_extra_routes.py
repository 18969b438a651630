"""More of Kestra's execution endpoints: replay with other inputs, the last execution of
each of a list of flows, and the size of an execution's file.

Declared before execution_routes' `/{namespace}/{flowId}` and `/{executionId}` routes,
which would take `/latest` and `/{executionId}/replay-with-inputs` for theirs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    REVISION,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    masked_json,
    ok,
    parse_json,
    revision_param,
    stored_execution,
)
from daemon.api.execution_routes import execution_file
from daemon.api.uploads import Uploads, bounded, json_kind, read_inputs, refuse_server_paths
from daemon.sdk.errors import NotFound

routes = Routes("Executions")

_FLOW_FILTERS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["namespace", "id"],
        "properties": {"namespace": {"type": "string"}, "id": {"type": "string"}},
    },
}
_LAST_EXECUTIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "flowId": {"type": "string"},
            "namespace": {"type": "string"},
            "startDate": {"type": "string", "format": "date-time"},
            "status": {"type": "string"},
        },
    },
}


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/replay-with-inputs",
    "A new execution of the flow with other inputs, from a chosen task run",
    params=(
        Param("taskRunId", "Run again from this task run's task; every task when absent"),
        REVISION,
    ),
    body=Body(
        ("multipart/form-data", "application/json", "application/x-www-form-urlencoded"),
        {"type": "object", "additionalProperties": {"type": "string"}},
        required=False,
    ),
    replies={
        200: ok("Execution", "The new execution"),
        404: error("No such execution, task run or flow revision"),
        409: error("The flow is disabled"),
        415: error("Unknown body type"),
        422: error("Inputs that do not fit the flow, or a revision that is not a number"),
    },
)
async def replay_with_inputs(request: web.Request) -> web.Response:
    """Kestra's replayExecutionWithinputs: the inputs as a new execution's (form fields,
    files as file parts), read against the flow revision the copy runs. A request with no
    body at all replays with the original's inputs, as kestrapy documents it."""
    engine = request.app[ENGINE]
    request = bounded(request)
    revision = revision_param(request.query)
    doc = await stored_execution(request)
    flow = await engine.catalog.at(
        doc["namespace"], doc["flowId"], revision if revision is not None else doc["flowRevision"]
    )
    async with Uploads(engine.data_dir / "uploads") as uploads:
        inputs: dict[str, Any] | None = None
        if request.body_exists:
            inputs = await read_inputs(request, uploads)
            refuse_server_paths(flow, inputs, uploads)
        execution = await engine.replay(
            doc["id"], request.query.get("taskRunId"), revision=revision, inputs=inputs
        )
    return json_response(masked_json(request, execution))


@routes.operation(
    "POST",
    "/api/v1/executions/latest",
    "The last execution to have ended of each flow listed",
    body=Body(("application/json",), _FLOW_FILTERS),
    replies={
        200: Reply(
            "One per flow that has an ended execution", "application/json", _LAST_EXECUTIONS
        ),
        400: error("Not a JSON list of {namespace, id}"),
        415: error("Not JSON"),
    },
)
async def latest_executions(request: web.Request) -> web.Response:
    """Kestra's getLatestExecutions (the repository's lastExecutions): for each flow, its
    execution with the latest end date, as Kestra's LastExecutionResponse; a flow with no
    ended execution (or none at all) has no entry."""
    request = bounded(request)
    if request.content_type != "application/json":
        raise HttpError(
            415,
            "Unsupported Media Type: send the flows as application/json, "
            f"not {request.content_type}",
        )
    store = request.app[ENGINE].store
    found: list[dict[str, Any]] = []
    for namespace, flow_id in _flow_filters(parse_json(await request.read())):
        docs, _ = await store.search_executions(
            namespace=namespace, exact_namespace=True, flow_id=flow_id, latest_end=True, size=1
        )
        found += [
            {
                "id": doc["id"],
                "flowId": doc["flowId"],
                "namespace": doc["namespace"],
                "startDate": doc["state"]["startDate"],
                "status": doc["state"]["current"],
            }
            for doc in docs
        ]
    return json_response(found)


def _flow_filters(data: Any) -> list[tuple[str, str]]:
    """Kestra's ExecutionRepositoryInterface.FlowFilter list, each flow once."""
    shape = 'the body must be a JSON array of {"namespace": "...", "id": "..."} objects'
    if not isinstance(data, list):
        raise HttpError(400, f"Bad Request: {shape}, not {json_kind(data)}")
    flows: dict[tuple[str, str], None] = {}
    for index, item in enumerate(data):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("namespace"), str)
            and isinstance(item.get("id"), str)
        ):
            raise HttpError(400, f"Bad Request: {shape}; item {index} is not")
        flows[(item["namespace"], item["id"])] = None
    return list(flows)


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/file/metas",
    "The size of a file of the execution, by its kestra:// URI",
    params=(Param("path", "The file's URI, kestra:///...", required=True),),
    replies={
        200: Reply(
            "Kestra's FileMetas",
            "application/json",
            {"type": "object", "properties": {"size": {"type": "integer"}}},
        ),
        400: error("No path, or not a kestra:// URI"),
        403: error("The file is not one of this execution"),
        404: error("No such execution or file"),
    },
)
async def file_metas(request: web.Request) -> web.Response:
    """Kestra's getFileMetadatasFromExecution: `{"size": n}`, with the same checks as the
    file download (the file must be one of this execution's)."""
    uri = await execution_file(request)
    try:
        size = await request.app[ENGINE].resources.storage.size(uri)
    except NotFound:
        raise HttpError(404, f"Not Found: no file {uri}") from None
    return json_response({"size": size})
