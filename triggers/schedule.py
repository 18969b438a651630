"""Schedule trigger: one execution per cron slot, each (flow, trigger, slot) exactly once.

APScheduler's CronTrigger does the calendar (time zones, DST); the store remembers
which slots were handled (`claim`) and the last live one (`set_state`), so that a
restart never repeats a slot and knows which ones passed while podium was down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.sdk.clock import known_zone
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import InputError, TemplateError
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Model, has_template
from daemon.sdk.state import iso

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELD_LABELS = {
    "second": "second",
    "minute": "minute",
    "hour": "hour",
    "day": "day-of-month",
    "month": "month",
    "day_of_week": "day-of-week",
}
_WEEKDAY_NUMBERS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_TICK = timedelta(microseconds=1)
_RESOLUTION = timedelta(seconds=1)  # cron slots fall on whole seconds
_FURTHEST = timedelta(days=366 * 40)  # how far back `CronSlots.before` looks
# Slots tried when looking for the next/previous slot whose conditions hold (trigger.next).
_NEIGHBOUR_SEARCH = 1000


class Backfill(Model):
    """Run every slot in [start, end] (end defaults to when the backfill is first seen)."""

    start: AwareDatetime
    end: AwareDatetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Backfill:
        if self.end is not None and self.end < self.start:
            raise ValueError("backfill end is before its start")
        return self


class Schedule(Trigger):
    """Kestra's Schedule: a cron expression (5 fields, 6 with `withSeconds`) in a time zone."""

    types = (
        "io.kestra.plugin.core.trigger.Schedule",
        "io.kestra.core.models.triggers.types.Schedule",
    )
    locks = True

    # Declared before `cron`, whose check reads them.
    with_seconds: bool = False
    timezone: str = "Etc/UTC"
    cron: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    backfill: Backfill | None = None
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] = "ALL"
    late_maximum_delay: Duration | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value) or value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str, info: ValidationInfo) -> str:
        slots = CronSlots(value, bool(info.data.get("with_seconds")), "Etc/UTC")
        if slots.after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise ValueError("invalid cron expression: it never matches a date")
        return value

    def next_date(self, after: datetime) -> datetime | None:
        """The first slot after `after` (blocking: zone files, APScheduler)."""
        return CronSlots(self.cron, self.with_seconds, self.timezone).after(after)

    def with_backfill(
        self, start: datetime, end: datetime | None, inputs: Mapping[str, Any]
    ) -> Schedule:
        """This schedule, set to run the slots of [start, end] first (Backfillable)."""
        try:
            backfill = Backfill.model_validate({"start": start, "end": end, "inputs": dict(inputs)})
        except ValidationError as exc:
            raise ValueError("; ".join(e["msg"] for e in exc.errors())) from None
        return self.model_copy(update={"backfill": backfill})

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        # Reading the zone file and importing APScheduler are blocking: off the loop.
        slots = await asyncio.to_thread(CronSlots, self.cron, self.with_seconds, self.timezone)
        await _Scheduler(self, slots, emit, ctx).run()


class _Scheduler:
    """One run of a Schedule trigger: backfill, then missed slots, then the live schedule."""

    def __init__(
        self, trigger: Schedule, slots: CronSlots, emit: Emit, ctx: TriggerContext
    ) -> None:
        self.trigger = trigger
        self.slots = slots
        self.emit = emit
        self.ctx = ctx
        self.state = ctx.state
        self.where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {trigger.id}"

    async def run(self) -> None:
        clock = self.ctx.clock
        now = clock.now()
        if self.trigger.backfill is not None:
            await self._backfill(self.trigger.backfill, now)
        await self._recover(now)
        cursor = now
        while (slot := self.slots.after(cursor)) is not None:
            while clock.now() < slot:
                await clock.sleep_until(slot)
            await self._handle(slot, "slot", self.trigger.inputs)
            cursor = slot

    async def _backfill(self, backfill: Backfill, now: datetime) -> None:
        """Kestra runs backfill slots before it resumes the live schedule.

        Without an `end` the backfill stops at the moment it was first seen; that moment is
        stored, so that a restart does not stretch it over slots the live schedule ran.
        """
        key = self.ctx.state_key("backfill")
        config = {"start": iso(backfill.start), "end": iso(backfill.end)}
        stored = await self.state.get(key)
        if stored is not None and all(stored.get(k) == v for k, v in config.items()):
            until = datetime.fromisoformat(stored["until"])
        else:
            until = min(backfill.end or now, now)
            await self.state.set(key, {**config, "until": iso(until)})
        inputs = {**self.trigger.inputs, **backfill.inputs}
        for slot in self.slots.between(backfill.start - _TICK, until):
            await self._handle(slot, "backfill", inputs)

    async def _recover(self, now: datetime) -> None:
        """Slots that passed while podium was down: all of them, the latest, or none."""
        last_state = await self.state.get(self.ctx.state_key("last"))
        policy = self.trigger.recover_missed_schedules
        if last_state is None or policy == "NONE":
            return
        last = datetime.fromisoformat(last_state["date"])
        if policy == "LAST":
            latest = self.slots.before(now + _TICK)
            if latest is not None and latest > last:
                await self._handle(latest, "slot", self.trigger.inputs)
            return
        for slot in self.slots.between(last, now):
            await self._handle(slot, "slot", self.trigger.inputs)

    async def _handle(self, slot: datetime, kind: str, inputs: Mapping[str, Any]) -> None:
        # Shielded: a trigger stopped mid-slot still finishes it (claimed, emitted, recorded).
        await asyncio.shield(self._once(slot, kind, inputs))

    async def _once(self, slot: datetime, kind: str, inputs: Mapping[str, Any]) -> None:
        if await self.state.claim(self.ctx.state_key(kind, _utc(slot))):
            late = self.ctx.clock.now() - slot
            limit = self.trigger.late_maximum_delay
            if kind == "slot" and limit is not None and late > limit:
                self.ctx.logger.info(
                    "%s: slot %s skipped, %s late (lateMaximumDelay %s)",
                    self.where,
                    self._local(slot),
                    late,
                    limit,
                )
            elif await self._holds(slot):
                await self._emit(slot, inputs)
        if kind == "slot":
            await self.state.set(self.ctx.state_key("last"), {"date": _utc(slot)})

    async def _emit(self, slot: datetime, inputs: Mapping[str, Any]) -> None:
        variables = {
            "date": self._local(slot),
            "next": self._local(await self._neighbour(slot, forward=True)),
            "previous": self._local(await self._neighbour(slot, forward=False)),
        }
        try:
            if has_template(inputs):
                flow = {"id": self.ctx.flow.id, "namespace": self.ctx.flow.namespace}
                inputs = await self.ctx.render_async(inputs, {"trigger": variables, "flow": flow})
            await self.emit(inputs, variables)
        except (InputError, TemplateError) as exc:
            self.ctx.logger.error("%s: slot %s not run: %s", self.where, variables["date"], exc)

    async def _holds(self, slot: datetime) -> bool:
        """The slot's `when` and conditions hold: `when` sees it as `trigger.date`, as the
        execution would (Kestra: a slot it refuses is skipped, as a condition's)."""
        moment = slot.astimezone(self.slots.zone)
        return await self.trigger.admits(self.ctx, {"date": self._local(slot)}, moment)

    async def _neighbour(self, slot: datetime, *, forward: bool) -> datetime | None:
        """`trigger.next` / `trigger.previous`: the nearest slot whose conditions hold."""
        candidate = slot
        for _ in range(_NEIGHBOUR_SEARCH):
            found = self.slots.after(candidate) if forward else self.slots.before(candidate)
            if found is None or await self._holds(found):
                return found
            candidate = found
        return None

    def _local(self, moment: datetime | None) -> str | None:
        """As Kestra prints a slot: ISO-8601 with the trigger time zone's offset (Z for UTC)."""
        return None if moment is None else iso(moment.astimezone(self.slots.zone))


class CronSlots:
    """The fire times of one cron expression in one time zone, as UTC datetimes."""

    def __init__(self, expression: str, with_seconds: bool, timezone: str) -> None:
        # Imported here, not at the top: only flows with a schedule pay its ~0.1 s.
        from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

        self.zone = ZoneInfo(timezone)
        fields = _cron_fields(expression, with_seconds)
        for name, value in fields.items():
            try:
                CronTrigger.FIELDS_MAP[name](name, value)
            except ValueError as exc:
                raise ValueError(
                    f"invalid cron expression: {_FIELD_LABELS[name]} {value!r}: {_reason(exc)}"
                ) from None
        if fields["day"] != "*" and fields["day_of_week"] != "*":
            # Cron (POSIX, Vixie) fires when EITHER day field matches once both are
            # restricted; APScheduler needs both: one trigger per field, the earlier wins.
            self._triggers = [
                CronTrigger(timezone=self.zone, **{**fields, "day": "*"}),
                CronTrigger(timezone=self.zone, **{**fields, "day_of_week": "*"}),
            ]
        else:
            self._triggers = [CronTrigger(timezone=self.zone, **fields)]

    def at_or_after(self, moment: datetime) -> datetime | None:
        fires = [
            fire
            for trigger in self._triggers
            if (fire := trigger.get_next_fire_time(None, moment)) is not None
        ]
        return min(fires).astimezone(UTC) if fires else None

    def after(self, moment: datetime) -> datetime | None:
        return self.at_or_after(moment + _TICK)

    def before(self, moment: datetime) -> datetime | None:
        """The latest slot strictly before `moment` (APScheduler only looks forward).

        Widen a window back from `moment` until it holds a slot, then halve it down to one
        second, which can hold only one slot: O(log) look-ups even for a per-second cron.
        """
        span = timedelta(minutes=1)
        while True:
            low = moment - span
            first = self.at_or_after(low)
            if first is not None and first < moment:
                break
            if span > _FURTHEST:
                return None
            span *= 8
        high = moment
        while high - low > _RESOLUTION:
            middle = low + (high - low) / 2
            fire = self.at_or_after(middle)
            if fire is not None and fire < moment:
                low = middle
            else:
                high = middle
        return self.at_or_after(low)

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Slots after `start` up to and including `end`, in order."""
        slot = self.after(start)
        while slot is not None and slot <= end:
            yield slot
            slot = self.after(slot)


def _cron_fields(expression: str, with_seconds: bool) -> dict[str, str]:
    """Cron text -> APScheduler's keyword fields."""
    text = expression.strip()
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            raise ValueError(
                f"invalid cron expression: unknown nickname; use one of {', '.join(_ALIASES)}"
            )
        parts = ["0", *alias.split()]
    else:
        parts = text.split()
        if with_seconds and len(parts) != 6:
            raise ValueError(
                f"cron expression has {len(parts)} fields; withSeconds: true "
                "needs 6 (second minute hour day-of-month month day-of-week)"
            )
        if not with_seconds and len(parts) != 5:
            hint = "; set withSeconds: true for 6" if len(parts) == 6 else ""
            raise ValueError(
                f"cron expression has {len(parts)} fields, expected 5 "
                f"(minute hour day-of-month month day-of-week){hint}"
            )
        if not with_seconds:
            parts = ["0", *parts]
    second, minute, hour, day, month, day_of_week = parts
    day = {"?": "*", "L": "last"}.get(day.upper(), day)
    return {
        "second": second,
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": _day_of_week(day_of_week),
    }


def _day_of_week(field: str) -> str:
    """Cron counts Sunday as 0 (and 7), APScheduler Monday as 0: spell the days out."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(
                f"invalid cron expression: day-of-week {part!r}: the step must be a positive number"
            )
        step = int(step_text) if slash else 1
        if base in ("*", "?"):
            first, last = 0, 7
        elif "-" in base:
            low, _, high = base.partition("-")
            first, last = _weekday(low, part), _weekday(high, part) or 7  # "5-0" ends on Sunday
        else:
            first = _weekday(base, part)
            last = 7 if slash else first
        if first > last:
            raise ValueError(
                f"invalid cron expression: day-of-week {part!r}: the range runs backwards"
            )
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(str(day) for day in sorted((day + 6) % 7 for day in days))


def _weekday(text: str, part: str) -> int:
    if text.isdigit():
        if int(text) > 7:
            raise ValueError(
                f"invalid cron expression: day-of-week {part!r}: {text} is out of range 0-7"
            )
        return int(text)
    number = _WEEKDAY_NUMBERS.get(text.lower())
    if number is None:
        raise ValueError(
            f"invalid cron expression: day-of-week {part!r}: use 0-7 (0 and 7 are "
            "Sunday) or SUN-SAT, with ranges, lists and steps"
        )
    return number


def _utc(slot: datetime) -> str:
    """A slot in store keys: one fixed UTC form, whatever the trigger's time zone."""
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(exc: ValueError) -> str:
    """APScheduler's message without its own prefix, in lower case like ours."""
    text = str(exc)
    if text.startswith("Error validating expression"):
        text = text.partition(": ")[2]
    elif text.startswith("Unrecognized expression"):
        text = "not a number, name, range, list or step"
    return text[:1].lower() + text[1:]
