"""Kestra's flow topology: which flow leads to which, and the flows one flow is linked to.

A flow leads to another when one of its tasks starts it (a Subflow: FLOW_TASK) or when a
trigger of the other watches its executions end (a Flow trigger: FLOW_TRIGGER), as
Kestra's FlowTopologyService.isChild decides it; both are capabilities the plug-ins
declare (StartsFlows, WatchesFlows), so no plug-in type is named here. `linked` is
Kestra's FlowService.findDependencies over the loaded flows (Kestra stores the links as
flows are saved; podium derives them when asked, so they are never stale), and
`topology_graph` / `namespace_graph` the FlowTopologyGraph its API answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from daemon.flows.checks import started_flows
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import WatchesFlows

Uid = tuple[str, str]
Relation = Literal["FLOW_TASK", "FLOW_TRIGGER"]
FLOW_TASK: Relation = "FLOW_TASK"
FLOW_TRIGGER: Relation = "FLOW_TRIGGER"


@dataclass(frozen=True)
class Link:
    """Kestra's FlowTopology: `source` leads to `destination`."""

    source: Uid
    destination: Uid
    relation: Relation


def relation(parent: Flow, child: Flow) -> Relation | None:
    """FlowTopologyService.isChild: how `parent` leads to `child`, if it does (a flow is
    never linked to itself)."""
    if parent.uid == child.uid:
        return None
    if child.uid in started_flows(parent):
        return FLOW_TASK
    if any(
        isinstance(trigger, WatchesFlows) and trigger.watches(*parent.uid)
        for trigger in child.triggers
    ):
        return FLOW_TRIGGER
    return None


def topology(flows: Iterable[Flow]) -> list[Link]:
    """Every link between two of `flows`, in the flows' order."""
    known = list(flows)
    return [
        Link(parent.uid, child.uid, found)
        for parent in known
        for child in known
        if (found := relation(parent, child)) is not None
    ]


def linked(
    flows: Iterable[Flow],
    namespace: str,
    flow_id: str,
    *,
    destination_only: bool = False,
    expand_all: bool = False,
) -> list[Link]:
    """FlowService.findDependencies: the links into the flow and, unless
    `destination_only`, out of it (FlowTopologyRepository.findByFlow); with `expand_all`,
    those of every flow they reach too, recursively (recursiveFlowTopology). Each link
    once, in the order first met."""
    links = topology(flows)

    def of(uid: Uid) -> list[Link]:
        return [
            link
            for link in links
            if link.destination == uid or (not destination_only and link.source == uid)
        ]

    if not expand_all:
        return of((namespace, flow_id))
    found: list[Link] = []
    walking = [(namespace, flow_id)]
    while walking:
        for link in of(walking.pop(0)):
            if link not in found:
                found.append(link)
                walking += [link.destination, link.source]
    return found


def dependencies(
    flows: Iterable[Flow],
    namespace: str,
    flow_id: str,
    *,
    destination_only: bool = False,
    expand_all: bool = False,
) -> list[Uid]:
    """The flows of `linked`, this one included when it has any link, in the order first
    met."""
    found = linked(
        flows, namespace, flow_id, destination_only=destination_only, expand_all=expand_all
    )
    nodes: dict[Uid, None] = {}
    for link in found:
        nodes.setdefault(link.source)
        nodes.setdefault(link.destination)
    return list(nodes)


def topology_graph(links: Iterable[Link], tenant: str) -> dict[str, Any]:
    """Kestra's FlowTopologyGraph of links (FlowTopologyService.graph): each flow once as a
    node (uid `tenant_namespace_id`), each link as an edge between two nodes."""
    nodes: dict[Uid, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    for link in links:
        for uid in (link.source, link.destination):
            nodes.setdefault(uid, {"uid": _uid(uid, tenant), "tenantId": tenant,
                                   "namespace": uid[0], "id": uid[1]})  # fmt: skip
        edges.append(
            {
                "source": _uid(link.source, tenant),
                "target": _uid(link.destination, tenant),
                "relation": link.relation,
            }
        )
    return {"nodes": list(nodes.values()), "edges": edges}


def namespace_graph(flows: Iterable[Flow], namespace: str, tenant: str) -> dict[str, Any]:
    """FlowTopologyService.namespaceGraph: the links touching a flow of the namespace (or
    of one under it), and a node for each flow of the namespace without any (Kestra names
    those `namespace_id`, without the tenant)."""
    known = sorted(flows, key=lambda f: f.uid)
    inside = [
        link
        for link in topology(known)
        if _under(link.source[0], namespace) or _under(link.destination[0], namespace)
    ]
    graph = topology_graph(inside, tenant)
    drawn = {(node["namespace"], node["id"]) for node in graph["nodes"]}
    for flow in known:
        if flow.namespace == namespace and flow.uid not in drawn:
            graph["nodes"].append(
                {"uid": f"{flow.namespace}_{flow.id}", "namespace": flow.namespace, "id": flow.id}
            )
    return graph


def _under(namespace: str, wanted: str) -> bool:
    return namespace == wanted or namespace.startswith(wanted + ".")


def _uid(uid: Uid, tenant: str) -> str:
    return f"{tenant}_{uid[0]}_{uid[1]}"
