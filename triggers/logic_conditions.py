"""Trigger conditions that combine others or read the ended execution: Expression, Not,
Or, ExecutionLabels, ExecutionOutputs, HasRetryAttempt.

The expression conditions render with the trigger's renderer (`ConditionContext.render`)
and the variables the trigger exposes (`ConditionContext.variables`: `trigger.date` on a
Schedule; `trigger.*`, `execution`, `outputs` on a Flow trigger). An expression that fails
to render makes the condition not hold (the trigger logs it), as in Kestra. Conditions are
tested on the event loop, so functions that wait for the store (`kv()`, `read()`) fail
there: a known gap against Kestra's `{{ kv('x') < 10 }}` example.
"""

from __future__ import annotations

from pydantic import Field

from daemon.sdk.plugin import Condition, ConditionContext
from daemon.sdk.properties import Labels
from daemon.sdk.state import State
from daemon.sdk.truth import truthy

_LEGACY = "io.kestra.core.models.conditions.types."
_CORE = "io.kestra.plugin.core.condition."


def _types(name: str, *older: str) -> tuple[str, ...]:
    """Kestra's name, then its `...Condition` aliases and any older names."""
    return (f"{_CORE}{name}", f"{_CORE}{name}Condition", f"{_LEGACY}{name}Condition", *older)


class Expression(Condition):
    """Holds unless the expression renders blank or `false` (Kestra's Expression; its older
    name is VariableCondition)."""

    types = _types("Expression", f"{_LEGACY}VariableCondition")

    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        rendered = ctx.rendered(self.expression)
        if isinstance(rendered, bool):
            return rendered
        text = "" if rendered is None else str(rendered).strip()
        return text not in ("", "false")


class ExecutionOutputs(Condition):
    """Holds when the ended execution has flow outputs and the expression (which reads them
    as `trigger.outputs`) is true; an execution without outputs never matches."""

    types = _types("ExecutionOutputs")

    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if execution is None:
            return True  # nothing to look at (a Schedule): holds, like the other ones
        outputs = execution.get("outputs")
        if not outputs:
            return False
        variables = ctx.expression_variables()
        variables["trigger"] = {**variables.get("trigger", {}), "outputs": outputs}
        return truthy(ctx.rendered(self.expression, variables))


class ExecutionLabels(Condition):
    """Holds when the ended execution carries every one of these labels (key and value)."""

    types = _types("ExecutionLabels")

    labels: Labels = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if execution is None:
            return True
        labels = execution.get("labels") or []
        carried = {str(label["key"]): str(label["value"]) for label in labels}
        return all(carried.get(key) == value for key, value in self.labels.items())


class HasRetryAttempt(Condition):
    """Holds when some task run of the ended execution was attempted more than once and one
    of its attempts ended in a state of `in` and not of `notIn` (an absent `in` admits no
    state, as in Kestra: give `in`)."""

    types = _types("HasRetryAttempt")

    in_: list[State] | None = Field(default=None, alias="in")
    not_in: list[State] | None = None

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if execution is None:
            return True
        allowed = set(self.in_ or ())
        refused = set(self.not_in or ())
        for run in execution.get("taskRunList") or []:
            attempts = run.get("attempts") or []
            if len(attempts) < 2:
                continue
            for attempt in attempts:
                state = attempt["state"]["current"]
                if state in allowed and state not in refused:
                    return True
        return False


class Not(Condition):
    """Holds when none of its conditions holds."""

    types = _types("Not")

    conditions: list[Condition] = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        return not any(condition.test(ctx) for condition in self.conditions)


class Or(Condition):
    """Holds when at least one of its conditions holds."""

    types = _types("Or")

    conditions: list[Condition] = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        return any(condition.test(ctx) for condition in self.conditions)
