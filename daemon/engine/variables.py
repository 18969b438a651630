"""What expressions see while an execution runs: Kestra's variables (`flow`, `execution`,
`inputs`, `vars`, `outputs`, `trigger`, `taskrun`, `parent`...), and where a task run sits
in the task tree (`Scope`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
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
    # Inside an `errors`/`finally` list (or what runs after the execution's tasks): these
    # still run once an Approval has ended the execution.
    handling: bool = False

    def inside(self, parent: TaskRun) -> Scope:
        """The scope of a flowable's errors/finally tasks: under it, same values."""
        return Scope(
            parent, self.values, self.value, self.iteration, self.parents, self.working_dir, True
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
    flow: Flow,
    execution: Execution,
    outputs: dict[str, Any],
    envs: Mapping[str, str],
    *,
    globals_: Mapping[str, Any] | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """What every expression of the execution sees (Kestra's RunVariables)."""
    ex = execution
    variables: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": ex.flow_revision},
        "execution": execution_map(ex),
        "inputs": nested(ex.inputs),
        "vars": flow.variables if ex.variables is None else ex.variables,
        "outputs": outputs,
        "labels": nested(ex.labels),
        "envs": envs,
        "globals": globals_ or {},
        "tasks": TaskStates(ex),
    }
    if url:
        variables["kestra"] = {"url": url}
    if ex.trigger is not None:
        variables["trigger"] = ex.trigger.get("variables") or {}
    return variables


def execution_map(ex: Execution) -> dict[str, Any]:
    """Kestra's `execution` variable of an execution."""
    found: dict[str, Any] = {
        "id": ex.id,
        "startDate": ex.state.start_iso,
        "state": ex.state.current.value,
        "originalId": ex.id,
    }
    if ex.state.end is not None:
        found["endDate"] = ex.state.to_json().get("endDate")
    if ex.outputs:  # the flow's outputs, once rendered (afterExecution sees them)
        found["outputs"] = ex.outputs
    return found


def outputs_of(execution: Execution) -> dict[str, Any]:
    """`outputs` as the execution's tasks saw them, rebuilt from its stored task runs: a task
    run whose value differs from its parent's sits one ForEach level deeper."""
    by_id = {run.id: run for run in execution.task_runs}

    def values(run: TaskRun) -> list[str]:
        parent = by_id.get(run.parent_task_run_id or "")
        above = values(parent) if parent is not None else []
        if run.value is not None and (parent is None or parent.value != run.value):
            return [*above, str(run.value)]
        return above

    outputs: dict[str, Any] = {}
    for run in execution.task_runs:
        if run.outputs:
            set_output(outputs, run.task_id, values(run), dict(run.outputs))
    return outputs


def nested(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Dotted keys as nested maps, as Kestra reads inputs and labels: an input `a.b` is
    `inputs.a.b`, the label `system.correlationId` is `labels.system.correlationId`."""
    if not any("." in key for key in values):
        return values
    out: dict[str, Any] = {}
    for key, value in values.items():
        *path, last = key.split(".")
        node = out
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break  # a plain key of that name already: the dotted one stays flat
            node = child
        else:
            node[last] = value
            continue
        out[key] = value
    return out


class TaskStates(Mapping[str, Any]):
    """Kestra's `tasks` variable: `{taskId: {state}}`, or `{taskId: {value: {state}}}` inside
    ForEach. Built when first read: most expressions never look at it."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self._built: dict[str, Any] | None = None

    def _map(self) -> dict[str, Any]:
        if self._built is None:
            built: dict[str, Any] = {}
            for tr in self._execution.task_runs:
                state = {"state": tr.state.current.value}
                if tr.value is None:
                    built[tr.task_id] = state
                else:
                    entry = built.setdefault(tr.task_id, {})
                    if "state" not in entry:
                        entry[tr.value] = state
            self._built = built
        return self._built

    def __getitem__(self, key: str) -> Any:
        return self._map()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def task_variables(
    base: dict[str, Any], task: Task, task_run: TaskRun, scope: Scope, working_dir: str
) -> dict[str, Any]:
    """`base` plus what one task run adds: `task`, `taskrun`, `workingDir`, `parent(s)`."""
    variables = dict(base)
    variables["task"] = {"id": task.id, "type": task.type}
    variables["taskrun"] = {
        "id": task_run.id,
        "startDate": task_run.state.start_iso,
        # Kestra counts the attempts that ended: 0 while the first one runs.
        "attemptsCount": max(len(task_run.attempts) - 1, 0),
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
