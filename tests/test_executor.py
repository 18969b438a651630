"""The executor: order, DAGs, flowables, retries, errors/finally, kill, concurrency."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import InputError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, drive, task_states


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


async def run_on_fake_clock(h: Harness, clock: FakeClock, source: str, **inputs: str) -> Execution:
    """Run a flow, moving fake time forward whenever only sleepers are left."""
    execution = await h.start(source, inputs)
    return await drive(h, clock, h.engine.wait(execution.id))


HELLO = (Path(__file__).resolve().parent.parent / "flows" / "01_hello_world.yaml").read_text()


async def test_hello_world_logs_rendered_message_and_returns_value(
    fake: tuple[Harness, FakeClock],
) -> None:
    h, clock = fake
    ex = await run_on_fake_clock(h, clock, HELLO, name="Ada")
    assert ex.state.current == State.SUCCESS
    logs = await h.stored(ex)
    messages = await h.logs(ex)
    assert messages == [
        "Hello, Ada!",
        "This is an output: I was generated during this workflow.",
        "Goodbye, Ada!",
    ]
    assert [line["level"] for line in await h.store.logs(ex.id)] == ["ERROR"] * 3
    outputs = {t["taskId"]: t["outputs"] for t in logs["taskRunList"]}
    assert outputs["generate_output"] == {"value": "I was generated during this workflow."}


async def test_tasks_run_in_order_and_pass_outputs(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: first
            type: io.kestra.plugin.core.debug.Return
            format: "{{ 1 + 2 }}"
          - id: second
            type: io.kestra.plugin.core.debug.Return
            format: "got {{ outputs.first.value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert [t.task_id for t in ex.task_runs] == ["first", "second"]
    assert ex.task_runs[1].outputs == {"value": "got 3"}


async def test_every_state_change_is_stored_with_its_time(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    doc = await h.stored(ex)
    assert [s["state"] for s in doc["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    run = doc["taskRunList"][0]
    assert [s["state"] for s in run["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    dates = [datetime.fromisoformat(s["date"]) for s in run["state"]["histories"]]
    assert dates == sorted(dates)


DIAMOND = """
    id: diamond
    namespace: ns
    tasks:
      - id: a
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1S
      - id: b
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1S
        dependsOn: [a]
      - id: c
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1S
        dependsOn: [a]
      - id: d
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1S
        dependsOn: [b, c]
    """


async def test_depends_on_diamond_runs_independent_tasks_together(
    fake: tuple[Harness, FakeClock],
) -> None:
    h, clock = fake
    start = clock.now()
    ex = await run_on_fake_clock(h, clock, DIAMOND)
    assert ex.state.current == State.SUCCESS
    assert (ex.state.histories[-1][1] - start).total_seconds() == 3.0
    runs = {t.task_id: t for t in ex.task_runs}
    assert runs["b"].state.start == runs["c"].state.start  # both started when a ended
    assert runs["d"].state.start >= max(runs["b"].state.end, runs["c"].state.end)  # type: ignore


async def test_dag_stops_starting_tasks_after_a_failure(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.execution.Fail
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: runs, it does not depend on a
          - id: c
            type: io.kestra.plugin.core.log.Log
            message: never
            dependsOn: [a]
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"a": "FAILED", "b": "SUCCESS"}


async def test_kestra_dag_task_respects_depends_on(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: last
                  type: io.kestra.plugin.core.debug.Return
                  format: "{{ outputs.first.value }}!"
                dependsOn: [first]
              - task:
                  id: first
                  type: io.kestra.plugin.core.debug.Return
                  format: one
        """)
    assert ex.state.current == State.SUCCESS
    assert {t.task_id: t.outputs for t in ex.task_runs}["last"] == {"value": "one!"}


async def test_if_runs_then_or_else_by_condition(h: Harness) -> None:
    source = """
        id: f
        namespace: ns
        inputs:
          - id: taxi
            type: SELECT
            values: [yellow, green]
        tasks:
          - id: check
            type: io.kestra.plugin.core.flow.If
            condition: "{{ inputs.taxi == 'yellow' }}"
            then:
              - id: yellow
                type: io.kestra.plugin.core.log.Log
                message: yellow
            else:
              - id: other
                type: io.kestra.plugin.core.log.Log
                message: other
        """
    yellow = await h.run(source, {"taxi": "yellow"})
    green = await h.run(source, {"taxi": "green"})
    assert task_states(yellow) == {"check": "SUCCESS", "yellow": "SUCCESS"}
    assert task_states(green) == {"check": "SUCCESS", "other": "SUCCESS"}


async def test_switch_picks_case_or_defaults(h: Harness) -> None:
    source = """
        id: f
        namespace: ns
        inputs:
          - id: kind
            type: STRING
        tasks:
          - id: sw
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ inputs.kind }}"
            cases:
              csv:
                - id: csv
                  type: io.kestra.plugin.core.log.Log
                  message: csv
            defaults:
              - id: fallback
                type: io.kestra.plugin.core.log.Log
                message: other
        """
    assert "csv" in task_states(await h.run(source, {"kind": "csv"}))
    assert "fallback" in task_states(await h.run(source, {"kind": "xml"}))


async def test_foreach_runs_per_value_and_indexes_outputs(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b", "c"]
            concurrencyLimit: 2
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}-{{ taskrun.iteration }}"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.ret['b'].value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert task_states(ex) == {
        "each": "SUCCESS",
        "ret[a]": "SUCCESS",
        "ret[b]": "SUCCESS",
        "ret[c]": "SUCCESS",
        "after": "SUCCESS",
    }
    assert ex.task_runs[-1].outputs == {"value": "b-1"}


async def test_foreach_values_from_a_json_input(h: Harness) -> None:
    ex = await h.run(
        """
        id: f
        namespace: ns
        inputs:
          - id: items
            type: JSON
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{ inputs.items }}"
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "{{ taskrun.value }}"
        """,
        {"items": "[1, 2]"},
    )
    assert await h.logs(ex) == ["1", "2"]


async def test_parallel_runs_children_at_once(fake: tuple[Harness, FakeClock]) -> None:
    h, clock = fake
    start = clock.now()
    ex = await run_on_fake_clock(
        h,
        clock,
        """
        id: f
        namespace: ns
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: s1
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT2S
              - id: s2
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT2S
        """,
    )
    assert ex.state.current == State.SUCCESS
    assert (ex.state.histories[-1][1] - start).total_seconds() == 2.0


async def test_retry_constant_tries_max_attempts_then_fails(
    fake: tuple[Harness, FakeClock],
) -> None:
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        """
        id: f
        namespace: ns
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: boom
            retry:
              type: constant
              interval: PT1S
              maxAttempts: 3
        """,
    )
    assert ex.state.current == State.FAILED
    run = ex.task_runs[0]
    assert [a.current for a in run.attempts] == [State.FAILED] * 3
    assert ex.error == "task 'flaky': boom"
    assert (await h.logs(ex))[-1] == "boom"


async def test_retry_succeeds_on_a_later_attempt_and_warns_when_asked(
    fake: tuple[Harness, FakeClock],
) -> None:
    """Kestra docs, workflow-components/retries: `taskrun.attemptsCount` counts the attempts
    that ended, so it is 0 while the first one runs (RunVariables.of(TaskRun))."""
    h, clock = fake
    ex = await run_on_fake_clock(
        h,
        clock,
        """
        id: f
        namespace: ns
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount < 2 }}"
            retry:
              type: exponential
              interval: PT1S
              maxAttempts: 5
              warningOnRetry: true
        """,
    )
    assert ex.state.current == State.WARNING
    assert [a.current for a in ex.task_runs[0].attempts] == [
        State.FAILED,
        State.FAILED,
        State.SUCCESS,
    ]
    waits = [
        (b.start - a.histories[-1][1]).total_seconds()
        for a, b in zip(ex.task_runs[0].attempts, ex.task_runs[0].attempts[1:], strict=False)
    ]
    assert waits == [1.0, 2.0]


async def test_errors_run_on_failure_and_finally_always(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: bad
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: broken
          - id: skipped
            type: io.kestra.plugin.core.log.Log
            message: never
        errors:
          - id: alert
            type: io.kestra.plugin.core.log.Log
            message: "failed: {{ execution.id }}"
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.log.Log
            message: cleanup
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"bad": "FAILED", "alert": "SUCCESS", "cleanup": "SUCCESS"}
    ok = await h.run("""
        id: g
        namespace: ns
        tasks:
          - id: fine
            type: io.kestra.plugin.core.log.Log
            message: fine
        errors:
          - id: alert
            type: io.kestra.plugin.core.log.Log
            message: never
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.log.Log
            message: cleanup
        """)
    assert task_states(ok) == {"fine": "SUCCESS", "cleanup": "SUCCESS"}


async def test_allow_failure_makes_the_execution_a_warning(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: bad
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
          - id: next
            type: io.kestra.plugin.core.log.Log
            message: still runs
          - id: group
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: bad2
                type: io.kestra.plugin.core.execution.Fail
        """)
    assert ex.state.current == State.WARNING
    assert task_states(ex) == {
        "bad": "WARNING",
        "next": "SUCCESS",
        "group": "WARNING",
        "bad2": "FAILED",
    }


async def test_task_timeout_fails_the_task(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: slow
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT30S
            timeout: PT0.2S
        """)
    assert ex.state.current == State.FAILED
    assert ex.error == "task 'slow': timed out after PT0.2S"


async def test_kill_reaches_every_running_task(h: Harness) -> None:
    ex = await h.start("""
        id: f
        namespace: ns
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: s1
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT60S
              - id: s2
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT60S
        """)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if sum(1 for t in ex.task_runs if t.state.current == State.RUNNING) == 3:
            break
    assert await h.engine.kill(ex.id)
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.KILLED
    assert set(task_states(final).values()) == {"KILLED"}
    doc = await h.stored(final)
    assert doc["state"]["current"] == "KILLED"
    assert {t["state"]["current"] for t in doc["taskRunList"]} == {"KILLED"}


async def test_template_error_fails_the_task_with_expression_and_reason(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: bad
            type: io.kestra.plugin.core.log.Log
            message: "{{ outputs.nope.value }}"
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"bad": "FAILED"}
    assert ex.error is not None and "{{ outputs.nope.value }}" in ex.error
    assert "nope" in ex.error.split("}}")[-1]


async def test_property_that_renders_to_a_wrong_type_fails_clearly(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: "{{ 'soon' }}"
        """)
    assert ex.state.current == State.FAILED
    assert ex.error == (
        "task 'nap': invalid property after rendering: duration: "
        "'soon' is not an ISO-8601 duration (expected e.g. PT15S, PT1H30M, P1D) "
        "(got 'soon')"
    )


async def test_values_from_outside_are_not_rendered(h: Harness) -> None:
    ex = await h.run(
        """
        id: f
        namespace: ns
        inputs:
          - id: name
            type: STRING
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "Hello {{ inputs.name }}"
        """,
        {"name": "{{ 7 * 7 }}"},
    )
    assert await h.logs(ex) == ["Hello {{ 7 * 7 }}"]


async def test_run_if_false_skips_and_disabled_tasks_do_not_run(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: maybe
            type: io.kestra.plugin.core.log.Log
            message: hi
            runIf: "{{ 1 == 2 }}"
          - id: off
            type: io.kestra.plugin.core.log.Log
            message: hi
            disabled: true
          - id: "on"
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    assert ex.state.current == State.SUCCESS
    assert task_states(ex) == {"maybe": "SKIPPED", "on": "SUCCESS"}


async def test_when_is_run_if_by_its_newer_name(h: Harness) -> None:
    """Kestra's TaskWithWhenTest.runnableTask on flows/valids/task-when.yml: `when` true
    runs the task, false skips it (its attempt SKIPPED too, a flowable's as well), and one
    that cannot render fails the task and the execution."""
    ex = await h.run("""
        id: task-when
        namespace: io.kestra.tests
        tasks:
          - id: output
            type: io.kestra.plugin.core.output.OutputValues
            values:
              taskrun_data: 1
          - id: executed
            type: io.kestra.plugin.core.log.Log
            when: "{{ outputs.output['values']['taskrun_data'] == 1 }}"
            message: success
          - id: notexecuted
            type: io.kestra.plugin.core.log.Log
            when: "{{ outputs.output['values']['taskrun_data'] == 2 }}"
            message: should not be printed
          - id: notexecutedflowable
            type: io.kestra.plugin.core.flow.Subflow
            when: "false"
            wait: true
            flowId: dummy_flow
            namespace: dummy_namespace
          - id: willfailedtheflow
            type: io.kestra.plugin.core.log.Log
            when: "{{ outputs.notexists == 2 }}"
            message: should failed
        """)
    assert ex.state.current == State.FAILED
    assert len(ex.task_runs) == 5
    assert task_states(ex) == {
        "output": "SUCCESS",
        "executed": "SUCCESS",
        "notexecuted": "SKIPPED",
        "notexecutedflowable": "SKIPPED",
        "willfailedtheflow": "FAILED",
    }
    skipped = [tr for tr in ex.task_runs if tr.task_id.startswith("notexecuted")]
    assert [tr.attempts[0].current for tr in skipped] == [State.SKIPPED, State.SKIPPED]
    logs = await h.logs(ex)
    assert logs[0] == "success" and len(logs) == 2
    assert "'notexists' is undefined" in logs[1]


async def test_labels_task_adds_execution_labels(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        labels:
          team: data
        tasks:
          - id: set_label
            type: io.kestra.plugin.core.execution.Labels
            labels:
              file: "{{ flow.id }}.csv"
        """)
    doc = await h.stored(ex)
    assert doc["labels"] == [
        {"key": "team", "value": "data"},
        {"key": "system.correlationId", "value": ex.id},
        {"key": "file", "value": "f.csv"},
    ]


async def test_exit_ends_the_execution_in_its_state(h: Harness) -> None:
    """Kestra ExitTest.shouldExitTheExecution: the Exit task run ends in its state too."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: WARNING
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    assert ex.state.current == State.WARNING
    assert task_states(ex) == {"stop": "WARNING"}


async def test_output_values_and_flow_outputs(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: vals
            type: io.kestra.plugin.core.output.OutputValues
            values:
              count: "{{ 40 + 2 }}"
        outputs:
          - id: total
            type: STRING
            value: "{{ outputs.vals['values'].count }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert ex.outputs == {"total": "42"}


async def test_subflow_outputs_reach_the_parent(h: Harness) -> None:
    await h.flow("""
        id: child
        namespace: ns
        inputs:
          - id: n
            type: INT
        tasks:
          - id: double
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.n * 2 }}"
        outputs:
          - id: result
            value: "{{ outputs.double.value }}"
        """)
    ex = await h.run("""
        id: parent
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
            inputs:
              n: 21
          - id: show
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.call.outputs.result }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[-1].outputs == {"value": "42"}
    child_id = ex.task_runs[0].outputs["executionId"]
    child = await h.store.get_execution(child_id)
    assert child is not None and child["parent"]["executionId"] == ex.id


async def test_failed_subflow_fails_the_parent_task(h: Harness) -> None:
    await h.flow("""
        id: broken
        namespace: ns
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: nope
        """)
    ex = await h.run("""
        id: parent
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: broken
        """)
    assert ex.state.current == State.FAILED
    assert ex.error is not None and ex.error.startswith("task 'call': subflow ns.broken execution")
    assert ex.error.endswith("ended FAILED: task 'fail': nope")


CONCURRENT = """
    id: limited
    namespace: ns
    concurrency:
      limit: 1
      behavior: {behavior}
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT1S
    """


@pytest.mark.parametrize(
    ("behavior", "second"), [("FAIL", State.FAILED), ("CANCEL", State.CANCELLED)]
)
async def test_concurrency_limit_refuses_extra_executions(
    fake: tuple[Harness, FakeClock], behavior: str, second: State
) -> None:
    h, clock = fake
    flow = await h.flow(CONCURRENT.format(behavior=behavior))
    first = await h.start(flow)
    extra = await h.start(flow)
    assert extra.state.current == second
    assert extra.error == "flow ns.limited has reached its concurrency limit of 1"
    assert (await h.stored(extra))["state"]["current"] == second.value
    assert (await drive(h, clock, h.engine.wait(first.id))).state.current == State.SUCCESS


async def test_concurrency_queue_runs_the_next_when_one_ends(
    fake: tuple[Harness, FakeClock],
) -> None:
    h, clock = fake
    flow = await h.flow(CONCURRENT.format(behavior="QUEUE"))
    first = await h.start(flow)
    queued = await h.start(flow)
    assert queued.state.current == State.QUEUED
    assert (await drive(h, clock, h.engine.wait(first.id))).state.current == State.SUCCESS
    final = await drive(h, clock, h.engine.wait(queued.id))
    assert final.state.current == State.SUCCESS
    assert [s for s, _ in final.state.histories] == [
        State.CREATED,
        State.QUEUED,
        State.RUNNING,
        State.SUCCESS,
    ]
    first_end = first.state.histories[-1][1]
    assert final.state.histories[2][1] >= first_end  # started only once the first had ended


async def test_bad_input_is_refused_before_the_execution_exists(h: Harness) -> None:
    flow = await h.flow("""
        id: f
        namespace: ns
        inputs:
          - id: year
            type: INT
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.year }}"
        """)
    with pytest.raises(InputError):
        await h.start(flow, {"year": "abc"})
    results, total = await h.store.search_executions()
    assert (results, total) == ([], 0)


async def test_file_input_is_stored_and_read_back_by_uri(h: Harness, tmp_path: Path) -> None:
    data = tmp_path / "upload.csv"
    await asyncio.to_thread(data.write_text, "a,b\n1,2\n")
    ex = await h.run(
        """
        id: f
        namespace: ns
        inputs:
          - id: data
            type: FILE
        tasks:
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.data }} holds {{ read(inputs.data) | trim }}"
        """,
        {"data": str(data)},
    )
    assert ex.state.current == State.SUCCESS
    uri = ex.inputs["data"]
    assert uri == f"kestra:///ns/f/executions/{ex.id}/inputs/data/upload.csv"
    assert await h.logs(ex) == [f"{uri} holds a,b\n1,2"]


async def test_nested_foreach_sees_parent_values(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.ForEach
            values: ["x", "y"]
            tasks:
              - id: inner
                type: io.kestra.plugin.core.flow.ForEach
                values: [1, 2]
                tasks:
                  - id: log
                    type: io.kestra.plugin.core.log.Log
                    message: "{{ parent.taskrun.value ~ parents[0].taskrun.value ~ taskrun.value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert await h.logs(ex) == ["xx1", "xx2", "yy1", "yy2"]


async def interrupted_copy(h: Harness, source: str, keep: int) -> str:
    """Store an execution as a crash would leave it: `keep` task runs finished, the next one
    RUNNING with an unfinished attempt, the execution RUNNING."""
    done = await h.run(source)
    doc = await h.stored(done)
    runs = doc.pop("taskRunList")
    doc["state"]["current"] = "RUNNING"
    doc["state"]["histories"] = doc["state"]["histories"][:2]
    doc["state"].pop("endDate", None)
    doc["id"] = "crashed" + done.id[7:]
    await h.store.delete_execution(done.id)
    await h.store.save_execution(doc)
    for i, run in enumerate(runs[: keep + 1]):
        run["executionId"] = doc["id"]
        if i == keep:
            run["state"]["current"] = "RUNNING"
            run["state"]["histories"] = run["state"]["histories"][:2]
            run["attempts"][-1]["state"]["current"] = "RUNNING"
            run["attempts"][-1]["state"]["histories"] = run["attempts"][-1]["state"]["histories"][
                :1
            ]
            run["outputs"] = {}
        await h.store.save_task_run(run)
    return str(doc["id"])


RESUMABLE = """
    id: resumable
    namespace: ns
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: one
      - id: second
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.first.value }} two"
      - id: third
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.second.value }} three"
    """


async def test_recover_resumes_an_interrupted_execution_where_it_stopped(h: Harness) -> None:
    execution_id = await interrupted_copy(h, RESUMABLE, keep=1)
    assert await h.engine.lifecycle.recover() == 1
    final = await h.engine.wait(execution_id)
    assert final.state.current == State.SUCCESS
    runs = {t.task_id: t for t in final.task_runs}
    assert [len(runs[t].attempts) for t in ("first", "second", "third")] == [1, 2, 1]
    assert [a.current for a in runs["second"].attempts] == [State.FAILED, State.SUCCESS]
    assert runs["third"].outputs == {"value": "one two three"}
    assert (
        "attempt 1 was interrupted: podium stopped while it ran; running it again"
        in await h.logs(final)
    )


async def test_recover_fails_a_task_whose_retry_policy_is_spent(h: Harness) -> None:
    source = RESUMABLE.replace(
        '''format: "{{ outputs.first.value }} two"''',
        """format: "{{ outputs.first.value }} two"
        retry:
          type: constant
          interval: PT1S
          maxAttempts: 1""",
    )
    execution_id = await interrupted_copy(h, source, keep=1)
    await h.engine.lifecycle.recover()
    final = await h.engine.wait(execution_id)
    assert final.state.current == State.FAILED
    assert final.error == (
        "task 'second': attempt 1 was interrupted: podium stopped while it "
        "ran, and its retry policy allows no further attempt"
    )


async def test_daemon_wide_execution_cap_queues_the_rest(tmp_path: Path) -> None:
    h = await Harness.open(tmp_path)
    h.engine.local.admission.max_executions = 1
    try:
        flow = await h.flow("""
            id: f
            namespace: ns
            tasks:
              - id: a
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.1S
            """)
        first, second = await h.start(flow), await h.start(flow)
        assert second.state.current == State.QUEUED
        final = await h.engine.wait(second.id)
        assert final.state.current == State.SUCCESS
        assert final.state.histories[2][1] >= first.state.histories[-1][1]
    finally:
        await h.close()


async def test_secret_is_read_from_base64_env_and_masked_in_logs(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_DB_PASSWORD", "czNjcjN0")  # base64 of s3cr3t
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: use
            type: io.kestra.plugin.core.log.Log
            message: "password is {{ secret('DB_PASSWORD') }}"
          - id: missing
            type: io.kestra.plugin.core.log.Log
            message: "{{ secret('NOPE') }}"
        """)
    logs = await h.logs(ex)
    assert logs[0] == "password is ******"
    assert "s3cr3t" not in " ".join(logs)
    assert ex.error is not None and ex.error.endswith(
        "secret 'NOPE' is not set (environment variable SECRET_NOPE, base64-encoded)"
    )


async def test_kv_function_reads_the_namespace_store(h: Harness) -> None:
    await h.store.kv.set("ns", "threshold", 42)
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: show
            type: io.kestra.plugin.core.debug.Return
            format: "{{ kv('threshold') + 1 }} {{ kv('absent', errorOnMissing=false) ?? 'none' }}"
        """)
    assert ex.task_runs[0].outputs == {"value": "43 none"}


FLAKY_ONCE = """
    id: flaky
    namespace: ns
    inputs:
      - id: fail
        type: BOOLEAN
        defaults: true
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "{{ execution.id }}"
      - id: check
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ kv('broken', errorOnMissing=false) ?? true }}"
        errorMessage: still broken
      - id: last
        type: io.kestra.plugin.core.debug.Return
        format: "after {{ outputs.first.value }}"
    """


async def test_restart_runs_the_failed_task_again_and_keeps_finished_ones(h: Harness) -> None:
    failed = await h.run(FLAKY_ONCE)
    assert failed.state.current == State.FAILED
    await h.store.kv.set("ns", "broken", False)
    restarted = await h.engine.restart(failed.id)
    final = await h.engine.wait(restarted.id)
    assert final.id == failed.id
    assert final.state.current == State.SUCCESS
    runs = {t.task_id: t for t in final.task_runs}
    assert len(runs["first"].attempts) == 1
    assert [a.current for a in runs["check"].attempts] == [State.FAILED, State.SUCCESS]
    assert runs["last"].outputs == {"value": f"after {failed.id}"}
    assert [s for s, _ in final.state.histories][-3:] == [
        State.RESTARTED,
        State.RUNNING,
        State.SUCCESS,
    ]


async def test_restart_of_a_successful_execution_is_refused(h: Harness) -> None:
    from daemon.engine.lifecycle import RestartRefused

    ok = await h.run("""
        id: ok
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    with pytest.raises(RestartRefused, match="is SUCCESS; only FAILED or KILLED executions"):
        await h.engine.restart(ok.id)


async def test_replay_from_a_task_keeps_earlier_runs_in_a_new_execution(h: Harness) -> None:
    await h.store.kv.set("ns", "broken", False)
    original = await h.run(FLAKY_ONCE)
    check = next(t for t in original.task_runs if t.task_id == "check")
    copy = await h.engine.replay(original.id, check.id)
    final = await h.engine.wait(copy.id)
    assert final.id != original.id and final.state.current == State.SUCCESS
    runs = {t.task_id: t for t in final.task_runs}
    assert runs["first"].outputs == {"value": original.id}  # kept, not run again
    assert runs["last"].outputs == {"value": f"after {original.id}"}
    assert final.labels["system.replay"] == "true"


async def test_secret_values_are_masked_in_stored_outputs_and_errors(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "dG9wLXNlY3JldA==")  # base64 of top-secret
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: echo
            type: io.kestra.plugin.core.debug.Return
            format: "token={{ secret('TOKEN') }}"
          - id: reuse
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.echo.value | length }}"
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "bad {{ secret('TOKEN') }}"
        """)
    assert ex.task_runs[1].outputs == {"value": "16"}  # later tasks saw the clear value
    doc = await h.stored(ex)
    stored = {r["taskId"]: r for r in doc["taskRunList"]}
    assert stored["echo"]["outputs"] == {"value": "token=******"}
    assert doc["error"] == "task 'fail': bad ******"
    assert "top-secret" not in str(doc) and "top-secret" not in str(await h.logs(ex))


PAUSING = """
    id: approve
    namespace: ns
    tasks:
      - id: wait_for_approval
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - id: approved
            type: BOOLEAN
          - id: reason
            type: STRING
            required: false
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.wait_for_approval.onResume.approved }}"
    """


async def test_pause_waits_until_resumed_with_inputs(h: Harness) -> None:
    from daemon.sdk.errors import InputError

    ex = await h.start(PAUSING)
    for _ in range(200):
        if ex.state.current == State.PAUSED:
            break
        await asyncio.sleep(0.01)
    assert ex.state.current == State.PAUSED
    assert (await h.stored(ex))["state"]["current"] == "PAUSED"
    with pytest.raises(InputError, match="input 'approved': 'maybe' is not a BOOLEAN"):
        await h.engine.resume(ex.id, {"approved": "maybe"})
    assert ex.state.current == State.PAUSED  # refused inputs resume nothing
    assert await h.engine.resume(ex.id, {"approved": "true"})
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert final.task_runs[-1].outputs == {"value": "true"}
    assert [s for s, _ in final.state.histories] == [
        State.CREATED,
        State.RUNNING,
        State.PAUSED,
        State.RUNNING,
        State.SUCCESS,
    ]
    assert not await h.engine.resume(ex.id, {"approved": "true"})  # nothing waits now


async def test_pause_duration_resumes_by_itself_or_fails_per_behavior(
    fake: tuple[Harness, FakeClock],
) -> None:
    h, clock = fake
    timed = PAUSING.replace("        onResume:", "        pauseDuration: PT1H\n        onResume:")
    ex = await run_on_fake_clock(
        h, clock, timed.replace("{{ outputs.wait_for_approval.onResume.approved }}", "done")
    )
    assert ex.state.current == State.SUCCESS
    failing = timed.replace("pauseDuration: PT1H", "pauseDuration: PT1H\n        behavior: FAIL")
    ex = await run_on_fake_clock(h, clock, failing)
    assert ex.state.current == State.FAILED
    assert ex.error == "task 'wait_for_approval': not resumed within pauseDuration PT1H"


async def test_an_execution_the_store_refuses_takes_no_concurrency_slot(tmp_path: Path) -> None:
    from daemon.engine.core import Engine
    from daemon.flows.loader import load_flow
    from daemon.flows.registry import default_plugins
    from daemon.store import open_store
    from daemon.store.base import StoreError

    store = open_store(tmp_path / "data")
    await store.open()
    engine = Engine(tmp_path / "data", store, plugins=await asyncio.to_thread(default_plugins))
    flow = await asyncio.to_thread(
        load_flow,
        textwrap.dedent("""
        id: one_at_a_time
        namespace: ns
        concurrency:
          limit: 1
          behavior: QUEUE
        tasks:
          - id: t
            type: io.kestra.plugin.core.debug.Return
            format: x
        """),
        "t.yaml",
    )
    flow.revision = await store.save_flow(flow.namespace, flow.id, flow.source)
    await store.close()
    for _ in range(2):  # the second would be QUEUED behind the first if its slot leaked
        with pytest.raises(StoreError):
            await engine.submit(flow)
    assert (engine.local.running, engine.local.starting) == (0, 0)
    assert engine.local.admission._active[flow.uid] == 0 and not engine.local._ended
