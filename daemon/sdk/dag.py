"""Dependency graphs of tasks (`dependsOn`, Kestra's Dag), on the standard library's graphlib."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as ids in "depends on" order (`a` depends on `c`, which depends on
    `b`, which depends on `a`: `[a, c, b]`), starting at the member declared first; None
    when there is none. Ids that `edges` does not declare are ignored."""
    graph = {node: [d for d in deps if d in edges] for node, deps in edges.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        # graphlib lists the cycle dependency first: [a, b, c, a] where b depends on a.
        members: list[str] = list(reversed(exc.args[1]))[:-1]
        order = list(edges)
        first = min(range(len(members)), key=lambda i: order.index(members[i]))
        return members[first:] + members[:first]
    return None
