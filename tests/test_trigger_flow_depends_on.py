"""The Flow trigger's newer syntax (Kestra 2.0): `dependsOn`, `window`, `mode` with
`minSatisfied`, trigger-level `states` and `when`, run through the engine: upstream flows end,
the downstream flow starts with the right `trigger.*` variables and inputs."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from daemon.app.cli import main as cli
from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow
from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, TriggerHarness, problems, running_triggers, settle
from triggers.flow import Window

UPSTREAM = """
    id: {id}
    namespace: {namespace}
    inputs:
      - id: fail
        type: BOOLEAN
        defaults: false
    tasks:
      - id: greet
        type: io.kestra.plugin.core.debug.Return
        format: hello from {id}
      - id: maybe_fail
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{{{ inputs.fail }}}}"
    outputs:
      - id: greeting
        type: STRING
        value: "{{{{ outputs.greet.value }}}}"
"""


def downstream(trigger: str, namespace: str = "test") -> str:
    """Flow `b`, whose Flow trigger `upstream` is `trigger` (YAML at the trigger's indent)."""
    return (
        textwrap.dedent(f"""
        id: b
        namespace: {namespace}
        inputs:
          - id: greeting
            type: STRING
            defaults: none
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.flowId }}}} {{{{ inputs.greeting }}}}"
        triggers:
          - id: upstream
            type: io.kestra.plugin.core.trigger.Flow
    """)
        + textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
        + "\n"
    )


async def upstream(h: Harness, flow_id: str, namespace: str = "test") -> Flow:
    return await h.flow(UPSTREAM.format(id=flow_id, namespace=namespace))


async def run(
    h: Harness, flow: Flow, *, fail: bool = False, labels: dict[str, str] | None = None
) -> Execution:
    execution = await h.run(flow, {"fail": fail}, labels=labels or {})
    assert execution.state.current == (State.FAILED if fail else State.SUCCESS)
    return execution


async def quiet(h: Harness) -> None:
    """Let the trigger look at everything that ended (it starts nothing by itself)."""
    await h.engine.drain()
    await h.store.flush()
    await settle()


async def started(h: Harness, th: TriggerHarness, count: int) -> list[Execution]:
    """The downstream executions once `count` exist and all ended, checking no more came."""
    await th.wait_for(count)
    ended = await th.finished()
    await quiet(h)
    assert len(th.executions) == count
    return ended


def trigger_of(execution: Execution) -> dict[str, object]:
    assert execution.trigger is not None
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Flow"
    variables: dict[str, object] = execution.trigger["variables"]
    return variables


# -- mode: ALL, ANY, AT_LEAST ------------------------------------------------------------------


async def test_depends_on_all_starts_once_every_dependency_ended_with_their_outputs(
    h: Harness,
) -> None:
    """Kestra Flow.java (DependsOnMultipleCondition, mode ALL by default; evaluate() deep-merges
    the current execution's outputs with the window's, which MultipleConditionWindow.withOutputs
    keeps under namespace and flow id): one execution once a and c both succeeded, its inputs
    rendered from `trigger.outputs`; without a `window` the dependencies must all end again."""
    a, c = await upstream(h, "a"), await upstream(h, "c")
    trigger = """
        inputs:
          greeting: "{{ trigger.outputs.test.a.greeting }} + {{ trigger.outputs.greeting }}"
        dependsOn:
          - namespace: test
            flowId: a
            states: [SUCCESS]
          - namespace: test
            flowId: c
            states: [SUCCESS]
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)
        await run(h, c, fail=True)
        await quiet(h)
        assert th.executions == []  # c has not succeeded yet
        last = await run(h, c)
        (execution,) = await started(h, th, 1)
        await run(h, c)  # met again only once a succeeds again
        await quiet(h)
        assert len(th.executions) == 1
    assert execution.inputs == {"greeting": "hello from a + hello from c"}
    assert trigger_of(execution)["executionId"] == last.id
    assert trigger_of(execution)["outputs"] == {
        "greeting": "hello from c",
        "test": {"a": {"greeting": "hello from a"}, "c": {"greeting": "hello from c"}},
    }
    assert await h.logs(execution) == ["c hello from a + hello from c"]


async def test_depends_on_any_starts_for_each_dependency_met(h: Harness) -> None:
    """Kestra MultipleCondition.Mode.ANY: one dependency met is enough, each time."""
    a, c, d = await upstream(h, "a"), await upstream(h, "c"), await upstream(h, "d")
    trigger = """
        mode: ANY
        dependsOn:
          - {namespace: test, flowId: a}
          - {namespace: test, flowId: c}
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)
        await run(h, d)
        await run(h, c, fail=True)
        ended = await started(h, th, 2)
    assert [(trigger_of(e)["flowId"], trigger_of(e)["state"]) for e in ended] == [
        ("a", "SUCCESS"),
        ("c", "FAILED"),
    ]


async def test_depends_on_at_least_needs_min_satisfied_different_dependencies(
    h: Harness,
) -> None:
    """Kestra MultipleCondition.Mode.AT_LEAST with `minSatisfied`: the same dependency met twice
    counts once; two of the three start one execution."""
    a, c, d = await upstream(h, "a"), await upstream(h, "c"), await upstream(h, "d")
    trigger = """
        mode: AT_LEAST
        minSatisfied: 2
        dependsOn:
          - {namespace: test, flowId: a, states: [SUCCESS]}
          - {namespace: test, flowId: c, states: [SUCCESS]}
          - {namespace: test, flowId: d, states: [SUCCESS]}
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)
        await run(h, a)
        await run(h, c, fail=True)
        await quiet(h)
        assert th.executions == []
        last = await run(h, d)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == last.id


# -- per-dependency states, labels and when ----------------------------------------------------


async def test_a_dependency_matches_on_states_labels_and_its_when(h: Harness) -> None:
    """Kestra Flow.DependencyCondition: namespace, flowId, states, labels (compared as text)
    and `when`, a Pebble expression rendered against the upstream execution (its `labels`,
    `execution.state`, `outputs`), must all hold (Flow.java example 5 matches on labels)."""
    a = await upstream(h, "a")
    trigger = """
        dependsOn:
          - namespace: test
            flowId: a
            states: [FAILED]
            labels:
              team: data
              tier: 1
            when: "{{ labels.env == 'prod' and outputs.greet.value == 'hello from a' }}"
    """
    team = {"team": "data", "tier": "1"}
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a, fail=True, labels={**team, "env": "dev"})  # when is false
        await run(h, a, labels={**team, "env": "prod"})  # not FAILED
        await run(h, a, fail=True, labels={"team": "web", "tier": "1", "env": "prod"})
        hit = await run(h, a, fail=True, labels={**team, "env": "prod"})
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == hit.id
    assert trigger_of(execution)["executionLabels"] == {**team, "env": "prod"}


async def test_a_dependency_when_that_does_not_render_is_logged_and_not_met(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Kestra FlowTriggerService (an unrenderable dependsOn `when` is the owning flow's
    misconfiguration: logged as an error, the dependency not met, no execution)."""
    a = await upstream(h, "a")
    trigger = """
        dependsOn:
          - namespace: test
            flowId: a
            when: "{{ nosuchvar }}"
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        with caplog.at_level(logging.ERROR, logger="daemon.engine.supervisor"):
            await run(h, a)
            await quiet(h)
        assert th.executions == []
    (record,) = [r for r in caplog.records if "cannot be rendered" in r.getMessage()]
    assert record.getMessage().startswith(
        "test.b trigger upstream dependsOn[0].when: '{{ nosuchvar }}' cannot be rendered"
    )


# -- trigger-level states and when -------------------------------------------------------------


async def test_trigger_states_and_when_select_upstream_executions(h: Harness) -> None:
    """Kestra Flow.java example 3 (a system flow alerting on FAILED or WARNING executions of
    any flow whose namespace starts with `company`): the trigger-level `when` renders with
    `flow` as the upstream flow, not the flow that owns the trigger."""
    team, other = await upstream(h, "a", "company.team"), await upstream(h, "a", "other")
    trigger = """
        states: [FAILED, WARNING]
        when: "{{flow.namespace | startsWith('company')}}"
    """
    async with running_triggers(h, downstream(trigger, namespace="system")) as th:
        await settle()
        await run(h, team)
        await run(h, other, fail=True)
        failed = await run(h, team, fail=True)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == failed.id
    assert trigger_of(execution)["namespace"] == "company.team"


async def test_trigger_when_reads_the_upstream_execution_and_gates_depends_on(
    h: Harness,
) -> None:
    """Kestra Flow.java: the trigger `when` is evaluated against the upstream execution
    (`execution.outputs` its flow outputs, `inputs` its inputs) before `dependsOn`; an
    execution it refuses does not count towards the window."""
    a = await upstream(h, "a")
    trigger = """
        when: "{{ execution.outputs.greeting == 'hello from a' and not inputs.fail }}"
        dependsOn:
          - {namespace: test, flowId: a}
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a, fail=True)
        await quiet(h)
        assert th.executions == []
        ok = await run(h, a)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == ok.id


async def test_a_trigger_when_that_does_not_render_starts_nothing(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Kestra FlowTriggerInvalidWhenCycleTest: a trigger `when` that cannot be rendered does not
    fire, and is logged as the owning flow's error. The trigger may judge the ended execution
    after the engine is idle (it hears of it through the store): the test waits for the
    line rather than for a number of loop turns."""

    def logged() -> bool:
        return any(
            r.getMessage().startswith("test.b trigger upstream when: '{{ nosuchvar }}' cannot")
            for r in caplog.records
        )

    a = await upstream(h, "a")
    async with running_triggers(h, downstream('when: "{{ nosuchvar }}"')) as th:
        await settle()
        with caplog.at_level(logging.ERROR, logger="daemon.engine.supervisor"):
            await run(h, a)
            async with asyncio.timeout(10):
                while True:
                    if logged():
                        break
                    await asyncio.sleep(0.01)
            await quiet(h)
        assert th.executions == []


async def test_when_reads_the_guides_upstream_variables(h: Harness) -> None:
    """Kestra docs migration-guide/v2.0.0/trigger-conditions-redesign, "when expression
    context" for Flow triggers (`namespace`, `flowId`, `state`, `labels`, `outputs`) and its
    "Namespace-wide alerting" and "Negation" examples: a dependency `when` with
    `namespace | startsWith(...)`, a trigger `when` with `state != 'SUCCESS'`."""
    team, other, sub = (
        await upstream(h, "a", "company.team"),
        await upstream(h, "a", "other"),
        await upstream(h, "c", "company.team.sub"),
    )
    trigger = """
        when: "{{ state != 'SUCCESS' and flowId == 'a' and outputs.greet.value == 'hello from a' }}"
        dependsOn:
          - when: "{{ namespace | startsWith('company') and labels.env == 'prod' }}"
    """
    prod = {"env": "prod"}
    async with running_triggers(h, downstream(trigger, namespace="system")) as th:
        await settle()
        await run(h, team, labels=prod)  # SUCCESS
        await run(h, other, fail=True, labels=prod)  # not a company namespace
        await run(h, sub, fail=True, labels=prod)  # flow c
        await run(h, team, fail=True)  # no env label
        failed = await run(h, team, fail=True, labels=prod)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == failed.id


async def test_when_has_retry_attempt_tells_a_retried_upstream(h: Harness) -> None:
    """The guide's "Filtering on retry attempts": `hasRetryAttempt` is true when a task run
    of the upstream execution was attempted more than once."""
    source = """
        id: {id}
        namespace: test
        tasks:
          - id: fails
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            retry:
              type: constant
              interval: PT0.01S
              maxAttempts: {attempts}
    """
    steady = await h.flow(source.format(id="steady", attempts=1))
    flaky = await h.flow(source.format(id="flaky", attempts=2))
    trigger = """
        dependsOn:
          - namespace: test
            when: "{{ hasRetryAttempt == true }}"
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await h.run(steady, {})
        await quiet(h)
        assert th.executions == []
        retried = await h.run(flaky, {})
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == retried.id


async def test_the_default_states_are_the_terminal_ones_and_paused(h: Harness) -> None:
    """Kestra Flow.java `states`: by default terminal states and PAUSED."""
    paused = await h.flow("""
        id: waits
        namespace: test
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Pause
    """)
    async with running_triggers(h, downstream("dependsOn: [{flowId: waits}]")) as th:
        await settle()
        execution = await h.start(paused)
        (started_one,) = await th.wait_for(1)
        await th.finished()
    assert trigger_of(started_one)["executionId"] == execution.id
    assert trigger_of(started_one)["state"] == "PAUSED"


# -- old and new together ----------------------------------------------------------------------


async def test_preconditions_and_depends_on_must_both_be_met(h: Harness) -> None:
    """Kestra 1.x FlowTriggerService (computeExecutionsFromFlowTriggerPreconditionsAndDependsOn):
    with both `preconditions` and `dependsOn`, an ended execution is recorded in both windows
    and an execution starts once both are met, even by different upstream executions; both
    reset then. `preconditions` loads with a warning naming `dependsOn`."""
    a, c = await upstream(h, "a"), await upstream(h, "c")
    trigger = """
        preconditions:
          id: a_ok
          flows:
            - {namespace: test, flowId: a, states: [SUCCESS]}
        dependsOn:
          - {namespace: test, flowId: c, states: [SUCCESS]}
    """
    source = downstream(trigger)
    flow = load_flow(source, "b.yaml")
    assert [w.message for w in flow.warnings] == ["'preconditions' is deprecated; use 'dependsOn'"]
    async with running_triggers(h, source) as th:
        await settle()
        await run(h, c)  # dependsOn met, preconditions not
        await quiet(h)
        assert th.executions == []
        first = await run(h, a)  # preconditions met too
        await th.wait_for(1)
        await run(h, c)  # both reset: dependsOn met again, preconditions not
        await quiet(h)
        assert len(th.executions) == 1
        second = await run(h, a)
        ended = await started(h, th, 2)
    assert [trigger_of(e)["executionId"] for e in ended] == [first.id, second.id]
    # the outputs: the preconditions' matched executions, and dependsOn's by flow
    assert trigger_of(ended[1])["outputs"] == {
        "greeting": "hello from a",
        "test": {"c": {"greeting": "hello from c"}},
    }


# -- windows -----------------------------------------------------------------------------------


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    """An engine whose executions end at the fake clock's time (08:00 UTC on 2025-05-01)."""
    clock = FakeClock(datetime(2025, 5, 1, 8, tzinfo=UTC))
    harness = await Harness.open(tmp_path / "data", clock=clock)
    yield harness, clock
    await harness.close()


async def test_a_deadline_window_counts_only_executions_ended_before_it(
    clocked: tuple[Harness, FakeClock],
) -> None:
    """Kestra Flow.java example 2 (`window.deadline: "09:00:00"`, Window.toTimeWindow's
    DAILY_TIME_DEADLINE): bronze_layer succeeding by 9 AM starts silver_layer; after the
    deadline it does not, until the next day."""
    h, clock = clocked
    bronze = await upstream(h, "bronze_layer", "company.team")
    trigger = """
        window:
          deadline: "09:00:00"
        dependsOn:
          - namespace: company.team
            flowId: bronze_layer
            states: [SUCCESS]
    """
    async with running_triggers(h, downstream(trigger, "company.team")) as th:
        await settle()
        on_time = await run(h, bronze)
        await th.wait_for(1)
        await clock.advance(2 * 3600)  # 10:00
        await run(h, bronze)
        await quiet(h)
        assert len(th.executions) == 1
        await clock.advance(22 * 3600)  # 08:00 the next day
        next_day = await run(h, bronze)
        ended = await started(h, th, 2)
    assert [trigger_of(e)["executionId"] for e in ended] == [on_time.id, next_day.id]


async def test_a_lookback_window_forgets_what_ended_before_it(
    clocked: tuple[Harness, FakeClock],
) -> None:
    """Kestra Window `lookback` (SLIDING_WINDOW): the dependencies must be met within the
    duration before now; with `fireOnce` false (the default) each further match in the window
    starts another execution, with `fireOnce: true` they must all be met again."""
    h, clock = clocked
    a, c = await upstream(h, "a"), await upstream(h, "c")
    trigger = """
        window:
          lookback: PT1H
        dependsOn:
          - {namespace: test, flowId: a}
          - {namespace: test, flowId: c}
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)  # 08:00
        await clock.advance(90 * 60)
        await run(h, c)  # 09:30: a ended more than an hour ago
        await quiet(h)
        assert th.executions == []
        await clock.advance(15 * 60)
        first = await run(h, a)  # 09:45: c ended 15 minutes ago
        await th.wait_for(1)
        second = await run(h, a)  # not reset: still met
        ended = await started(h, th, 2)
    assert [trigger_of(e)["executionId"] for e in ended] == [first.id, second.id]

    once = """
        window:
          lookback: PT1H
          fireOnce: true
        dependsOn:
          - {namespace: test, flowId: a}
          - {namespace: test, flowId: c}
    """
    await clock.advance(2 * 3600)  # what was met has left the lookback
    async with running_triggers(h, downstream(once)) as th:
        await settle()
        await run(h, c)
        await quiet(h)
        assert th.executions == []
        hit = await run(h, a)
        await th.wait_for(1)
        await run(h, a)  # reset: c must end again
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == hit.id


def test_window_types_follow_the_fields_set() -> None:
    """Kestra Window.toTimeWindow: deadline -> DAILY_TIME_DEADLINE, from/to ->
    DAILY_TIME_WINDOW, lookback -> SLIDING_WINDOW, else DURATION_WINDOW (every, offset);
    daily boundaries in `timezone`."""
    paris = Window.model_validate({"deadline": "09:00:00", "timezone": "Europe/Paris"})
    deadline = paris.time_window()
    assert (deadline.type, deadline.deadline) == ("DAILY_TIME_DEADLINE", time(9))
    # 06:30 UTC is 08:30 in Paris (summer time): before the deadline, 07:00 UTC
    assert deadline.bounds(datetime(2025, 5, 1, 6, 30, tzinfo=UTC)) == (
        datetime(2025, 4, 30, 22, tzinfo=UTC),
        datetime(2025, 5, 1, 7, tzinfo=UTC),
    )
    assert deadline.bounds(datetime(2025, 5, 1, 7, 30, tzinfo=UTC)) is None
    daily = Window.model_validate({"from": "06:00", "to": "09:00"}).time_window()
    assert (daily.type, daily.start_time, daily.end_time) == ("DAILY_TIME_WINDOW", time(6), time(9))
    sliding = Window.model_validate({"lookback": "PT2H"}).time_window()
    assert (sliding.type, sliding.window) == ("SLIDING_WINDOW", timedelta(hours=2))
    fixed = Window.model_validate({"every": "PT6H", "offset": "PT3H"}).time_window()
    assert (fixed.type, fixed.window, fixed.window_advance) == (
        "DURATION_WINDOW",
        timedelta(hours=6),
        timedelta(hours=3),
    )
    assert fixed.bounds(datetime(2025, 5, 1, 13, 30, tzinfo=UTC)) == (
        datetime(2025, 5, 1, 9, tzinfo=UTC),
        datetime(2025, 5, 1, 15, tzinfo=UTC),
    )
    assert Window().time_window().type == "DURATION_WINDOW"


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (
            "mode: AT_LEAST\ndependsOn: [{flowId: a}, {flowId: c}]",
            "b.yaml:12:5: triggers[0]: 'minSatisfied' must be set when mode is AT_LEAST",
        ),
        (
            "mode: AT_LEAST\nminSatisfied: 3\ndependsOn: [{flowId: a}, {flowId: c}]",
            "b.yaml:12:5: triggers[0]: 'minSatisfied' (3) cannot be greater than the number "
            "of 'dependsOn' conditions (2)",
        ),
        (
            "mode: AT_LEAST\nminSatisfied: 0\ndependsOn: [{flowId: a}]",
            "b.yaml:15:19: triggers[0].minSatisfied: Input should be greater than 0 (got 0)",
        ),
        (
            "mode: SOME\ndependsOn: [{flowId: a}]",
            "b.yaml:14:11: triggers[0].mode: Input should be 'ALL', 'ANY' or 'AT_LEAST' "
            "(got 'SOME')",
        ),
        (
            "dependsOn: [{flowId: a}, {flowId: c}, {flowId: a}]",
            "b.yaml:12:5: triggers[0]: dependsOn[2] is the same dependency as dependsOn[0]",
        ),
        (
            "dependsOn:\n  - flowid: a",
            "b.yaml:15:17: triggers[0].dependsOn[0].flowid: unknown property 'flowid'",
        ),
        (
            "dependsOn:\n  - {flowId: a, states: [DONE]}",
            "b.yaml:15:30: triggers[0].dependsOn[0].states[0]: Input should be 'CREATED', "
            "'SUBMITTED', 'QUEUED', 'RUNNING', 'PAUSED', 'RETRYING', 'SUCCESS', 'WARNING', "
            "'FAILED', 'KILLING', 'KILLED', 'CANCELLED', 'SKIPPED', 'RESTARTED', 'RETRIED', "
            "'BREAKPOINT' or 'RESUBMITTED' (got 'DONE')",
        ),
        (
            "dependsOn: a",
            "b.yaml:14:16: triggers[0].dependsOn: Input should be a valid list",
        ),
        (
            "window: {deadline: '09:00', lookback: PT1H}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:13: triggers[0].window: a window of type DAILY_TIME_DEADLINE cannot "
            "have a lookback duration",
        ),
        (
            "window: {from: '06:00'}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:13: triggers[0].window: a window of type DAILY_TIME_WINDOW must have a "
            "to time",
        ),
        (
            "window: {lookback: PT1H, every: P1D, offset: PT1H}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:13: triggers[0].window: a window of type SLIDING_WINDOW cannot have an "
            "every duration or an offset",
        ),
        (
            "window: {every: PT0S}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:13: triggers[0].window: 'every' must be a positive duration",
        ),
        (
            "window: {deadline: '25:00'}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:24: triggers[0].window.deadline: Input should be in a valid time "
            "format, hour value is outside expected range of 0-23 (got '25:00')",
        ),
        (
            "window: {deadline: '09:00', timezone: Mars/Olympus}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:43: triggers[0].window.timezone: unknown time zone: use an IANA name "
            "such as Europe/Paris (got 'Mars/Olympus')",
        ),
        (
            "window: {deadline: '09:00', fireonce: true}\ndependsOn: [{flowId: a}]",
            "b.yaml:14:43: triggers[0].window.fireonce: unknown property 'fireonce'",
        ),
        (
            "when: [true]",
            "b.yaml:14:11: triggers[0].when: Input should be a valid string (got [True])",
        ),
    ],
)
def test_malformed_depends_on_is_a_load_error_with_its_place(trigger: str, message: str) -> None:
    assert problems(downstream(trigger), "b.yaml") == [message]


# -- Kestra's own examples ---------------------------------------------------------------------

# Flow.java's @Example blocks (kestra-io/kestra core/src/main/java/io/kestra/plugin/core/trigger/
# Flow.java), as written there.
EXAMPLE_TRANSFORM = """\
id: transform
namespace: company.team

inputs:
  - id: date
    type: STRING
    defaults: "2025-01-01"

variables:
  result: |
    Ingestion done in {{ trigger.executionId }}.
    Now transforming data up to {{ inputs.date }}

tasks:
  - id: run_transform
    type: io.kestra.plugin.core.debug.Return
    format: "{{ render(vars.result) }}"

  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ render(vars.result) }}"

triggers:
  - id: run_after_extract
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      date: "{{ trigger.outputs.date }}"
    dependsOn:
      - namespace: company.team
        flowId: extract
        states: [SUCCESS]
"""

EXAMPLE_EXTRACT = """\
id: extract
namespace: company.team

tasks:
  - id: final_date
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.startDate | dateAdd(-2, 'DAYS') | date('yyyy-MM-dd') }}"

outputs:
  - id: date
    type: STRING
    value: "{{ outputs.final_date.value }}"
"""

EXAMPLE_SILVER = """\
id: silver_layer
namespace: company.team

tasks:
  - id: transform_data
    type: io.kestra.plugin.core.log.Log
    message: deduplication, cleaning, and minor aggregations

triggers:
  - id: flow_trigger
    type: io.kestra.plugin.core.trigger.Flow
    window:
      deadline: "09:00:00"
    dependsOn:
      - namespace: company.team
        flowId: bronze_layer
        states: [SUCCESS]
"""

EXAMPLE_ALERT = """\
id: alert
namespace: system

tasks:
  - id: send_alert
    type: io.kestra.plugin.notifications.slack.SlackExecution
    url: "{{secret('SLACK_WEBHOOK')}}" # format: https://hooks.slack.com/services/xzy/xyz/xyz
    channel: "#general"
    executionId: "{{trigger.executionId}}"

triggers:
  - id: alert_on_failure
    type: io.kestra.plugin.core.trigger.Flow
    states:
      - FAILED
      - WARNING
    when: "{{flow.namespace | startsWith('company')}}"
"""

EXAMPLE_SENTRY = """\
id: sentry_execution_example
namespace: company.team

tasks:
- id: send_alert
  type: io.kestra.plugin.notifications.sentry.SentryExecution
  executionId: "{{ trigger.executionId }}"
  transaction: "/execution/id/{{ trigger.executionId }}"
  dsn: "{{ secret('SENTRY_DSN') }}"
  level: ERROR

triggers:
- id: failed_prod_workflows
  type: io.kestra.plugin.core.trigger.Flow
  dependsOn:
  - states
      - FAILED
      - WARNING
    namespace: company.payroll
"""

EXAMPLE_CHAIN = """\
id: flow_a
namespace: company.team
labels:
  type: orchestration
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello World!
---
id: flow_b
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello World!
triggers:
  - id: on_completion
    type: io.kestra.plugin.core.trigger.Flow
    dependsOn:
      - namespace: company.team
        flowId: flow_a
        states: [SUCCESS]
        labels:
          type: orchestration
"""


def test_podium_validate_accepts_kestras_flow_trigger_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kestra Flow.java @Example blocks 1, 2, 3 and 5 (two flows in one block, split at `---`
    as the example says they are two flows) validate."""
    sources = [EXAMPLE_TRANSFORM, EXAMPLE_EXTRACT, EXAMPLE_SILVER, EXAMPLE_ALERT]
    sources += EXAMPLE_CHAIN.split("---\n")
    for i, source in enumerate(sources):
        (tmp_path / f"example_{i}.yaml").write_text(source, encoding="utf-8")
    assert cli(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(out.splitlines()) == len(sources)


def test_kestras_sentry_example_is_refused_for_its_yaml_typo_only(tmp_path: Path) -> None:
    """Kestra Flow.java @Example 4 has `- states` without its colon: no YAML parser reads it,
    Kestra's included. With the colon, it loads: its Flow trigger and the Sentry task."""
    assert problems(EXAMPLE_SENTRY, "sentry.yaml") == [
        "sentry.yaml:19:14: invalid YAML: a ':' where a value was expected: quote a value "
        "that contains ': '"
    ]
    fixed = load_flow(EXAMPLE_SENTRY.replace("- states\n", "- states:\n"), "sentry.yaml")
    assert fixed.tasks[0].type == "io.kestra.plugin.notifications.sentry.SentryExecution"
    assert fixed.triggers[0].type == "io.kestra.plugin.core.trigger.Flow"


async def test_kestras_extract_and_transform_example_runs(h: Harness) -> None:
    """Kestra Flow.java @Example 1, end to end: `extract` succeeds with a `date` output, and
    `transform` starts with `inputs.date` from `trigger.outputs.date`."""
    extract = await h.flow(EXAMPLE_EXTRACT)
    async with running_triggers(h, EXAMPLE_TRANSFORM) as th:
        await settle()
        upstream_run = await h.run(extract)
        (execution,) = await started(h, th, 1)
    date = upstream_run.outputs["date"]
    assert execution.inputs == {"date": date}
    assert execution.state.current == State.SUCCESS
    assert await h.logs(execution) == [
        f"Ingestion done in {upstream_run.id}.\nNow transforming data up to {date}\n"
    ]
