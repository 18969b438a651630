"""Time windows of the Flow trigger: within what time its upstream conditions must be met.

Two spellings of one thing, as in Kestra: `TimeWindow` (Kestra 1.x `preconditions.timeWindow`
and MultipleCondition's `sla`, with an explicit `type`) and `Window` (the `window` of the
newer `dependsOn` syntax, io/kestra/core/models/triggers/Window.java, whose type follows
from the fields set). `tally` keeps which conditions were met in the current window,
in the trigger's durable state (Kestra's MultipleConditionWindow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from daemon.sdk.clock import known_zone
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.properties import Model


def _zone(name: str | None) -> tzinfo:
    # podium resolves daily windows in UTC unless told, as its Schedule does
    return ZoneInfo(name) if name else UTC


def _positive(value: timedelta | None, name: str) -> None:
    if value is not None and value <= timedelta(0):
        raise ValueError(f"'{name}' must be a positive duration")


class TimeWindow(Model):
    """Within what time all the conditions must be met (Kestra's TimeWindow)."""

    type: Literal[
        "DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_DEADLINE", "DAILY_TIME_WINDOW"
    ] = "DURATION_WINDOW"
    window: Duration | None = None
    """DURATION_WINDOW: the size of each window (one day by default); SLIDING_WINDOW: how far
    back from now."""
    window_advance: Duration | None = None
    """DURATION_WINDOW: how far after midnight the windows start."""
    deadline: time | None = None
    """DAILY_TIME_DEADLINE: the conditions must be met between midnight and this time."""
    start_time: time | None = None
    """DAILY_TIME_WINDOW: the start of the daily window."""
    end_time: time | None = None
    """DAILY_TIME_WINDOW: the end of the daily window."""
    timezone: str | None = None
    """The time zone of the daily boundaries (midnight, deadline, start and end); UTC unless
    set."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return known_zone(value)

    @model_validator(mode="after")
    def _bounds(self) -> TimeWindow:
        if self.type == "DAILY_TIME_DEADLINE" and self.deadline is None:
            raise ValueError("a DAILY_TIME_DEADLINE window needs 'deadline'")
        if self.type == "DAILY_TIME_WINDOW" and (self.start_time is None or self.end_time is None):
            raise ValueError("a DAILY_TIME_WINDOW needs 'startTime' and 'endTime'")
        _positive(self.window, "window")
        return self

    def bounds(self, when: datetime) -> tuple[datetime, datetime] | None:
        """The window `when` falls in, or None when it is outside every window."""
        zone = _zone(self.timezone)
        when = when.astimezone(zone)
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)

        def at(moment: time) -> datetime:
            # a time written with an offset (Kestra 1.x OffsetTime) keeps it
            return datetime.combine(midnight.date(), moment, moment.tzinfo or zone)

        size = self.window or timedelta(days=1)
        if self.type == "SLIDING_WINDOW":
            return when - size, when
        if self.type == "DAILY_TIME_DEADLINE":
            assert self.deadline is not None
            end = at(self.deadline)
            return (midnight, end) if when <= end else None
        if self.type == "DAILY_TIME_WINDOW":
            assert self.start_time is not None and self.end_time is not None
            start, end = at(self.start_time), at(self.end_time)
            return (start, end) if start <= when <= end else None
        start = midnight + (self.window_advance or timedelta(0))
        while start > when:
            start -= size
        while start + size <= when:
            start += size
        return start, start + size


_WINDOW_FIELDS = {"deadline": "a deadline", "from_": "a from time", "to": "a to time",
                  "every": "an every duration", "offset": "an offset",
                  "lookback": "a lookback duration"}  # fmt: skip


class Window(Model):
    """The `window` of a Flow trigger's `dependsOn` (Kestra's Window): its type follows from
    the fields set: `deadline` a daily deadline, `from` and `to` a daily window, `lookback` a
    sliding window, else fixed windows of `every` (one day) starting `offset` after midnight."""

    deadline: time | None = None
    """The dependencies must be met between midnight and this time, each day."""
    from_: time | None = Field(default=None, alias="from")
    """With `to`: the dependencies must be met between these times, each day."""
    to: time | None = None
    """With `from`: the end of the daily window."""
    every: Duration | None = None
    """The size of each fixed window (one day by default)."""
    offset: Duration | None = None
    """How far after midnight the fixed windows start."""
    lookback: Duration | None = None
    """The dependencies must be met within this duration before now (a sliding window)."""
    timezone: str | None = None
    """The time zone of the daily boundaries; UTC unless set. No effect on `lookback`."""
    fire_once: bool = False
    """True: once the dependencies are met, they must all be met again before the next
    execution. False (the default): every further match in the window starts one."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return known_zone(value)

    @model_validator(mode="after")
    def _one_type(self) -> Window:
        """Kestra's WindowValidator: the fields of one window type only."""
        if self.deadline is not None:
            kind, allowed = "DAILY_TIME_DEADLINE", {"deadline"}
        elif self.from_ is not None or self.to is not None:
            if self.from_ is None or self.to is None:
                missing = "a from" if self.from_ is None else "a to"
                raise ValueError(f"a window of type DAILY_TIME_WINDOW must have {missing} time")
            kind, allowed = "DAILY_TIME_WINDOW", {"from_", "to"}
        elif self.lookback is not None:
            kind, allowed = "SLIDING_WINDOW", {"lookback"}
        else:
            kind, allowed = "DURATION_WINDOW", {"every", "offset"}
        extra = [text for name, text in _WINDOW_FIELDS.items()
                 if name not in allowed and getattr(self, name) is not None]  # fmt: skip
        if extra:
            raise ValueError(f"a window of type {kind} cannot have {' or '.join(extra)}")
        _positive(self.every, "every")
        _positive(self.lookback, "lookback")
        return self

    def time_window(self) -> TimeWindow:
        """The same window as a TimeWindow (Kestra's Window.toTimeWindow)."""
        if self.deadline is not None:
            return TimeWindow(type="DAILY_TIME_DEADLINE", deadline=self.deadline,
                              timezone=self.timezone)  # fmt: skip
        if self.from_ is not None:
            return TimeWindow(type="DAILY_TIME_WINDOW", start_time=self.from_,
                              end_time=self.to, timezone=self.timezone)  # fmt: skip
        if self.lookback is not None:
            return TimeWindow(type="SLIDING_WINDOW", window=self.lookback)
        return TimeWindow(window=self.every, window_advance=self.offset, timezone=self.timezone)


@dataclass(frozen=True)
class WindowRule:
    """How one set of conditions is met: `needed` of `keys` within `time_window`, and
    whether they must all be met again after they were (`reset_on_success`)."""

    state_key: str
    keys: list[str]
    needed: int
    time_window: TimeWindow
    reset_on_success: bool


@dataclass
class Tally:
    """What one window holds once an ended execution was recorded in it."""

    rule: WindowRule
    start: datetime
    results: dict[str, str]
    outputs: dict[str, Any]
    touched: bool
    """The execution met one of the rule's keys."""

    @property
    def complete(self) -> bool:
        return sum(1 for name in self.rule.keys if name in self.results) >= self.rule.needed

    async def reset(self, ctx: TriggerContext) -> None:
        """Once the trigger fired: with `reset_on_success`, the keys must all be met again."""
        if self.rule.reset_on_success:
            empty = {"start": self.start.isoformat(), "results": {}, "outputs": {}}
            await ctx.state.set(self.rule.state_key, empty)


async def tally(
    rule: WindowRule,
    tests: list[bool],
    add_outputs: Callable[[dict[str, Any]], dict[str, Any]],
    when: datetime,
    ctx: TriggerContext,
) -> Tally | None:
    """Record which of the rule's keys an execution ended at `when` meets (`tests`) in the
    current window, with its outputs (`add_outputs` folds them into the window's), kept in
    the trigger's durable state (Kestra's MultipleConditionWindow); None when `when` is
    outside every window (after a daily deadline)."""
    window = rule.time_window.bounds(when)
    if window is None:
        return None
    start, end = window
    saved = await ctx.state.get(rule.state_key) or {}
    sliding = rule.time_window.type == "SLIDING_WINDOW"
    same_window = sliding or (saved.get("start") == start.isoformat())
    results: dict[str, str] = dict(saved.get("results") or {}) if same_window else {}
    outputs: dict[str, Any] = dict(saved.get("outputs") or {}) if same_window else {}
    if sliding:
        results = {k: at for k, at in results.items() if datetime.fromisoformat(at) >= start}
    met = [key for key, holds in zip(rule.keys, tests, strict=True) if holds]
    if met:
        for name in met:
            results[name] = when.isoformat()
        outputs = add_outputs(outputs)
        await ctx.state.set(rule.state_key, {"start": start.isoformat(), "end": end.isoformat(),
                                             "results": results, "outputs": outputs})  # fmt: skip
    return Tally(rule, start, results, outputs, touched=bool(met))
