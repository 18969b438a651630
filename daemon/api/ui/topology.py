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

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from daemon.api.ui.layout import (
    GAP_X,
    GAP_Y,
    Block,
    Graph,
    Group,
    Lane,
    Leaf,
    band_width,
    join_points,
)
from daemon.flows.definition import Flow
from daemon.sdk.plugin import FlowableTask, Task, Trigger

_HANDLERS = ("errors", "finally")


def flow_graph(flow: Flow) -> Graph:
    """The whole flow: triggers on top, then the tasks, then `errors`, `finally` and
    `afterExecution`."""
    graph = Graph()
    bands: list[list[Lane]] = []
    triggers = Lane(
        "triggers",
        "triggers",
        [Leaf(_trigger_node(t)) for t in flow.triggers],
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
    width = max(band_width(band) for band in bands)
    y = 0.0
    for band in bands:
        x = (width - band_width(band)) / 2
        for lane in band:
            lane.place(x, y, graph)
            x += lane.w + GAP_X
        y += max(lane.h for lane in band) + GAP_Y
    if triggers.items:
        join_points(graph, triggers.sinks_at_bottom(), main.roots(), "trigger")
    for lane in handlers:
        join_points(graph, main.sinks_at_bottom(), lane.roots(), lane.kind)
    graph.width = width
    graph.height = y - GAP_Y
    return graph


# -- blocks -------------------------------------------------------------------------------


def _lane(
    label: str,
    kind: str,
    tasks: Sequence[Task],
    *,
    show_label: bool = True,
    side_by_side: bool = False,
) -> Lane:
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
    return Lane(label, kind, items, edges, show_label=show_label)


def _dag_lane(label: str, entries: Sequence[BaseModel]) -> Lane:
    """Entries that pair a task with the ids it depends on (Kestra's Dag)."""
    tasks = [_entry_task(entry) for entry in entries]
    index = {task.id: i for i, task in enumerate(tasks)}
    edges = [
        (index[dep], i, "dependsOn")
        for i, entry in enumerate(entries)
        for dep in getattr(entry, "depends_on", None) or []
        if dep in index
    ]
    return Lane(label, "tasks", [_block(task) for task in tasks], edges, show_label=False)


def _block(task: Task) -> Block:
    node = {
        "id": task.id,
        "kind": "task",
        "label": task.id,
        "type": task.type,
        "disabled": task.disabled,
    }
    if not isinstance(task, FlowableTask):
        return Leaf(node)
    node["kind"] = "group"
    main: list[Lane] = []
    handlers: list[Lane] = []
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
    return Group(node, [main, handlers])


def _lanes_of(alias: str, value: Any, parallel: bool) -> list[Lane]:
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
