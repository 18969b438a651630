"""Kestra's flow topology: which flow leads to which, and the flows one flow is linked to.

A flow leads to another when one of its tasks starts it (a Subflow: FLOW_TASK) or when a
trigger of the other watches its executions end (a Flow trigger: FLOW_TRIGGER), as
Kestra's FlowTopologyService.isChild decides it; both are capabilities the plug-ins
declare (StartsFlows, WatchesFlows), so no plug-in type is named here. `dependencies` is
Kestra's FlowService.findDependencies over the loaded flows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from daemon.flows.checks import started_flows
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import WatchesFlows

Uid = tuple[str, str]


@dataclass(frozen=True)
class Link:
    """Kestra's FlowTopology: `source` leads to `destination`."""

    source: Uid
    destination: Uid
    relation: Literal["FLOW_TASK", "FLOW_TRIGGER"]


def topology(flows: Iterable[Flow]) -> list[Link]:
    """Every link between two of `flows` (a flow is never linked to itself)."""
    known = list(flows)
    links = []
    for parent in known:
        started = started_flows(parent)
        for child in known:
            if parent.uid == child.uid:
                continue
            if child.uid in started:
                links.append(Link(parent.uid, child.uid, "FLOW_TASK"))
            elif any(
                isinstance(trigger, WatchesFlows) and trigger.watches(*parent.uid)
                for trigger in child.triggers
            ):
                links.append(Link(parent.uid, child.uid, "FLOW_TRIGGER"))
    return links


def dependencies(
    flows: Iterable[Flow],
    namespace: str,
    flow_id: str,
    *,
    destination_only: bool = False,
    expand_all: bool = False,
) -> list[Uid]:
    """The flows linked to this one, itself included when it has any link: those it leads
    to and, unless `destination_only`, those that lead to it; with `expand_all`, their
    links too, recursively (Kestra's recursiveFlowTopology). In the order first met."""
    links = topology(flows)

    def of(uid: Uid) -> list[Link]:
        return [
            link
            for link in links
            if link.source == uid or (not destination_only and link.destination == uid)
        ]

    found: list[Link] = []
    if expand_all:
        walking = [(namespace, flow_id)]
        while walking:
            for link in of(walking.pop(0)):
                if link not in found:
                    found.append(link)
                    walking += [link.destination, link.source]
    else:
        found = of((namespace, flow_id))
    nodes: dict[Uid, None] = {}
    for link in found:
        nodes.setdefault(link.source)
        nodes.setdefault(link.destination)
    return list(nodes)
