"""What expressions see while an execution runs: Kestra's variables (`flow`, `execution`,
`inputs`, `vars`, `outputs`, `trigger`, `taskrun`, `parent`...), and where a task run sits
in the task tree (`Scope`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.flows.definition import Flow
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.plugin import Task


@dataclass(frozen=True)
class Scope:
    """Where a task run sits: its parent task run and the ForEach values above it."""

    parent: TaskRun | None = None
    values: tuple[str, ...] = ()
    value: str | None = None
    iteration: int | None = None
    parents: tuple[dict[str, Any], ...] = ()
    # The working directory its tasks share (children of a WorkingDirectory), else None.
    working_dir: str | None = None

    def inside(self, parent: TaskRun) -> Scope:
        """The scope of a flowable's errors/finally tasks: under it, same values."""
        return Scope(
            parent, self.values, self.value, self.iteration, self.parents, self.working_dir
        )


def set_output(
    outputs: dict[str, Any], task_id: str, values: Sequence[str], task_outputs: dict[str, Any]
) -> None:
    """`outputs.<task>` (or `outputs.<task>.<value>...` inside ForEach)."""
    if not values:
        outputs[task_id] = task_outputs
        return
    node = outputs.setdefault(task_id, {})
    for value in values[:-1]:
        node = node.setdefault(value, {})
    node[values[-1]] = task_outputs


def execution_variables(
    flow: Flow, execution: Execution, outputs: dict[str, Any], envs: Mapping[str, str]
) -> dict[str, Any]:
    """What every expression of the execution sees."""
    ex = execution
    variables: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": ex.flow_revision},
        "execution": {
            "id": ex.id,
            "startDate": ex.state.start_iso,
            "state": ex.state.current.value,
            "originalId": ex.id,
        },
        "inputs": ex.inputs,
        "vars": flow.variables if ex.variables is None else ex.variables,
        "outputs": outputs,
        "labels": ex.labels,
        "envs": envs,
    }
    if ex.trigger is not None:
        variables["trigger"] = ex.trigger.get("variables") or {}
    return variables


def task_variables(
    base: dict[str, Any], task: Task, task_run: TaskRun, scope: Scope, working_dir: str
) -> dict[str, Any]:
    """`base` plus what one task run adds: `task`, `taskrun`, `workingDir`, `parent(s)`."""
    variables = dict(base)
    variables["task"] = {"id": task.id, "type": task.type}
    variables["taskrun"] = {
        "id": task_run.id,
        "startDate": task_run.state.start_iso,
        "attemptsCount": len(task_run.attempts),
        "value": scope.value,
        "iteration": scope.iteration,
        "parentId": task_run.parent_task_run_id,
    }
    variables["workingDir"] = working_dir
    if scope.parents:
        variables["parent"] = scope.parents[0]
        variables["parents"] = list(scope.parents)
    return variables


def value_text(value: Any) -> str:
    """A ForEach value as `taskrun.value` shows it: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)
