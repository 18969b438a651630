"""A flow's topology, laid out on the server so the browser only draws it.

The flow becomes nested blocks: a *lane* is one list of sibling tasks, laid out in
layers by its edges (one after the other, or by `dependsOn`); a flowable task is a
*group* box holding its lanes side by side (If's `then`/`else`, Switch's cases, one lane
per task of a Parallel) and, below them, its `errors` and `finally` lanes. Sizes are
measured bottom-up and positions handed down, so no two boxes overlap however deep the
nesting; an edge that skips layers passes through a reserved slot in each layer it
crosses, so edges never cut through a box either.

Which properties hold child tasks is read from the task's values, not from a list of
task types: the core knows no concrete flowable.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from daemon.flow import Flow
from daemon.sdk.plugin import FlowableTask, Task, Trigger

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
_HANDLERS = ("errors", "finally")

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


def flow_graph(flow: Flow) -> Graph:
    """The whole flow: triggers on top, then the tasks, then `errors`, `finally` and
    `afterExecution`."""
    graph = Graph()
    bands: list[list[_Lane]] = []
    triggers = _Lane(
        "triggers",
        "triggers",
        [_Leaf(_trigger_node(t)) for t in flow.triggers],
        [],
        show_label=False,
    )
    main = _lane("tasks", "tasks", flow.tasks, show_label=False)
    handlers = [
        _lane(name, name, tasks)
        for name, tasks in (
            ("errors", flow.errors),
            ("finally", flow.finally_),
            ("afterExecution", flow.after_execution),
        )
        if tasks
    ]
    if triggers.items:
        bands.append([triggers])
    bands.append([main])
    if handlers:
        bands.append(handlers)
    for band in bands:
        for lane in band:
            lane.measure()
    width = max(_band_width(band) for band in bands)
    y = 0.0
    for band in bands:
        x = (width - _band_width(band)) / 2
        for lane in band:
            lane.place(x, y, graph)
            x += lane.w + GAP_X
        y += max(lane.h for lane in band) + GAP_Y
    if triggers.items:
        _join(graph, triggers.sinks_at_bottom(), main.roots(), "trigger")
    for lane in handlers:
        _join(graph, main.sinks_at_bottom(), lane.roots(), lane.kind)
    graph.width = width
    graph.height = y - GAP_Y
    return graph


# -- blocks -------------------------------------------------------------------------------


class _Block:
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


class _Leaf(_Block):
    def __init__(self, node: dict[str, Any]) -> None:
        self.node = node
        self.id = node["id"]

    def measure(self) -> None:
        text = max(len(self.node["label"]), len(_short(self.node["type"])) + 2)
        self.w = min(max(text * CHAR_W + 2 * PAD, NODE_MIN_W), NODE_MAX_W)
        self.h = NODE_H

    def place(self, x: float, y: float, graph: Graph) -> None:
        self.x, self.y = x, y
        graph.nodes.append({**self.node, "x": x, "y": y, "w": self.w, "h": self.h})


class _Group(_Block):
    """A flowable task: its child lanes side by side, its handlers in a band below."""

    def __init__(self, node: dict[str, Any], bands: list[list[_Lane]]) -> None:
        self.node = node
        self.id = node["id"]
        self.bands = [band for band in bands if band]

    def measure(self) -> None:
        for band in self.bands:
            for lane in band:
                lane.measure()
        header = (len(self.node["label"]) + len(_short(self.node["type"])) + 3) * CHAR_W
        inner = max([_band_width(band) for band in self.bands] + [header])
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
            left = x + (self.w - _band_width(band)) / 2
            for lane in band:
                lane.place(left, top, graph)
                left += lane.w + GAP_X
            top += max(lane.h for lane in band) + GAP_Y


@dataclass
class _Slot:
    """One place in a layer: a block, or the passage of an edge across the layer."""

    block: _Block | None
    edge: int = -1  # for a passage: which edge
    x: float = 0
    w: float = SLOT_W
    order: float = 0

    @property
    def centre(self) -> float:
        return self.x + self.w / 2


class _Lane:
    """A list of sibling blocks in layers: each block one layer below what it follows."""

    def __init__(
        self,
        label: str,
        kind: str,
        items: list[_Block],
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
        self.layers: list[list[_Slot]] = []
        self.layer_y: list[float] = []
        self.layer_h: list[float] = []
        self.paths: list[list[_Slot]] = []  # per edge: the passages it takes

    def measure(self) -> None:
        for item in self.items:
            item.measure()
        level = _levels(len(self.items), self.edges)
        depth = max(level, default=-1) + 1
        self.layers = [[] for _ in range(depth)]
        slots = [_Slot(item) for item in self.items]
        for i, slot in enumerate(slots):
            slot.w = self.items[i].w
            self.layers[level[i]].append(slot)
        self.paths = []
        for e, (a, b, _) in enumerate(self.edges):
            passages = [_Slot(None, e) for _ in range(level[a] + 1, level[b])]
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
        ups: dict[int, list[_Slot]] = {}
        downs: dict[int, list[_Slot]] = {}
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
        ups: dict[int, list[_Slot]] = {}
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
                {"from": self.items[a].id, "to": end.id, "kind": kind, "points": _dedupe(points)}
            )

    def roots(self) -> list[_Block]:
        return (
            [slot.block for slot in self.layers[0] if slot.block is not None] if self.layers else []
        )

    def sinks_at_bottom(self) -> list[tuple[_Block, float]]:
        """The blocks of the last layer, with the lane's bottom edges leave from."""
        if not self.layers:
            return []
        bottom = self.y + self.layer_y[-1] + self.layer_h[-1]
        return [(slot.block, bottom) for slot in self.layers[-1] if slot.block is not None]


def _levels(count: int, edges: Sequence[tuple[int, int, str]]) -> list[int]:
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


def _band_width(band: Sequence[_Lane]) -> float:
    return sum(lane.w for lane in band) + GAP_X * max(len(band) - 1, 0)


def _join(
    graph: Graph, sources: list[tuple[_Block, float]], targets: list[_Block], kind: str
) -> None:
    for source, bottom in sources:
        sx = source.x + source.w / 2
        for target in targets:
            points = [(sx, source.y + source.h), (sx, bottom), (target.x + target.w / 2, target.y)]
            graph.edges.append(
                {"from": source.id, "to": target.id, "kind": kind, "points": _dedupe(points)}
            )


def _dedupe(points: list[Point]) -> list[list[float]]:
    out: list[list[float]] = []
    for px, py in points:
        if not out or out[-1] != [px, py]:
            out.append([px, py])
    return out


# -- from the flow model to blocks ------------------------------------------------------


def _lane(
    label: str,
    kind: str,
    tasks: Sequence[Task],
    *,
    show_label: bool = True,
    side_by_side: bool = False,
) -> _Lane:
    """Tasks of one list: in order, or by `dependsOn` when any of them declares it (as the
    executor runs them); `side_by_side` for the children of a task that runs them at once."""
    items = [_block(task) for task in tasks]
    index = {task.id: i for i, task in enumerate(tasks)}
    edges: list[tuple[int, int, str]] = []
    if any(task.depends_on for task in tasks):
        edges = [
            (index[dep], i, "dependsOn")
            for i, task in enumerate(tasks)
            for dep in task.depends_on
            if dep in index
        ]
    elif not side_by_side:
        edges = [(i, i + 1, "next") for i in range(len(tasks) - 1)]
    return _Lane(label, kind, items, edges, show_label=show_label)


def _dag_lane(label: str, entries: Sequence[BaseModel]) -> _Lane:
    """Entries that pair a task with the ids it depends on (Kestra's Dag)."""
    tasks = [_entry_task(entry) for entry in entries]
    index = {task.id: i for i, task in enumerate(tasks)}
    edges = [
        (index[dep], i, "dependsOn")
        for i, entry in enumerate(entries)
        for dep in getattr(entry, "depends_on", None) or []
        if dep in index
    ]
    return _Lane(label, "tasks", [_block(task) for task in tasks], edges, show_label=False)


def _block(task: Task) -> _Block:
    node = {
        "id": task.id,
        "kind": "task",
        "label": task.id,
        "type": task.type,
        "disabled": task.disabled,
    }
    if not isinstance(task, FlowableTask):
        return _Leaf(node)
    node["kind"] = "group"
    main: list[_Lane] = []
    handlers: list[_Lane] = []
    parallel = "concurrent" in type(task).model_fields
    for name, info in type(task).model_fields.items():
        alias = info.alias or name
        value = getattr(task, name)
        if alias in _HANDLERS:
            if value:
                handlers.append(_lane(alias, alias, value))
            continue
        main += _lanes_of(alias, value, parallel)
    if len(main) == 1 and main[0].label == "tasks":
        main[0].show_label = False
    return _Group(node, [main, handlers])


def _lanes_of(alias: str, value: Any, parallel: bool) -> list[_Lane]:
    """The lanes one property of a flowable holds (none if it holds no tasks)."""
    if isinstance(value, Task):
        return [_lane(alias, "branch", [value])]
    if isinstance(value, list) and value and all(isinstance(v, Task) for v in value):
        return [_lane(alias, "branch", value, side_by_side=parallel)]
    if isinstance(value, list) and value and all(_entry_task(v) is not None for v in value):
        return [_dag_lane(alias, value)]
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, list) and all(isinstance(t, Task) for t in v) for v in value.values())
    ):
        return [_lane(str(key), "branch", tasks) for key, tasks in value.items() if tasks]
    return []


def _entry_task(value: Any) -> Any:
    if not isinstance(value, BaseModel) or isinstance(value, Task):
        return None
    return next(
        (
            getattr(value, n)
            for n in type(value).model_fields
            if isinstance(getattr(value, n), Task)
        ),
        None,
    )


def _trigger_node(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": f"trigger:{trigger.id}",
        "kind": "trigger",
        "label": trigger.id,
        "type": trigger.type,
        "disabled": trigger.disabled,
    }


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]
