"""One iteration of a Loop task, run as an execution of its own (Kestra's loop
sub-execution, `kind: LOOP`): it runs the loop's `tasks` (then its `errors` and
`finally`) instead of the flow's, and its expressions see the execution that started it
(its outputs, `execution.*`) plus `item.*`; when it ends, the loop's declared `outputs`
are rendered as its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemon.engine.resources import Resources
from daemon.engine.variables import execution_map, outputs_of
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import DeclaredOutput, RunsIterations
from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import Task


class IterationLost(PodiumError):
    """An iteration whose loop task or starting execution cannot be found."""


@dataclass(frozen=True)
class Iteration:
    """What an iteration runs and sees, beyond an ordinary execution of its flow."""

    tasks: Sequence[Task]
    errors: Sequence[Task]
    finally_: Sequence[Task]
    outputs: Sequence[DeclaredOutput]
    # Variables in place of the execution's own: `execution` (the one that started it), `item`.
    variables: dict[str, Any]
    # The outputs of the executions around it, outermost first overridden by inner ones.
    seen_outputs: dict[str, Any]


async def enter(resources: Resources, flow: Flow, execution: Execution) -> Iteration:
    """The iteration `execution` is, with what it needs of the executions that started it."""
    loop = execution.loop or {}
    task = flow.task_by_id(str(loop.get("taskId")))
    if not isinstance(task, RunsIterations):
        raise IterationLost(
            f"flow {flow.namespace}.{flow.id} revision {execution.flow_revision} has no loop "
            f"task {loop.get('taskId')!r} for iteration {execution.id}"
        )
    chain: list[Execution] = []  # the starting execution, then the one that started it...
    parent_id: str | None = loop.get("executionId")
    while parent_id:
        doc = await resources.store.get_execution(parent_id)
        if doc is None:
            raise IterationLost(f"execution {parent_id}, which started {execution.id}, is gone")
        parent = Execution.from_json(doc)
        chain.append(parent)
        parent_id = (parent.loop or {}).get("executionId")
    seen: dict[str, Any] = {}
    for parent in reversed(chain):
        seen.update(outputs_of(parent))
    tasks, errors, finally_ = task.iteration_tasks()
    variables = {"execution": execution_map(chain[0]), "item": item_variable(loop)}
    return Iteration(tasks, errors, finally_, task.iteration_outputs(), variables, seen)


def item_variable(loop: dict[str, Any]) -> dict[str, Any]:
    """Kestra's `item`: `index`, `value`, `key` (map values only), and in a nested loop
    `parents` (the enclosing iterations, outermost first, as Kestra's LoopRun keeps them)
    and `parent` (the nearest one)."""
    item = _entry(loop)
    parents = loop.get("parents")
    if parents:
        item["parents"] = [_entry(p) for p in parents]
        item["parent"] = item["parents"][-1]
    return item


def _entry(loop: dict[str, Any]) -> dict[str, Any]:
    entry = {"index": loop.get("index"), "value": loop.get("value")}
    if loop.get("key") is not None:
        entry["key"] = loop["key"]
    return entry
