"""Tasks about executions: Assert, SetVariables, UnsetVariables, Resume, Count, Fetch,
and Echo."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.sdk.execution import Execution, new_id
from daemon.sdk.state import State, StateHistory
from tests.harness import Harness, problems


def ids(ex: Execution) -> list[str]:
    return [tr.task_id for tr in ex.task_runs]


async def metrics(h: Harness, ex: Execution) -> dict[str, float]:
    await h.store.flush()
    return {m["name"]: m["value"] for m in await h.store.metrics(ex.id)}


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


ASSERT = """
    id: assert-test
    namespace: io.kestra.tests
    inputs:
      - id: key
        type: STRING
    tasks:
      - id: assert
        type: io.kestra.plugin.core.execution.Assert
        conditions: {conditions}
        {extra}
    """


def assert_flow(conditions: list[str], extra: str = "") -> str:
    return ASSERT.format(conditions=json.dumps(conditions), extra=extra)


async def test_assert_passes_when_every_condition_holds(h: Harness) -> None:
    """AssertTest.success: both conditions true; metrics success=2, failed=0."""
    ex = await h.run(
        assert_flow(["{{ inputs.key == 'value' }}", "{{ 42 == 42 }}"]), {"key": "value"}
    )
    assert ex.state.current == State.SUCCESS
    assert await metrics(h, ex) == {"success": 2, "failed": 0}


async def test_assert_checks_every_condition_and_names_the_false_ones(h: Harness) -> None:
    """AssertTest.failed: 5 conditions, 2 false: "2 assertions failed!", one ERROR line
    per false condition, metrics success=3, failed=2."""
    conditions = [
        "{{ inputs.key == 'value' }}",
        "{{ 42 == 42 }}",
        "{{ inputs.key == 'value1' }}",
        "{{ inputs.key == 'value2' }}",
        "{{ 'a' == 'a' }}",
    ]
    ex = await h.run(assert_flow(conditions), {"key": "value"})
    assert ex.state.current == State.FAILED
    errors = await h.logs(ex, "ERROR")
    assert errors == [
        "Assertion `{{ inputs.key == 'value1' }}` failed!",
        "Assertion `{{ inputs.key == 'value2' }}` failed!",
        "2 assertions failed!",
    ]
    assert await metrics(h, ex) == {"success": 3, "failed": 2}


async def test_assert_counts_a_null_or_unrenderable_condition_as_failed(h: Harness) -> None:
    """AssertTest.shouldFailWhenConditionEvaluatesToNull: `{{ null }}` is "1 assertion
    failed!"; a condition that does not render is failed too, with the reason; an
    `errorMessage` follows the count."""
    ex = await h.run(
        assert_flow(["{{ null }}", "{{ nothing.here }}"], extra="errorMessage: 'bad {{ 1 + 1 }}'"),
        {"key": "k"},
    )
    assert ex.state.current == State.FAILED
    errors = await h.logs(ex, "ERROR")
    assert errors[0] == "Assertion `{{ null }}` failed!"
    assert errors[1].startswith("Assertion `{{ nothing.here }}` failed, failed to render `")
    assert errors[2] == "2 assertions failed!\nbad 2"


async def test_a_failed_assert_fails_the_execution(h: Harness) -> None:
    """AssertTest.dontFailOnCondition (assert.yaml): 2 task runs, execution FAILED."""
    ex = await h.run("""
        id: assert
        namespace: io.kestra.tests
        tasks:
          - id: before
            type: io.kestra.plugin.core.output.OutputValues
            values:
              output1: xyz
              output2: abc
          - id: fail
            type: io.kestra.plugin.core.execution.Assert
            conditions:
              - "{{ 42 == 42 }}"
              - "{{ outputs.before.values.output1  == 'xyz' }}"
              - "{{ outputs.before.values.output2  == 'xyz' }}"
        """)
    assert ex.state.current == State.FAILED
    assert ids(ex) == ["before", "fail"]
    assert (await h.logs(ex, "ERROR"))[-1] == "1 assertion failed!"


SET_VARIABLES = """
    id: set-variables
    namespace: io.kestra.tests
    variables:
      name: World
    tasks:
      - id: set-vars
        type: io.kestra.plugin.core.execution.SetVariables
        {overwrite}
        variables:
          message: Hello
          name: Loïc
      - id: output
        type: io.kestra.plugin.core.output.OutputValues
        values:
          message: "{{{{ vars.message }}}} {{{{ vars.name }}}}"
    """


async def test_set_variables_changes_vars_for_the_tasks_after(h: Harness) -> None:
    """SetVariablesTest.shouldUpdateExecution (set-variables.yaml): SUCCESS, 2 task runs,
    "Hello Loïc"; the execution keeps its variables (stored with it)."""
    ex = await h.run(SET_VARIABLES.format(overwrite=""))
    assert ex.state.current == State.SUCCESS
    assert ids(ex) == ["set-vars", "output"]
    assert ex.task_runs[1].outputs == {"values": {"message": "Hello Loïc"}}
    assert ex.task_runs[0].outputs == {}
    assert (await h.stored(ex))["variables"] == {"name": "Loïc", "message": "Hello"}


async def test_set_variables_without_overwrite_refuses_existing_ones(h: Harness) -> None:
    """SetVariablesTest.shouldFailWhenExistingVariable (set-variables-duplicate.yaml):
    FAILED with 1 task run; the flow's own `variables` count as existing."""
    ex = await h.run(SET_VARIABLES.format(overwrite="overwrite: false"))
    assert ex.state.current == State.FAILED
    assert ids(ex) == ["set-vars"]
    assert await h.logs(ex, "ERROR") == [
        "`overwrite` is set to false and the following variables already exist: name"
    ]


async def test_set_variables_renders_for_each_execution(h: Harness) -> None:
    """SetVariablesTest.shouldRenderVariablesForEachExecution: the same flow renders its
    variables anew per execution ("true" for 1.3.9, "false" for 1.0.56, as text)."""
    flow = await h.flow("""
        id: set-variables-render
        namespace: io.kestra.tests
        inputs:
          - id: version
            type: STRING
        tasks:
          - id: set
            type: io.kestra.plugin.core.execution.SetVariables
            variables:
              isLts: "{{ inputs.version | startsWith('1.3.') }}"
          - id: out
            type: io.kestra.plugin.core.debug.Return
            format: "{{ vars.isLts }}"
        """)
    for version, expected in (("1.3.9", "true"), ("1.0.56", "false")):
        ex = await h.run(flow, {"version": version})
        assert ex.task_runs[-1].outputs == {"value": expected}


async def test_set_variables_merges_maps(h: Harness) -> None:
    """SetVariables (MapUtils.deepMerge): a map merges into the map already there."""
    ex = await h.run("""
        id: f
        namespace: ns
        variables:
          db: {host: localhost, port: 5432}
        tasks:
          - id: set
            type: io.kestra.plugin.core.execution.SetVariables
            variables:
              db: {port: 6543}
          - id: out
            type: io.kestra.plugin.core.debug.Return
            format: "{{ vars.db.host }}:{{ vars.db.port }}"
        """)
    assert ex.task_runs[-1].outputs == {"value": "localhost:6543"}


async def test_set_variables_survive_a_restart_and_a_replay(h: Harness, tmp_path: Path) -> None:
    """SetVariables is an ExecutionUpdatableTask: what it sets lives in the execution, so
    a restart (which does not run it again) and a replay that keeps its task run still
    see it."""
    marker = tmp_path / "once"
    ex = await h.run(
        """
        id: f
        namespace: ns
        inputs:
          - id: marker
            type: STRING
        tasks:
          - id: set
            type: io.kestra.plugin.core.execution.SetVariables
            variables:
              greeting: hello
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - test -f {{ inputs.marker }} || { touch {{ inputs.marker }}; exit 1; }
          - id: out
            type: io.kestra.plugin.core.debug.Return
            format: "{{ vars.greeting }}"
        """,
        {"marker": str(marker)},
    )
    assert ex.state.current == State.FAILED
    restarted = await h.engine.wait((await h.engine.restart(ex.id)).id)
    assert restarted.state.current == State.SUCCESS
    assert [tr.task_id for tr in restarted.task_runs].count("set") == 1
    assert restarted.task_runs[-1].outputs == {"value": "hello"}
    flaky = next(tr for tr in restarted.task_runs if tr.task_id == "flaky")
    replayed = await h.engine.wait((await h.engine.replay(restarted.id, flaky.id)).id)
    assert replayed.state.current == State.SUCCESS
    assert replayed.task_runs[-1].outputs == {"value": "hello"}


async def test_unset_variables_removes_them(h: Harness) -> None:
    """UnsetVariablesTest.shouldUpdateExecution (unset-variables.yaml): 3 task runs, the
    message unset: `???` gives "default"."""
    ex = await h.run("""
        id: unset-variables
        namespace: io.kestra.tests
        tasks:
          - id: set-vars
            type: io.kestra.plugin.core.execution.SetVariables
            variables:
              message: Hello World
          - id: unset-variables
            type: io.kestra.plugin.core.execution.UnsetVariables
            variables:
              - message
          - id: output
            type: io.kestra.plugin.core.output.OutputValues
            values:
              message: "{{ vars.message ??? 'default' }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert len(ex.task_runs) == 3
    assert ex.task_runs[-1].outputs == {"values": {"message": "default"}}


async def test_unset_variables_renders_for_each_execution(h: Harness) -> None:
    """UnsetVariablesTest.shouldRenderVariablesForEachExecution: the name to unset comes
    from the inputs; a dotted name descends into a map (UnsetVariables.removeVar)."""
    flow = await h.flow("""
        id: unset-render
        namespace: io.kestra.tests
        inputs:
          - id: toUnset
            type: STRING
        variables:
          first: 1
          second: 2
          nested: {a: 1, b: 2}
        tasks:
          - id: unset
            type: io.kestra.plugin.core.execution.UnsetVariables
            variables: ["{{ inputs.toUnset }}", nested.a]
          - id: out
            type: io.kestra.plugin.core.debug.Return
            format: "{{ vars | json }}"
        """)
    ex = await h.run(flow, {"toUnset": "first"})
    assert json.loads(ex.task_runs[-1].outputs["value"]) == {"second": 2, "nested": {"b": 2}}
    ex = await h.run(flow, {"toUnset": "second"})
    assert json.loads(ex.task_runs[-1].outputs["value"]) == {"first": 1, "nested": {"b": 2}}


async def test_unset_of_a_variable_not_set(h: Harness) -> None:
    """UnsetVariables.removeVar: a missing variable is no error; a missing map on a dotted
    path is one, unless `ignoreMissing`."""
    flow = """
        id: f
        namespace: ns
        tasks:
          - id: unset
            type: io.kestra.plugin.core.execution.UnsetVariables
            variables: [{names}]
            {extra}
        """
    ex = await h.run(flow.format(names="absent", extra=""))
    assert ex.state.current == State.SUCCESS
    ex = await h.run(flow.format(names="no.such.path", extra=""))
    assert ex.state.current == State.FAILED
    assert "vars.no is not a map" in (await h.logs(ex, "ERROR"))[0]
    ex = await h.run(flow.format(names="no.such.path", extra="ignoreMissing: true"))
    assert ex.state.current == State.SUCCESS


PAUSE = """
    id: pause
    namespace: io.kestra.tests
    tasks:
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - id: who
            type: STRING
            defaults: nobody
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.pause.onResume.who }}"
    """

RESUME = """
    id: resume-execution
    namespace: io.kestra.tests
    inputs:
      - id: executionId
        type: STRING
    tasks:
      - id: resume
        type: io.kestra.plugin.core.execution.Resume
        executionId: "{{{{ inputs.executionId }}}}"
        {extra}
      - id: seen
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ vars.resumedExecution.id }}}} {{{{ vars.resumedExecution.flowId }}}}"
    """


async def paused(h: Harness) -> Execution:
    ex = await h.start(PAUSE)
    for _ in range(500):
        if ex.state.current == State.PAUSED:
            return ex
        await asyncio.sleep(0.01)
    raise AssertionError("the execution never paused")


async def test_resume_resumes_a_paused_execution(h: Harness) -> None:
    """ResumeTest.resume (pause.yaml, resume-execution.yaml): the paused execution ends;
    the resuming one gets `vars.resumedExecution`; `inputs` reach the Pause's onResume."""
    target = await paused(h)
    ex = await h.run(RESUME.format(extra="inputs: {who: resumer}"), {"executionId": target.id})
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    assert ex.task_runs[-1].outputs == {"value": f"{target.id} pause"}
    final = await h.engine.wait(target.id)
    assert final.state.current == State.SUCCESS
    assert final.task_runs[-1].outputs == {"value": "resumer"}


async def test_resume_of_an_execution_not_paused_fails(h: Harness) -> None:
    """Resume: an execution that is not paused is an error naming its state."""
    done = await h.run("""
        id: done
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: a
        """)
    ex = await h.run(RESUME.format(extra=""), {"executionId": done.id})
    assert ex.state.current == State.FAILED
    [error] = await h.logs(ex, "ERROR")
    assert error == f"execution {done.id} is not paused (it is SUCCESS): nothing to resume"
    ex = await h.run(RESUME.format(extra=""), {"executionId": "nope"})
    assert await h.logs(ex, "ERROR") == ["No execution found for execution id nope"]


async def test_resume_checks_the_flow_it_names(h: Harness) -> None:
    """PluginUtilsService.executionFromTaskParameters: `namespace` and `flowId` go
    together with `executionId`, and must be the execution's."""
    target = await paused(h)
    ex = await h.run(RESUME.format(extra="namespace: io.kestra.tests"), {"executionId": target.id})
    assert await h.logs(ex, "ERROR") == [
        "Both `namespace` and `flowId` must be set when `executionId` is set."
    ]
    ex = await h.run(
        RESUME.format(extra="namespace: io.kestra.tests\n        flowId: other"),
        {"executionId": target.id},
    )
    assert await h.logs(ex, "ERROR") == [
        f"execution {target.id} is of flow io.kestra.tests.pause, not io.kestra.tests.other"
    ]
    assert await h.engine.resume(target.id, {})
    await h.engine.wait(target.id)


async def test_resume_of_its_own_execution_paused_in_another_branch(h: Harness) -> None:
    """Resume without `executionId` resumes the current execution: a Pause in a parallel
    branch goes on."""
    ex = await h.run("""
        id: self-resume
        namespace: ns
        tasks:
          - id: both
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: wait
                type: io.kestra.plugin.core.flow.Pause
              - id: go
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: later
                    type: io.kestra.plugin.core.flow.Sleep
                    duration: PT0.2S
                  - id: resume
                    type: io.kestra.plugin.core.execution.Resume
        """)
    assert ex.state.current == State.SUCCESS, await h.logs(ex)


async def save_execution(h: Harness, flow_id: str, state: State, days_ago: int) -> None:
    start = h.engine.clock.now() - timedelta(days=days_ago)
    ex = Execution(
        id=new_id(),
        namespace="io.kestra.unittest",
        flow_id=flow_id,
        flow_revision=1,
        state=StateHistory(State.CREATED, start),
    )
    ex.state.set(state, start)
    await h.store.save_execution(ex.to_json(task_runs=False))


COUNT = """
    id: count
    namespace: io.kestra.tests
    tasks:
      - id: count
        type: io.kestra.core.tasks.executions.Counts
        flows:
          - namespace: io.kestra.unittest
            flowId: {first}
          - namespace: io.kestra.unittest
            flowId: second
          - namespace: io.kestra.unittest
            flowId: third
        {states}
        startDate: "{{{{ now() | dateAdd(-30, 'DAYS') }}}}"
        endDate: "{{{{ now() }}}}"
        expression: "{expression}"
    """


async def test_count_counts_executions_per_flow(h: Harness) -> None:
    """CountTest.run: 28 executions (5 RUNNING, 3 FAILED, the rest SUCCESS; 4 of `first`,
    6 of `second`, 18 of `third`): `count >= 5` keeps second and third (24); with
    states [RUNNING] none; a flow without executions counts 0 (`count == 0`)."""
    for i in range(28):
        state = State.RUNNING if i < 5 else State.FAILED if i < 8 else State.SUCCESS
        flow_id = "first" if i < 4 else "second" if i < 10 else "third"
        await save_execution(h, flow_id, state, days_ago=1)
    await save_execution(h, "third", State.SUCCESS, days_ago=40)  # before startDate
    ex = await h.run(COUNT.format(first="first", states="", expression="{{ count >= 5 }}"))
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    out = ex.task_runs[0].outputs
    assert out["results"] == [
        {"namespace": "io.kestra.unittest", "flowId": "second", "count": 6},
        {"namespace": "io.kestra.unittest", "flowId": "third", "count": 18},
    ]
    assert out["total"] == 24
    ex = await h.run(
        COUNT.format(first="first", states="states: [RUNNING]", expression="{{ count >= 5 }}")
    )
    assert ex.task_runs[0].outputs == {"results": [], "total": 0}
    ex = await h.run(COUNT.format(first="missing", states="", expression="{{ count == 0 }}"))
    assert ex.task_runs[0].outputs == {
        "results": [{"namespace": "io.kestra.unittest", "flowId": "missing", "count": 0}],
        "total": 0,
    }


async def test_count_by_namespace_groups_per_flow(h: Harness) -> None:
    """Count `namespaces`: one row per flow of the namespace."""
    for flow_id in ("a", "a", "b"):
        await save_execution(h, flow_id, State.SUCCESS, days_ago=1)
    ex = await h.run("""
        id: count
        namespace: io.kestra.tests
        tasks:
          - id: count
            type: io.kestra.plugin.core.execution.Count
            namespaces: [io.kestra.unittest]
            startDate: "2000-01-01T00:00:00Z[UTC]"
            expression: "{{ count > 0 }}"
        """)
    assert ex.task_runs[0].outputs["total"] == 3
    assert {r["flowId"]: r["count"] for r in ex.task_runs[0].outputs["results"]} == {
        "a": 2,
        "b": 1,
    }


async def test_count_needs_flows_or_namespaces_and_a_date() -> None:
    """Count: "You must provide a list of flows or namespaces."; a bad date is named."""
    found = problems("""
        id: count
        namespace: io.kestra.tests
        tasks:
          - id: count
            type: io.kestra.plugin.core.execution.Count
            startDate: "2024-01-01T00:00:00Z"
            expression: "{{ count > 0 }}"
        """)
    assert any("You must provide a list of flows or namespaces." in p for p in found), found


async def test_count_with_a_bad_date_fails_clearly(h: Harness) -> None:
    """Count `startDate` is parsed as a ZonedDateTime: anything else is named."""
    ex = await h.run("""
        id: count
        namespace: io.kestra.tests
        tasks:
          - id: count
            type: io.kestra.plugin.core.execution.Count
            namespaces: [x]
            startDate: yesterday
            expression: "{{ count > 0 }}"
        """)
    assert ex.state.current == State.FAILED
    assert "startDate 'yesterday' is not an ISO-8601 date-time" in (await h.logs(ex, "ERROR"))[0]


GET_LOG = """
    id: get-log
    namespace: io.kestra.tests
    tasks:
      - type: io.kestra.core.tasks.debugs.Echo
        id: task-1
        format: task 1
      - type: io.kestra.core.tasks.debugs.Echo
        id: task-2
        format: task 2
      - type: io.kestra.core.tasks.debugs.Fetch
        id: get-log-task
        {extra}
    """


async def test_fetch_stores_the_logs_of_the_execution(h: Harness) -> None:
    """FetchTest.fetch (get-log.yaml): 3 task runs, SUCCESS, `size` 2: the two Echo lines,
    one JSON line each in the stored file."""
    ex = await h.run(GET_LOG.format(extra=""))
    assert ex.state.current == State.SUCCESS
    out = ex.task_runs[2].outputs
    assert out["size"] == 2
    lines = [json.loads(line) for line in (await read(h, out["uri"])).splitlines()]
    assert [(line["taskId"], line["message"], line["level"]) for line in lines] == [
        ("task-1", "task 1", "INFO"),
        ("task-2", "task 2", "INFO"),
    ]


async def test_fetch_of_some_tasks_and_of_another_execution(h: Harness) -> None:
    """FetchTest.fetchWithTaskId (get-log-taskid.yaml): `tasksId` keeps those tasks' lines
    (size 1); `executionId` with its `namespace`/`flowId` reads another execution's."""
    ex = await h.run(GET_LOG.format(extra="tasksId: [task-2]"))
    assert ex.task_runs[2].outputs["size"] == 1
    other = await h.run(
        GET_LOG.format(
            extra=f"executionId: {ex.id}\n        namespace: io.kestra.tests\n"
            "        flowId: get-log\n        level: WARN"
        )
    )
    assert other.state.current == State.SUCCESS, await h.logs(other)
    assert other.task_runs[2].outputs["size"] == 0


@pytest.mark.parametrize("level", ["INFO", "ERROR"])
async def test_echo_logs_its_format_rendered_at_its_level(h: Harness, level: str) -> None:
    """Echo (deprecated for Log): the rendered `format` at `level`; Kestra's Echo hands it
    to a Log, which renders it again."""
    ex = await h.run(f"""
        id: echo
        namespace: ns
        variables:
          deferred: "{{{{ flow.id }}}}"
        tasks:
          - id: echo
            type: io.kestra.plugin.core.debug.Echo
            level: {level}
            format: "{{{{ 1 + 1 }}}} {{{{ vars.deferred }}}}"
        """)
    assert ex.state.current == State.SUCCESS
    [line] = await h.store.logs(ex.id)
    assert (line["message"], line["level"]) == ("2 echo", level)
