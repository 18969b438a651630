"""Loops: EachSequential and EachParallel (legacy), LoopUntil and its alias WaitFor, and the
deprecated Template."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, drive


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


async def run_on_fake_clock(h: Harness, clock: FakeClock, source: str) -> Execution:
    execution = await h.start(source)
    return await drive(h, clock, h.engine.wait(execution.id))


def ids(ex: Execution) -> list[str]:
    return [tr.task_id for tr in ex.task_runs]


# -- EachSequential / EachParallel --------------------------------------------------------


async def test_each_sequential_runs_the_tasks_per_value_in_turn(h: Harness) -> None:
    """EachSequentialTest.sequential (each-sequential.yaml): 3 values x (1-1, failed, 1-2)
    plus 1_each and 2_end: 11 task runs; `exit 1` under AllowFailure for `value 1` (read
    as `parent.taskrun.value`) leaves the execution WARNING."""
    ex = await h.run("""
        id: each-sequential
        namespace: io.kestra.tests
        tasks:
          - id: 1_each
            type: io.kestra.core.tasks.flows.EachSequential
            value: '["value 1", "value 2", "value 3"]'
            tasks:
              - id: 1-1
                type: io.kestra.core.tasks.debugs.Return
                format: "{{task.id}} > {{taskrun.value}}"
              - id: failed
                type: io.kestra.core.tasks.flows.AllowFailure
                tasks:
                  - id: 1-2
                    type: io.kestra.plugin.scripts.shell.Commands
                    taskRunner:
                      type: io.kestra.plugin.core.runner.Process
                    commands:
                      - "exit {{ parent.taskrun.value == 'value 1' ? 1 : 0 }}"
          - id: 2_end
            type: io.kestra.core.tasks.debugs.Return
            format: "{{task.id}} > {{taskrun.startDate}}"
        """)
    assert ex.state.current == State.WARNING
    assert len(ex.task_runs) == 11
    returns = [tr.outputs["value"] for tr in ex.task_runs if tr.task_id == "1-1"]
    assert returns == ["1-1 > value 1", "1-1 > value 2", "1-1 > value 3"]
    order = [(tr.task_id, tr.value) for tr in ex.task_runs if tr.task_id in ("1-1", "1-2")]
    assert order == [
        ("1-1", "value 1"),
        ("1-2", "value 1"),
        ("1-1", "value 2"),
        ("1-2", "value 2"),
        ("1-1", "value 3"),
        ("1-2", "value 3"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        """'["value 1", {"key":"my-key","value":"my-value"},
                {"key":"my-complex","value":{"sub":1,"bool":true}}]'""",
        """
              - value 1
              - key: my-key
                value: my-value
              - key: my-complex
                value:
                  sub: 1
                  bool: true""",
    ],
    ids=["json-text", "yaml-list"],
)
async def test_each_values_that_are_objects_are_json(h: Harness, value: str) -> None:
    """EachSequentialTest.object and objectInList (each-object.yaml, each-object-in-list):
    an object among the values is its JSON text as `taskrun.value`, that `jq` can read."""
    ex = await h.run(f"""
        id: each-object
        namespace: io.kestra.tests
        tasks:
          - id: 1_each
            type: io.kestra.plugin.core.flow.EachSequential
            value: {value}
            tasks:
              - id: json
                type: io.kestra.plugin.core.debug.Return
                format: "{{{{ taskrun.value }}}}"
        """)
    assert ex.state.current == State.SUCCESS, await ex_logs(h, ex)
    assert [tr.value for tr in ex.task_runs[1:]] == [
        "value 1",
        '{"key":"my-key","value":"my-value"}',
        '{"key":"my-complex","value":{"sub":1,"bool":true}}',
    ]


async def ex_logs(h: Harness, ex: Execution) -> list[str]:
    return await h.logs(ex)


async def test_each_over_no_value_succeeds_at_once(h: Harness) -> None:
    """EachSequentialTest.eachEmpty (each-empty.yaml): 2 task runs, SUCCESS."""
    ex = await h.run("""
        id: each-empty
        namespace: io.kestra.tests
        tasks:
          - id: 1_each
            type: io.kestra.core.tasks.flows.EachSequential
            value: '[]'
            tasks:
              - id: never
                type: io.kestra.core.tasks.debugs.Return
                format: x
          - id: 2_end
            type: io.kestra.core.tasks.debugs.Return
            format: end
        """)
    assert ex.state.current == State.SUCCESS
    assert ids(ex) == ["1_each", "2_end"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('\'[1, null, {"key": "my-key"}]\'', "Found a null value inside the iteration values"),
        ("'{\"a\": 1}'", "Maps are not supported in values"),
        ("'not json'", "value is not a JSON array"),
    ],
)
async def test_each_refuses_nulls_and_maps(h: Harness, value: str, message: str) -> None:
    """EachSequentialTest.eachNull (each-null.yaml): 1 task run, FAILED, the null named;
    FlowableUtils.resolveValues: "Maps are not supported in values"."""
    ex = await h.run(f"""
        id: each-null
        namespace: io.kestra.tests
        tasks:
          - id: 1_each
            type: io.kestra.core.tasks.flows.EachSequential
            value: {value}
            tasks:
              - id: never
                type: io.kestra.core.tasks.debugs.Return
                format: x
        """)
    assert ex.state.current == State.FAILED
    assert ids(ex) == ["1_each"]
    [error] = await h.logs(ex, "ERROR")
    assert message in error


async def test_each_runs_a_repeated_value_once(h: Harness) -> None:
    """FlowableUtils.resolveValues: values are distinct, the first kept; numbers are
    their text (each-parallel-Integer.yml)."""
    ex = await h.run("""
        id: each-parallel-integer
        namespace: io.kestra.tests
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachParallel
            value: [1, 2, 1, "2", 3]
            tasks:
              - id: r
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert sorted(tr.value or "" for tr in ex.task_runs[1:]) == ["1", "2", "3"]


async def test_each_parallel_runs_every_task_of_every_value(h: Harness) -> None:
    """EachParallelTest.parallel: every child task of every value runs (here 3 values x 2
    tasks), each seeing its value and the value's index as `taskrun.iteration`."""
    ex = await h.run("""
        id: each-parallel
        namespace: io.kestra.tests
        tasks:
          - id: 1_each
            type: io.kestra.core.tasks.flows.EachParallel
            value: '["value 1", "value 2", "value 3"]'
            tasks:
              - id: 1-1
                type: io.kestra.core.tasks.debugs.Return
                format: "{{ taskrun.value }}/{{ taskrun.iteration }}"
              - id: 1-2
                type: io.kestra.core.tasks.debugs.Return
                format: "{{ taskrun.value }}/{{ taskrun.iteration }}"
          - id: 2_end
            type: io.kestra.core.tasks.debugs.Return
            format: "{{ outputs['1-1']['value 2'].value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert len(ex.task_runs) == 8
    values = sorted(tr.outputs["value"] for tr in ex.task_runs if tr.task_id == "1-2")
    assert values == ["value 1/0", "value 2/1", "value 3/2"]
    assert ex.task_runs[-1].outputs == {"value": "value 2/1"}


async def test_each_parallel_concurrent_caps_the_tasks_running_at_once(
    fake: tuple[Harness, FakeClock],
) -> None:
    """EachParallel `concurrent`: with 1, four one-second sleeps take four seconds (of the
    fake clock); with 0 (no cap) one."""
    h, clock = fake
    flow = """
        id: each-parallel-concurrent
        namespace: io.kestra.tests
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachParallel
            concurrent: {concurrent}
            value: ["a", "b"]
            tasks:
              - id: s1
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT1S
              - id: s2
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT1S
        """
    for concurrent, seconds in ((1, 4), (0, 1)):
        ex = await run_on_fake_clock(h, clock, flow.replace("{concurrent}", str(concurrent)))
        assert ex.state.current == State.SUCCESS
        each = ex.task_runs[0].state
        assert each.end is not None
        assert (each.end - each.start).total_seconds() == pytest.approx(seconds, abs=0.01)


# -- LoopUntil / WaitFor ------------------------------------------------------------------

LOOP = """
    id: waitfor
    namespace: io.kestra.tests
    tasks:
      - id: waitfor
        type: io.kestra.plugin.core.flow.{type}
        condition: "{condition}"
        {extra}
        checkFrequency:
          interval: PT1S
          {frequency}
        tasks:
          - id: output_values
            type: io.kestra.plugin.core.output.OutputValues
            values:
              count: "{{{{ outputs.waitfor.iterationCount + 1 }}}}"
    """


def loop(condition: str, *, frequency: str = "", extra: str = "", type_: str = "WaitFor") -> str:
    return LOOP.format(type=type_, condition=condition, frequency=frequency, extra=extra)


def iteration_count(ex: Execution) -> int:
    count = ex.task_runs[0].outputs["iterationCount"]
    assert isinstance(count, int)
    return count


async def test_the_loop_ends_once_the_condition_holds(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntilCaseTest.waitforMultipleTasks: the children run again until the condition
    is true: `iterationCount` 3, the last `count` "4"; WaitFor is LoopUntil's alias."""
    h, clock = fake
    for type_ in ("WaitFor", "LoopUntil"):
        ex = await run_on_fake_clock(
            h, clock, loop("{{ outputs.output_values.values.count == '4' }}", type_=type_)
        )
        assert ex.state.current == State.SUCCESS
        assert iteration_count(ex) == 3
        assert ex.task_runs[-1].outputs["values"] == {"count": "4"}
        rounds = [tr.iteration for tr in ex.task_runs if tr.task_id == "output_values"]
        assert rounds == [1, 2, 3]


async def test_a_condition_true_at_once_means_one_round(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntilCaseTest.waitfor (waitfor.yaml): `count != '4'` holds after the first
    round: SUCCESS, `iterationCount` 1."""
    h, clock = fake
    ex = await run_on_fake_clock(h, clock, loop("{{ outputs.output_values.values.count != '4'}}"))
    assert ex.state.current == State.SUCCESS
    assert iteration_count(ex) == 1


async def test_max_iterations_ends_the_loop(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntilCaseTest.waitforNoSuccess (waitfor-no-success.yaml): `maxIterations: 5`
    ends the loop after round 5, SUCCESS since `failOnMaxReached` is false."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        loop("{{ outputs.output_values.values.count == '60'}}", frequency="maxIterations: 5"),
    )
    assert ex.state.current == State.SUCCESS
    assert iteration_count(ex) == 5
    assert "Max iterations reached (5)" in await h.logs(ex, "WARN")


async def test_fail_on_max_reached_fails_it(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntilCaseTest.waitforMaxIterations (waitfor-max-iterations.yaml): with
    `failOnMaxReached` reaching `maxIterations` fails the loop and the execution."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        loop(
            "{{ outputs.output_values.values.count == '10'}}",
            frequency="maxIterations: 3",
            extra="failOnMaxReached: true",
        ),
    )
    assert ex.state.current == State.FAILED
    assert iteration_count(ex) == 3
    assert await h.logs(ex, "ERROR") == ["Max iterations reached (3)"]


async def test_max_duration_counts_from_the_loop_start(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntilCaseTest.waitForChildTaskWarning (waitfor-child-task-warning.yaml): a
    WARNING child counts as done, the loop goes on every second and fails once
    `maxDuration` PT3S has passed, after more than one round."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        """
        id: waitfor-child-task-warning
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ outputs.check_migration_task.values['test'] == 'FINISHED' }}"
            failOnMaxReached: true
            checkFrequency:
              interval: PT1S
              maxDuration: PT3S
            tasks:
              - id: allow_failure
                allowFailure: true
                type: io.kestra.plugin.core.execution.Fail
              - id: check_migration_task
                type: io.kestra.plugin.core.output.OutputValues
                values:
                  test: "ok"
        """,
    )
    assert ex.state.current == State.FAILED
    assert ex.task_runs[0].outputs["iterationCount"] > 1
    loop_run = ex.task_runs[0].state
    assert loop_run.end is not None and (loop_run.end - loop_run.start).total_seconds() > 3
    assert "Max duration reached (PT3S)" in await h.logs(ex, "ERROR")


async def test_a_failed_child_ends_the_loop(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntilCaseTest.loopUntilFailedFlowable (loopuntil-failed-flowable.yaml): a
    failing child is not retried by the loop: FAILED after one round."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        """
        id: loopuntil-failed-flowable
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ false }}"
            checkFrequency:
              interval: PT1S
            tasks:
              - id: seq
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: fail
                    type: io.kestra.plugin.core.execution.Fail
        """,
    )
    assert ex.state.current == State.FAILED
    assert ex.task_runs[0].outputs["iterationCount"] == 1
    assert ids(ex) == ["loop", "seq", "fail"]


async def test_rounds_are_an_interval_apart(fake: tuple[Harness, FakeClock]) -> None:
    """LoopUntil.CheckFrequency.interval: the next round starts `interval` after the
    previous one ended (default PT1M)."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        LOOP.format(
            type="LoopUntil",
            condition="{{ outputs.waitfor.iterationCount == 3 }}",
            extra="",
            frequency="",
        ).replace("interval: PT1S", "maxIterations: 10"),
    )
    assert ex.state.current == State.SUCCESS
    starts = [tr.state.start for tr in ex.task_runs if tr.task_id == "output_values"]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert gaps == [pytest.approx(60, abs=0.1)] * 2


async def test_an_inner_loop_starts_afresh_in_each_outer_round(
    fake: tuple[Harness, FakeClock],
) -> None:
    """LoopUntilCaseTest.waitforNestedThreeLevels: when an outer loop goes round again,
    the loops inside it start from their first round."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        """
        id: waitfor-nested
        namespace: io.kestra.tests
        tasks:
          - id: loop_1
            type: io.kestra.plugin.core.flow.LoopUntil
            condition: "{{ outputs.loop_1.iterationCount >= 3 }}"
            checkFrequency:
              interval: PT1S
            tasks:
              - id: loop_2
                type: io.kestra.plugin.core.flow.LoopUntil
                condition: "{{ outputs.loop_2.iterationCount >= 2 }}"
                checkFrequency:
                  interval: PT1S
                tasks:
                  - id: loop_2_log
                    type: io.kestra.plugin.core.debug.Return
                    format: >-
                      {{ outputs.loop_1.iterationCount }}.{{ outputs.loop_2.iterationCount }}
        """,
    )
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs == {"iterationCount": 3}
    seen = [tr.outputs["value"] for tr in ex.task_runs if tr.task_id == "loop_2_log"]
    assert seen == ["1.1", "1.2", "2.1", "2.2", "3.1", "3.2"]


async def test_a_condition_that_does_not_render_fails_the_loop(
    fake: tuple[Harness, FakeClock],
) -> None:
    """LoopUntil.condition is rendered after each round; a render error fails the loop."""
    h, clock = fake
    ex = await run_on_fake_clock(h, clock, loop("{{ outputs.nope.values.x == 1 }}"))
    assert ex.state.current == State.FAILED
    [error] = await h.logs(ex, "ERROR")
    assert "nope" in error


# -- Template -----------------------------------------------------------------------------


async def test_a_template_runs_its_tasks_with_the_args(h: Harness) -> None:
    """TemplateTest.withTemplate: the template's tasks run in place of the Template task
    and read its args as `parent.outputs.args`; podium finds the template as a flow with
    the template's namespace and id."""
    await h.flow("""
        id: template
        namespace: io.kestra.tests
        tasks:
          - id: test
            type: io.kestra.plugin.core.log.Log
            level: ERROR
            message: "{{ parent.outputs.args['my-forward'] }}"
        """)
    ex = await h.run(
        """
        id: with-template
        namespace: io.kestra.tests
        inputs:
          - id: with-string
            type: STRING
        tasks:
          - id: template
            type: io.kestra.core.tasks.flows.Template
            namespace: io.kestra.tests
            templateId: template
            args:
              my-forward: "{{ inputs['with-string'] }}"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: done
        """,
        {"with-string": "myString"},
    )
    assert ex.state.current == State.SUCCESS
    assert ids(ex) == ["template", "test", "after"]
    assert await h.logs(ex, "ERROR") == ["myString"]


async def test_a_missing_template_fails_the_task(h: Harness) -> None:
    """TemplateTest.withFailedTemplate: 1 task run, FAILED, "Can't find flow template"."""
    ex = await h.run("""
        id: with-failed-template
        namespace: io.kestra.tests
        tasks:
          - id: template
            type: io.kestra.plugin.core.flow.Template
            namespace: io.kestra.tests
            templateId: invalid
        """)
    assert ex.state.current == State.FAILED
    assert ids(ex) == ["template"]
    [error] = await h.logs(ex, "ERROR")
    assert error.startswith("Can't find flow template 'io.kestra.tests.invalid'")
