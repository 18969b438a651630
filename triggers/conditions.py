"""Trigger conditions: when a schedule slot or an ended execution may start the flow.

Date conditions look at `ConditionContext.date` (the schedule slot, or when the
execution ended); execution conditions at `ConditionContext.execution` (an ended
execution's document). As in Kestra, a condition that has nothing to look at holds:
Kestra evaluates only schedule conditions on a Schedule, so an `ExecutionFlow` there
is ignored rather than blocking every slot.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from daemon.sdk.plugin import Condition, ConditionContext
from daemon.sdk.state import State

_LEGACY = "io.kestra.core.models.conditions.types."
_CORE = "io.kestra.plugin.core.condition."

# The one expression a date condition's `date` may hold: conditions are declarative
# (Kestra's docs say so for Flow triggers) and podium has no run context to render others in.
_TRIGGER_DATE = re.compile(r"^\{\{\s*trigger\.date\s*\}\}$")

Weekday = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
_WEEKDAYS: tuple[Weekday, ...] = (
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
)


def _types(name: str) -> tuple[str, ...]:
    """Kestra's name first (the canonical one), then the deprecated `...Condition` aliases."""
    return (f"{_CORE}{name}", f"{_CORE}{name}Condition", f"{_LEGACY}{name}Condition")


class _DateCondition(Condition):
    """A condition on a moment: the slot by default, or a fixed ISO-8601 date."""

    date: str = "{{ trigger.date }}"

    @field_validator("date")
    @classmethod
    def _date_form(cls, value: str) -> str:
        if _TRIGGER_DATE.match(value.strip()):
            return value
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("date must be '{{ trigger.date }}' or an ISO-8601 date") from None
        return value

    def moment(self, ctx: ConditionContext) -> datetime | None:
        if _TRIGGER_DATE.match(self.date.strip()):
            return ctx.date
        moment = datetime.fromisoformat(self.date)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DayWeek(_DateCondition):
    """Only on one day of the week, in the trigger's time zone (the slot's own offset)."""

    types = _types("DayWeek")

    day_of_week: Weekday

    def test(self, ctx: ConditionContext) -> bool:
        moment = self.moment(ctx)
        if moment is None:
            return False  # Kestra cannot render `trigger.date` here either, and skips
        day: date = moment.date()
        return _WEEKDAYS[day.weekday()] == self.day_of_week


class DateTimeBetween(_DateCondition):
    """Only between two instants, both bounds included (Kestra's `after` / `before`)."""

    types = _types("DateTimeBetween")

    after: AwareDatetime | None = None
    before: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> DateTimeBetween:
        if self.after is None and self.before is None:
            raise ValueError("DateTimeBetween needs 'after', 'before' or both")
        return self

    def test(self, ctx: ConditionContext) -> bool:
        moment = self.moment(ctx)
        if moment is None:
            return False
        if self.after is not None and moment < self.after:
            return False
        return self.before is None or moment <= self.before


class ExecutionFlow(Condition):
    """Only for executions of one flow."""

    types = _types("ExecutionFlow")

    namespace: str
    flow_id: str

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if execution is None:
            return True
        return bool(
            execution.get("namespace") == self.namespace and execution.get("flowId") == self.flow_id
        )


class ExecutionStatus(Condition):
    """Only for executions whose current state is in `in` and not in `notIn`."""

    types = _types("ExecutionStatus")

    in_: list[State] | None = Field(default=None, alias="in")
    not_in: list[State] | None = None

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if execution is None:
            return True
        state = execution.get("state", {}).get("current")
        if self.in_ is not None and state not in self.in_:
            return False
        return self.not_in is None or state not in self.not_in


class ExecutionNamespace(Condition):
    """Only for executions of flows in a namespace (equal, by prefix or by suffix)."""

    types = _types("ExecutionNamespace")

    namespace: str
    comparison: Literal["EQUALS", "PREFIX", "SUFFIX"] | None = None
    prefix: bool = False

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.execution
        if execution is None:
            return True
        actual = str(execution.get("namespace", ""))
        comparison = self.comparison or ("PREFIX" if self.prefix else "EQUALS")
        if comparison == "PREFIX":
            return actual.startswith(self.namespace)
        if comparison == "SUFFIX":
            return actual.endswith(self.namespace)
        return actual == self.namespace
