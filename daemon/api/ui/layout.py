"""Where the boxes of a flow's topology go: lanes laid out in layers by their edges,
groups measured bottom-up and placed top-down, edges routed through reserved slots so
that they never cut through a box (see topology.py for what the blocks are)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

NODE_H = 48
NODE_MIN_W = 132
NODE_MAX_W = 240
CHAR_W = 7.2  # average width of a 12px sans-serif character
GAP_X = 24
GAP_Y = 40
PAD = 12
HEADER_H = 30
LABEL_H = 20
SLOT_W = 10  # the room an edge crossing a layer takes in it
_SWEEPS = 4

Point = tuple[float, float]


@dataclass
class Graph:
    """What the browser draws: boxes (tasks, triggers, groups), lane frames and edges."""

    width: float = 0
    height: float = 0
    nodes: list[dict[str, Any]] = field(default_factory=list)
    lanes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "nodes": self.nodes,
            "lanes": self.lanes,
            "edges": self.edges,
        }


class Block:
    """Something a lane lays out: a task box or a group box. Measured, then placed."""

    w: float = 0
    h: float = 0
    x: float = 0
    y: float = 0
    id: str = ""

    def measure(self) -> None:
        raise NotImplementedError

    def place(self, x: float, y: float, graph: Graph) -> None:
        raise NotImplementedError


class Leaf(Block):
    def __init__(self, node: dict[str, Any]) -> None:
        self.node = node
        self.id = node["id"]

    def measure(self) -> None:
        text = max(len(self.node["label"]), len(short_type(self.node["type"])) + 2)
        self.w = min(max(text * CHAR_W + 2 * PAD, NODE_MIN_W), NODE_MAX_W)
        self.h = NODE_H

    def place(self, x: float, y: float, graph: Graph) -> None:
        self.x, self.y = x, y
        graph.nodes.append({**self.node, "x": x, "y": y, "w": self.w, "h": self.h})


class Group(Block):
    """A flowable task: its child lanes side by side, its handlers in a band below."""

    def __init__(self, node: dict[str, Any], bands: list[list[Lane]]) -> None:
        self.node = node
        self.id = node["id"]
        self.bands = [band for band in bands if band]

    def measure(self) -> None:
        for band in self.bands:
            for lane in band:
                lane.measure()
        header = (len(self.node["label"]) + len(short_type(self.node["type"])) + 3) * CHAR_W
        inner = max([band_width(band) for band in self.bands] + [header])
        self.w = inner + 2 * PAD
        self.h = (
            HEADER_H
            + PAD
            + sum(max(lane.h for lane in band) for band in self.bands)
            + GAP_Y * max(len(self.bands) - 1, 0)
        )

    def place(self, x: float, y: float, graph: Graph) -> None:
        self.x, self.y = x, y
        graph.nodes.append({**self.node, "x": x, "y": y, "w": self.w, "h": self.h})
        top = y + HEADER_H
        for band in self.bands:
            left = x + (self.w - band_width(band)) / 2
            for lane in band:
                lane.place(left, top, graph)
                left += lane.w + GAP_X
            top += max(lane.h for lane in band) + GAP_Y


@dataclass
class Slot:
    """One place in a layer: a block, or the passage of an edge across the layer."""

    block: Block | None
    edge: int = -1  # for a passage: which edge
    x: float = 0
    w: float = SLOT_W
    order: float = 0

    @property
    def centre(self) -> float:
        return self.x + self.w / 2


class Lane:
    """A list of sibling blocks in layers: each block one layer below what it follows."""

    def __init__(
        self,
        label: str,
        kind: str,
        items: list[Block],
        edges: list[tuple[int, int, str]],
        *,
        show_label: bool = True,
    ) -> None:
        self.label = label
        self.kind = kind
        self.items = items
        self.edges = edges
        self.show_label = show_label
        self.w = 0.0
        self.h = 0.0
        self.x = 0.0
        self.y = 0.0
        self.layers: list[list[Slot]] = []
        self.layer_y: list[float] = []
        self.layer_h: list[float] = []
        self.paths: list[list[Slot]] = []  # per edge: the passages it takes

    def measure(self) -> None:
        for item in self.items:
            item.measure()
        level = levels(len(self.items), self.edges)
        depth = max(level, default=-1) + 1
        self.layers = [[] for _ in range(depth)]
        slots = [Slot(item) for item in self.items]
        for i, slot in enumerate(slots):
            slot.w = self.items[i].w
            self.layers[level[i]].append(slot)
        self.paths = []
        for e, (a, b, _) in enumerate(self.edges):
            passages = [Slot(None, e) for _ in range(level[a] + 1, level[b])]
            for offset, passage in enumerate(passages):
                self.layers[level[a] + 1 + offset].append(passage)
            self.paths.append([slots[a], *passages, slots[b]])
        self._order()
        self._spread()
        top = LABEL_H if self.show_label else 0.0
        self.layer_y, self.layer_h = [], []
        for layer in self.layers:
            height = max((s.block.h for s in layer if s.block is not None), default=0.0)
            self.layer_y.append(top)
            self.layer_h.append(height)
            top += height + GAP_Y
        right = max((s.x + s.w for layer in self.layers for s in layer), default=0.0)
        self.w = max(right, len(self.label) * CHAR_W + PAD if self.show_label else 0.0)
        self.h = top - GAP_Y if self.layers else float(LABEL_H)

    def _order(self) -> None:
        """Barycentre sweeps, down then up, to cut edge crossings between layers."""
        ups: dict[int, list[Slot]] = {}
        downs: dict[int, list[Slot]] = {}
        for path in self.paths:
            for a, b in itertools.pairwise(path):
                ups.setdefault(id(b), []).append(a)
                downs.setdefault(id(a), []).append(b)
        for layer in self.layers:
            for i, slot in enumerate(layer):
                slot.order = i
        for sweep in range(_SWEEPS):
            layers = self.layers[1:] if sweep % 2 == 0 else list(reversed(self.layers[:-1]))
            links = ups if sweep % 2 == 0 else downs
            for layer in layers:
                for slot in layer:
                    near = links.get(id(slot))
                    if near:
                        slot.order = sum(n.order for n in near) / len(near)
                layer.sort(key=lambda s: s.order)
                for i, slot in enumerate(layer):
                    slot.order = i

    def _spread(self) -> None:
        """x per slot: under the mean of what leads into it, pushed apart to never overlap."""
        ups: dict[int, list[Slot]] = {}
        for path in self.paths:
            for a, b in itertools.pairwise(path):
                ups.setdefault(id(b), []).append(a)
        for index, layer in enumerate(self.layers):
            wanted = []
            for slot in layer:
                near = ups.get(id(slot)) if index else None
                wanted.append(
                    sum(n.centre for n in near) / len(near) - slot.w / 2 if near else None
                )
            edge = None
            for slot, want in zip(layer, wanted, strict=True):
                slot.x = want if want is not None else (edge if edge is not None else 0.0)
                if edge is not None and slot.x < edge:
                    slot.x = edge
                edge = slot.x + slot.w + GAP_X
            moved = [
                slot.x - want for slot, want in zip(layer, wanted, strict=True) if want is not None
            ]
            if moved:
                shift = sum(moved) / len(moved)
                for slot in layer:
                    slot.x -= shift
        left = min((s.x for layer in self.layers for s in layer), default=0.0)
        for layer in self.layers:
            for slot in layer:
                slot.x -= left

    def place(self, x: float, y: float, graph: Graph) -> None:
        self.x, self.y = x, y
        if self.show_label:
            graph.lanes.append(
                {"label": self.label, "kind": self.kind, "x": x, "y": y, "w": self.w, "h": self.h}
            )
        for index, layer in enumerate(self.layers):
            for slot in layer:
                if slot.block is not None:
                    slot.block.place(x + slot.x, y + self.layer_y[index], graph)
        level = {id(s): i for i, layer in enumerate(self.layers) for s in layer}
        for (a, b, kind), path in zip(self.edges, self.paths, strict=True):
            points: list[Point] = []
            for slot in path[:-1]:
                i = level[id(slot)]
                bottom = y + self.layer_y[i] + self.layer_h[i]
                start = (
                    slot.block.y + slot.block.h if slot.block is not None else y + self.layer_y[i]
                )
                points += [(x + slot.centre, start), (x + slot.centre, bottom)]
            end = self.items[b]
            points.append((end.x + end.w / 2, end.y))
            graph.edges.append(
                {"from": self.items[a].id, "to": end.id, "kind": kind, "points": dedupe(points)}
            )

    def roots(self) -> list[Block]:
        return (
            [slot.block for slot in self.layers[0] if slot.block is not None] if self.layers else []
        )

    def sinks_at_bottom(self) -> list[tuple[Block, float]]:
        """The blocks of the last layer, with the lane's bottom edges leave from."""
        if not self.layers:
            return []
        bottom = self.y + self.layer_y[-1] + self.layer_h[-1]
        return [(slot.block, bottom) for slot in self.layers[-1] if slot.block is not None]


def levels(count: int, edges: Sequence[tuple[int, int, str]]) -> list[int]:
    """Longest path from a root, so every edge points at least one layer down."""
    ins: list[list[int]] = [[] for _ in range(count)]
    for a, b, _ in edges:
        ins[b].append(a)
    level = [-1] * count

    def depth(i: int, seen: frozenset[int]) -> int:
        if level[i] < 0:
            preds = [p for p in ins[i] if p not in seen]  # a cycle never loads; stay finite
            level[i] = 1 + max((depth(p, seen | {i}) for p in preds), default=-1)
        return level[i]

    for i in range(count):
        depth(i, frozenset())
    return level


def band_width(band: Sequence[Lane]) -> float:
    return sum(lane.w for lane in band) + GAP_X * max(len(band) - 1, 0)


def join_points(
    graph: Graph, sources: list[tuple[Block, float]], targets: list[Block], kind: str
) -> None:
    for source, bottom in sources:
        sx = source.x + source.w / 2
        for target in targets:
            points = [(sx, source.y + source.h), (sx, bottom), (target.x + target.w / 2, target.y)]
            graph.edges.append(
                {"from": source.id, "to": target.id, "kind": kind, "points": dedupe(points)}
            )


def dedupe(points: list[Point]) -> list[list[float]]:
    out: list[list[float]] = []
    for px, py in points:
        if not out or out[-1] != [px, py]:
            out.append([px, py])
    return out


# -- from the flow model to blocks ------------------------------------------------------


def short_type(type_name: str) -> str:
    """A type's last segment, as a box's header shows it."""
    return type_name.rsplit(".", 1)[-1]
