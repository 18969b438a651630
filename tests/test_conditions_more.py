"""Kestra's remaining trigger conditions: Weekend, DayWeekInMonth, PublicHoliday, TimeBetween,
Expression, Not, Or, ExecutionLabels, ExecutionOutputs, HasRetryAttempt
(io.kestra.plugin.core.condition, each under its legacy
`io.kestra.core.models.conditions.types.*Condition` name too)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.expr.renderer import Renderer
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.plugin import Condition, ConditionContext
from daemon.sdk.state import State
from tests.harness import Harness, running_triggers, settle
from tests.test_trigger_flow import downstream, run, started, trigger_of, upstream
from tests.test_trigger_schedule import caught_up, dates, flow, harness

_RENDERER = Renderer()


def render(value: Any, variables: Any) -> Any:
    return _RENDERER.render_value(value, variables)


def condition(yaml: str) -> Condition:
    """The first condition of a Schedule trigger, built by the flow loader (as a flow would)."""
    loaded = load_flow(flow('cron: "0 10 * * *"\nconditions:\n' + yaml), "t.yaml")
    return loaded.triggers[0].conditions[0]


def at(moment: str, **kwargs: Any) -> ConditionContext:
    return ConditionContext("test", "f", date=datetime.fromisoformat(moment), render=render,
                            **kwargs)  # fmt: skip


# -- date conditions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "day", "rank", "holds"),
    [
        ("2021-04-05", "MONDAY", "FIRST", True),
        ("2021-04-01", "THURSDAY", "FIRST", True),
        ("2021-04-01", "MONDAY", "LAST", False),
        ("2021-04-26", "MONDAY", "LAST", True),
        ("2021-04-12", "MONDAY", "SECOND", True),
        ("2021-04-19", "MONDAY", "THIRD", True),
        ("2021-04-26", "MONDAY", "FOURTH", True),
        ("2021-04-19", "MONDAY", "LAST", False),
    ],
)
def test_day_week_in_month(date: str, day: str, rank: str, holds: bool) -> None:
    """Kestra's DayWeekInMonthTest.valid, its rows (plus a third Monday that is not the last)."""
    checked = condition(f"""
      - type: io.kestra.plugin.core.condition.DayWeekInMonth
        date: "{date}"
        dayOfWeek: {day}
        dayInMonth: {rank}
    """)
    assert checked.test(at("2000-01-01T00:00:00+00:00")) is holds


@pytest.mark.parametrize(
    ("before", "after", "holds"),
    [
        ("16:20:12+02:00", "16:18:12+02:00", True),
        ("16:20:12+02:00", None, True),
        ("16:18:12+02:00", None, False),
        (None, "16:19:11+02:00", True),
        (None, "17:19:12+02:00", False),
        (None, "14:19:11Z", True),  # the same instant's day line: 14:19:12Z is after it
        ("14:19:12Z", None, False),  # both bounds are excluded
    ],
)
def test_time_between(before: str | None, after: str | None, holds: bool) -> None:
    """Kestra's TimeBetweenTest.valid on 2024-02-21T16:19:12+02:00, plus bounds in another
    offset (compared as Java's OffsetTime.isBefore/isAfter do)."""
    given = (("before", before), ("after", after))
    bounds = "".join(f'\n        {key}: "{value}"' for key, value in given if value)
    checked = condition(
        """
      - type: io.kestra.core.models.conditions.types.TimeBetweenCondition
        date: "2024-02-21T16:19:12+02:00\""""
        + bounds
    )
    assert checked.test(at("2000-01-01T00:00:00+00:00")) is holds


def test_weekend_on_the_slot() -> None:
    """Kestra's WeekendTest: Saturday and Sunday hold, a weekday does not (the slot's date)."""
    checked = condition("  - type: io.kestra.plugin.core.condition.Weekend")
    assert checked.test(at("2026-01-03T10:00:00+00:00")) is True
    assert checked.test(at("2026-01-04T23:30:00+00:00")) is True
    assert checked.test(at("2026-01-05T10:00:00+00:00")) is False
    # In the slot's own zone: Sunday 23:30 in New York is Monday in UTC, still the weekend.
    assert checked.test(at("2026-01-04T23:30:00-05:00")) is True


async def test_weekend_and_not_on_a_schedule(tmp_path: Path) -> None:
    """Kestra's Not example ("all days except Sunday") and Weekend on a daily schedule."""
    source = flow("""
        cron: "0 10 * * *"
        conditions:
          - type: io.kestra.plugin.core.condition.Weekend
          - type: io.kestra.plugin.core.condition.Not
            conditions:
              - type: io.kestra.plugin.core.condition.DayWeek
                dayOfWeek: SUNDAY
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(13 * 86400)  # Thursday 2026-01-01 to Wednesday 2026-01-14
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-03T10:00:00Z", "2026-01-10T10:00:00Z"]


def test_public_holiday_as_kestra_tests_it() -> None:
    """Kestra's PublicHolidayTest: Bastille Day in France and Women's Day in Berlin hold;
    2 January in France and 8 March in Germany as a whole do not."""
    kind = "io.kestra.plugin.core.condition.PublicHoliday"
    holiday = condition(f"  - type: {kind}\n    date: '2023-07-14'\n    country: FR")
    assert holiday.test(at("2026-01-05T10:00:00+00:00")) is True
    berlin = condition(
        f"  - type: {kind}\n    date: '2023-03-08'\n    country: DE\n    subDivision: BE"
    )
    assert berlin.test(at("2026-01-05T10:00:00+00:00")) is True
    workday = condition(f"  - type: {kind}\n    date: '2023-01-02'\n    country: FR")
    assert workday.test(at("2026-01-05T10:00:00+00:00")) is False
    germany = condition(f"  - type: {kind}\n    date: '2023-03-08'\n    country: DE")
    assert germany.test(at("2026-01-05T10:00:00+00:00")) is False


def test_public_holiday_on_the_slot_with_a_rendered_country(monkeypatch: Any) -> None:
    """The slot's own date by default (`{{ trigger.date }}`), in its own offset; `country`
    may be an expression (a Property in Kestra); the alias names load the same condition;
    without a country the locale's is taken, as Java's default locale (Kestra's disabled
    test: "Locale is not deterministic on CI", so here the locale is set)."""
    checked = condition(
        "  - type: io.kestra.core.models.conditions.types.PublicHolidayCondition\n"
        "    country: \"{{ 'U' ~ 'S' }}\""
    )
    assert checked.test(at("2026-07-04T10:00:00+00:00")) is True
    assert checked.test(at("2026-07-06T10:00:00+00:00")) is False
    # 20:00 on 4 July in Los Angeles is 5 July in UTC (a Sunday, no holiday): read as written
    assert checked.test(at("2026-07-04T20:00:00-07:00")) is True
    assert checked.test(at("2026-07-05T03:00:00+00:00")) is False
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    by_locale = condition("  - type: io.kestra.plugin.core.condition.PublicHolidayCondition")
    assert by_locale.test(at("2026-07-14T10:00:00+00:00")) is True
    assert by_locale.test(at("2026-07-04T10:00:00+00:00")) is False


async def test_public_holiday_skips_new_year_on_a_daily_schedule(tmp_path: Path) -> None:
    """Kestra's PublicHoliday doc example "only on work days in France": Not(PublicHoliday,
    Weekend) on a daily schedule skips 1 January and the weekend."""
    source = flow("""
        cron: "0 11 * * *"
        conditions:
          - type: io.kestra.plugin.core.condition.Not
            conditions:
              - type: io.kestra.plugin.core.condition.PublicHoliday
                country: FR
              - type: io.kestra.plugin.core.condition.Weekend
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(6 * 86400)  # Thursday 2026-01-01 to Wednesday 2026-01-07
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-02T11:00:00Z", "2026-01-05T11:00:00Z", "2026-01-06T11:00:00Z"]


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "  - type: io.kestra.plugin.core.condition.TimeBetween\n    after: '16:00:00'",
            "t.yaml:13:16: triggers[0].conditions[0].after: must be a time with an offset, like "
            "16:00:00+02:00 or 16:00:00Z (got '16:00:00')",
        ),
        (
            "  - type: io.kestra.plugin.core.condition.TimeBetween",
            "t.yaml:12:9: triggers[0].conditions[0]: TimeBetween needs 'after', 'before' or both",
        ),
        (
            "  - type: io.kestra.plugin.core.condition.DayWeekInMonth\n    dayOfWeek: MONDAY\n"
            "    dayInMonth: FIFTH",
            "t.yaml:14:21: triggers[0].conditions[0].dayInMonth: Input should be 'FIRST', "
            "'SECOND', 'THIRD', 'FOURTH' or 'LAST' (got 'FIFTH')",
        ),
        (
            "  - type: io.kestra.plugin.core.condition.Or\n    conditions: []",
            "t.yaml:13:21: triggers[0].conditions[0].conditions: List should have at least 1 "
            "item after validation, not 0 (got [])",
        ),
        (
            "  - type: io.kestra.plugin.core.condition.Not\n    conditions:\n"
            "      - type: io.kestra.plugin.core.condition.Weekday",
            "t.yaml:14:19: triggers[0].conditions[0].conditions[0].type: unknown condition type "
            "'io.kestra.plugin.core.condition.Weekday'; did you mean "
            "io.kestra.plugin.core.condition.Weekend?",
        ),
        (
            "  - type: io.kestra.plugin.core.condition.PublicHoliday\n    country: XX",
            "t.yaml:13:18: triggers[0].conditions[0].country: no public holiday calendar for "
            "country 'XX': expected an ISO 3166-1 alpha-2 code such as FR, US or DE (got 'XX')",
        ),
        (
            "  - type: io.kestra.plugin.core.condition.PublicHoliday",
            "t.yaml:12:9: triggers[0].conditions[0]: country is required: the machine's locale "
            "(LC_ALL, LC_TIME, LANG) names no country to take the public holidays of",
        ),
    ],
)
def test_bad_condition_is_a_load_error_with_its_place(
    yaml: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LC_ALL", "LC_TIME", "LANG"):  # a PublicHoliday without country: no locale
        monkeypatch.setenv(name, "C.UTF-8")
    with pytest.raises(FlowError) as caught:
        condition(yaml)
    assert [str(problem) for problem in caught.value.problems] == [message]


# -- expression conditions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "holds"),
    [
        ("{{ trigger.date | date('EEEE') == 'Saturday' }}", True),
        ("{{ trigger.date | date('EEEE') == 'Monday' }}", False),
        ("{{ flow.namespace }}", True),
        ("  ", False),
        ("false", False),
        ("{{ null }}", False),
        ("False", True),  # Kestra compares with "false" exactly
    ],
)
def test_expression(expression: str, holds: bool) -> None:
    """Kestra's ExpressionTest: blank or `false` does not hold, anything else does; the
    expression sees `trigger.date` and the trigger's own variables."""
    checked = condition(
        f'  - type: io.kestra.plugin.core.condition.Expression\n    expression: "{expression}"'
    )
    ctx = at("2026-01-03T10:00:00+00:00", variables={"flow": {"namespace": "test"}})
    assert checked.test(ctx) is holds


def test_or_holds_when_any_holds_and_legacy_variable_condition_loads() -> None:
    """Kestra's OrTest: one true condition among false ones is enough; none, and it fails.
    VariableCondition is the oldest name of Expression (its `aliases`)."""
    checked = condition("""
      - type: io.kestra.core.models.conditions.types.OrCondition
        conditions:
          - type: io.kestra.core.models.conditions.types.VariableCondition
            expression: "{{ trigger.date | date('d') == '3' }}"
          - type: io.kestra.plugin.core.condition.DayWeek
            dayOfWeek: MONDAY
    """)
    assert checked.test(at("2026-01-03T10:00:00+00:00")) is True  # the 3rd, a Saturday
    assert checked.test(at("2026-01-05T10:00:00+00:00")) is True  # a Monday
    assert checked.test(at("2026-01-06T10:00:00+00:00")) is False


async def test_an_expression_that_fails_skips_the_slot_and_the_schedule_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kestra's ConditionService.isValid: a condition that throws counts as false (logged);
    the next slots are still evaluated."""
    source = flow("""
        cron: "0 10 * * *"
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.date | date('d') == '2' or undefined_function() }}"
    """)
    async with harness(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await caught_up(h, clock)
        await clock.advance(3 * 86400)
        await caught_up(h, clock)
        assert dates(th) == ["2026-01-02T10:00:00Z"]
    assert "condition io.kestra.plugin.core.condition.Expression not evaluated" in caplog.text


# -- conditions on an ended execution (Flow trigger) -----------------------------------------


async def test_execution_labels_select_upstream_executions(h: Harness) -> None:
    """Kestra's ExecutionLabelsTest: every listed label must be on the execution (map or
    list form)."""
    a = await upstream(h)
    trigger = """
        conditions:
          - type: io.kestra.plugin.core.condition.ExecutionLabels
            labels:
              - key: env
                value: prod
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await h.run(a, {"fail": False}, labels={"env": "dev"})
        matching = await h.run(a, {"fail": False}, labels={"env": "prod", "team": "x"})
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == matching.id


async def test_execution_outputs_and_expression_on_a_flow_trigger(h: Harness) -> None:
    """Kestra's ExecutionOutputs example: `trigger.outputs` holds the upstream flow's
    outputs; with Expression beside it reading `trigger.state` (Kestra's Expression on a
    Flow trigger)."""
    a = await upstream(h)
    trigger = """
        conditions:
          - type: io.kestra.plugin.core.condition.ExecutionOutputs
            expression: "{{ trigger.outputs.greeting == 'hello from a' }}"
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.state == 'SUCCESS' and execution.state == 'SUCCESS' }}"
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a, fail=True)  # FAILED: no flow outputs, the condition does not hold
        ok = await run(h, a)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == ok.id


def test_execution_outputs_never_match_an_execution_without_outputs() -> None:
    """Kestra's ExecutionOutputsTest.shouldReturnFalseGivenNoOutputs."""
    checked = condition(
        "  - type: io.kestra.plugin.core.condition.ExecutionOutputs\n    expression: 'true'"
    )
    ended = {"id": "e", "outputs": None}
    assert checked.test(at("2026-01-03T10:00:00+00:00", execution=ended)) is False
    ended = {"id": "e", "outputs": {"x": 1}}
    assert checked.test(at("2026-01-03T10:00:00+00:00", execution=ended)) is True


RETRIED = """
    id: flaky
    namespace: test
    tasks:
      - id: fails
        type: io.kestra.plugin.core.execution.Fail
        retry:
          type: constant
          interval: PT0S
          maxAttempts: 2
"""


async def test_has_retry_attempt_fires_only_after_a_retried_task(h: Harness) -> None:
    """Kestra's HasRetryAttemptTest: a task run with more than one attempt, one of them in
    an `in` state; `a` (no retry) fails without starting anything."""
    a = await upstream(h)
    flaky = await h.flow(RETRIED)
    trigger = """
        conditions:
          - type: io.kestra.plugin.core.condition.HasRetryAttempt
            in: [FAILED]
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a, fail=True)
        retried = await h.run(flaky)
        assert retried.state.current == State.FAILED
        assert len(retried.task_runs[0].attempts) == 2
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == retried.id


def test_has_retry_attempt_not_in_and_without_in() -> None:
    """HasRetryAttempt.test: `notIn` excludes; an absent `in` admits nothing."""
    runs = [{"attempts": [{"state": {"current": "FAILED"}}, {"state": {"current": "SUCCESS"}}]}]
    ended = {"id": "e", "taskRunList": runs}
    ctx = at("2026-01-03T10:00:00+00:00", execution=ended)
    base = "  - type: io.kestra.plugin.core.condition.HasRetryAttempt\n"
    assert condition(base + "    in: [SUCCESS]").test(ctx) is True
    assert condition(base + "    in: [FAILED]\n    notIn: [FAILED]").test(ctx) is False
    assert condition(base + "    notIn: [RUNNING]").test(ctx) is False
    once = {"id": "e", "taskRunList": [{"attempts": [{"state": {"current": "FAILED"}}]}]}
    single = at("2026-01-03T10:00:00Z", execution=once)
    assert condition(base + "    in: [FAILED]").test(single) is False


async def test_legacy_multiple_condition_waits_for_every_named_condition(h: Harness) -> None:
    """Kestra's MultipleConditionTest and its flows (flow-trigger-multiplecondition-flow-*):
    the deprecated MultipleCondition starts one execution once each named condition was met
    by some execution in the window (`window: P1D`), then resets (resetOnSuccess)."""
    a, c = await upstream(h, "a"), await upstream(h, "c")
    trigger = """
        conditions:
          - type: io.kestra.plugin.core.condition.ExecutionStatus
            in: [SUCCESS]
          - type: io.kestra.core.models.conditions.types.MultipleCondition
            id: both
            window: P1D
            windowAdvance: P0D
            conditions:
              flow-a:
                type: io.kestra.plugin.core.condition.ExecutionFlow
                namespace: test
                flowId: a
              flow-c:
                type: io.kestra.plugin.core.condition.ExecutionFlow
                namespace: test
                flowId: c
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)
        await run(h, c, fail=True)  # FAILED: ExecutionStatus refuses it, c is not met
        await h.engine.drain()
        await settle()
        assert th.executions == []
        last = await run(h, c)
        (execution,) = await started(h, th, 1)
        assert trigger_of(execution)["executionId"] == last.id
        await run(h, c)  # reset: a must end again too
        await h.engine.drain()
        await settle()
        assert len(th.executions) == 1


def test_multiple_condition_needs_an_id_and_conditions() -> None:
    """AbstractMultipleCondition: `id` (a pattern) and a non-empty `conditions` map."""
    with pytest.raises(FlowError) as caught:
        load_flow(
            downstream(
                "conditions:\n  - type: io.kestra.plugin.core.condition.MultipleCondition\n"
                "    conditions: {}"
            ),
            "b.yaml",
        )
    assert [str(p) for p in caught.value.problems] == [
        "b.yaml:16:9: triggers[0].conditions[0]: missing required property 'id'",
        "b.yaml:17:21: triggers[0].conditions[0].conditions: Dictionary should have at least 1 "
        "item after validation, not 0",
    ]
