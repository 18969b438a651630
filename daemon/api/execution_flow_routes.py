"""Kestra's endpoints for the flow of an execution: the flow as an execution reader may see
it (FlowForExecution), by id or as the execution ran it, and the execution's topology graph
(FlowGraph), its subflows expanded on demand.

Declared before the `/{executionId}/...` routes of inspect_routes, which would take
`/flows/{namespace}/{flowId}` for a file preview.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    revision_param,
    stored_execution,
)
from daemon.api.flow_graph_model import Json, task_for_execution
from daemon.api.flow_routes import flow_json
from daemon.api.graph_service import flow_graph, spec_json
from daemon.flows.definition import Flow

routes = Routes("Executions")

_FLOW_FOR_EXECUTION = Reply(
    "Kestra's FlowForExecution: the flow's inputs, its tasks and triggers by id and type",
    "application/json",
    {"type": "object", "required": ["id", "namespace", "tasks", "disabled", "deleted"]},
)
_GRAPH = Reply(
    "Kestra's FlowGraph: nodes, edges and clusters",
    "application/json",
    {
        "type": "object",
        "properties": {
            "nodes": {"type": "array", "items": {"type": "object"}},
            "edges": {"type": "array", "items": {"type": "object"}},
            "clusters": {"type": "array", "items": {"type": "object"}},
        },
    },
)


def flow_for_execution(flow: Flow) -> Json:
    """Kestra's FlowForExecution.of(flow): what one who may run the flow, not read it, sees."""

    def tasks(listed: Any) -> list[Json]:
        return [task_for_execution(task, spec_json) for task in listed]

    doc: Json = {
        "id": flow.id,
        "namespace": flow.namespace,
        "revision": flow.revision,
        "tasks": tasks(flow.tasks),
        "errors": tasks(flow.errors),
        "finally": tasks(flow.finally_),
        "afterExecution": tasks(flow.after_execution),
        "triggers": [{"id": t.id, "type": t.type} for t in flow.triggers],
        "disabled": flow.disabled,
        "deleted": False,
    }
    inputs = flow_json(flow.source, flow.revision, with_source=False).get("inputs")
    if inputs:
        doc["inputs"] = inputs
    return doc


@routes.operation(
    "GET",
    "/api/v1/executions/flows/{namespace}/{flowId}",
    "The flow as one who runs it sees it: its inputs, its tasks by id and type",
    params=(
        Param(
            "revision",
            "This revision (the latest when absent)",
            {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        ),
    ),
    replies={
        200: _FLOW_FOR_EXECUTION,
        404: error("No such flow or revision"),
        422: error("A revision that is not a number"),
    },
)
async def flow_for_execution_by_id(request: web.Request) -> web.Response:
    """Kestra's getFlowFromExecution."""
    catalog = request.app[ENGINE].catalog
    namespace, flow_id = request.match_info["namespace"], request.match_info["flowId"]
    revision = revision_param(request.query)
    if revision is None:
        flow = await catalog.find(namespace, flow_id)
    else:
        flow = await catalog.at(namespace, flow_id, revision)
    return json_response(flow_for_execution(flow))


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/flow",
    "The flow revision the execution ran, as one who runs it sees it",
    replies={200: _FLOW_FOR_EXECUTION, 404: error("No such execution or flow revision")},
)
async def flow_of_execution(request: web.Request) -> web.Response:
    """Kestra's getFlowFromExecutionById."""
    doc = await stored_execution(request)
    flow = await request.app[ENGINE].catalog.at(
        doc["namespace"], doc["flowId"], doc["flowRevision"]
    )
    return json_response(flow_for_execution(flow))


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/graph",
    "The topology graph of the flow revision the execution ran, with its task runs",
    params=(
        Param(
            "subflows",
            "The uid of a subflow task node to expand into its subflow's graph",
            repeated=True,
        ),
    ),
    replies={
        200: _GRAPH,
        404: error("No such execution, flow revision or subflow"),
        422: error("A subflow to expand whose ids are expressions it has not rendered yet"),
    },
)
async def execution_graph(request: web.Request) -> web.Response:
    """Kestra's getExecutionFlowGraph (GraphService.flowGraph(flow, subflows, execution)
    .forExecution()): the execution's task runs on the graph of its flow revision."""
    doc = await stored_execution(request)
    flow = await request.app[ENGINE].catalog.at(
        doc["namespace"], doc["flowId"], doc["flowRevision"]
    )
    return json_response(await flow_graph(request, flow, execution=doc))
