"""Kestra's GraphService.flowGraph as the API answers it, for a flow
(`GET /flows/{namespace}/{id}/graph`, `POST /flows/graph`) and for an execution
(`GET /executions/{id}/graph`): the walk of daemon/api/flow_graph.py with each trigger as
written and its context, and the subflow task nodes named by `subflows` expanded into the
graph of the flow they start (its latest revision, without task runs, as Kestra does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from daemon.api.common import ENGINE, SUPERVISOR, HttpError
from daemon.api.flow_graph import Walker, expand
from daemon.api.flow_graph_model import (
    Cluster,
    Json,
    SubflowCluster,
    TaskNode,
    for_execution,
    graph_json,
)
from daemon.api.flow_routes import flow_json, input_json
from daemon.flows.definition import Flow
from daemon.flows.written import written_tasks
from daemon.sdk.capabilities import StartsFlows
from daemon.sdk.errors import NotFound
from daemon.sdk.inputs import InputSpec
from daemon.sdk.plugin import Task


def spec_json(spec: InputSpec) -> Json:
    """An input (a Pause's onResume) as Kestra's API writes it, as written in the flow."""
    return input_json(spec.model_dump(mode="json", by_alias=True, exclude_unset=True))


class WrittenTasks:
    """A flow's graph (not an execution's) shows each task whole, as written in the flow
    it belongs to (Kestra's GraphTask.task): `add` each flow drawn, subflows included.
    A task of a flowable's own making (ForEachItem's split) shows its id and type."""

    def __init__(self) -> None:
        self._docs: dict[int, Json] = {}

    def add(self, flow: Flow) -> None:
        written = written_tasks(flow)
        for task in flow.all_tasks():  # the Task objects the walk draws
            self._docs[id(task)] = written.get(task.id) or {"id": task.id, "type": task.type}

    def __call__(self, task: Task) -> Json:
        return self._docs.get(id(task)) or {"id": task.id, "type": task.type}


async def flow_graph(
    request: web.Request,
    flow: Flow,
    *,
    execution: Mapping[str, Any] | None = None,
    written: WrittenTasks | None = None,
) -> Json:
    """The FlowGraph of `flow` (with the task runs of `execution`), the `subflows` query
    parameter's nodes expanded; tasks written whole when `written` is given, else as
    Kestra's TaskForExecution."""
    engine = request.app[ENGINE]
    wanted = [uid for value in request.query.getall("subflows", []) for uid in value.split(",")]
    if written is not None:
        written.add(flow)
    graph = Walker(execution).flow(flow, declarations(flow), await contexts(request, flow))

    async def subflow(node: TaskNode) -> Cluster:
        namespace, flow_id = await _started(request, node)
        try:
            found = await engine.catalog.find(namespace, flow_id)
        except NotFound:
            raise HttpError(
                404,
                f"Not Found: Unable to find subflow {namespace}.{flow_id} for task {node.task.id}",
            ) from None
        if written is not None:
            written.add(found)
        cluster = SubflowCluster(node)
        Walker().flow(found, declarations(found), await contexts(request, found), cluster)
        await expand(cluster, [uid for uid in wanted if uid.startswith(node.uid + ".")], subflow)
        return cluster

    await expand(graph, wanted, subflow)
    return graph_json(graph, written if written is not None else for_execution(spec_json))


def declarations(flow: Flow) -> list[Json]:
    """Each trigger as written in the flow (GraphTrigger's triggerDeclaration)."""
    listed = flow_json(flow.source, flow.revision, with_source=False).get("triggers")
    return [t if isinstance(t, dict) else {} for t in listed] if isinstance(listed, list) else []


async def contexts(request: web.Request, flow: Flow) -> dict[str, Json]:
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
