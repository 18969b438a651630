"""Runtime semantics and Kestra 1.x features: retries (task, flowable, flow-level), Exit,
correlation ids, Switch, Subflow, outputs, labels, ForEach, SLA, taskCache, logToFile,
Pause's handlers, allowWarning.

Each test names the Kestra test, test flow or documentation page the behaviour comes from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, drive, eventually, task_states


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


async def on_fake_clock(h: Harness, clock: FakeClock, source: str, **inputs: str) -> Execution:
    execution = await h.start(source, inputs)
    return await drive(h, clock, h.engine.wait(execution.id))


def attempts(ex: Execution, task_id: str) -> list[str]:
    run = next(tr for tr in ex.task_runs if tr.task_id == task_id)
    return [a.current.value for a in run.attempts]


# -- retries -------------------------------------------------------------------------------


async def test_a_render_error_is_retried_like_any_error(fake: tuple[Harness, FakeClock]) -> None:
    """Kestra RetryCaseTest.retryWithFlowableErrors (retry-with-flowable-errors.yaml): an
    expression that fails to render fails the attempt, the retry runs it again, and it
    succeeds once an `errors` task has set what it reads."""
    h, clock = fake
    ex = await on_fake_clock(
        h,
        clock,
        """
        id: retry-with-flowable-errors
        namespace: ns
        tasks:
          - id: set_kv
            type: io.kestra.plugin.core.kv.Set
            key: counter
            value: 1
            kvType: NUMBER
          - id: retry_block
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: run_script
                type: io.kestra.plugin.core.log.Log
                message: "{{ kv('counter') < 2 ? ko : 'It works' }}"
            errors:
              - id: incr_counter
                type: io.kestra.plugin.core.kv.Set
                key: counter
                value: "{{ kv('counter') + 1 }}"
                kvType: NUMBER
            retry:
              type: constant
              maxAttempts: 3
              interval: PT0.5S
        """,
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert attempts(ex, "run_script") == ["FAILED", "SUCCESS"]
    assert "It works" in await h.logs(ex)


async def test_retry_on_a_flowable_runs_its_failed_children_again(
    fake: tuple[Harness, FakeClock],
) -> None:
    """Kestra RetryCaseTest.retryFlowable (retry-flowable.yaml): a Sequential with `retry`
    runs its failing child again; the child task run ends with 3 attempts."""
    h, clock = fake
    ex = await on_fake_clock(
        h,
        clock,
        """
        id: retry-flowable
        namespace: ns
        tasks:
          - id: flowable
            type: io.kestra.plugin.core.flow.Sequential
            retry:
              type: constant
              interval: PT1S
              maxAttempts: 3
            tasks:
              - id: child
                type: io.kestra.plugin.core.execution.Fail
        """,
    )
    assert ex.state.current == State.FAILED
    assert attempts(ex, "child") == ["FAILED"] * 3
    assert attempts(ex, "flowable") == ["FAILED"] * 3
    assert [tr.task_id for tr in ex.task_runs] == ["flowable", "child"]


async def test_flow_retry_retries_each_failed_task(fake: tuple[Harness, FakeClock]) -> None:
    """Kestra RetryCaseTest.retryFailedFlowAttempts (docs workflow-components/retries, flow
    `retry` with the default RETRY_FAILED_TASK): every task without its own retry gets the
    flow's."""
    h, clock = fake
    ex = await on_fake_clock(
        h,
        clock,
        """
        id: retry-failed-flow-attempts
        namespace: ns
        retry:
          type: constant
          interval: PT1S
          maxAttempts: 4
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
        """,
    )
    assert ex.state.current == State.FAILED
    assert attempts(ex, "fail") == ["FAILED"] * 4


async def test_flow_retry_may_create_new_executions(fake: tuple[Harness, FakeClock]) -> None:
    """Kestra RetryCaseTest.retryNewExecutionFlowAttempts (behavior: CREATE_NEW_EXECUTION):
    a failed execution ends RETRIED and a new one starts, until the policy is spent:
    RETRIED, RETRIED, FAILED."""
    h, clock = fake
    flow = await h.flow("""
        id: retry-new-execution
        namespace: ns
        retry:
          type: constant
          interval: PT10S
          maxAttempts: 3
          behavior: CREATE_NEW_EXECUTION
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
        """)
    first = await h.start(flow)

    async def three_ended() -> bool:
        docs, _ = await h.store.search_executions(flow_id=flow.id, size=10)
        return len(docs) == 3 and all(d["state"]["current"] in ("RETRIED", "FAILED") for d in docs)

    async def driven() -> None:
        await eventually(three_ended, "three executions", timeout=30)

    await drive(h, clock, driven())
    docs, _ = await h.store.search_executions(flow_id=flow.id, size=10)
    by_attempt = sorted(docs, key=lambda d: (d.get("metadata") or {}).get("attemptNumber", 1))
    assert [d["state"]["current"] for d in by_attempt] == ["RETRIED", "RETRIED", "FAILED"]
    assert by_attempt[0]["id"] == first.id
    assert [d["metadata"]["attemptNumber"] for d in by_attempt[1:]] == [2, 3]


# -- Exit -----------------------------------------------------------------------------------


async def test_exit_ends_its_parents_in_its_state(h: Harness) -> None:
    """Kestra ExitTest (exit-nested.yaml): the Exit task run and every flowable around it end
    in the exit state, and nothing after it runs."""
    ex = await h.run("""
        id: exit-nested
        namespace: ns
        tasks:
          - id: if_some_bool
            type: io.kestra.plugin.core.flow.If
            condition: "{{ true }}"
            then:
              - id: was_true
                type: io.kestra.plugin.core.log.Log
                message: The value was true
              - id: nested_bool_check
                type: io.kestra.plugin.core.flow.If
                condition: "{{ false }}"
                then:
                  - id: was_also_true
                    type: io.kestra.plugin.core.log.Log
                    message: Was also true
                else:
                  - id: nested_was_false
                    type: io.kestra.plugin.core.execution.Exit
                    state: FAILED
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {
        "if_some_bool": "FAILED",
        "was_true": "SUCCESS",
        "nested_bool_check": "FAILED",
        "nested_was_false": "FAILED",
    }


# -- labels and the trigger block ----------------------------------------------------------


async def test_every_execution_carries_a_correlation_id(h: Harness) -> None:
    """Kestra PR #5658 (system.correlationId on all executions), ExecutableUtils
    (a subflow carries its parent's system labels), Label.toNestedMap (read as
    `labels.system.correlationId`)."""
    await h.flow("""
        id: child
        namespace: ns
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: "{{ labels.system.correlationId }}"
        """)
    parent = await h.run("""
        id: parent
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
        """)
    assert parent.labels["system.correlationId"] == parent.id
    child_id = parent.task_runs[0].outputs["executionId"]
    child = Execution.from_json(await h.store.get_execution(child_id) or {})
    assert child.labels["system.correlationId"] == parent.id
    assert await h.logs(child) == [parent.id]


async def test_a_subflow_execution_names_its_parent_in_its_trigger(h: Harness) -> None:
    """Kestra ExecutableUtils.subflowExecution: the child's trigger is the Subflow task
    (`id`, `type`) with the parent's executionId, namespace, flowId, flowRevision, taskRunId
    and taskId as `trigger.*` variables."""
    await h.flow("""
        id: child
        namespace: ns
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.flowId }} {{ trigger.taskId }} {{ trigger.executionId }}"
        """)
    parent = await h.run("""
        id: parent
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
        """)
    child_doc = await h.store.get_execution(parent.task_runs[0].outputs["executionId"])
    assert child_doc is not None
    trigger = child_doc["trigger"]
    assert (trigger["id"], trigger["type"]) == ("call", "io.kestra.plugin.core.flow.Subflow")
    assert trigger["variables"]["taskRunId"] == parent.task_runs[0].id
    assert trigger["variables"]["flowRevision"] == parent.flow_revision
    assert await h.logs(Execution.from_json(child_doc)) == [f"parent call {parent.id}"]


async def test_a_warning_child_makes_the_subflow_task_warning(h: Harness) -> None:
    """Kestra ExecutableUtils.guessState: with transmitFailed, a WARNING child makes the
    Subflow task WARNING."""
    await h.flow("""
        id: child
        namespace: ns
        tasks:
          - id: shaky
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
        """)
    parent = await h.run("""
        id: parent
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
        """)
    assert parent.state.current == State.WARNING
    assert task_states(parent) == {"call": "WARNING"}


async def test_the_labels_task_refuses_empty_values(h: Harness) -> None:
    """Kestra PR #11273 (no empty labels): the Labels task fails on an empty value."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: label
            type: io.kestra.plugin.core.execution.Labels
            labels:
              team: "{{ '' }}"
        """)
    assert ex.state.current == State.FAILED
    assert "empty labels are not allowed: team" in (ex.error or "")


# -- flowables -----------------------------------------------------------------------------


async def test_switch_outputs_its_value_and_whether_defaults_ran(h: Harness) -> None:
    """Kestra Switch.Output (`value`, `defaults`): the rendered value, and true when no case
    matched."""
    source = """
        id: f
        namespace: ns
        inputs:
          - {id: v, type: STRING}
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ inputs.v }}"
            cases:
              A:
                - {id: a, type: io.kestra.plugin.core.log.Log, message: a}
            defaults:
              - {id: other, type: io.kestra.plugin.core.log.Log, message: other}
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ outputs.switch.value }} {{ outputs.switch.defaults }}"
    """
    matched = await h.run(source, {"v": "A"})
    assert (await h.logs(matched))[-1] == "A false"
    fallback = await h.run(source, {"v": "Z"})
    assert (await h.logs(fallback))[-1] == "Z true"


async def test_foreach_refuses_null_values_and_runs_each_value_once(h: Harness) -> None:
    """Kestra FlowableUtils.resolveEachTasks (each-null.yaml): a null value fails the task
    with "Found '1' null values on Each"; values are distinct."""
    ex = await h.run("""
        id: each-null
        namespace: ns
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: '["a", null, "b"]'
            tasks:
              - {id: say, type: io.kestra.plugin.core.log.Log, message: "{{ taskrun.value }}"}
        """)
    assert ex.state.current == State.FAILED
    assert "Found '1' null values on Each" in (ex.error or "")
    ex = await h.run("""
        id: each-dup
        namespace: ns
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "a", "b"]
            tasks:
              - {id: say, type: io.kestra.plugin.core.log.Log, message: "{{ taskrun.value }}"}
        """)
    assert sorted(await h.logs(ex)) == ["a", "b"]


async def test_pause_runs_on_pause_then_its_errors_and_finally(
    fake: tuple[Harness, FakeClock],
) -> None:
    """Kestra Pause `onPause` (PR #8556: runs once paused) and PR #10893 (a Pause's `errors`
    and `finally` are processed): a Pause that times out with `behavior: FAIL` runs them."""
    h, clock = fake
    ex = await on_fake_clock(
        h,
        clock,
        """
        id: f
        namespace: ns
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: PT1H
            behavior: FAIL
            onPause:
              id: notify
              type: io.kestra.plugin.core.log.Log
              message: "paused: {{ execution.state }}"
            errors:
              - {id: timed_out, type: io.kestra.plugin.core.log.Log, message: nobody came}
            finally:
              - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleaned}
        """,
    )
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {
        "approval": "FAILED",
        "notify": "SUCCESS",
        "timed_out": "SUCCESS",
        "cleanup": "SUCCESS",
    }
    assert await h.logs(ex) == [
        "paused: PAUSED",
        "not resumed within pauseDuration PT1H",
        "nobody came",
        "cleaned",
    ]


async def test_allow_warning_records_a_warning_as_success(h: Harness) -> None:
    """Kestra Task.allowWarning: a task that ends WARNING is recorded SUCCESS."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: noisy
            type: io.kestra.plugin.scripts.shell.Commands
            allowWarning: true
            commands: ["echo careful >&2"]
          - id: shaky
            type: io.kestra.plugin.core.flow.AllowFailure
            allowWarning: true
            tasks:
              - {id: boom, type: io.kestra.plugin.core.execution.Fail}
        """)
    assert task_states(ex) == {"noisy": "SUCCESS", "shaky": "SUCCESS", "boom": "FAILED"}


async def test_a_failure_allowed_and_warning_allowed_is_a_success(h: Harness) -> None:
    """Kestra's flows/valids/task-allow-warning-runnable.yml and TaskWithAllowWarningTest:
    a runnable task with allowFailure and allowWarning that fails every attempt ends
    SUCCESS (its FAILED becomes WARNING, the WARNING becomes SUCCESS), and so does the
    execution."""
    ex = await h.run("""
        id: task-allow-warning-runnable
        namespace: io.kestra.tests
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            allowWarning: true
            retry:
              type: constant
              interval: PT0.100S
              maxAttempt: 3
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: I'm allowed
        """)
    assert ex.state.current == State.SUCCESS
    assert task_states(ex) == {"fail": "SUCCESS", "log": "SUCCESS"}
    failed = next(tr for tr in ex.task_runs if tr.task_id == "fail")
    assert len(failed.attempts) == 3


# -- outputs -----------------------------------------------------------------------------------


async def test_an_absent_optional_output_does_not_fail_the_execution(h: Harness) -> None:
    """Kestra PR #10840 (FlowInputOutput.renderFlowOutputs): an optional output that cannot
    be rendered is logged and left out; a required one fails the execution."""
    source = """
        id: f
        namespace: ns
        tasks:
          - {id: a, type: io.kestra.plugin.core.debug.Return, format: here}
        outputs:
          - id: present
            type: STRING
            value: "{{ outputs.a.value }}"
          - id: absent
            type: STRING
            required: {required}
            value: "{{ outputs.nothing.value }}"
    """
    ex = await h.run(source.replace("{required}", "false"))
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.outputs == {"present": "here"}
    ex = await h.run(source.replace("{required}", "true"))
    assert ex.state.current == State.FAILED
    assert (ex.error or "").startswith("flow output 'absent'")


# -- SLA -------------------------------------------------------------------------------------

SLOW = """
    id: slow
    namespace: ns
    sla:
      - id: quick
        type: MAX_DURATION
        behavior: {behavior}
        duration: PT1M
        labels:
          sla: miss
    tasks:
      - {{id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT10M}}
      - {{id: after, type: io.kestra.plugin.core.log.Log, message: done}}
"""


@pytest.mark.parametrize(
    ("behavior", "state", "wait"), [("FAIL", "FAILED", "KILLED"), ("CANCEL", "CANCELLED", "KILLED")]
)
async def test_a_max_duration_sla_ends_a_slow_execution(
    fake: tuple[Harness, FakeClock], behavior: str, state: str, wait: str
) -> None:
    """Kestra MaxDurationSLA (docs workflow-components/sla): past `duration` the running tasks
    stop and the execution ends FAILED (FAIL) or CANCELLED (CANCEL), with the SLA's labels."""
    h, clock = fake
    ex = await on_fake_clock(h, clock, SLOW.format(behavior=behavior))
    assert ex.state.current == State(state)
    assert task_states(ex) == {"wait": wait}
    assert ex.labels["sla"] == "miss"
    assert any("SLA 'quick' violated" in line for line in await h.logs(ex))


async def test_an_sla_with_behavior_none_only_labels_and_logs(
    fake: tuple[Harness, FakeClock],
) -> None:
    """Kestra SLA behavior NONE: the violation is logged and labelled; the execution goes on."""
    h, clock = fake
    ex = await on_fake_clock(h, clock, SLOW.format(behavior="NONE"))
    assert ex.state.current == State.SUCCESS
    assert ex.labels["sla"] == "miss"


async def test_an_execution_assertion_sla_fails_when_it_turns_false(h: Harness) -> None:
    """Kestra ExecutionAssertionSLA: `assert` is evaluated as the execution changes; false
    is a violation ("assertion is false: ...")."""
    ex = await h.run("""
        id: f
        namespace: ns
        sla:
          - id: good_value
            type: EXECUTION_ASSERTION
            behavior: FAIL
            assert: "{{ outputs.first.value == 'good' }}"
        tasks:
          - {id: first, type: io.kestra.plugin.core.debug.Return, format: bad}
          - {id: second, type: io.kestra.plugin.core.log.Log, message: never}
        """)
    assert ex.state.current == State.FAILED
    assert "assertion is false" in (ex.error or "")
    assert task_states(ex) == {"first": "SUCCESS"}


# -- taskCache and logToFile -------------------------------------------------------------------


async def test_task_cache_reuses_outputs_until_the_ttl(
    fake: tuple[Harness, FakeClock], tmp_path: Path
) -> None:
    """Kestra docs workflow-components/task-cache: the task's outputs are kept; a later run
    with the same properties skips it and reuses them until `ttl` expires."""
    h, clock = fake
    marker = tmp_path / "runs.txt"
    source = f"""
        id: cached
        namespace: ns
        tasks:
          - id: expensive
            type: io.kestra.plugin.scripts.shell.Commands
            taskCache:
              enabled: true
              ttl: PT1H
            commands:
              - echo ran >> {marker}
              - |
                echo '::{{"outputs": {{"n": 1}}}}::'
    """
    first = await on_fake_clock(h, clock, source)
    second = await on_fake_clock(h, clock, source)
    assert second.task_runs[0].outputs["vars"] == {"n": 1}
    assert await asyncio.to_thread(marker.read_text) == "ran\n"
    assert "outputs taken from the task cache (taskCache)" in await h.logs(second)
    await clock.advance(3601)
    await on_fake_clock(h, clock, source)
    assert await asyncio.to_thread(marker.read_text) == "ran\nran\n"
    assert first.state.current == State.SUCCESS


async def test_log_to_file_stores_the_lines_in_a_file(h: Harness) -> None:
    """Kestra Task.logToFile: the task run's logs go to a file in storage, not to the log
    table."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: chatty
            type: io.kestra.plugin.core.log.Log
            logToFile: true
            message: ["one", "two"]
        """)
    assert ex.state.current == State.SUCCESS
    (line,) = await h.logs(ex)
    assert line.startswith("the logs of this task run are in kestra:///ns/f/executions/")
    uri = line.split(" in ", 1)[1].split(" ")[0]
    text = await h.engine.resources.storage.read_text(uri)
    assert [row.split(" ", 2)[1:] for row in text.splitlines()] == [
        ["INFO", "one"],
        ["INFO", "two"],
    ]


ALLOW_FAILURE = """
id: allow-failure
namespace: io.kestra.tests
inputs:
  - id: crash
    type: STRING
    required: false
tasks:
  - id: first
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: 1-1-allow-failure
        type: io.kestra.plugin.core.flow.AllowFailure
        tasks:
          - id: 1-1-1_seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: 1-1-1-1
                type: io.kestra.plugin.core.debug.Return
                format: "{{task.id}} > {{taskrun.startDate}}"
              - id: ko
                type: io.kestra.plugin.core.execution.Fail
              - id: 1-1-1-3
                type: io.kestra.plugin.core.debug.Return
                format: "{{task.id}} > {{taskrun.startDate}}"
        errors:
          - id: local-error
            type: io.kestra.plugin.core.debug.Return
            format: "Error Trigger ! {{task.id}}"
      - id: 1-2-todo
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.startDate}}"
  - id: switch
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.crash is defined }}"
    cases:
      "true":
        - id: crash
          type: io.kestra.plugin.core.execution.Fail
    defaults:
      - id: last
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.startDate}}"
errors:
  - id: global-error
    type: io.kestra.plugin.core.debug.Return
    format: "Error Trigger ! {{task.id}}"
"""


async def test_allow_failure_without_the_optional_input_ends_in_warning(h: Harness) -> None:
    """Kestra's flows/valids/allow-failure.yaml and AllowFailureTest.success: with `crash`
    absent, `inputs.crash is defined` is false (null is not defined in Pebble), so the
    Switch takes its default; the failure inside AllowFailure leaves the execution WARNING
    with 9 task runs, `last` SUCCESS and no global error handler run. (Kestra's test skips
    input validation; the input is optional here for the same run.)"""
    ex = await h.run(ALLOW_FAILURE)
    states = task_states(ex)
    assert ex.state.current == State.WARNING
    assert len(ex.task_runs) == 9
    assert states["last"] == "SUCCESS"
    assert "crash" not in states and "global-error" not in states
    assert states["ko"] == "FAILED" and states["local-error"] == "SUCCESS"
    assert states["1-1-allow-failure"] == "WARNING"


async def test_allow_failure_with_the_input_given_fails_through_the_switch(h: Harness) -> None:
    """AllowFailureTest.failed: `crash` given, the Switch runs the Fail case and the flow's
    `errors` run: FAILED."""
    ex = await h.run(ALLOW_FAILURE, {"crash": "1"})
    states = task_states(ex)
    assert ex.state.current == State.FAILED
    assert states["crash"] == "FAILED" and states["global-error"] == "SUCCESS"
