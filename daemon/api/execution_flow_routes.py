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
    SUPERVISOR,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    revision_param,
    stored_execution,
)
from daemon.api.flow_graph import Walker, expand
from daemon.api.flow_graph_model import (
    Cluster,
    Json,
    SubflowCluster,
    TaskNode,
    graph_json,
    task_for_execution,
)
from daemon.api.flow_routes import flow_json, input_json
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import StartsFlows
from daemon.sdk.errors import NotFound
from daemon.sdk.inputs import InputSpec

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


def spec_json(spec: InputSpec) -> Json:
    """An input (a Pause's onResume) as Kestra's API writes it, as written in the flow."""
    return input_json(spec.model_dump(mode="json", by_alias=True, exclude_unset=True))


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
    .forExecution()): the execution's task runs on the graph of its flow revision; an
    expanded subflow shows its latest revision, without task runs, as Kestra does."""
    engine = request.app[ENGINE]
    doc = await stored_execution(request)
    flow = await engine.catalog.at(doc["namespace"], doc["flowId"], doc["flowRevision"])
    wanted = [uid for value in request.query.getall("subflows", []) for uid in value.split(",")]
    graph = Walker(doc).flow(flow, _declarations(flow), await _contexts(request, flow))

    async def subflow(node: TaskNode) -> Cluster:
        namespace, flow_id = await _started(request, node)
        try:
            found = await engine.catalog.find(namespace, flow_id)
        except NotFound:
            raise HttpError(
                404,
                f"Not Found: Unable to find subflow {namespace}.{flow_id} for task {node.task.id}",
            ) from None
        cluster = SubflowCluster(node)
        Walker().flow(found, _declarations(found), await _contexts(request, found), cluster)
        await expand(cluster, [uid for uid in wanted if uid.startswith(node.uid + ".")], subflow)
        return cluster

    await expand(graph, wanted, subflow)
    return json_response(graph_json(graph, spec_json))


def _declarations(flow: Flow) -> list[Json]:
    """Each trigger as written in the flow (GraphTrigger's triggerDeclaration)."""
    listed = flow_json(flow.source, flow.revision, with_source=False).get("triggers")
    return [t if isinstance(t, dict) else {} for t in listed] if isinstance(listed, list) else []


async def _contexts(request: web.Request, flow: Flow) -> dict[str, Json]:
    """Each trigger's context (GraphTrigger's trigger), when this server runs triggers."""
    triggers = request.app[SUPERVISOR]
    if triggers is None:
        return {}
    return {context["triggerId"]: context for context in await triggers.contexts(flow)}


async def _started(request: web.Request, node: TaskNode) -> tuple[str, str]:
    """The flow a subflow task node starts: written in the task, else the one its task
    run started (Kestra renders the ids with the execution's context)."""
    task = node.task
    if isinstance(task, StartsFlows) and (literal := task.started_flows()):
        return literal[0]
    child_id = ((node.run or {}).get("outputs") or {}).get("executionId")
    child = await request.app[ENGINE].store.get_execution(child_id) if child_id else None
    if child is None:
        raise HttpError(
            422,
            f"Illegal argument: Can't expand subflow task '{task.id}' because namespace "
            "and/or flowId contains dynamic values. This can only be viewed on an execution.",
        )
    return child["namespace"], child["flowId"]
