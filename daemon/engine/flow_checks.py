"""Kestra's flow `checks`, tested when an execution is asked for through the API.

Each check's `when` (its 1.x name: `condition`) renders with the flow and the coerced
inputs (Kestra's FlowService.getFailedChecks: `runContext.renderTyped`, true only for a
boolean true). The failed checks decide together, the strictest behavior winning
(Check.resolveBehavior): BLOCK_EXECUTION refuses the execution, FAIL_EXECUTION creates it
FAILED without running anything, CREATE_EXECUTION lets it run. A check that cannot be
rendered blocks, with the reason as its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.engine.resources import Resources
from daemon.engine.variables import nested
from daemon.flows.definition import Flow
from daemon.sdk.errors import InputError

# Check.Behavior in its declaration order: the first one a failed check asks for wins.
BEHAVIORS = ("BLOCK_EXECUTION", "FAIL_EXECUTION", "CREATE_EXECUTION")
BLOCKED = "Flow execution blocked: one or more condition checks evaluated to false."
FAILED = "Flow execution failed because one or more condition checks evaluated to false."


@dataclass(frozen=True)
class FailedCheck:
    message: str
    behavior: str
    style: str


class ChecksBlocked(InputError):
    """The flow's checks refuse the execution: one message per failed check."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages)
        self.args = (f"{BLOCKED} Failed checks: {', '.join(messages)}",)

    def __str__(self) -> str:
        return str(self.args[0])


async def failed_checks(
    flow: Flow, inputs: Mapping[str, Any], resources: Resources
) -> list[FailedCheck]:
    """The checks of `flow` that do not render true with these inputs, in flow order."""
    failed: list[FailedCheck] = []
    variables = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
        "inputs": nested(inputs),
        "envs": resources.envs,
        "globals": resources.options.globals or {},
    }
    for check in flow.checks:
        try:
            rendered = await resources.render_async(check.expression, variables, flow.namespace)
        except Exception as exc:
            cause = f"Failed to evaluate check condition. Cause: {exc}"
            failed.append(FailedCheck(cause, "BLOCK_EXECUTION", "ERROR"))
            continue
        if not _true(rendered):
            failed.append(FailedCheck(check.message, check.behavior, check.style))
    return failed


def behavior(failed: Sequence[FailedCheck]) -> str:
    """What the failed checks ask for together: CREATE_EXECUTION when none failed."""
    return min((c.behavior for c in failed), key=BEHAVIORS.index, default="CREATE_EXECUTION")


def _true(rendered: Any) -> bool:
    return rendered is True or (isinstance(rendered, str) and rendered.strip() == "true")
