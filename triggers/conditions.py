"""Trigger conditions: when a schedule slot or an ended execution may start the flow.

Date conditions look at `ConditionContext.date` (the schedule slot, or when the
execution ended); execution conditions at `ConditionContext.execution` (an ended
execution's document). As in Kestra, a condition that has nothing to look at holds:
Kestra evaluates only schedule conditions on a Schedule, so an `ExecutionFlow` there
is ignored rather than blocking every slot.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from daemon.sdk.plugin import Condition, ConditionContext
from daemon.sdk.public_holidays import check_country, is_public_holiday, locale_country
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


class FlowCondition(Condition):
    """Only in the flow `namespace`.`flowId`: the flow that holds the trigger, as Kestra's
    deprecated FlowCondition tests `ConditionContext.getFlow()` (not the execution that
    ended: that is ExecutionFlow)."""

    types = (f"{_CORE}FlowCondition", f"{_LEGACY}FlowCondition")
    superseded_by: ClassVar[str | None] = f"use '{_CORE}ExecutionFlow'"

    namespace: str
    flow_id: str

    def test(self, ctx: ConditionContext) -> bool:
        return ctx.namespace == self.namespace and ctx.flow_id == self.flow_id


class FlowNamespaceCondition(Condition):
    """Only in flows of `namespace` (by prefix with `prefix: true`, case-sensitive): the
    flow that holds the trigger, as Kestra's deprecated FlowNamespaceCondition tests it."""

    types = (f"{_CORE}FlowNamespaceCondition", f"{_LEGACY}FlowNamespaceCondition")
    superseded_by: ClassVar[str | None] = f"use '{_CORE}ExecutionNamespace'"

    namespace: str
    prefix: bool = False

    def test(self, ctx: ConditionContext) -> bool:
        if self.prefix:
            return ctx.namespace.startswith(self.namespace)
        return ctx.namespace == self.namespace


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


class Weekend(_DateCondition):
    """Only on Saturdays and Sundays, in the slot's own time zone (Kestra's Weekend)."""

    types = _types("Weekend")

    def test(self, ctx: ConditionContext) -> bool:
        moment = self.moment(ctx)
        if moment is None:
            return False
        return moment.weekday() >= 5


class PublicHoliday(_DateCondition):
    """Only on a public holiday of `country` (ISO 3166-1 alpha-2), in `subDivision` (ISO
    3166-2) when given; without a country, the machine's locale's (Kestra's PublicHoliday,
    Jollyday's calendars there, python-holidays' here: daemon/sdk/public_holidays.py).
    `country` and `subDivision` may be expressions, rendered when tested."""

    types = _types("PublicHoliday")

    country: str | None = None
    sub_division: str | None = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None or "{{" in value or "{%" in value:
            return value
        return check_country(value)  # a code no calendar knows fails the flow's load

    @model_validator(mode="after")
    def _some_country(self) -> PublicHoliday:
        if self.country is None and locale_country() is None:
            raise ValueError(
                "country is required: the machine's locale (LC_ALL, LC_TIME, LANG) names "
                "no country to take the public holidays of"
            )
        return self

    def test(self, ctx: ConditionContext) -> bool:
        moment = self.moment(ctx)
        if moment is None:
            return False
        country = self._text(ctx, self.country) or locale_country()
        if not country:
            raise ValueError("country is required: the machine's locale names no country")
        return is_public_holiday(moment.date(), country, self._text(ctx, self.sub_division))

    @staticmethod
    def _text(ctx: ConditionContext, value: str | None) -> str | None:
        if value is None or ("{{" not in value and "{%" not in value):
            return value
        rendered = ctx.rendered(value)
        return None if rendered is None else str(rendered)


DayInMonth = Literal["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"]


class DayWeekInMonth(_DateCondition):
    """Only on the first (second, ..., last) given weekday of the month: "first Monday"."""

    types = _types("DayWeekInMonth")

    day_of_week: Weekday
    day_in_month: DayInMonth

    def test(self, ctx: ConditionContext) -> bool:
        moment = self.moment(ctx)
        if moment is None:
            return False
        day = moment.date()
        if _WEEKDAYS[day.weekday()] != self.day_of_week:
            return False
        if self.day_in_month == "LAST":
            return (day + timedelta(days=7)).month != day.month
        rank = ("FIRST", "SECOND", "THIRD", "FOURTH").index(self.day_in_month)
        return (day.day - 1) // 7 == rank


def _offset_time(value: object) -> time:
    """Kestra's OffsetTime: `16:00:00+02:00`; an offset is required, as Jackson requires it
    (a bare time would silently mean the daemon's zone)."""
    if isinstance(value, time):
        parsed = value
    else:
        try:
            parsed = time.fromisoformat(str(value))
        except ValueError:
            raise ValueError("must be a time with an offset, like 16:00:00+02:00") from None
    if parsed.utcoffset() is None:
        raise ValueError("must be a time with an offset, like 16:00:00+02:00 or 16:00:00Z")
    return parsed


def _seconds_utc(moment: time) -> float:
    """A time of day on the UTC line, so that times with different offsets compare as Java's
    OffsetTime.isAfter/isBefore do."""
    offset = moment.utcoffset() or timedelta(0)
    base = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    return base - offset.total_seconds()


class TimeBetween(_DateCondition):
    """Only between two times of day (`after` < time < `before`, both excluded as in Kestra);
    no wrap past midnight: a night window is two TimeBetween in an Or."""

    types = _types("TimeBetween")

    after: time | None = None
    before: time | None = None

    @field_validator("after", "before", mode="before")
    @classmethod
    def _with_offset(cls, value: object) -> time | None:
        return None if value is None else _offset_time(value)

    @model_validator(mode="after")
    def _one_bound(self) -> TimeBetween:
        if self.after is None and self.before is None:
            raise ValueError("TimeBetween needs 'after', 'before' or both")
        return self

    def test(self, ctx: ConditionContext) -> bool:
        moment = self.moment(ctx)
        if moment is None:
            return False
        now = _seconds_utc(moment.timetz())
        if self.after is not None and not now > _seconds_utc(self.after):
            return False
        return self.before is None or now < _seconds_utc(self.before)
