"""The Schedule trigger on a fake clock: slots, time zones, restarts, backfill, conditions."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, TriggerHarness, running_triggers
from triggers.schedule import CronSlots

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


class WatchedClock(FakeClock):
    """A FakeClock that tells when something starts sleeping on it."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept.set()  # the sleeper is registered before this task yields
        await super().sleep(seconds)


@asynccontextmanager
async def harness(
    data_dir: Path, start: datetime = T0
) -> AsyncIterator[tuple[Harness, WatchedClock]]:
    clock = WatchedClock(start)
    h = await Harness.open(data_dir, clock=clock)
    try:
        yield h, clock
    finally:
        await h.close()


def flow(trigger: str, message: str = "{{ trigger.date }}", inputs: str = "") -> str:
    """A flow that logs `message`, with one trigger (YAML written at the trigger's indent)."""
    return (
        "id: scheduled\nnamespace: test\n"
        + inputs
        + f"tasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        f'    message: "{message}"\n'
        + "triggers:\n  - id: schedule\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        + textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
        + "\n"
    )


EVERY_SECOND = """
    cron: "* * * * * *"
    withSeconds: true
"""


async def caught_up(h: Harness, clock: WatchedClock) -> None:
    """Wait (bounded) until the schedule sleeps towards a future slot and executions ended.

    The schedule only sleeps once every slot up to now is handled, so this is the
    "until idle" step: nothing in these flows sleeps but the trigger.
    """
    async with asyncio.timeout(20):
        while clock.sleeping == 0:
            clock.slept.clear()
            await clock.slept.wait()
    await h.engine.drain()


def variables(execution: Execution) -> dict[str, Any]:
    """What the flow reads as `trigger.*`."""
    assert execution.trigger is not None
    assert execution.trigger["id"] == "schedule"
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Schedule"
    found: dict[str, Any] = execution.trigger["variables"]
    return found


def dates(th: TriggerHarness) -> list[str]:
    return [variables(e)["date"] for e in th.executions]


def seconds(*offsets: int) -> list[str]:
    return [(T0 + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in offsets]


async def test_with_seconds_schedule_fires_once_per_slot(tmp_path: Path) -> None:
    async with harness(tmp_path) as (h, clock), running_triggers(h, flow(EVERY_SECOND)) as th:
        await caught_up(h, clock)
        for _ in range(3):
            await clock.advance(1)
            await caught_up(h, clock)
        await clock.advance(3)  # a jump over several slots runs each of them
        await caught_up(h, clock)
        assert dates(th) == seconds(1, 2, 3, 4, 5, 6)
        assert variables(th.executions[0]) == {
            "date": "2026-01-01T00:00:01Z",
            "next": "2026-01-01T00:00:02Z",
            "previous": "2026-01-01T00:00:00Z",
        }
        assert [e.state.current for e in await th.finished()] == [State.SUCCESS] * 6


async def test_daily_cron_fires_at_ten_in_its_time_zone_across_dst(tmp_path: Path) -> None:
    trigger = """
        cron: "0 10 * * *"
        timezone: Europe/Paris
    """
    # Paris moves from UTC+1 to UTC+2 on 2026-03-29.
    async with (
        harness(tmp_path, datetime(2026, 3, 27, 12, tzinfo=UTC)) as (h, clock),
        running_triggers(h, flow(trigger)) as th,
    ):
        await caught_up(h, clock)
        await clock.advance(21 * 3600)  # 2026-03-28T09:00Z
        await caught_up(h, clock)
        await clock.advance(23 * 3600)  # 2026-03-29T08:00Z
        await caught_up(h, clock)
        assert dates(th) == ["2026-03-28T10:00:00+01:00", "2026-03-29T10:00:00+02:00"]
        assert [e.start_date for e in th.executions] == [
            datetime(2026, 3, 28, 9, tzinfo=UTC),
            datetime(2026, 3, 29, 8, tzinfo=UTC),
        ]
        assert variables(th.executions[1])["previous"] == "2026-03-28T10:00:00+01:00"


async def test_trigger_date_renders_through_the_date_filter_in_a_log(tmp_path: Path) -> None:
    source = flow('cron: "0 9 1 * *"', message="{{ trigger.date | date('yyyy-MM') }}")
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(9 * 3600)
        await caught_up(h, clock)
        (execution,) = await th.finished()
        assert await h.logs(execution) == ["2026-01"]


@pytest.mark.parametrize(
    ("policy", "recovered"),
    [
        ("ALL", seconds(2, 3, 4, 5, 6, 7, 8, 9, 10, 11)),
        ("LAST", seconds(11)),
        ("NONE", []),
    ],
)
async def test_restart_runs_missed_slots_per_recover_missed_schedules(
    tmp_path: Path, policy: str, recovered: list[str]
) -> None:
    source = flow(textwrap.dedent(EVERY_SECOND) + f"recoverMissedSchedules: {policy}\n")
    async with harness(tmp_path) as (h, clock):
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            await clock.advance(1)
            await caught_up(h, clock)
            assert dates(th) == seconds(1)
        await clock.advance(10)  # podium is down from 00:00:01 to 00:00:11
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            await clock.advance(1)
            await caught_up(h, clock)
            assert dates(th) == recovered + seconds(12)


async def test_no_slot_runs_twice_across_restarts_even_when_the_clock_goes_back(
    tmp_path: Path,
) -> None:
    source = flow(EVERY_SECOND)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(3)
        await caught_up(h, clock)
        assert dates(th) == seconds(1, 2, 3)
    # A new process on the same store, its clock set back to before those slots.
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(5)
        await caught_up(h, clock)
        assert dates(th) == seconds(4, 5)
        assert await h.store.count_executions("test", "scheduled", list(State)) == 5


BACKFILL = """
    cron: "0 * * * *"
    inputs:
      taxi: yellow
    backfill:
      start: "2025-12-31T21:00:00Z"
      end: "2025-12-31T23:00:00Z"
      inputs:
        taxi: green
"""
TAXI = "inputs:\n  - id: taxi\n    type: STRING\n"


async def test_backfill_runs_each_slot_once_before_the_live_schedule(tmp_path: Path) -> None:
    source = flow(BACKFILL, message="{{ inputs.taxi }}", inputs=TAXI)
    async with harness(tmp_path, T0 + timedelta(seconds=30)) as (h, clock):
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            assert dates(th) == [
                "2025-12-31T21:00:00Z",
                "2025-12-31T22:00:00Z",
                "2025-12-31T23:00:00Z",
            ]
            assert [e.inputs for e in th.executions] == [{"taxi": "green"}] * 3
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            assert th.executions == []  # the backfill is not run again
            await clock.advance(3600)
            await caught_up(h, clock)
            assert dates(th) == ["2026-01-01T01:00:00Z"]
            assert th.executions[0].inputs == {"taxi": "yellow"}


async def test_backfill_without_end_stops_where_it_was_first_seen(tmp_path: Path) -> None:
    source = flow("""
        cron: "0 * * * *"
        backfill:
          start: "2025-12-31T22:00:00Z"
    """)
    async with harness(tmp_path, T0 + timedelta(seconds=30)) as (h, clock):
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            assert dates(th) == [
                "2025-12-31T22:00:00Z",
                "2025-12-31T23:00:00Z",
                "2026-01-01T00:00:00Z",
            ]
        await clock.advance(2 * 3600)  # down over 01:00 and 02:00, no live slot run yet
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            assert th.executions == []
            await clock.advance(3600)
            await caught_up(h, clock)
            assert dates(th) == ["2026-01-01T03:00:00Z"]


async def test_late_maximum_delay_skips_slots_that_are_too_late(tmp_path: Path) -> None:
    source = flow("""
        cron: "* * * * *"
        lateMaximumDelay: PT5M
    """)
    async with harness(tmp_path) as (h, clock):
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            await clock.advance(60)
            await caught_up(h, clock)
            assert dates(th) == ["2026-01-01T00:01:00Z"]
        await clock.advance(3600)  # down for an hour
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            assert dates(th) == [f"2026-01-01T00:{m}:00Z" for m in range(56, 60)] + [
                "2026-01-01T01:00:00Z",
                "2026-01-01T01:01:00Z",
            ]


async def test_day_week_condition_skips_other_days(tmp_path: Path) -> None:
    source = flow("""
        cron: "0 10 * * *"
        conditions:
          - type: io.kestra.plugin.core.condition.DayWeek
            dayOfWeek: MONDAY
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(13 * 86400)  # to Wednesday 2026-01-14
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-05T10:00:00Z", "2026-01-12T10:00:00Z"]
        first = variables(th.executions[0])
        assert (first["previous"], first["next"]) == (
            "2025-12-29T10:00:00Z",
            "2026-01-12T10:00:00Z",
        )


async def test_an_expression_condition_reads_the_kv_store_per_slot(tmp_path: Path) -> None:
    """Kestra's Expression condition renders with the flow's run context, whose `kv()`
    reads the flow's namespace (KVFunction, ConditionService): a KV flag switches a
    schedule's slots on and off without editing the flow."""
    source = flow("""
        cron: "0 * * * *"
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ kv('schedule_on', errorOnMissing=false) == true }}"
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(2 * 3600)  # 01:00 and 02:00: the key is missing
        await caught_up(h, clock)
        assert dates(th) == []
        await h.store.kv.set("test", "schedule_on", True)
        await clock.advance(2 * 3600)  # 03:00 and 04:00
        await caught_up(h, clock)
        await h.store.kv.set("test", "schedule_on", False)
        await clock.advance(3600)  # 05:00
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z"]
        first = variables(th.executions[0])  # its neighbours, tested when it ran
        assert (first["previous"], first["next"]) == (
            "2026-01-01T02:00:00Z",
            "2026-01-01T04:00:00Z",
        )


async def test_date_time_between_condition_skips_slots_outside(tmp_path: Path) -> None:
    source = flow("""
        cron: "0 * * * *"
        conditions:
          - type: io.kestra.core.models.conditions.types.DateTimeBetweenCondition
            after: "2026-01-01T02:00:00Z"
            before: "2026-01-01T04:00:00+00:00"
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(6 * 3600)
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z"]


# -- when (Kestra 2.0) ---------------------------------------------------------------------
# Kestra: docs migration-guide/v2.0.0/trigger-conditions-redesign ("when expression context":
# a Schedule's `when` sees `trigger.date`; "Schedule date skipping": a date it refuses is
# skipped as a condition's was) and ConditionService.isValid.


async def test_when_day_of_week_fires_on_mondays_and_skips_the_neighbours(tmp_path: Path) -> None:
    """The guide's "Schedule: specific day of week" (DayWeek MONDAY rewritten as `when`):
    `trigger.previous` and `trigger.next` are the neighbouring dates `when` admits."""
    source = flow("""
        cron: "0 9 * * *"
        when: "{{ dayOfWeek(trigger.date) == 'MONDAY' }}"
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(13 * 86400)  # to Wednesday 2026-01-14
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-05T09:00:00Z", "2026-01-12T09:00:00Z"]
        first = variables(th.executions[0])
        assert (first["previous"], first["next"]) == (
            "2025-12-29T09:00:00Z",
            "2026-01-12T09:00:00Z",
        )


async def test_when_combines_calendar_functions_with_and_and_not(tmp_path: Path) -> None:
    """The guide's "weekdays only" and "specific hours only": `not isWeekend(...)` joined to
    `hourOfDay` bounds, in the schedule's own time zone."""
    source = flow("""
        cron: "0 * * * *"
        timezone: Europe/Paris
        when: >-
          {{ not isWeekend(trigger.date)
             and hourOfDay(trigger.date) >= 8 and hourOfDay(trigger.date) < 10 }}
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(4 * 86400)  # Thursday 1 to Monday 5 January 2026
        await caught_up(h, clock)
        assert dates(th) == [
            "2026-01-01T08:00:00+01:00",
            "2026-01-01T09:00:00+01:00",
            "2026-01-02T08:00:00+01:00",
            "2026-01-02T09:00:00+01:00",
        ]


async def test_when_compares_trigger_date_with_iso_text(tmp_path: Path) -> None:
    """The guide's "Schedule: date range" (DateTimeBetween rewritten as `when`)."""
    source = flow("""
        cron: "0 * * * *"
        when: >-
          {{ trigger.date > '2026-01-01T01:59:59Z' and trigger.date < '2026-01-01T04:00:00Z' }}
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(6 * 3600)
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"]


async def test_when_and_conditions_must_both_hold(tmp_path: Path) -> None:
    """A 1.x flow moving to 2.0 may carry both for a while: Kestra tests `when`, then the
    conditions."""
    source = flow("""
        cron: "0 10 * * *"
        when: "{{ dayOfMonth(trigger.date) > 5 }}"
        conditions:
          - type: io.kestra.plugin.core.condition.DayWeek
            dayOfWeek: MONDAY
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(13 * 86400)
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-12T10:00:00Z"]


async def test_when_reads_the_kv_store_per_date(tmp_path: Path) -> None:
    """`when` renders with the flow's functions (`kv()` of its namespace), for each date."""
    source = flow("""
        cron: "0 * * * *"
        when: "{{ kv('schedule_on', errorOnMissing=false) == true }}"
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(3600)
        await caught_up(h, clock)
        await h.store.kv.set("test", "schedule_on", True)
        await clock.advance(3600)
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-01T02:00:00Z"]


async def test_a_literal_false_when_never_fires(tmp_path: Path) -> None:
    """A YAML `false` is read as the text "false" (Jackson into a String): falsy."""
    source = flow("""
        cron: "0 * * * *"
        when: false
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(2 * 3600)
        await caught_up(h, clock)
        assert th.executions == []
        assert th.flow.triggers[0].when == "false"


async def test_a_when_that_cannot_be_rendered_is_logged_and_fires_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ConditionService.isNotValid: a rendering error is logged and counts as false."""
    source = flow("""
        cron: "0 * * * *"
        when: "{{ hourOfDay(nosuchvar) > 2 }}"
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        with caplog.at_level(logging.ERROR, logger="daemon.engine.supervisor"):
            await caught_up(h, clock)
            await clock.advance(3600)
            await caught_up(h, clock)
        assert th.executions == []
    assert any(
        r.getMessage().startswith(
            "test.scheduled trigger schedule when: '{{ hourOfDay(nosuchvar) > 2 }}' cannot be "
            "rendered, counted false"
        )
        for r in caplog.records
    )


def slots(cron: str, count: int, start: datetime = T0) -> list[str]:
    out, moment = [], start
    schedule = CronSlots(cron, False, "Etc/UTC")
    for _ in range(count):
        found = schedule.after(moment)
        assert found is not None
        out.append(found.strftime("%a %d %H:%M"))
        moment = found
    return out


def test_weekday_range_counts_monday_as_one() -> None:
    assert slots("0 9 * * 1-5", 6) == [
        "Thu 01 09:00",
        "Fri 02 09:00",
        "Mon 05 09:00",
        "Tue 06 09:00",
        "Wed 07 09:00",
        "Thu 08 09:00",
    ]


def test_sunday_is_zero_and_seven_with_steps_and_names() -> None:
    assert slots("*/15 * * * 0", 5) == [
        "Sun 04 00:00",
        "Sun 04 00:15",
        "Sun 04 00:30",
        "Sun 04 00:45",
        "Sun 04 01:00",
    ]
    assert slots("0 0 * * 7", 2) == ["Sun 04 00:00", "Sun 11 00:00"]
    assert slots("0 0 * * SAT-SUN", 3) == ["Sat 03 00:00", "Sun 04 00:00", "Sat 10 00:00"]
    assert slots("0 0 * * 5-0", 4) == [
        "Fri 02 00:00",
        "Sat 03 00:00",
        "Sun 04 00:00",
        "Fri 09 00:00",
    ]
    assert slots("0 0 * * */2", 4) == [
        "Sat 03 00:00",
        "Sun 04 00:00",
        "Tue 06 00:00",
        "Thu 08 00:00",
    ]


def test_day_of_month_and_day_of_week_both_set_fire_on_either_as_in_cron() -> None:
    """POSIX crontab(5): "Friday the 13th" style entries run on every Friday AND on
    every 13th, not only when both hold."""
    assert slots("0 9 13 * 5", 4) == [
        "Fri 02 09:00",
        "Fri 09 09:00",
        "Tue 13 09:00",
        "Fri 16 09:00",
    ]
    assert slots("0 9 13 * *", 2) == ["Tue 13 09:00", "Fri 13 09:00"]
    union = CronSlots("0 9 13 * 5", False, "Etc/UTC")
    assert union.before(datetime(2026, 1, 14, tzinfo=UTC)) == datetime(2026, 1, 13, 9, tzinfo=UTC)


def test_nicknames_and_previous_slot() -> None:
    assert slots("@daily", 2) == ["Fri 02 00:00", "Sat 03 00:00"]
    monthly = CronSlots("@monthly", False, "Etc/UTC")
    assert monthly.before(T0) == datetime(2025, 12, 1, tzinfo=UTC)
    every_second = CronSlots("* * * * * *", True, "Etc/UTC")
    assert every_second.before(T0) == T0 - timedelta(seconds=1)


def load_error(trigger: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(flow(trigger), "t.yaml")
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (
            'cron: "61 * * * *"',
            "t.yaml:10:11: triggers[0].cron: invalid cron expression: minute '61': the last value "
            "(61) is higher than the maximum value (59) (got '61 * * * *')",
        ),
        (
            'cron: "0 9 * * MON#2"',
            "t.yaml:10:11: triggers[0].cron: invalid cron expression: day-of-week 'MON#2': use 0-7 "
            "(0 and 7 are Sunday) or SUN-SAT, with ranges, lists and steps (got '0 9 * * MON#2')",
        ),
        (
            'cron: "@often"',
            "t.yaml:10:11: triggers[0].cron: invalid cron expression: unknown nickname; use one of "
            "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly (got '@often')",
        ),
        (
            'cron: "0 0 31 2 *"',
            "t.yaml:10:11: triggers[0].cron: invalid cron expression: it never matches a date "
            "(got '0 0 31 2 *')",
        ),
        (
            'cron: "0 0 9 * * *"',
            "t.yaml:10:11: triggers[0].cron: cron expression has 6 fields, expected 5 (minute hour "
            "day-of-month month day-of-week); set withSeconds: true for 6 (got '0 0 9 * * *')",
        ),
        (
            'cron: "0 9 * * *"\nwithSeconds: true',
            "t.yaml:10:11: triggers[0].cron: cron expression has 5 fields; withSeconds: "
            "true needs 6 "
            "(second minute hour day-of-month month day-of-week) (got '0 9 * * *')",
        ),
        (
            'cron: "0 9 * * *"\ntimezone: Mars/Olympus',
            "t.yaml:11:15: triggers[0].timezone: unknown time zone: use an IANA name such as "
            "Europe/Paris (got 'Mars/Olympus')",
        ),
        (
            'cron: "0 9 * * *"\nrecoverMissedSchedules: SOME',
            "t.yaml:11:29: triggers[0].recoverMissedSchedules: Input should be 'ALL', 'LAST' or "
            "'NONE' (got 'SOME')",
        ),
        (
            'cron: "0 9 * * *"\nbackfill:\n  end: "2026-01-01T00:00:00Z"',
            "t.yaml:12:7: triggers[0].backfill: missing required property 'start'",
        ),
        (
            'cron: "0 9 * * *"\nconditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n'
            "    dayOfWeek: FUNDAY",
            "t.yaml:13:20: triggers[0].conditions[0].dayOfWeek: Input should be 'MONDAY', "
            "'TUESDAY', "
            "'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY' or 'SUNDAY' (got 'FUNDAY')",
        ),
        (
            'cron: "0 9 * * *"\nwhen: "{{ isWeekend(trigger.date) "',
            "t.yaml:11:11: triggers[0].when: the expression does not parse: unexpected end of "
            "template, expected 'end of print statement'.",
        ),
        (
            'cron: "0 9 * * *"\nwhen: [true]',
            "t.yaml:11:11: triggers[0].when: Input should be a valid string (got [True])",
        ),
        (
            'cron: "0 9 * * *"\nconditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n'
            '    dayOfWeek: MONDAY\n    date: "{{ execution.startDate }}"',
            "t.yaml:14:15: triggers[0].conditions[0].date: date must be '{{ trigger.date }}' or an "
            "ISO-8601 date (got '{{ execution.startDate }}')",
        ),
    ],
)
def test_bad_schedule_is_a_load_error_with_its_place(trigger: str, message: str) -> None:
    assert load_error(trigger) == [message]
