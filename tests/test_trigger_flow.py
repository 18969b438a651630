"""The Flow trigger: start a flow when executions of other flows end."""

from __future__ import annotations

import logging
import textwrap

import pytest

from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import ConditionContext
from daemon.sdk.state import State
from tests.harness import Harness, TriggerHarness, running_triggers, settle
from triggers.conditions import ExecutionNamespace

UPSTREAM = """
    id: {id}
    namespace: test
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


def downstream(trigger: str) -> str:
    """Flow `b`, which logs what its trigger saw; `trigger` is YAML at the trigger's indent."""
    return (
        textwrap.dedent("""
        id: b
        namespace: test
        inputs:
          - id: greeting
            type: STRING
            defaults: none
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.flowId }} {{ trigger.state }} {{ inputs.greeting }}"
        triggers:
          - id: upstream
            type: io.kestra.plugin.core.trigger.Flow
    """)
        + textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
        + "\n"
    )


ON_A_SUCCESS = """
    inputs:
      greeting: "{{ trigger.outputs.greeting }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: test
        flowId: a
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


async def upstream(h: Harness, flow_id: str = "a") -> Flow:
    return await h.flow(UPSTREAM.format(id=flow_id))


async def run(h: Harness, flow: Flow, *, fail: bool = False) -> Execution:
    execution = await h.run(flow, {"fail": fail})
    assert execution.state.current == (State.FAILED if fail else State.SUCCESS)
    return execution


async def started(h: Harness, th: TriggerHarness, count: int) -> list[Execution]:
    """The downstream executions once `count` exist and all ended, checking no more came."""
    await th.wait_for(count)
    ended = await th.finished()
    await h.engine.drain()
    await settle()
    assert len(th.executions) == count
    return ended


def trigger_of(execution: Execution) -> dict[str, object]:
    """What the flow reads as `trigger.*`."""
    assert execution.trigger is not None
    assert execution.trigger["id"] == "upstream"
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Flow"
    found: dict[str, object] = execution.trigger["variables"]
    return found


async def test_flow_trigger_starts_once_per_upstream_success_and_not_on_failure(h: Harness) -> None:
    a = await upstream(h)
    async with running_triggers(h, downstream(ON_A_SUCCESS)) as th:
        await settle()  # the trigger is listening
        first = await run(h, a)
        await run(h, a, fail=True)
        second = await run(h, a)
        ended = await started(h, th, 2)
    assert [trigger_of(e)["executionId"] for e in ended] == [first.id, second.id]
    assert [e.state.current for e in ended] == [State.SUCCESS] * 2


async def test_trigger_outputs_carry_upstream_outputs_into_the_log(h: Harness) -> None:
    a = await upstream(h)
    async with running_triggers(h, downstream(ON_A_SUCCESS)) as th:
        await settle()
        upstream_run = await run(h, a)
        (execution,) = await started(h, th, 1)
    assert await h.logs(execution) == ["a SUCCESS hello from a"]
    assert execution.inputs == {"greeting": "hello from a"}
    assert trigger_of(execution) == {
        "executionId": upstream_run.id,
        "namespace": "test",
        "flowId": "a",
        "flowRevision": upstream_run.flow_revision,
        "state": "SUCCESS",
        "executionLabels": {},
        "startDate": upstream_run.state.start_iso,
        "endDate": upstream_run.state.to_json()["endDate"],
        "outputs": {"greeting": "hello from a"},
    }


async def test_execution_status_not_in_skips_the_listed_states(h: Harness) -> None:
    a = await upstream(h)
    trigger = """
        conditions:
          - type: io.kestra.core.models.conditions.types.ExecutionStatusCondition
            notIn: [FAILED]
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a, fail=True)
        await run(h, a)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["state"] == "SUCCESS"


async def test_flow_trigger_without_conditions_fires_for_other_flows_but_never_its_own(
    h: Harness,
) -> None:
    a, c = await upstream(h, "a"), await upstream(h, "c")
    async with running_triggers(h, downstream("")) as th:
        await settle()
        await run(h, a)
        await started(h, th, 1)  # b's own execution has ended: it started nothing
        await run(h, c, fail=True)
        ended = await started(h, th, 2)
    assert [(trigger_of(e)["flowId"], trigger_of(e)["state"]) for e in ended] == [
        ("a", "SUCCESS"),
        ("c", "FAILED"),
    ]


async def test_preconditions_and_states_select_upstream_executions(h: Harness) -> None:
    a, c = await upstream(h, "a"), await upstream(h, "c")
    trigger = """
        states: [FAILED, SUCCESS]
        preconditions:
          id: a_failed
          flows:
            - namespace: test
              flowId: a
              states: [FAILED]
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)
        await run(h, c, fail=True)
        failed = await run(h, a, fail=True)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == failed.id


async def test_trigger_states_limit_which_ends_count(h: Harness) -> None:
    a = await upstream(h)
    async with running_triggers(h, downstream("states: [FAILED]")) as th:
        await settle()
        await run(h, a)
        failed = await run(h, a, fail=True)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == failed.id


async def test_inputs_that_do_not_render_create_a_failed_execution(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Kestra docs migration-guide/v2.0.0/trigger-conditions-redesign ("Silent failures ->
    FAILED executions") and Flow.evaluate: inputs that do not render no longer drop the
    event; its execution is created FAILED (nothing runs), the others start as usual."""
    a = await upstream(h)
    plain = await h.flow("""
        id: plain
        namespace: test
        tasks:
          - id: nothing
            type: io.kestra.plugin.core.log.Log
            message: no outputs here
    """)
    trigger = """
        inputs:
          greeting: "{{ trigger.outputs.greeting }}"
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        with caplog.at_level(logging.WARNING, logger="daemon.engine.supervisor"):
            skipped = await h.run(plain)
            await run(h, a)
            failed, execution = await started(h, th, 2)
    assert (trigger_of(failed)["flowId"], failed.state.current) == ("plain", State.FAILED)
    assert failed.task_runs == [] and failed.inputs == {}
    assert (failed.error or "").startswith(
        'invalid inputs: cannot render "{{ trigger.outputs.greeting }}"'
    )
    assert (trigger_of(execution)["flowId"], execution.state.current) == ("a", State.SUCCESS)
    (record,) = [r for r in caplog.records if "invalid inputs" in r.getMessage()]
    assert record.getMessage().startswith(
        f"test.b trigger upstream: invalid inputs after execution {skipped.id} of test.plain, "
        'created FAILED: cannot render "{{ trigger.outputs.greeting }}"'
    )


def load_error(trigger: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(downstream(trigger), "b.yaml")
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (
            "conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionStatus\n    "
            "in: [DONE]",
            "b.yaml:17:14: triggers[0].conditions[0].in[0]: Input should be 'CREATED', "
            "'SUBMITTED', 'QUEUED', 'RUNNING', 'PAUSED', 'RETRYING', 'SUCCESS', 'WARNING', "
            "'FAILED', 'KILLING', 'KILLED', 'CANCELLED', 'SKIPPED', 'RESTARTED', 'RETRIED', "
            "'BREAKPOINT' or 'RESUBMITTED' (got 'DONE')",
        ),
        (
            "conditions:\n  - type: io.kestra.plugin.core.condition.ExecutionFlow\n    flowId: a",
            "b.yaml:16:9: triggers[0].conditions[0]: missing required property 'namespace'",
        ),
        (
            "preconditions:\n  where:\n    - id: w\n      filters: [{field: STATE, type: IN, "
            "values: [FAILED]}]\n    - id: w\n      filters: [{field: FLOW_ID, type: "
            "EQUAL_TO, value: a}]",
            "b.yaml:16:7: triggers[0].preconditions: duplicate precondition id 'w' in 'where'",
        ),
    ],
)
def test_bad_flow_trigger_is_a_load_error_with_its_place(trigger: str, message: str) -> None:
    assert load_error(trigger) == [message]


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"namespace": "company.team"}, True),
        ({"namespace": "company"}, False),
        ({"namespace": "company", "prefix": True}, True),
        ({"namespace": "company", "comparison": "PREFIX"}, True),
        ({"namespace": ".team", "comparison": "SUFFIX"}, True),
        ({"namespace": "company", "comparison": "EQUALS", "prefix": True}, False),
    ],
)
def test_execution_namespace_compares_equal_prefix_or_suffix(
    condition: dict[str, object], holds: bool
) -> None:
    checked = ExecutionNamespace.model_validate(
        {"type": "io.kestra.plugin.core.condition.ExecutionNamespace", **condition}
    )
    ended = {"namespace": "company.team", "flowId": "a", "state": {"current": "SUCCESS"}}
    assert checked.test(ConditionContext("test", "b", execution=ended)) is holds
    assert checked.test(ConditionContext("test", "b")) is True  # nothing to look at: ignored


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"type": "FlowCondition", "namespace": "company.team", "flowId": "b"}, True),
        ({"type": "FlowCondition", "namespace": "company.team", "flowId": "a"}, False),
        ({"type": "FlowCondition", "namespace": "company", "flowId": "b"}, False),
        ({"type": "FlowNamespaceCondition", "namespace": "company.team"}, True),
        ({"type": "FlowNamespaceCondition", "namespace": "company"}, False),
        ({"type": "FlowNamespaceCondition", "namespace": "company", "prefix": True}, True),
        ({"type": "FlowNamespaceCondition", "namespace": "Company", "prefix": True}, False),
    ],
)
def test_deprecated_flow_conditions_look_at_the_flow_holding_the_trigger(
    condition: dict[str, object], holds: bool
) -> None:
    """Kestra's deprecated FlowCondition and FlowNamespaceCondition (core/src/main/java/io/
    kestra/plugin/core/condition/) test `conditionContext.getFlow()`, the flow whose trigger
    it is, not the execution that ended; under both their names, with a deprecation."""
    for prefix in ("io.kestra.plugin.core.condition.", "io.kestra.core.models.conditions.types."):
        written = {**condition, "type": prefix + str(condition["type"])}
        trigger = "conditions:\n  - " + "\n    ".join(
            f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in written.items()
        )
        flow = load_flow(downstream(trigger).replace("namespace: test", "namespace: company.team"))
        (checked,) = flow.triggers[0].conditions
        ended = {"namespace": "other", "flowId": "x", "state": {"current": "SUCCESS"}}
        context = ConditionContext("company.team", "b", execution=ended)
        assert checked.test(context) is holds
        assert any("is deprecated" in w.message for w in flow.warnings)


# -- Kestra 1.x preconditions over several flows -----------------------------------------------


async def test_preconditions_on_several_flows_start_one_execution_once_all_are_met(
    h: Harness,
) -> None:
    """Kestra Flow trigger `preconditions` (Flow.java, MultipleConditionWindow): every
    upstream flow must end as asked within the window; then one execution starts with their
    outputs merged, and with resetOnSuccess they must all end again for the next."""
    a, c = await upstream(h, "a"), await upstream(h, "c")
    trigger = """
        preconditions:
          id: both
          flows:
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
        await run(h, a)
        await h.engine.drain()
        await settle()
        assert th.executions == []  # c has not ended yet
        last = await run(h, c)
        (execution,) = await started(h, th, 1)
        assert trigger_of(execution)["executionId"] == last.id
        assert trigger_of(execution)["outputs"] == {"greeting": "hello from c"}
        await run(h, c)  # reset: a must end again too
        await h.engine.drain()
        await settle()
        assert len(th.executions) == 1


async def test_preconditions_where_filters(h: Harness) -> None:
    """Kestra Flow trigger `where` filters (FilterCondition: NAMESPACE STARTS_WITH, and an
    EXPRESSION on the upstream execution), in a sliding window."""
    a = await upstream(h, "a")
    trigger = """
        states: [FAILED]
        preconditions:
          id: failures
          timeWindow:
            type: SLIDING_WINDOW
            window: PT1H
          where:
            - id: in_test
              filters:
                - field: NAMESPACE
                  type: STARTS_WITH
                  value: te
                - field: EXPRESSION
                  type: IS_TRUE
                  value: "{{ trigger.flowId == 'a' }}"
    """
    async with running_triggers(h, downstream(trigger)) as th:
        await settle()
        await run(h, a)
        failed = await run(h, a, fail=True)
        (execution,) = await started(h, th, 1)
    assert trigger_of(execution)["executionId"] == failed.id


def test_time_windows_are_kestras() -> None:
    """Kestra TimeWindow: DURATION_WINDOW (fixed windows from midnight + windowAdvance),
    SLIDING_WINDOW (looking back from now), DAILY_TIME_WINDOW (start/end each day),
    DAILY_TIME_DEADLINE (from midnight to the deadline; after it, nothing counts)."""
    from datetime import UTC, datetime, time, timedelta

    from triggers.flow import TimeWindow

    when = datetime(2025, 5, 1, 13, 30, tzinfo=UTC)
    fixed = TimeWindow(window=timedelta(hours=6), window_advance=timedelta(hours=6))
    assert fixed.bounds(when) == (
        datetime(2025, 5, 1, 12, tzinfo=UTC),
        datetime(2025, 5, 1, 18, tzinfo=UTC),
    )
    sliding = TimeWindow(type="SLIDING_WINDOW", window=timedelta(hours=1))
    assert sliding.bounds(when) == (when - timedelta(hours=1), when)
    daily = TimeWindow(type="DAILY_TIME_WINDOW", start_time=time(6), end_time=time(9))
    assert daily.bounds(when) is None
    assert daily.bounds(when.replace(hour=7)) == (
        datetime(2025, 5, 1, 6, tzinfo=UTC),
        datetime(2025, 5, 1, 9, tzinfo=UTC),
    )
    deadline = TimeWindow(type="DAILY_TIME_DEADLINE", deadline=time(9))
    assert deadline.bounds(when) is None
    assert deadline.bounds(when.replace(hour=8)) == (
        datetime(2025, 5, 1, tzinfo=UTC),
        datetime(2025, 5, 1, 9, tzinfo=UTC),
    )


async def test_a_flow_triggered_execution_carries_the_upstream_correlation_id(
    h: Harness,
) -> None:
    """Kestra PR #7931 (Flow.evaluate): the upstream execution's system.correlationId is added
    to the triggered execution and left out of `trigger.executionLabels`."""
    a = await upstream(h)
    async with running_triggers(h, downstream("states: [SUCCESS]")) as th:
        await settle()
        first = await run(h, a)
        (execution,) = await started(h, th, 1)
    assert execution.labels["system.correlationId"] == first.id
    assert "system.correlationId" not in trigger_of(execution)["executionLabels"]  # type: ignore[operator]
