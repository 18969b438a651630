"""Kestra's FlowGraph of a flow, as its topology view draws it: the walk of Kestra's
GraphUtils and GraphService (kestra-io/kestra, core/.../utils/GraphUtils.java,
services/GraphService.java) over podium's flow model.

A task that holds tasks is a cluster drawn as its Chart says (daemon/sdk/capabilities.py),
so no flowable is named here. With an execution, each task has one node per task run (none
when its runs are under another parent), linked by the task runs' values; the nodes are
those of daemon/api/flow_graph_model.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from daemon.api.flow_graph_model import (
    AFTER_EXECUTION,
    CHOICE,
    DYNAMIC,
    ERROR,
    FINALLY,
    PARALLEL,
    SEQUENTIAL,
    Cluster,
    Json,
    Node,
    Relation,
    TaskNode,
    TriggerNode,
    chart_of,
)
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import StartsFlows
from daemon.sdk.plugin import Task


def _value(run: Json) -> str | None:
    """A task run's `value` (Kestra's TaskRun.value, a text)."""
    value = run.get("value")
    return None if value is None else str(value)


def _entry(node: Node) -> Node:
    return node.root if isinstance(node, Cluster) else node


def _exit(node: Node) -> Node:
    return node.end if isinstance(node, Cluster) else node


def _without(graph: Cluster, marker: Node, then: Node) -> None:
    """Kestra's removeFinally / removeAfterExecution: what led to the marker leads on."""
    for source, target, relation in list(graph.edges.values()):
        if target is marker:
            graph.link(source, then, relation)
    graph.drop(marker)


class Walker:
    """GraphUtils' walk of a flow, with the task runs of one execution (or none)."""

    def __init__(self, execution: Mapping[str, Any] | None = None) -> None:
        runs: list[Json] = list((execution or {}).get("taskRunList") or [])
        self._by_id = {run["id"]: run for run in runs}
        self._by_task: dict[str, list[Json]] = {}
        for run in runs:
            self._by_task.setdefault(run["taskId"], []).append(run)

    def flow(
        self,
        flow: Flow,
        declarations: Sequence[Json],
        contexts: Mapping[str, Json],
        base: Cluster | None = None,
    ) -> Cluster:
        """The flow's graph (in `base`, an expanded subflow's cluster): its triggers, then
        its tasks, errors, finally and afterExecution."""
        graph = base if base is not None else Cluster("root")
        if flow.triggers:
            triggers = Cluster("Triggers")
            graph.add(triggers)
            for i, trigger in enumerate(flow.triggers):
                declared = declarations[i] if i < len(declarations) else {}
                node = TriggerNode(trigger.id, declared, contexts.get(trigger.id))
                triggers.add(node)
                triggers.link(triggers.root, node)
                triggers.link(node, triggers.end)
            _without(triggers, triggers.finally_, triggers.after)
            _without(triggers, triggers.after, triggers.end)
            graph.link(triggers.end, graph.root)
        self._iterate(graph, flow.tasks, flow.errors, flow.finally_, flow.after_execution,
                      None, SEQUENTIAL)  # fmt: skip
        return graph

    def _iterate(
        self,
        graph: Cluster,
        tasks: Sequence[Task],
        errors: Sequence[Task],
        finally_: Sequence[Task],
        after: Sequence[Task],
        parent: Json | None,
        relation: str,
    ) -> None:
        if any(task.depends_on for task in tasks):  # podium's dependsOn: run as a DAG
            self._fill_dag(graph, [(task, task.depends_on) for task in tasks], parent)
        else:
            self._fill(graph, tasks, relation, parent, None)
        if errors:
            self._fill(graph, errors, ERROR, parent, None)
        if finally_:
            self._fill(graph, finally_, FINALLY, parent, None)
        else:
            _without(graph, graph.finally_, graph.after)
        if after:
            self._fill(graph, after, AFTER_EXECUTION, parent, None)
        else:
            _without(graph, graph.after, graph.end)

    def _runs(self, task: Task, parent: Json | None) -> list[Json | None]:
        """Kestra's findTaskRuns: the task's runs under `parent`; one node without a run
        when the task has none at all."""
        runs = self._by_task.get(task.id)
        if not runs:
            return [None]
        return [r for r in runs if parent is None or r.get("parentTaskRunId") == parent["id"]]

    def _values(self, run: Json | None) -> list[str] | None:
        """Kestra's findParentsValues(run, true): the values of the runs above it and its
        own, outermost first."""
        if run is None:
            return None
        chain = [run]
        while (above := self._by_id.get(chain[-1].get("parentTaskRunId") or "")) is not None:
            chain.append(above)
        return [v for r in reversed(chain) if (v := _value(r)) is not None]

    def _node(self, task: Task, run: Json | None, relation: str, *, sub: bool = True) -> Node:
        chart = chart_of(task)
        values = self._values(run)
        if chart is None:
            return TaskNode(task, run, values, relation, sub=sub and isinstance(task, StartsFlows))
        head = TaskNode(task, run, values, chart.relation, sub=False)
        cluster = Cluster(task.id, chart.relation, head)
        cluster.add(head, prefix=False)
        cluster.link(cluster.root, head)
        if chart.layout == "choice":
            for name, tasks in chart.branches.items():
                self._fill(cluster, tasks, SEQUENTIAL, run, name)
            self._iterate(cluster, [], chart.errors, chart.finally_, [], run, SEQUENTIAL)
        elif chart.layout == "dag":
            self._fill_dag(cluster, chart.dag, run)
            self._iterate(cluster, [], chart.errors, chart.finally_, [], run, SEQUENTIAL)
        else:
            kind = PARALLEL if chart.layout == "parallel" else SEQUENTIAL
            self._iterate(cluster, chart.tasks, chart.errors, chart.finally_, [], run, kind)
        return cluster

    def _fill(
        self,
        graph: Cluster,
        tasks: Sequence[Task],
        relation: str,
        parent: Json | None,
        value: str | None,
    ) -> None:
        """Kestra's fillGraph: each task after the previous one (or beside it, PARALLEL),
        the last (or every one, PARALLEL and CHOICE) leading to the next stage."""
        previous: Node = graph.task_node or graph.root
        if relation == FINALLY:
            previous = graph.finally_
            graph.edges.pop((id(graph.finally_), id(graph.after)), None)
        elif relation == AFTER_EXECUTION:
            previous = graph.after
            graph.edges.pop((id(graph.after), id(graph.end)), None)
        follow = {AFTER_EXECUTION: graph.end, FINALLY: graph.after}.get(relation, graph.finally_)
        fans_out = relation in (PARALLEL, CHOICE)
        first = True
        for index, task in enumerate(tasks):
            for run in self._runs(task, parent):
                kind = graph.relation
                if relation == ERROR or (
                    not first and relation != PARALLEL and graph.relation != DYNAMIC
                ):
                    kind = relation
                edge = Relation(kind, value if run is None else _value(run))
                current = self._node(task, run, relation)
                graph.add(current)
                if relation in (ERROR, FINALLY, AFTER_EXECUTION):
                    current.set_branch(relation)
                if relation == ERROR and first:
                    previous = graph.root
                graph.link(_exit(previous), _entry(current), edge)
                if relation != PARALLEL:
                    previous = current
                if fans_out or index == len(tasks) - 1:
                    graph.link(_exit(current), follow)
                first = False

    def _fill_dag(
        self, graph: Cluster, entries: Sequence[tuple[Task, Sequence[str]]], parent: Json | None
    ) -> None:
        """Kestra's fillGraphDag: a task once those it depends on are placed, linked from
        them (from the flowable itself when it depends on none), and to the next stage when
        no task depends on it."""
        needed = {dependency for _, depends in entries for dependency in depends}
        start: Node = graph.task_node or graph.root
        placed: dict[str, Node] = {}
        done: set[str] = set()
        while len(done) < len(entries):
            ready = [(t, d) for t, d in entries if t.id not in done and set(d) <= done]
            if not ready:
                return  # a dependency on no sibling: refused when the flow loads
            for task, depends in ready:
                for run in self._runs(task, parent):
                    edge = Relation(PARALLEL, None if run is None else _value(run))
                    current = self._node(task, run, SEQUENTIAL, sub=False)
                    graph.add(current)
                    sources = [placed[d] for d in depends if d in placed] if depends else [start]
                    for source in sources:
                        graph.link(_exit(source), _entry(current), edge)
                    if task.id not in needed:
                        graph.link(_exit(current), graph.finally_)
                    placed.setdefault(task.id, current)
                done.add(task.id)


def subflow_nodes(graph: Cluster, wanted: Sequence[str]) -> Iterator[tuple[Cluster, TaskNode]]:
    """(cluster, node) for each subflow task node whose uid is asked to be expanded."""
    for node in list(graph.nodes.values()):
        if isinstance(node, Cluster):
            yield from subflow_nodes(node, wanted)
        elif isinstance(node, TaskNode) and node.kind == "SubflowGraphTask" and node.uid in wanted:
            yield graph, node


async def expand(
    graph: Cluster, wanted: Sequence[str], build: Callable[[TaskNode], Awaitable[Cluster]]
) -> None:
    """GraphService's TaskToClusterReplacer: each subflow node asked for gives way to the
    cluster `build` makes of its subflow; edges to and from it go to the cluster's ends."""
    for parent, node in list(subflow_nodes(graph, wanted)):
        cluster = await build(node)
        parent.add(cluster, prefix=False)
        for source, target, relation in list(parent.edges.values()):
            if source is node:
                parent.link(cluster.end, target, relation)
            elif target is node:
                parent.link(source, cluster.root, relation)
        parent.drop(node)
        if node.branch is not None:
            cluster.set_branch(node.branch)
