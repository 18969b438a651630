"""Loop (io.kestra.plugin.core.flow.Loop): each value's iteration runs in an execution of its
own, run through the engine here; the behaviours follow Kestra's LoopCaseTest (flows under
core/src/test/resources/flows/valids/loop-*.yaml), LoopWithPauseTest,
LoopExecutionEventMessageHandler and FlowableUtils.resolveValues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk import ion
from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, drive, eventually, problems


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


async def iterations(h: Harness, parent: Execution) -> list[Execution]:
    """The iterations `parent` started (its loop sub-executions), with their task runs, by
    loop task and index."""
    await h.store.flush()
    docs, _ = await h.store.search_executions(flow_id=parent.flow_id, size=500)
    found = []
    for doc in docs:
        loop = doc.get("loopRun") or {}
        if loop.get("executionId") == parent.id:
            full = await h.store.get_execution(doc["id"])
            assert full is not None
            found.append(Execution.from_json(full))
    return sorted(found, key=lambda e: (e.loop or {}).get("taskId", "") + f"{e.loop['index']:09d}")


def value_of(execution: Execution, task_id: str) -> Any:
    return next(tr.outputs.get("value") for tr in execution.task_runs if tr.task_id == task_id)


def loop_outputs(execution: Execution, task_id: str = "loop") -> dict[str, Any]:
    return next(tr.outputs for tr in execution.task_runs if tr.task_id == task_id)


# -- iterations and what they see -------------------------------------------------------------


async def test_each_value_runs_in_an_iteration_execution_of_its_own(h: Harness) -> None:
    """LoopCaseTest.loopSerial (loop-serial.yaml): the parent keeps one task run, the loop's;
    each value ran in a sub-execution (kind LOOP) whose Return saw `item.index` and
    `item.value`; the loop's outputs count the iterations by state."""
    ex = await h.run("""
        id: loop-serial
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: ["value 1", "value 2", "value 3"]
            tasks:
              - id: item
                type: io.kestra.core.tasks.debugs.Return
                format: "{{item.index}} - {{item.value}}"
        """)
    assert ex.state.current == State.SUCCESS
    assert [tr.task_id for tr in ex.task_runs] == ["loop"]
    assert loop_outputs(ex) == {
        "iterationCount": 3,
        "runningIterations": 0,
        "terminatedIterations": {"SUCCESS": 3},
    }
    subs = await iterations(h, ex)
    assert [value_of(s, "item") for s in subs] == ["0 - value 1", "1 - value 2", "2 - value 3"]
    assert all(s.state.current == State.SUCCESS for s in subs)
    stored = await h.store.get_execution(subs[0].id)
    assert stored is not None and stored["kind"] == "LOOP"
    assert stored["loopRun"]["taskRunId"] == ex.task_runs[0].id
    assert stored["parentId"] == ex.id


async def test_iterations_see_the_inputs_outputs_and_execution_that_started_them(
    h: Harness,
) -> None:
    """LoopCaseTest.loopExpressionContext (loop-expression-context.yaml): an iteration reads
    the outputs of tasks before the loop and `execution.id` is the parent's; the flow's
    inputs and labels are the parent's too."""
    ex = await h.run(
        """
        id: loop-expression-context
        namespace: io.kestra.tests
        labels:
          team: data
        inputs:
          - id: who
            type: STRING
        tasks:
          - id: before
            type: io.kestra.plugin.core.debug.Return
            format: "I'm before the loop"
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            concurrencyLimit: 1
            values: ["value 1", "value 2", "value 3"]
            tasks:
              - id: canAccessBefore
                type: io.kestra.plugin.core.debug.Return
                format: "{{outputs.before.value}}"
              - id: contextIsFromParent
                type: io.kestra.plugin.core.debug.Return
                format: "{{execution.id}} {{inputs.who}} {{labels.team}} {{flow.id}}"
        """,
        {"who": "ana"},
    )
    assert ex.state.current == State.SUCCESS
    assert [tr.task_id for tr in ex.task_runs] == ["before", "loop"]
    subs = await iterations(h, ex)
    assert len(subs) == 3
    for sub in subs:
        assert [tr.task_id for tr in sub.task_runs] == ["canAccessBefore", "contextIsFromParent"]
        assert value_of(sub, "canAccessBefore") == "I'm before the loop"
        assert value_of(sub, "contextIsFromParent") == f"{ex.id} ana data loop-expression-context"


async def test_a_map_of_values_gives_each_iteration_its_key(h: Harness) -> None:
    """LoopCaseTest.loopMap (loop-map.yaml): one iteration per entry, `item.key` its key."""
    ex = await h.run("""
        id: loop-map
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            concurrencyLimit: 1
            values:
              key1: value 1
              key2: value 2
              key3: value 3
            tasks:
              - id: item
                type: io.kestra.plugin.core.debug.Return
                format: "{{item.key}} - {{item.value}}"
        """)
    assert ex.state.current == State.SUCCESS
    subs = await iterations(h, ex)
    assert [value_of(s, "item") for s in subs] == [
        "key1 - value 1",
        "key2 - value 2",
        "key3 - value 3",
    ]
    assert [s.loop["key"] for s in subs if s.loop] == ["key1", "key2", "key3"]


async def test_values_forms_list_json_string_and_expression(h: Harness) -> None:
    """FlowableUtils.resolveValues: list elements become text (numbers as written, maps as
    JSON) with duplicates dropped; a JSON array in a string keeps its texts and writes
    anything else as JSON; an expression rendering to a list or JSON works alike; a JSON
    object in a string is a map (loopObject / loopObjectInList read maps as JSON)."""
    ex = await h.run(
        """
        id: loop-forms
        namespace: io.kestra.tests
        inputs:
          - id: names
            type: ARRAY
            itemType: STRING
        tasks:
          - id: list
            type: io.kestra.plugin.core.flow.Loop
            values: [1, 2.5, "x", "x", {"k": "v"}, "{{ inputs.names[0] }}"]
            tasks:
              - id: v_list
                type: io.kestra.plugin.core.debug.Return
                format: "{{ item.value }}"
          - id: json
            type: io.kestra.plugin.core.flow.Loop
            values: '["a", 1, true, {"k": [1]}, "a"]'
            tasks:
              - id: v_json
                type: io.kestra.plugin.core.debug.Return
                format: "{{ item.value }}"
          - id: expression
            type: io.kestra.plugin.core.flow.Loop
            values: "{{ inputs.names }}"
            tasks:
              - id: v_expression
                type: io.kestra.plugin.core.debug.Return
                format: "{{ item.index }}:{{ item.value }}"
          - id: object
            type: io.kestra.plugin.core.flow.Loop
            values: '{"a": 1, "b": {"c": "d"}}'
            tasks:
              - id: v_object
                type: io.kestra.plugin.core.debug.Return
                format: "{{ item.key }}={{ item.value }}"
        """,
        {"names": ["ann", "bob"]},
    )
    assert ex.state.current == State.SUCCESS, ex.error
    subs = await iterations(h, ex)

    def seen(task_id: str) -> list[Any]:
        return [value_of(s, f"v_{task_id}") for s in subs if s.loop and s.loop["taskId"] == task_id]

    assert seen("list") == ["1", "2.5", "x", '{"k":"v"}', "ann"]
    assert seen("json") == ["a", "1", "true", '{"k":[1]}']
    assert seen("expression") == ["0:ann", "1:bob"]
    assert seen("object") == ["a=1", 'b={"c":"d"}']
    assert loop_outputs(ex, "list")["iterationCount"] == 5


async def test_values_from_an_ion_file_run_one_iteration_per_line(h: Harness) -> None:
    """LoopCaseTest.loopValuesFromUri and loopOutputsAuto (loop-values-from-uri.yaml): a
    kestra:// URI is read one Ion value a line (maps as JSON); with `fetchType: AUTO` such a
    loop stores each iteration's outputs in an Ion file and hands back its URI."""
    ex = await h.run("""
        id: loop-values-from-uri
        namespace: io.kestra.tests
        tasks:
          - id: write
            type: io.kestra.plugin.core.storage.Write
            content: |-
              {date:"2025-12-03T12:00:00Z",title:"Michel-Ange",views:448}
              "plain"

              42
            extension: .ion
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            concurrencyLimit: 1
            values: "{{ outputs.write.uri }}"
            outputs:
              - id: value
                type: STRING
                value: "{{ outputs.item.value }}"
            tasks:
              - id: item
                type: io.kestra.plugin.core.debug.Return
                format: "{{item.index}} - {{item.value}}"
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    subs = await iterations(h, ex)
    assert [value_of(s, "item") for s in subs] == [
        '0 - {"date":"2025-12-03T12:00:00Z","title":"Michel-Ange","views":448}',
        "1 - plain",
        "2 - 42",
    ]
    outputs = loop_outputs(ex)
    assert outputs["terminatedIterations"] == {"SUCCESS": 3}
    stored = []
    for entry in outputs["outputs"]:
        uri = entry["outputs"]["uri"]
        assert uri.startswith("kestra://")
        text = await h.engine.resources.storage.read_text(uri)
        stored.append(ion.loads(text)["value"])
    assert stored == [value_of(s, "item") for s in subs]


async def test_nested_loops_see_their_parents_items(h: Harness) -> None:
    """LoopCaseTest.loopNested (loop-nested.yaml, 2 values a level): each level's iterations
    run under the enclosing iteration; `item.parent` is the nearest enclosing iteration and
    `item.parents` lists them outermost first, as Kestra's LoopRun keeps them."""
    ex = await h.run("""
        id: loop-nested
        namespace: io.kestra.tests
        tasks:
          - id: loop1
            type: io.kestra.plugin.core.flow.Loop
            values: [a, b]
            tasks:
              - id: loop2
                type: io.kestra.plugin.core.flow.Loop
                values: [c, d]
                tasks:
                  - id: loop3
                    type: io.kestra.plugin.core.flow.Loop
                    values: [e, f]
                    tasks:
                      - id: item
                        type: io.kestra.plugin.core.debug.Return
                        format: "{{item.index}} - {{item.value}}"
                      - id: parent
                        type: io.kestra.plugin.core.debug.Return
                        format: "{{item.parent.index}} - {{item.parent.value}}"
                      - id: parents
                        type: io.kestra.plugin.core.debug.Return
                        format: "{{item.parents[0].value}} - {{item.parents[1].value}}"
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    level1 = await iterations(h, ex)
    assert len(level1) == 2
    leaves = []
    for one in level1:
        assert loop_outputs(one, "loop2")["terminatedIterations"] == {"SUCCESS": 2}
        for two in await iterations(h, one):
            assert loop_outputs(two, "loop3")["iterationCount"] == 2
            leaves.extend(await iterations(h, two))
    assert len(leaves) == 8
    seen = {(value_of(x, "item"), value_of(x, "parent"), value_of(x, "parents")) for x in leaves}
    assert ("1 - f", "0 - c", "b - c") in seen
    assert ("0 - e", "1 - d", "a - d") in seen


# -- failures -------------------------------------------------------------------------------


async def test_a_failed_iteration_fails_the_loop_at_once(h: Harness) -> None:
    """LoopCaseTest.loopFailed (loop-failed.yaml): with transmitFailed (default) the first
    failed iteration ends the loop FAILED; one iteration at a time by default, so no other
    started; the parent logs which sub-execution to look at."""
    ex = await h.run("""
        id: loop-failed
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: ["value 1", "value 2", "value 3"]
            tasks:
              - id: fail
                type: io.kestra.plugin.core.execution.Fail
        """)
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_runs] == ["loop"]
    assert ex.task_runs[0].state.current == State.FAILED
    assert loop_outputs(ex)["terminatedIterations"] == {"FAILED": 1}
    subs = await iterations(h, ex)
    assert [s.state.current for s in subs] == [State.FAILED]
    logs = await h.logs(ex, "ERROR")
    assert any(f"Loop iteration 0 ended in FAILED in sub-execution {subs[0].id}" in m for m in logs)


async def test_without_transmit_failed_every_iteration_runs_and_the_loop_succeeds(
    h: Harness,
) -> None:
    """LoopCaseTest.loopTransmitFailedFalse (loop-failed-no-transmit.yaml): all iterations run
    and fail on their own; the loop ends SUCCESS, counting them FAILED."""
    ex = await h.run("""
        id: loop-failed-no-transmit
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            transmitFailed: false
            values: ["value 1", "value 2", "value 3"]
            tasks:
              - id: fail
                type: io.kestra.plugin.core.execution.Fail
        """)
    assert ex.state.current == State.SUCCESS
    assert loop_outputs(ex)["terminatedIterations"] == {"FAILED": 3}
    assert [s.state.current for s in await iterations(h, ex)] == [State.FAILED] * 3


async def test_errors_and_finally_run_inside_each_iteration(h: Harness) -> None:
    """The executor runs a loop sub-execution's `errors` and `finally` from the Loop task
    (ExecutorService.handleNext/handleEnd for ExecutionKind.LOOP), with `item` in scope."""
    ex = await h.run("""
        id: loop-handlers
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            transmitFailed: false
            values: [ok, boom]
            tasks:
              - id: maybe
                type: io.kestra.plugin.core.execution.Fail
                condition: "{{ item.value == 'boom' }}"
            errors:
              - id: handle
                type: io.kestra.plugin.core.debug.Return
                format: "failed {{ item.value }}"
            finally:
              - id: cleanup
                type: io.kestra.plugin.core.debug.Return
                format: "done {{ item.index }}"
        """)
    assert ex.state.current == State.SUCCESS
    ok, boom = await iterations(h, ex)
    assert [tr.task_id for tr in ok.task_runs] == ["maybe", "cleanup"]
    assert [tr.task_id for tr in boom.task_runs] == ["maybe", "handle", "cleanup"]
    assert value_of(boom, "handle") == "failed boom"
    assert value_of(boom, "cleanup") == "done 1"
    assert boom.state.current == State.FAILED


async def test_declared_outputs_failing_to_render_fail_the_iteration(h: Harness) -> None:
    """LoopCaseTest.loopOutputsFailedRender: an output naming a task that does not exist
    fails the iteration (its tasks succeeded) and so the loop."""
    ex = await h.run("""
        id: loop-outputs-failed-render
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: ["value 1", "value 2"]
            outputs:
              - id: value
                value: "{{ outputs.nope.value }}"
            tasks:
              - id: createOutput
                type: io.kestra.plugin.core.debug.Return
                format: "some output"
        """)
    assert ex.state.current == State.FAILED
    (sub,) = await iterations(h, ex)
    assert sub.state.current == State.FAILED
    assert all(tr.state.current == State.SUCCESS for tr in sub.task_runs)


# -- outputs, empty and malformed values --------------------------------------------------------


async def test_declared_outputs_reach_the_tasks_after_the_loop(h: Harness) -> None:
    """LoopCaseTest.loopOutputs and loopOutputsStore: `outputs.loop.outputs` lists each
    iteration's `item` and declared `outputs` (FETCH, the default for list values); with
    `fetchType: STORE` each entry holds the URI of an Ion file of them instead."""
    ex = await h.run("""
        id: loop-outputs
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: {a: "value 1", b: "value 2"}
            outputs:
              - id: value
                type: STRING
                value: "{{outputs.createOutput.value}}"
            tasks:
              - id: createOutput
                type: io.kestra.plugin.core.debug.Return
                format: "some output {{ item.key }}"
          - id: stored
            type: io.kestra.plugin.core.flow.Loop
            values: ["value 1"]
            fetchType: STORE
            outputs:
              - id: value
                value: "{{outputs.storeOutput.value}}"
            tasks:
              - id: storeOutput
                type: io.kestra.plugin.core.debug.Return
                format: "stored output"
          - id: end
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.loop.outputs[1].outputs.value }}"
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert loop_outputs(ex)["outputs"] == [
        {"item": {"value": "value 1", "iteration": 0, "key": "a"},
         "outputs": {"value": "some output a"}},
        {"item": {"value": "value 2", "iteration": 1, "key": "b"},
         "outputs": {"value": "some output b"}},
    ]  # fmt: skip
    assert value_of(ex, "end") == "some output b"
    (entry,) = loop_outputs(ex, "stored")["outputs"]
    text = await h.engine.resources.storage.read_text(entry["outputs"]["uri"])
    assert ion.loads(text) == {"value": "stored output"}


async def test_empty_values_end_the_loop_at_once(h: Harness) -> None:
    """LoopCaseTest.loopEmpty and LoopTest.initFromValues_withEmptyList: no iteration, the
    loop succeeds and the flow goes on."""
    ex = await h.run("""
        id: loop-empty
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: []
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: x
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.loop.iterationCount }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert value_of(ex, "after") == "0"
    assert await iterations(h, ex) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ('["a", null]', "Found a null value inside the iteration values="),
        ("[a, null]", "Found a null value inside the iteration values"),
        ("'not json'", "values is neither a JSON array or object nor a kestra:// URI"),
        ("'42'", "Unknown value type: int"),
        ("[a, true]", "Unknown value element type: bool (true)"),
        ("[[1, 2]]", "Unknown value element type: list ([1,2])"),
        ("{a: [1]}", "Unknown value element type: list ([1])"),
    ],
)
async def test_malformed_values_fail_the_loop_with_a_clear_error(
    h: Harness, values: str, message: str
) -> None:
    """LoopCaseTest.loopWithNull (loop-null.yaml) and FlowableUtils.resolveValues's refusals:
    the Loop task fails before any iteration starts, saying what is wrong."""
    ex = await h.run(f"""
        id: loop-malformed
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: {values}
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: x
        """)
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_runs] == ["loop"]
    assert any(message in line for line in await h.logs(ex, "ERROR")), ex.error
    assert await iterations(h, ex) == []


async def test_a_malformed_ion_file_fails_the_loop(h: Harness) -> None:
    """FlowableUtils.readLoopValuesFromUri: a line that is not Ion, or an Ion null, fails."""
    ex = await h.run("""
        id: loop-bad-file
        namespace: io.kestra.tests
        tasks:
          - id: write
            type: io.kestra.plugin.core.storage.Write
            content: |-
              "fine"
              {broken:
            extension: .ion
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: "{{ outputs.write.uri }}"
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: x
        """)
    assert ex.state.current == State.FAILED
    assert any("line 2 of kestra://" in m for m in await h.logs(ex, "ERROR"))


def test_loop_properties_are_checked_when_the_flow_loads() -> None:
    """Loop.java: concurrencyLimit is @PositiveOrZero, `tasks` @NotEmpty, fetchType one of
    AUTO/FETCH/STORE; an unknown property is a typo."""
    found = problems("""
        id: loop-invalid
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: [1]
            concurrencyLimit: -1
            fetchType: SOMETIMES
            valuse: [2]
            tasks: []
        """)
    text = "\n".join(found)
    assert "concurrencyLimit" in text
    assert "fetchType" in text
    assert "valuse" in text
    assert "tasks" in text


# -- concurrency, pauses, breakWhen -----------------------------------------------------------

PAUSING_LOOP = """
    id: loop-pausing
    namespace: io.kestra.tests
    tasks:
      - id: loop
        type: io.kestra.plugin.core.flow.Loop
        values: [1, 2, 3]
        concurrencyLimit: {limit}
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{{{ item.value }}}}"
    """


async def paused_iterations(h: Harness, parent: Execution, count: int) -> list[Execution]:
    async def check() -> bool:
        subs = await iterations(h, parent)
        return sum(s.state.current == State.PAUSED for s in subs) == count

    await eventually(check, f"{count} paused iterations")

    async def parent_paused() -> bool:
        return (await h.stored(parent))["state"]["current"] == "PAUSED"

    await eventually(parent_paused, "the parent paused")
    return [s for s in await iterations(h, parent) if s.state.current == State.PAUSED]


async def test_concurrency_limit_caps_the_iterations_running_and_pauses_follow_them(
    h: Harness,
) -> None:
    """LoopCaseTest.loopParallelLess and LoopWithPauseTest (resumingTheParentResumesEvery
    PausedIteration, resumingAPausedIterationResumesItsParent): with concurrencyLimit 2 two
    iterations run (and pause) at once and the third waits; the parent and its loop task run
    are PAUSED while one is; resuming the parent resumes both, resuming the last paused
    iteration lets the parent go on."""
    ex = await h.start(PAUSING_LOOP.format(limit=2))
    first = await paused_iterations(h, ex, 2)
    assert len(await iterations(h, ex)) == 2  # the third has not started
    assert ex.task_runs[0].state.current == State.PAUSED
    assert await h.engine.resume(ex.id, {})
    (third,) = await paused_iterations(h, ex, 1)
    assert third.id not in {s.id for s in first}
    assert await h.engine.resume(third.id, {})
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    history = [s for s, _ in final.state.histories]
    assert history.count(State.PAUSED) == 2 and history[-1] == State.SUCCESS
    assert State.PAUSED in [s for s, _ in final.task_runs[0].state.histories]
    subs = await iterations(h, final)
    assert [value_of(s, "after") for s in subs] == ["1", "2", "3"]


async def test_concurrency_limit_zero_starts_every_iteration_at_once(h: Harness) -> None:
    """LoopCaseTest.loopParallelUnlimited and Loop.java ("0 = unlimited"): all three
    iterations start together; the parent stays PAUSED until the last one is resumed
    (LoopWithPauseTest.theParentOfConcurrentPausedIterationsStaysPausedUntilTheLastOneResumes)."""
    ex = await h.start(PAUSING_LOOP.format(limit=0))
    subs = await paused_iterations(h, ex, 3)
    for sub in subs[:2]:
        assert await h.engine.resume(sub.id, {})
    await paused_iterations(h, ex, 1)
    assert await h.engine.resume(subs[2].id, {})
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert loop_outputs(final)["terminatedIterations"] == {"SUCCESS": 3}


async def test_a_timed_pause_in_each_iteration_pauses_the_parent_in_turn(
    fake: tuple[Harness, FakeClock],
) -> None:
    """LoopCaseTest.loopWithPause (loop-with-pause.yaml) and LoopWithPauseTest.aPausedIteration
    PausesTheParentAndItsExpiryResumesItUntilEveryIterationSucceeds."""
    h, clock = fake
    ex = await h.start("""
        id: loop-with-pause
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            concurrencyLimit: 1
            values: [1, 2]
            tasks:
              - id: pause
                type: io.kestra.plugin.core.flow.Pause
                pauseDuration: PT1S
        """)
    final = await drive(h, clock, h.engine.wait(ex.id))
    assert final.state.current == State.SUCCESS
    history = [s for s, _ in final.state.histories]
    assert history == [State.CREATED, State.RUNNING, State.PAUSED, State.RUNNING,
                       State.PAUSED, State.RUNNING, State.SUCCESS]  # fmt: skip
    assert len(await iterations(h, final)) == 2


async def test_break_when_stops_starting_iterations(h: Harness) -> None:
    """Loop.java `breakWhen`: rendered after each iteration with `item` and `iteration`
    (executionId, state, outputs); once true no further iteration starts."""
    ex = await h.run("""
        id: loop-break
        namespace: io.kestra.tests
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: [a, b, c, d]
            breakWhen: "{{ item.value == 'b' and iteration.state == 'SUCCESS' }}"
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: "{{ item.value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert [value_of(s, "t") for s in await iterations(h, ex)] == ["a", "b"]
    assert loop_outputs(ex)["terminatedIterations"] == {"SUCCESS": 2}
    assert loop_outputs(ex)["iterationCount"] == 4


async def test_a_flow_concurrency_limit_does_not_hold_its_own_iterations(h: Harness) -> None:
    """A loop sub-execution belongs to its parent (Kestra's ExecutionKind.LOOP): the flow's
    `concurrency` limit of 1, taken by the parent, must not queue its iterations."""
    ex = await h.run("""
        id: loop-limited
        namespace: io.kestra.tests
        concurrency:
          limit: 1
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: [a, b]
            concurrencyLimit: 0
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: "{{ item.value }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert h.engine.local.admission.active(await h.engine.find_flow(ex.namespace, ex.flow_id)) == 0


async def test_killing_the_parent_kills_its_running_iterations(h: Harness) -> None:
    """A killed execution takes its loop's running iterations with it."""
    ex = await h.start(PAUSING_LOOP.format(limit=2))
    await paused_iterations(h, ex, 2)
    assert await h.engine.kill(ex.id)
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.KILLED
    for sub in await iterations(h, final):
        assert (await h.engine.wait(sub.id)).state.current == State.KILLED


async def test_a_loop_interrupted_by_a_restart_goes_on_with_the_same_iterations(
    tmp_path: Path,
) -> None:
    """A restart (the daemon stopped as a crash leaves it, then recovering) resumes the loop
    and its iterations: the Loop task finds the iterations it started again (one execution
    per index, as Kestra keeps one loop sub-execution per iteration) instead of starting
    new ones, and waits for the paused ones to be resumed."""
    h = await Harness.open(tmp_path)
    try:
        ex = await h.start(PAUSING_LOOP.format(limit=2))
        first = await paused_iterations(h, ex, 2)
    finally:
        await h.engine.close(hand_over=True)
        await h.store.close()
    h = await Harness.open(tmp_path)
    try:
        await h.flow(PAUSING_LOOP.format(limit=2))
        assert await h.engine.lifecycle.recover() >= 1
        pauses = h.engine.pauses
        waiting = [ex.id, *(s.id for s in first)]  # paused again in this process

        async def paused_here() -> bool:
            return all(pauses.holds(i) for i in waiting)

        await eventually(paused_here, "the parent and both iterations paused again")
        assert len(await iterations(h, ex)) == 2
        assert await h.engine.resume(ex.id, {})
        (third,) = await paused_iterations(h, ex, 1)
        assert await h.engine.resume(third.id, {})
        final = await h.engine.wait(ex.id)
        assert final.state.current == State.SUCCESS
        assert len(await iterations(h, final)) == 3
        assert loop_outputs(final)["terminatedIterations"] == {"SUCCESS": 3}
    finally:
        await h.close()
