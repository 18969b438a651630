"""Kestra 2.0's `onChildFailure` (OnChildFailureInterface, implemented by Parallel and Dag):
when a child fails with no retry left, the children still running are interrupted and end
CANCELLED (CANCEL) or FAILED (FAIL); CONTINUE lets them run to their end. The flowable
still ends FAILED and its errors/finally run. Parallel interrupts (FAIL) by default, Dag
continues (Kestra PR #18314, issue #19014; Parallel.java, Dag.java).

The `concurrent` of both is a Property<Integer> in Kestra: an expression there is rendered
when the flowable runs, and a negative value fails it then (PR #18714,
valids/dag-invalid-concurrent.yaml).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.state import State
from tests.harness import Harness, eventually, problems, task_states
from tests.test_scripts import processes_with


def run_of(ex: Execution, task_id: str) -> TaskRun:
    return next(tr for tr in ex.task_runs if tr.task_id == task_id)


def history(tr: TaskRun) -> list[str]:
    return [state.value for state, _ in tr.state.histories]


# -- Kestra's own test flows ---------------------------------------------------------------


async def test_dag_fail_fast_cancelled(h: Harness) -> None:
    """DagTest.dagFailFastCancelled (valids/dag-fail-fast-cancelled.yaml): the sibling is
    cancelled instead of sleeping its whole PT10S; the execution is FAILED."""
    ex = await h.run("""
        id: dag-fail-fast-cancelled
        namespace: io.kestra.tests

        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            onChildFailure: CANCELLED
            tasks:
              - task:
                  id: fails_fast
                  type: io.kestra.plugin.core.execution.Fail
              - task:
                  id: sleep
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT10S
        """)
    assert ex.state.current == State.FAILED
    assert run_of(ex, "fails_fast").state.current == State.FAILED
    assert run_of(ex, "sleep").state.current == State.CANCELLED
    assert run_of(ex, "dag").state.current == State.FAILED


async def test_parallel_fail_fast_cancel(h: Harness) -> None:
    """valids/parallel-fail-fast-cancelled.yaml (the renamed value CANCEL)."""
    ex = await h.run("""
        id: parallel-fail-fast-cancelled
        namespace: io.kestra.tests

        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: CANCEL
            tasks:
              - id: fails_fast
                type: io.kestra.plugin.core.execution.Fail

              - id: sleep
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT10S
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"parallel": "FAILED", "fails_fast": "FAILED", "sleep": "CANCELLED"}


async def test_parallel_fail_fast_failed(h: Harness) -> None:
    """valids/parallel-fail-fast-failed.yaml: with FAILED the sibling lands in FAILED."""
    ex = await h.run("""
        id: parallel-fail-fast-failed
        namespace: io.kestra.tests

        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: FAILED
            tasks:
              - id: fails_fast
                type: io.kestra.plugin.core.execution.Fail

              - id: sleep
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT10S
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"parallel": "FAILED", "fails_fast": "FAILED", "sleep": "FAILED"}
    # the interrupted task says why, the failing one keeps its own error
    assert ex.error == "task 'fails_fast': Task failure"
    logs = await h.logs(ex)
    assert any("sibling task 'fails_fast' failed" in line for line in logs), logs


async def test_parallel_interrupts_its_siblings_by_default(h: Harness) -> None:
    """Kestra PR #18314 (a breaking change of 2.0) and issue #19014: Parallel defaults to
    FAILED, so a healthy sibling still running lands in FAILED."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: fails_fast
                type: io.kestra.plugin.core.execution.Fail
              - id: sleep
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT10S
        """)
    assert task_states(ex)["sleep"] == "FAILED"


async def test_continue_lets_the_siblings_run_to_their_end(h: Harness) -> None:
    """`onChildFailure: CONTINUE` (Parallel) and the Dag's default (Dag.java: CONTINUE):
    the other tasks keep running to completion, as before 2.0."""
    for flowable in (
        """
          - id: group
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: CONTINUE
            tasks:
              - id: fails_fast
                type: io.kestra.plugin.core.execution.Fail
              - id: short
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.2S
        """,
        """
          - id: group
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task:
                  id: fails_fast
                  type: io.kestra.plugin.core.execution.Fail
              - task:
                  id: short
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT0.2S
        """,
    ):
        ex = await h.run("id: f\nnamespace: ns\ntasks:" + flowable)
        assert ex.state.current == State.FAILED
        assert task_states(ex) == {"group": "FAILED", "fails_fast": "FAILED", "short": "SUCCESS"}


# -- really running children -------------------------------------------------------------


async def test_running_children_are_interrupted_and_handlers_still_run(
    h: Harness, tmp_path: Path
) -> None:
    """The other children were running when the failure came (a Sleep, a shell command, a
    Sequential with a Sleep inside): all are stopped, their process group killed, and land
    in CANCELLED, each with a log line saying why; the Parallel ends FAILED and its
    errors/finally run (Parallel.java's onChildFailure description)."""
    marker = f"4{uuid.uuid4().int % 10**8:08d}"
    ready = tmp_path / "ready"
    ex = await h.run(f"""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: CANCEL
            tasks:
              - id: fails_once_the_others_run
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - while [ ! -f {ready} ]; do sleep 0.05; done
                  - exit 1
              - id: sleep
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT60S
              - id: group
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: inner_sleep
                    type: io.kestra.plugin.core.flow.Sleep
                    duration: PT60S
                  - id: never
                    type: io.kestra.plugin.core.log.Log
                    message: not reached
              - id: process
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - touch {ready}
                  - sleep {marker}
            errors:
              - id: on_error
                type: io.kestra.plugin.core.log.Log
                message: handled
            finally:
              - id: always
                type: io.kestra.plugin.core.log.Log
                message: done
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {
        "parallel": "FAILED",
        "fails_once_the_others_run": "FAILED",
        "sleep": "CANCELLED",
        "group": "CANCELLED",
        "inner_sleep": "CANCELLED",
        "process": "CANCELLED",
        "on_error": "SUCCESS",
        "always": "SUCCESS",
    }
    for task_id in ("sleep", "inner_sleep", "process"):
        run = run_of(ex, task_id)
        assert history(run)[-2:] == ["RUNNING", "CANCELLED"], (task_id, history(run))
        assert [a.current for a in run.attempts] == [State.CANCELLED]
    assert await asyncio.to_thread(processes_with, marker) == []
    await h.store.flush()
    reasons = [
        line["taskRunId"]
        for line in await h.store.logs(ex.id)
        if "sibling task 'fails_once_the_others_run' failed" in line["message"]
    ]
    interrupted = {run_of(ex, t).id for t in ("sleep", "group", "inner_sleep", "process")}
    assert set(reasons) == interrupted


async def test_a_dag_stops_its_running_tasks_and_starts_none_after(
    h: Harness, tmp_path: Path
) -> None:
    """Dag `onChildFailure: FAILED`: the running task is interrupted into FAILED and the
    task depending on it never starts."""
    ready = tmp_path / "ready"
    ex = await h.run(f"""
        id: f
        namespace: ns
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            onChildFailure: failed
            tasks:
              - task:
                  id: slow
                  type: io.kestra.plugin.scripts.shell.Commands
                  commands:
                    - touch {ready}
                    - sleep 60
              - task:
                  id: after_slow
                  type: io.kestra.plugin.core.log.Log
                  message: not reached
                dependsOn: [slow]
              - task:
                  id: fails
                  type: io.kestra.plugin.scripts.shell.Commands
                  commands:
                    - while [ ! -f {ready} ]; do sleep 0.05; done
                    - exit 3
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"dag": "FAILED", "slow": "FAILED", "fails": "FAILED"}
    assert history(run_of(ex, "slow"))[-2:] == ["RUNNING", "FAILED"]


async def test_a_retried_flowable_runs_its_interrupted_children_again(
    h: Harness, tmp_path: Path
) -> None:
    """A Parallel with `retry` runs its failed children again as new attempts (Kestra PR
    #3473); the siblings its failure cancelled run again too, this time to their end."""
    flag = tmp_path / "failed-once"
    ex = await h.run(f"""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: CANCEL
            retry:
              type: constant
              interval: PT0.1S
              maxAttempts: 2
            tasks:
              - id: fails_the_first_time
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - if [ ! -f {flag} ]; then touch {flag}; exit 1; fi
              - id: sibling
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.5S
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert task_states(ex) == {
        "parallel": "SUCCESS",
        "fails_the_first_time": "SUCCESS",
        "sibling": "SUCCESS",
    }


async def test_killing_the_execution_still_kills_the_children(h: Harness) -> None:
    """An execution kill is not an onChildFailure interruption: what runs ends KILLED."""
    ex = await h.start("""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: CANCEL
            tasks:
              - id: a
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT60S
              - id: b
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT60S
        """)

    async def both_running() -> bool:
        return sum(tr.state.current == State.RUNNING for tr in ex.task_runs) == 3

    await eventually(both_running, "both sleeps running")
    assert await h.engine.kill(ex.id)
    ex = await h.engine.wait(ex.id)
    assert ex.state.current == State.KILLED
    assert task_states(ex) == {"parallel": "KILLED", "a": "KILLED", "b": "KILLED"}


# -- the property: values, expressions, mistakes -------------------------------------------


async def test_on_child_failure_may_be_an_expression(h: Harness) -> None:
    """Property<OnChildFailure>: an expression is rendered when the flowable runs, its
    value read in any case as Kestra's OnChildFailure.fromString reads it."""
    ex = await h.run("""
        id: f
        namespace: ns
        inputs:
          - id: policy
            type: STRING
            defaults: cancel
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: "{{ inputs.policy }}"
            tasks:
              - id: fails_fast
                type: io.kestra.plugin.core.execution.Fail
              - id: sleep
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT10S
        """)
    assert task_states(ex)["sleep"] == "CANCELLED"


async def test_an_expression_rendering_an_unknown_policy_fails_the_flowable(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            onChildFailure: "{{ 'STOP' }}"
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: hi
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"parallel": "FAILED"}
    assert "onChildFailure" in (ex.error or "") and "'STOP'" in (ex.error or ""), ex.error


def test_an_unknown_on_child_failure_value_is_refused_at_load() -> None:
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            onChildFailure: ABORT
            tasks:
              - task:
                  id: a
                  type: io.kestra.plugin.core.log.Log
                  message: hi
        """)
    assert len(found) == 1 and "tasks[0].onChildFailure" in found[0], found
    assert "'CONTINUE', 'CANCEL' or 'FAIL'" in found[0], found


def test_sequential_has_no_on_child_failure() -> None:
    """Only Parallel and Dag implement OnChildFailureInterface."""
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            onChildFailure: CANCEL
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: hi
        """)
    assert len(found) == 1 and "unknown property 'onChildFailure'" in found[0], found


# -- concurrent ----------------------------------------------------------------------------


async def test_dag_invalid_concurrent_loads_and_fails_when_it_runs(h: Harness) -> None:
    """valids/dag-invalid-concurrent.yaml: `concurrent` is a Property<@PositiveOrZero
    Integer>, so the flow loads; the expression renders -1 and the Dag task run fails
    (Kestra PR #18714: the flowable task run, not the executor)."""
    ex = await h.run("""
        id: dag-invalid-concurrent
        namespace: io.kestra.tests

        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            concurrent: "{{ 0 - 1 }}"
            tasks:
              - task:
                  id: a
                  type: io.kestra.plugin.core.log.Log
                  message: hello
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"dag": "FAILED"}
    assert "concurrent" in (ex.error or "") and "greater than or equal to 0" in (ex.error or "")


def test_a_negative_literal_concurrent_is_refused_at_load() -> None:
    """A literal bad value is refused when the flow is saved, as Kestra's validator does."""
    for flowable in ("Parallel", "Dag"):
        children = (
            "tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: hi}]"
            if flowable == "Parallel"
            else "tasks: [{task: {id: a, type: io.kestra.plugin.core.log.Log, message: hi}}]"
        )
        found = problems(f"""
            id: f
            namespace: ns
            tasks:
              - id: group
                type: io.kestra.plugin.core.flow.{flowable}
                concurrent: -2
                {children}
            """)
        assert len(found) == 1 and "tasks[0].concurrent" in found[0], found
        assert "greater than or equal to 0" in found[0], found


async def test_dag_concurrent_caps_the_tasks_running_at_once(h: Harness) -> None:
    """Dag `concurrent: 1` (here an expression): two independent tasks run one after the
    other, never together."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            concurrent: "{{ 1 }}"
            tasks:
              - task:
                  id: a
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT0.1S
              - task:
                  id: b
                  type: io.kestra.plugin.core.flow.Sleep
                  duration: PT0.1S
        """)
    assert ex.state.current == State.SUCCESS
    first, second = sorted((run_of(ex, "a"), run_of(ex, "b")), key=lambda tr: tr.state.start)
    first_end = first.state.end
    assert first_end is not None
    running = next(at for state, at in second.state.histories if state == State.RUNNING)
    assert running >= first_end


async def test_parallel_concurrent_may_be_an_expression(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: "{{ 1 }}"
            tasks:
              - id: a
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.1S
              - id: b
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.1S
        """)
    assert ex.state.current == State.SUCCESS
    a, b = run_of(ex, "a"), run_of(ex, "b")
    a_end = a.state.end
    assert a_end is not None and b.state.start >= a_end


def test_a_concurrent_that_is_not_a_number_is_refused_at_load() -> None:
    """A malformed `concurrent` (not a number) is refused at load with its path."""
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: many
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: hi
        """)
    assert len(found) == 1 and "tasks[0].concurrent" in found[0], found
    assert "valid integer" in found[0], found


async def test_children_waiting_for_a_slot_never_start_after_a_failure(h: Harness) -> None:
    """With `concurrent: 2`, the third child waits for a slot; once a child failed and
    onChildFailure stopped the running one, the waiting one never starts (Kestra creates
    no more children of a failed Parallel)."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: 2
            onChildFailure: CANCEL
            tasks:
              - id: fails_fast
                type: io.kestra.plugin.core.execution.Fail
              - id: running
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT10S
              - id: waiting
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT10S
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"parallel": "FAILED", "fails_fast": "FAILED", "running": "CANCELLED"}


async def test_parallel_fail_with_flowable(h: Harness) -> None:
    """ParallelTest.parallelFailWithFlowable (valids/parallel-fail-with-flowable.yaml): 5
    task runs, FAILED. The Sleep under the other If was still running: with Parallel's
    default (FAIL) it is interrupted, and so is the If around it."""
    ex = await h.run("""
        id: parallel-fail-with-flowable
        namespace: io.kestra.tests

        inputs:
          - id: user
            type: STRING
            defaults: Rick Astley


        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: if-1
                type: io.kestra.plugin.core.flow.If
                condition: "{{ inputs.user == 'Rick Astley'}}"
                then:
                  - id: sleep
                    type: io.kestra.plugin.core.flow.Sleep
                    duration: PT1S

              - id: if-2
                type: io.kestra.plugin.core.flow.If
                condition: "{{ inputs.user == 'Rick Astley'}}"
                then:
                  - id: fail_missing_variable
                    type: io.kestra.plugin.core.log.Log
                    message: "{{ vars.nonexistent_variable }}"
        """)
    assert ex.state.current == State.FAILED
    assert len(ex.task_runs) == 5
    assert all(tr.state.current.terminated for tr in ex.task_runs)
    assert task_states(ex) == {
        "parallel": "FAILED",
        "if-1": "FAILED",
        "sleep": "FAILED",
        "if-2": "FAILED",
        "fail_missing_variable": "FAILED",
    }


async def test_finally_parallel_errors(h: Harness) -> None:
    """ParallelTest.errors (valids/finally-parallel.yaml, failed=true): 10 task runs, the
    errors and finally tasks run in order once the Parallel failed."""
    ex = await h.run(
        """
        id: finally-parallel
        namespace: io.kestra.tests

        inputs:
          - id: failed
            type: BOOL
            defaults: false

        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: p1
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"
              - id: p2
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"
              - id: p3
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"
              - id: if
                type: io.kestra.plugin.core.flow.If
                condition: "{{ inputs.failed == false }}"
                then:
                  - id: ok
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ task.id }}"
                else:
                  - id: ko
                    type: io.kestra.plugin.core.execution.Fail

            errors:
              - id: e1
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"

              - id: e2
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"

            finally:
              - id: a1
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"

              - id: a2
                type: io.kestra.plugin.core.debug.Return
                format: "{{ task.id }}"
        """,
        {"failed": "true"},
    )
    assert len(ex.task_runs) == 10
    assert ex.state.current == State.FAILED
    states = task_states(ex)
    assert states["ko"] == "FAILED"
    assert {states[t] for t in ("a1", "a2", "e1", "e2")} == {"SUCCESS"}
    for first, then in (("a1", "a2"), ("e1", "e2")):
        ended = run_of(ex, first).state.end
        assert ended is not None and run_of(ex, then).state.start >= ended
