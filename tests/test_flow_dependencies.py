"""Kestra's flow dependencies (daemon/flows/dependencies.py): FlowTopologyService.isChild
(a task that starts the flow: FLOW_TASK; a Flow trigger that follows it: FLOW_TRIGGER),
FlowService.findDependencies (`destinationOnly`, `expandAll`) and
FlowTopologyService.namespaceGraph, checked as FlowControllerTest.dependencies and
shouldIncludeUpstreamDependencies check them; every answer is validated by kestrapy's
FlowTopologyGraph model.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from kestrapy.models.flow_topology_graph import FlowTopologyGraph

from daemon.flows.definition import Flow
from daemon.flows.dependencies import (
    FLOW_TASK,
    FLOW_TRIGGER,
    Uid,
    linked,
    namespace_graph,
    relation,
    topology_graph,
)
from daemon.flows.loader import load_flow

NS = "io.kestra.tests"
LOG = "  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"


def plain(flow_id: str, namespace: str = NS, extra: str = "") -> Flow:
    return load_flow(f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{LOG}{extra}")


def calling(flow_id: str, *children: str, namespace: str = NS) -> Flow:
    """A flow whose Subflow tasks start `children` (FlowRelation.FLOW_TASK)."""
    tasks = "".join(
        f"  - id: call_{c.replace('-', '_')}\n    type: io.kestra.plugin.core.flow.Subflow\n"
        f"    namespace: {NS}\n    flowId: {c}\n"
        for c in children
    )
    return load_flow(f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}")


def following(flow_id: str, trigger: str, namespace: str = NS) -> Flow:
    """A flow with one Flow trigger whose body is `trigger` (indented 4)."""
    return load_flow(
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{LOG}triggers:\n"
        f"  - id: upstream\n    type: io.kestra.plugin.core.trigger.Flow\n{trigger}"
    )


def flow_dependencies(flows: list[Flow], uid: Uid, **flags: bool) -> dict[str, Any]:
    """What `GET /flows/{namespace}/{id}/dependencies` answers (tenant `main`)."""
    return topology_graph(linked(flows, *uid, **flags), "main")


def namespace_dependencies(flows: list[Flow], namespace: str) -> dict[str, Any]:
    """What `GET /namespaces/{namespace}/dependencies` answers (tenant `main`)."""
    return namespace_graph(flows, namespace, "main")


def topology(found: dict[str, Any]) -> set[tuple[str, str, str]]:
    FlowTopologyGraph.model_validate(found)
    ids = {n["uid"]: n["id"] for n in found["nodes"]}
    return {(ids[e["source"]], ids[e["target"]], e["relation"]) for e in found["edges"]}


def test_a_subflow_task_makes_a_flow_task_dependency() -> None:
    parent, child = calling("parent", "child"), plain("child")
    assert relation(parent, child) == FLOW_TASK
    assert relation(child, parent) is None
    assert relation(parent, parent) is None


def test_a_flow_trigger_follows_the_flows_its_conditions_name() -> None:
    """isTriggerChild: conditions naming flows (ExecutionFlow, ExecutionNamespace) must
    all name the parent; a filter on the run (ExecutionStatus) is taken as met."""
    by_flow = following(
        "child",
        "    conditions:\n"
        "      - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
        f"        namespace: {NS}\n        flowId: parent\n"
        "      - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
        "        in: [SUCCESS]\n",
    )
    assert relation(plain("parent"), by_flow) == FLOW_TRIGGER
    assert relation(plain("other"), by_flow) is None
    by_prefix = following(
        "child",
        "    conditions:\n"
        "      - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
        "        namespace: company\n        comparison: PREFIX\n",
    )
    assert relation(plain("x", "company.team"), by_prefix) == FLOW_TRIGGER
    assert relation(plain("x", "acme"), by_prefix) is None


def test_preconditions_and_depends_on_name_their_upstream_flows() -> None:
    """validatePreconditions: an upstream flow matches and every `where` on the flow id or
    namespace holds; Kestra 2.0's dependsOn: one dependency names the flow."""
    pre = following(
        "child",
        "    preconditions:\n      id: pre\n      flows:\n"
        f"        - namespace: {NS}\n          flowId: parent\n          states: [SUCCESS]\n"
        "      where:\n        - id: ns\n          filters:\n"
        "            - field: NAMESPACE\n              type: STARTS_WITH\n"
        "              value: io\n",
    )
    assert relation(plain("parent"), pre) == FLOW_TRIGGER
    assert relation(plain("other"), pre) is None
    depends = following(
        "child",
        f"    dependsOn:\n      - namespace: {NS}\n        flowId: a\n"
        f"      - namespace: {NS}\n        flowId: b\n",
    )
    assert relation(plain("b"), depends) == FLOW_TRIGGER
    assert relation(plain("c"), depends) is None


def test_a_flow_trigger_with_nothing_to_filter_follows_every_flow() -> None:
    """As Kestra warns ("triggered for EVERY execution of EVERY flow"), it depends on all."""
    catch_all = following("child", "    states: [SUCCESS]\n")
    assert relation(plain("anything", "any.where"), catch_all) == FLOW_TRIGGER


def test_dependencies_of_a_chain_direct_and_expanded() -> None:
    """FlowControllerTest.dependencies: a->b->c->d->e; flow-a alone shows a->b, with
    `expandAll` the whole chain."""
    chain = ["flow-a", "flow-b", "flow-c", "flow-d", "flow-e"]
    flows = [calling(src, dst) for src, dst in pairwise(chain)]
    flows.append(plain("flow-e"))
    direct = flow_dependencies(flows, (NS, "flow-a"))
    assert topology(direct) == {("flow-a", "flow-b", FLOW_TASK)}
    assert [n["id"] for n in direct["nodes"]] == ["flow-a", "flow-b"]
    assert direct["nodes"][0] == {
        "uid": f"main_{NS}_flow-a",
        "tenantId": "main",
        "namespace": NS,
        "id": "flow-a",
    }
    expanded = flow_dependencies(flows, (NS, "flow-a"), expand_all=True)
    assert topology(expanded) == {(a, b, FLOW_TASK) for a, b in pairwise(chain)}
    assert len(expanded["nodes"]) == 5


def test_upstream_flows_are_included_unless_destination_only() -> None:
    """shouldIncludeUpstreamDependencies: every flow of the connected graph is reached from
    any of them with `expandAll`; `destinationOnly` keeps the edges into the flow."""
    flows = [
        calling("flow-a", "flow-b", "flow-c"),
        calling("flow-c", "flow-d"),
        calling("flow-b", "flow-e"),
        plain("flow-d"),
        plain("flow-e"),
    ]
    for name in ("flow-a", "flow-b", "flow-c", "flow-d", "flow-e"):
        found = flow_dependencies(flows, (NS, name), expand_all=True)
        assert (len(found["nodes"]), len(found["edges"])) == (5, 4), name
    assert topology(flow_dependencies(flows, (NS, "flow-c"), destination_only=True)) == {
        ("flow-a", "flow-c", FLOW_TASK)
    }
    assert topology(flow_dependencies(flows, (NS, "flow-c"))) == {
        ("flow-a", "flow-c", FLOW_TASK),
        ("flow-c", "flow-d", FLOW_TASK),
    }
    assert flow_dependencies(flows, (NS, "nope")) == {"nodes": [], "edges": []}


def test_a_namespace_graph_adds_its_flows_without_edges() -> None:
    """namespaceGraph: the edges touching the namespace (or one under it), and the
    namespace's other flows as nodes of their own, named `namespace_id`."""
    flows = [
        calling("parent", "child", namespace=NS),
        plain("child"),
        plain("alone"),
        plain("elsewhere", "acme"),
    ]
    found = namespace_dependencies(flows, NS)
    assert topology(found) == {("parent", "child", FLOW_TASK)}
    assert {n["uid"] for n in found["nodes"]} == {
        f"main_{NS}_parent",
        f"main_{NS}_child",
        f"{NS}_alone",
    }
    assert namespace_dependencies(flows, "nothing.here") == {"nodes": [], "edges": []}
