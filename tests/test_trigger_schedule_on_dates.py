"""Kestra's ScheduleOnDates trigger (core/src/main/java/io/kestra/plugin/core/trigger/
ScheduleOnDates.java; ScheduleOnDatesTest) on a fake clock."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from tests.harness import TriggerHarness, running_triggers
from tests.test_trigger_schedule import caught_up, harness

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def flow(trigger: str) -> str:
    return (
        "id: dated\nnamespace: test\ninputs:\n  - id: day\n    type: STRING\n    defaults: x\n"
        "tasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        '    message: "{{ trigger.date }} {{ inputs.day }}"\n'
        "triggers:\n  - id: dates\n    type: io.kestra.plugin.core.trigger.ScheduleOnDates\n"
        + textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
        + "\n"
    )


def fired(th: TriggerHarness) -> list[str]:
    return [_trigger(e)["date"] for e in th.executions]


def _trigger(execution: Execution) -> dict[str, Any]:
    assert execution.trigger is not None
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.ScheduleOnDates"
    found: dict[str, Any] = execution.trigger["variables"]
    return found


async def test_runs_once_at_each_future_date_in_the_time_zone(tmp_path: Path) -> None:
    """ScheduleOnDates.eval: the next date not yet evaluated, as `trigger.date` in
    `timezone`; a date already past at the first evaluation is not run; inputs render with
    trigger.date."""
    source = flow("""
        timezone: Europe/Paris
        inputs:
          day: "{{ trigger.date | date('yyyy-MM-dd') }}"
        dates:
          - 2025-12-31T10:00:00Z
          - 2026-01-01T08:00:00Z
          - 2026-01-03T09:30:00+01:00
          - 2026-01-01T08:00:00Z
    """)
    async with harness(tmp_path, T0) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(5 * 86400)
        await caught_up(h, clock)
        assert fired(th) == ["2026-01-01T09:00:00+01:00", "2026-01-03T09:30:00+01:00"]
        assert th.executions[0].inputs == {"day": "2026-01-01"}


async def test_dates_from_an_expression_and_conditions(tmp_path: Path) -> None:
    """`dates` is a Property<List<ZonedDateTime>>: an expression may give the list; trigger
    conditions apply to each date (here: Kestra's Weekend, 2026-01-03 is a Saturday)."""
    source = flow("""
        dates: "{{ ['2026-01-02T10:00:00Z', '2026-01-03T10:00:00Z'] | json }}"
        conditions:
          - type: io.kestra.plugin.core.condition.Weekend
    """)
    async with harness(tmp_path, T0) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(4 * 86400)
        await caught_up(h, clock)
        assert fired(th) == ["2026-01-03T10:00:00Z"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("ALL", ["2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"]),
        ("LAST", ["2026-01-03T10:00:00Z"]),
        ("NONE", []),
    ],
)
async def test_dates_missed_while_stopped_follow_recover_missed_schedules(
    tmp_path: Path, policy: str, expected: list[str]
) -> None:
    """recoverMissedSchedules (Kestra's Schedulable): dates that passed while the trigger
    was not running run all, the latest, or none; a date is never run twice."""
    source = flow(f"""
        recoverMissedSchedules: {policy}
        dates: [2026-01-01T10:00:00Z, 2026-01-02T10:00:00Z, 2026-01-03T10:00:00Z]
    """)
    async with harness(tmp_path, T0) as (h, clock):
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            await clock.advance(12 * 3600)  # the first date runs
            await caught_up(h, clock)
            assert fired(th) == ["2026-01-01T10:00:00Z"]
        await clock.advance(3 * 86400)  # stopped over the two others
        async with running_triggers(h, source) as th:
            await caught_up(h, clock)
            assert fired(th) == expected


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("dates: [2026-01-01T10:00:00]",
         "t.yaml:14:12: triggers[0].dates: dates[0]: '2026-01-01T10:00:00' has no offset "
         "(write Z or +01:00) (got ['2026-01-01T10:00:00'])"),
        ("dates: [2026-01-01T10:00:00Z, soon]",
         "t.yaml:14:12: triggers[0].dates: dates[1]: 'soon' is not an ISO-8601 date-time "
         "(got ['2026-01-01T10:00:00Z', 'soon'])"),
        ("dates: tomorrow",
         "t.yaml:14:12: triggers[0].dates: dates must be a list of ISO-8601 date-times or an "
         "expression (got 'tomorrow')"),
        ("timezone: Mars/Olympus\ndates: [2026-01-01T10:00:00Z]",
         "t.yaml:14:15: triggers[0].timezone: unknown time zone: use an IANA name such as "
         "Europe/Paris (got 'Mars/Olympus')"),
    ],
)  # fmt: skip
def test_bad_dates_are_load_errors_with_their_place(trigger: str, message: str) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(flow(trigger), "t.yaml")
    assert [str(p) for p in caught.value.problems] == [message]
