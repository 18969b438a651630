"""Each task of a flow as its YAML mapping: what Kestra's API shows of a task (a flow's
FlowGraph nodes, `GET /flows/{namespace}/{id}/tasks/{taskId}`), its values as written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daemon.flows.definition import Flow, task_lists
from daemon.sdk import yamlpos


def written_tasks(flow: Flow) -> dict[str, dict[str, Any]]:
    """Each task of the flow (nested ones included) as its YAML mapping, by task id."""
    try:
        raw, _ = yamlpos.load(flow.source)
    except yamlpos.YamlProblem:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for tasks, path in task_lists(flow):
        written = _at(raw, path)
        if isinstance(written, dict):
            written = [written]
        if not isinstance(written, list) or len(written) != len(tasks):
            continue
        for task, item in zip(tasks, written, strict=True):
            if isinstance(item, dict):
                found.setdefault(task.id, dict(item))
    return found


def _at(value: Any, path: Sequence[str | int]) -> Any:
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and 0 <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value
