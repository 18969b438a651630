"""Schedule trigger: fire on cron slots, each (flow, trigger, slot) exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from daemon.context import TriggerContext
from daemon.plugin import Emit, Model, Trigger
from daemon.state import iso


class Backfill(Model):
    start: str
    end: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Schedule(Trigger):
    """Kestra's Schedule: a cron expression (5 fields, or 6 `withSeconds`) in a timezone."""

    types = ("io.kestra.plugin.core.trigger.Schedule",
             "io.kestra.core.models.triggers.types.Schedule")

    cron: str
    with_seconds: bool = False
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    backfill: Backfill | None = None
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] = "ALL"
    late_maximum_delay: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str, info: Any) -> str:
        fields = value.split()
        with_seconds = bool(info.data.get("with_seconds"))
        expected = 6 if with_seconds else 5
        if value.startswith("@"):
            return value
        if len(fields) != expected:
            raise ValueError(f"cron {value!r} has {len(fields)} fields, expected {expected}"
                             + (" (withSeconds is true)" if with_seconds else ""))
        _cron_trigger(value, with_seconds, "UTC")
        return value

    def next_after(self, moment: datetime) -> datetime | None:
        trigger = _cron_trigger(self.cron, self.with_seconds, self.timezone)
        fire: datetime | None = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        return fire

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        clock = ctx.clock
        moment = clock.now()
        previous: datetime | None = None
        while True:
            slot = self.next_after(moment)
            if slot is None:
                return
            await clock.sleep_until(slot)
            following = self.next_after(slot)
            key = f"schedule:{ctx.flow.namespace}:{ctx.flow.id}:{self.id}:{iso(slot)}"
            if await ctx.runtime.store.claim(key):
                variables = {"date": iso(slot), "next": iso(following),
                             "previous": iso(previous)}
                await emit(self.inputs, variables)
            previous, moment = slot, slot


_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
            "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@hourly": "0 * * * *"}


def _cron_trigger(expr: str, with_seconds: bool, timezone: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    expr = _ALIASES.get(expr, expr)
    fields = expr.split()
    if not with_seconds:
        fields = ["0", *fields]
    second, minute, hour, day, month, dow = fields
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_dow(dow), timezone=ZoneInfo(timezone))
    except ValueError as exc:
        raise ValueError(f"invalid cron {expr!r}: {exc}") from None


_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _dow(field: str) -> str:
    """Cron counts Sunday as 0 (or 7), APScheduler Monday as 0: use day names instead."""
    parts = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        days = "-".join(_DAY_NAMES[int(d)] if d.isdigit() and int(d) < 8 else d
                        for d in base.split("-"))
        parts.append(f"{days}/{step}" if step else days)
    return ",".join(parts)
