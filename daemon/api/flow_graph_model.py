"""The nodes of Kestra's FlowGraph and their JSON: Kestra's hierarchy models
(kestra-io/kestra, core/.../models/hierarchies: AbstractGraph, GraphCluster, GraphTask,
SubflowGraphTask, GraphTrigger, GraphClusterRoot/Finally/AfterExecution/End, FlowGraph's
Edge and Cluster) and TaskForExecution, as `GET /executions/{id}/graph` answers them; a
flow's graph (`GET /flows/{namespace}/{id}/graph`) shows each task whole instead, so how a
node's task is written is the caller's (`TaskJson`).

A cluster keeps its own graph, as Kestra's does on Guava's: an edge adds the nodes it
joins, so a nested cluster's root and end are also nodes of its parent. Markers get random
ids as Kestra's; a uid is prefixed with its clusters' as `updateUidWithChildren` does, and
a task run's node uid ends with the values of the task runs above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from daemon.sdk.capabilities import Chart, Charted, Resumable, StartsFlows
from daemon.sdk.execution import new_id
from daemon.sdk.inputs import InputSpec
from daemon.sdk.plugin import FlowableTask, Task

HIERARCHIES = "io.kestra.core.models.hierarchies."
SEQUENTIAL, PARALLEL, CHOICE, DYNAMIC = "SEQUENTIAL", "PARALLEL", "CHOICE", "DYNAMIC"
ERROR, FINALLY, AFTER_EXECUTION = "ERROR", "FINALLY", "AFTER_EXECUTION"
_HANDLERS = ("errors", "finally")

Json = dict[str, Any]
InputJson = Callable[[InputSpec], Json]
TaskJson = Callable[[Task], Json]


@dataclass(frozen=True)
class Relation:
    """Kestra's Relation of an edge: its type and the branch or task-run value."""

    type: str | None = None
    value: str | None = None

    def to_json(self) -> Json:
        out: Json = {} if self.type is None else {"relationType": self.type}
        if self.value is not None:
            out["value"] = self.value
        return out


class Node:
    """Kestra's AbstractGraph: a uid, a type and the branch (error, finally) it is on."""

    kind = "AbstractGraph"

    def __init__(self, uid: str | None) -> None:
        self.raw = uid  # Kestra's `uid` field, before getUid() decorates it
        self.branch: str | None = None

    @property
    def uid(self) -> str:
        return self.raw or ""

    def rename(self, uid: str) -> None:
        self.raw = uid

    def set_branch(self, branch: str) -> None:
        self.branch = branch

    def to_json(self, tasks: TaskJson) -> Json:
        out: Json = {"uid": self.uid, "type": HIERARCHIES + self.kind}
        if self.branch is not None:
            out["branchType"] = self.branch
        return out


class _Marker(Node):
    prefix = ""

    def __init__(self) -> None:
        super().__init__(f"{self.prefix}-{new_id()}")


class Root(_Marker):
    kind, prefix = "GraphClusterRoot", "root"


class Finally(_Marker):
    kind, prefix = "GraphClusterFinally", "finally"


class AfterExecution(_Marker):
    kind, prefix = "GraphClusterAfterExecution", "after-execution"


class End(_Marker):
    kind, prefix = "GraphClusterEnd", "end"


class TaskNode(Node):
    """Kestra's GraphTask, or SubflowGraphTask for a task that starts another flow."""

    def __init__(
        self, task: Task, run: Json | None, values: list[str] | None, relation: str, *, sub: bool
    ) -> None:
        super().__init__(task.id)
        self.kind = "SubflowGraphTask" if sub else "GraphTask"
        self.task, self.run, self.values, self.relation = task, run, values, relation

    @property
    def uid(self) -> str:
        return "_".join([self.raw or "", *(self.values or [])])

    def to_json(self, tasks: TaskJson) -> Json:
        out = super().to_json(tasks)
        out["task"] = tasks(self.task)
        if self.run is not None:
            out["taskRun"] = self.run
        if self.values is not None:
            out["values"] = self.values
        out["relationType"] = self.relation
        return out


class TriggerNode(Node):
    """Kestra's GraphTrigger: the trigger as written and its context (state)."""

    kind = "GraphTrigger"

    def __init__(self, trigger_id: str, declaration: Json, context: Json | None) -> None:
        super().__init__(None)
        self.trigger_id, self.declaration, self.context = trigger_id, declaration, context

    @property
    def uid(self) -> str:
        return self.raw if self.raw is not None else self.trigger_id

    def to_json(self, tasks: TaskJson) -> Json:
        out = super().to_json(tasks)
        out["triggerDeclaration"] = self.declaration
        if self.context is not None:
            out["trigger"] = self.context
        return out


class Cluster(Node):
    """Kestra's GraphCluster: its own graph of nodes (a nested cluster's root and end
    included once an edge reaches them, as in Guava's graphs) and edges."""

    kind = "GraphCluster"

    def __init__(self, uid: str, relation: str | None = None, task: TaskNode | None = None):
        super().__init__(uid)
        self.relation, self.task_node = relation, task
        self.nodes: dict[int, Node] = {}
        self.edges: dict[tuple[int, int], tuple[Node, Node, Relation]] = {}
        self.root, self.finally_, self.after, self.end = Root(), Finally(), AfterExecution(), End()
        for marker in (self.root, self.finally_, self.after, self.end):
            self.add(marker)
        self.link(self.finally_, self.after)
        self.link(self.after, self.end)

    @property
    def uid(self) -> str:
        return "cluster_" + (self.raw or "").replace("cluster_", "")

    def add(self, node: Node, *, prefix: bool = True) -> None:
        if prefix:
            node.rename(f"{self.raw}.{node.raw if node.raw is not None else node.uid}")
        self.nodes[id(node)] = node

    def link(self, source: Node, target: Node, relation: Relation | None = None) -> None:
        self.nodes.setdefault(id(source), source)
        self.nodes.setdefault(id(target), target)
        self.edges[(id(source), id(target))] = (source, target, relation or Relation())

    def drop(self, node: Node) -> None:
        self.nodes.pop(id(node), None)
        self.edges = {k: e for k, e in self.edges.items() if node is not e[0] and node is not e[1]}

    def rename(self, uid: str) -> None:
        """A nested cluster's root and end are renamed by that cluster, once."""
        cut = len(self.raw or "")
        for node in list(self.nodes.values()):
            if not isinstance(node, Root | End) or node is self.root or node is self.end:
                node.rename(uid + (node.raw if node.raw is not None else node.uid)[cut:])
        self.raw = uid

    def set_branch(self, branch: str) -> None:
        self.branch = branch
        for node in (self.task_node, self.root, self.end):
            if node is not None:
                node.branch = branch

    def to_json(self, tasks: TaskJson) -> Json:
        out = super().to_json(tasks)
        if self.relation is not None:
            out["relationType"] = self.relation
        if self.task_node is not None:
            out["taskNode"] = self.task_node.to_json(tasks)
        out["finally"] = self.finally_.to_json(tasks)
        return out


class SubflowCluster(Cluster):
    """Kestra's SubflowGraphCluster: an expanded subflow task, the subflow's graph after it."""

    kind = "SubflowGraphCluster"

    def __init__(self, task: TaskNode) -> None:
        super().__init__(task.uid, SEQUENTIAL, task)
        self.nodes[id(task)] = task
        self.link(self.root, task)


def chart_of(task: Task) -> Chart | None:
    """How a task that holds tasks is drawn; None for a task drawn as one node."""
    if isinstance(task, Charted):
        return task.chart()
    if not isinstance(task, FlowableTask):
        return None
    held: dict[str, list[Task]] = {}
    for name, info in type(task).model_fields.items():
        value = getattr(task, name)
        found = [value] if isinstance(value, Task) else value if isinstance(value, list) else []
        held.setdefault(info.alias or name, []).extend(t for t in found if isinstance(t, Task))
    others = [t for alias, tasks in held.items() if alias not in _HANDLERS for t in tasks]
    return Chart("SEQUENTIAL", "sequential", others, errors=held.get("errors", []),
                 finally_=held.get("finally", []))  # fmt: skip


def _children(chart: Chart) -> list[Task]:
    return [
        *chart.tasks,
        *(t for tasks in chart.branches.values() for t in tasks),
        *(t for t, _ in chart.dag),
        *chart.errors,
        *chart.finally_,
    ]


def task_for_execution(task: Task, inputs: InputJson) -> Json:
    """Kestra's TaskForExecution: id and type, the child tasks of one that holds tasks,
    the flow a subflow task starts, the inputs a paused task is resumed with."""
    out: Json = {"id": task.id, "type": task.type}
    chart = chart_of(task)
    if chart is not None:
        out["tasks"] = [task_for_execution(t, inputs) for t in _children(chart)]
    elif isinstance(task, StartsFlows) and (started := task.started_flows()):
        out["subflowId"] = {"namespace": started[0][0], "flowId": started[0][1]}
    if isinstance(task, Resumable) and (specs := task.resume_inputs()):
        out["inputs"] = [inputs(spec) for spec in specs]
    return out


def for_execution(inputs: InputJson) -> TaskJson:
    """Kestra's FlowGraph.forExecution(): each node's task as its TaskForExecution."""
    return lambda task: task_for_execution(task, inputs)


def graph_json(graph: Cluster, tasks: TaskJson) -> Json:
    """Kestra's FlowGraph.of(graph): every node (clusters flattened, each task written by
    `tasks`), every edge, and each cluster with its own nodes, its parents, its start and
    its end."""
    return {
        "nodes": [node.to_json(tasks) for node in _leaves(graph)],
        "edges": [
            {"source": s.uid, "target": t.uid, "relation": r.to_json()} for s, t, r in _edges(graph)
        ],
        "clusters": [
            {
                "cluster": cluster.to_json(tasks),
                "nodes": [node.uid for node in cluster.nodes.values()],
                "parents": parents,
                "start": cluster.root.uid,
                "end": cluster.end.uid,
            }
            for cluster, parents in _clusters(graph, [])
        ],
    }


def _leaves(graph: Cluster) -> list[Node]:
    found: dict[int, Node] = {}
    for node in graph.nodes.values():
        for leaf in _leaves(node) if isinstance(node, Cluster) else [node]:
            found.setdefault(id(leaf), leaf)
    return list(found.values())


def _edges(graph: Cluster) -> Iterator[tuple[Node, Node, Relation]]:
    yield from graph.edges.values()
    for node in list(graph.nodes.values()):
        if isinstance(node, Cluster):
            yield from _edges(node)


def _clusters(graph: Cluster, parents: list[str]) -> Iterator[tuple[Cluster, list[str]]]:
    for node in graph.nodes.values():
        if isinstance(node, Cluster):
            yield node, parents
            yield from _clusters(node, [*parents, node.uid])
