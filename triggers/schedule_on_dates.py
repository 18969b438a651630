"""Kestra's ScheduleOnDates trigger: one execution at each of a list of dates.

As with Schedule, a date is claimed in the durable state before it is emitted (once
across restarts and cluster nodes), the last date run is kept, and dates that passed while
podium was down are run according to `recoverMissedSchedules`. Dates already past when
the trigger is first seen are not run (Kestra starts evaluating from the trigger's
creation).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from daemon.sdk.clock import known_zone
from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import InputError, TemplateError
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import has_template
from daemon.sdk.state import iso

_IDLE = 86400.0  # seconds between wake-ups of a trigger with no date left


class ScheduleOnDates(Trigger):
    """Start the flow at each date of `dates` (ISO-8601 with an offset, or an expression
    rendering such a list), `trigger.date` being the date in `timezone` when given."""

    types = ("io.kestra.plugin.core.trigger.ScheduleOnDates",)
    locks = True

    dates: list[datetime] | str
    timezone: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] = "ALL"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return known_zone(value)

    @field_validator("dates", mode="before")
    @classmethod
    def _dates_or_expression(cls, value: Any) -> list[datetime] | str:
        """One clear message per bad date (a union's two error trees would not be)."""
        if isinstance(value, str):
            if not has_template(value):
                raise ValueError("dates must be a list of ISO-8601 date-times or an expression")
            return value
        if not isinstance(value, list):
            raise ValueError("dates must be a list of ISO-8601 date-times or an expression")
        out = []
        for index, item in enumerate(value):
            try:
                out.append(_aware(item))
            except ValueError as exc:
                raise ValueError(f"dates[{index}]: {exc}") from None
        return out

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        dates = sorted({moment.replace(microsecond=0) for moment in self._dates(ctx)})
        zone = await asyncio.to_thread(ZoneInfo, self.timezone) if self.timezone else None
        last_key = ctx.state_key("last")
        now = ctx.clock.now()
        saved = await ctx.state.get(last_key)
        if saved is None:
            await ctx.state.set(last_key, {"date": _utc(now)})
            missed: list[datetime] = []
        else:
            last = datetime.fromisoformat(saved["date"])
            missed = [d for d in dates if last < d <= now]
            policy = self.recover_missed_schedules
            missed = [] if policy == "NONE" else missed[-1:] if policy == "LAST" else missed
        for moment in missed:
            await asyncio.shield(self._once(moment, zone, emit, ctx))
        for moment in (d for d in dates if d > now):
            while ctx.clock.now() < moment:
                await ctx.clock.sleep_until(moment)
            await asyncio.shield(self._once(moment, zone, emit, ctx))
        while True:  # every date ran: stay loaded (idle on the clock) until the flow changes
            await ctx.clock.sleep(_IDLE)

    def _dates(self, ctx: TriggerContext) -> list[datetime]:
        """The dates, rendered and parsed when given as an expression; a bad one is logged
        and the trigger waits for the flow to change."""
        if not isinstance(self.dates, str):
            return list(self.dates)
        try:
            rendered = ctx.render(self.dates)
            items = json.loads(rendered) if isinstance(rendered, str) else rendered
            if not isinstance(items, list):
                raise ValueError("not a list")
            parsed = [_aware(item) for item in items]
        except (TemplateError, ValueError) as exc:
            ctx.logger.error(
                "%s.%s trigger %s: dates %r are not a list of ISO-8601 date-times with an "
                "offset: %s",
                ctx.flow.namespace, ctx.flow.id, self.id, self.dates, exc,
            )  # fmt: skip
            return []
        return parsed

    async def _once(
        self, moment: datetime, zone: ZoneInfo | None, emit: Emit, ctx: TriggerContext
    ) -> None:
        if not await ctx.state.claim(ctx.state_key("date", _utc(moment))):
            return
        local = moment.astimezone(zone) if zone is not None else moment
        variables = {"date": iso(local)}
        if await self.admits(ctx, variables, local):
            inputs = self.inputs
            try:
                if has_template(inputs):
                    flow = {"id": ctx.flow.id, "namespace": ctx.flow.namespace}
                    inputs = ctx.render(inputs, {"trigger": variables, "flow": flow})
                await emit(inputs, variables)
            except (InputError, TemplateError) as exc:
                ctx.logger.error(
                    "%s.%s trigger %s: date %s not run: %s",
                    ctx.flow.namespace, ctx.flow.id, self.id, variables["date"], exc,
                )  # fmt: skip
        await ctx.state.set(ctx.state_key("last"), {"date": _utc(moment)})


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(value: Any) -> datetime:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{str(value)!r} is not an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{str(value)!r} has no offset (write Z or +01:00)")
    return moment
