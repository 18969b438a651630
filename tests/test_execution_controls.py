"""The engine's side of Kestra's state-changing execution calls: a manual pause, a change of
an ended execution's state, unqueue and force-run of a queued execution, a task run's state
(markAs), delete keeping logs, replay of the latest revision. Time is a FakeClock: a Sleep
takes no time, and a test moves it on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.engine.lifecycle import ControlRefused, RestartRefused
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, drive, eventually, settle

Fake = tuple[Harness, FakeClock]

TWO_STEPS = """
id: two
namespace: ns
tasks:
  - id: first
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: second ran
"""

QUEUE = """
id: queue
namespace: ns
concurrency:
  behavior: QUEUE
  limit: 1
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10S
"""

FAILING = """
id: failing
namespace: ns
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: not yet
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after ran
"""


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[Fake]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


async def stored_state(h: Harness, execution_id: str) -> str:
    await h.store.flush()
    doc = await h.store.get_execution(execution_id)
    assert doc is not None
    return str(doc["state"]["current"])


async def until_state(h: Harness, execution: Execution, state: str) -> None:
    async def reached() -> bool:
        return await stored_state(h, execution.id) == state

    await eventually(reached, f"execution {execution.id} {state}")


async def task_runs(h: Harness, execution: Execution) -> dict[str, str]:
    await h.store.flush()
    doc = await h.store.get_execution(execution.id)
    assert doc is not None
    return {tr["taskId"]: tr["state"]["current"] for tr in doc["taskRunList"]}


async def sleeping(h: Harness, clock: FakeClock, execution: Execution) -> None:
    """Until the execution's first task sleeps on the fake clock."""

    async def asleep() -> bool:
        return clock.sleeping > 0 and (await task_runs(h, execution)).get("first") == "RUNNING"

    await eventually(asleep, "the first task asleep")


# -- pause -------------------------------------------------------------------------------


async def test_a_paused_execution_ends_what_runs_and_starts_nothing_until_resumed(
    fake: Fake,
) -> None:
    """ExecutionControllerTest.shouldPauseARunningFlow and Kestra PR #5520 ("pausing a
    running execution terminates the existing task then pauses forever"): PAUSED at once,
    the running task ends, the next does not start, and the execution does not end; resumed,
    it runs on to SUCCESS."""
    h, clock = fake
    execution = await h.start(TWO_STEPS)
    await sleeping(h, clock, execution)
    paused = await h.engine.controls.pause(execution.id)
    assert paused.state.current == State.PAUSED
    await clock.advance(2)
    await eventually(lambda: _first_ended(h, execution), "the running task to end while paused")
    await settle()
    assert await task_runs(h, execution) == {"first": "SUCCESS"}
    assert await stored_state(h, execution.id) == "PAUSED"
    assert await h.engine.resume(execution.id, {})
    ended = await drive(h, clock, h.engine.wait(execution.id))
    assert ended.state.current == State.SUCCESS
    states = [state for state, _ in ended.state.histories]
    assert states == [State.CREATED, State.RUNNING, State.PAUSED, State.RUNNING, State.SUCCESS]
    assert await h.logs(ended) == ["second ran"]


async def _first_ended(h: Harness, execution: Execution) -> bool:
    return (await task_runs(h, execution)).get("first") == "SUCCESS"


async def test_only_a_running_execution_can_be_paused(fake: Fake) -> None:
    """ExecutionService.pause: "The execution is not running" (a 422 in the API)."""
    h, clock = fake
    done = await drive(h, clock, h.run(TWO_STEPS))
    with pytest.raises(ControlRefused, match="not RUNNING"):
        await h.engine.controls.pause(done.id)
    with pytest.raises(NotFound):
        await h.engine.controls.pause("nope")


async def test_a_paused_execution_can_be_killed(fake: Fake) -> None:
    h, clock = fake
    execution = await h.start(TWO_STEPS)
    await sleeping(h, clock, execution)
    await h.engine.controls.pause(execution.id)
    assert await h.engine.kill(execution.id)
    killed = await h.engine.wait(execution.id)
    assert killed.state.current == State.KILLED
    assert not h.engine.pauses.held(execution.id)


async def test_force_run_resumes_a_manually_paused_execution(fake: Fake) -> None:
    """ExecutionService.forceRun: a PAUSED execution is resumed; a RUNNING one is left as
    it is; an ended one is refused."""
    h, clock = fake
    execution = await h.start(TWO_STEPS)
    await sleeping(h, clock, execution)
    same = await h.engine.controls.force_run(execution.id)
    assert same.state.current == State.RUNNING
    await h.engine.controls.pause(execution.id)
    await h.engine.controls.force_run(execution.id)
    ended = await drive(h, clock, h.engine.wait(execution.id))
    assert ended.state.current == State.SUCCESS
    with pytest.raises(ControlRefused, match="has ended"):
        await h.engine.controls.force_run(execution.id)


async def test_a_manual_pause_outlasts_a_restart_of_the_daemon(tmp_path: Path) -> None:
    """Kestra keeps the PAUSED state in its database: a daemon started again holds the
    execution until it is resumed (the task the stop interrupted starts again only then)."""
    clock = FakeClock()
    h = await Harness.open(tmp_path, clock=clock)
    execution = await h.start(TWO_STEPS)
    await sleeping(h, clock, execution)
    await h.engine.controls.pause(execution.id)
    await h.engine.close(hand_over=True)  # left as a crash leaves it
    await h.store.close()
    again = await Harness.open(tmp_path, clock=clock)
    try:
        await again.flow(TWO_STEPS)
        assert await again.engine.lifecycle.recover() == 1
        await settle()
        assert clock.sleeping == 0
        assert await stored_state(again, execution.id) == "PAUSED"
        assert await task_runs(again, execution) == {"first": "RUNNING"}
        assert await again.engine.resume(execution.id, {})
        ended = await drive(again, clock, again.engine.wait(execution.id))
        assert ended.state.current == State.SUCCESS
    finally:
        await again.close()


# -- change status -------------------------------------------------------------------------


async def test_an_ended_executions_state_is_changed_and_its_task_runs_are_not(
    fake: Fake,
) -> None:
    """ExecutionControllerTest.changeStatus: SUCCESS to WARNING; the task runs keep their
    states; the same state again adds nothing."""
    h, clock = fake
    done = await drive(h, clock, h.run(TWO_STEPS))
    changed = await h.engine.controls.change_status(done.id, State.WARNING)
    assert changed.state.current == State.WARNING
    assert await stored_state(h, done.id) == "WARNING"
    assert await task_runs(h, done) == {"first": "SUCCESS", "second": "SUCCESS"}
    again = await h.engine.controls.change_status(done.id, State.WARNING)
    assert len(again.state.histories) == len(changed.state.histories)


async def test_change_status_refuses_an_unfinished_execution_or_target(fake: Fake) -> None:
    """updateExecutionStatus: "You can only change the state of an execution to a terminal
    state" and "...of a terminated execution"."""
    h, clock = fake
    done = await drive(h, clock, h.run(TWO_STEPS))
    with pytest.raises(ControlRefused, match="not an ended state"):
        await h.engine.controls.change_status(done.id, State.RUNNING)
    running = await h.start(TWO_STEPS)
    await sleeping(h, clock, running)
    with pytest.raises(ControlRefused, match="only the state of an ended execution"):
        await h.engine.controls.change_status(running.id, State.FAILED)
    assert await h.engine.kill(running.id)


# -- unqueue and force-run -------------------------------------------------------------------


async def test_unqueue_starts_a_queued_execution_past_its_flows_limit(fake: Fake) -> None:
    """ExecutionControllerTest.shouldUnqueueAQueuedFlow: the queued one runs now, beside
    the one holding the only slot; both end SUCCESS."""
    h, clock = fake
    flow = await h.flow(QUEUE)
    first = await h.start(flow)
    await until_state(h, first, "RUNNING")
    second = await h.start(flow)
    assert second.state.current == State.QUEUED
    unqueued = await h.engine.controls.unqueue(second.id)
    assert unqueued.state.current in (State.QUEUED, State.RUNNING)
    await until_state(h, second, "RUNNING")
    assert await stored_state(h, first.id) == "RUNNING"
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(first.id), h.engine.wait(second.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]
    third = await h.start(flow)  # the slots freed: it runs at once
    await until_state(h, third, "RUNNING")
    assert await h.engine.kill(third.id)


async def test_unqueue_to_cancelled_ends_it_never_having_run(fake: Fake) -> None:
    """ConcurrencyLimitService.unqueue to CANCELLED (or FAILED): out of the queue, ended,
    no task run; the next in line keeps waiting."""
    h, _ = fake
    flow = await h.flow(QUEUE)
    first = await h.start(flow)
    await until_state(h, first, "RUNNING")
    second, third = await h.start(flow), await h.start(flow)
    cancelled = await h.engine.controls.unqueue(second.id, State.CANCELLED)
    assert [s for s, _ in cancelled.state.histories] == [
        State.CREATED,
        State.QUEUED,
        State.CANCELLED,
    ]
    assert cancelled.task_runs == []
    assert (await h.engine.wait(second.id)).state.current == State.CANCELLED
    assert await stored_state(h, third.id) == "QUEUED"
    with pytest.raises(ControlRefused, match="only a QUEUED execution"):
        await h.engine.controls.unqueue(first.id)
    with pytest.raises(ControlRefused, match="RUNNING, CANCELLED or FAILED, not KILLED"):
        await h.engine.controls.unqueue(third.id, State.KILLED)
    failed = await h.engine.controls.unqueue(third.id, State.FAILED)
    assert failed.state.current == State.FAILED
    assert await h.engine.kill(first.id)


async def test_force_run_unqueues_a_queued_execution(fake: Fake) -> None:
    """ExecutionControllerTest.shouldForceRunAQueuedFlow: no longer QUEUED."""
    h, _ = fake
    flow = await h.flow(QUEUE)
    first = await h.start(flow)
    await until_state(h, first, "RUNNING")
    second = await h.start(flow)
    await h.engine.controls.force_run(second.id)
    await until_state(h, second, "RUNNING")
    for execution in (first, second):
        assert await h.engine.kill(execution.id)


# -- a task run's state (markAs) ------------------------------------------------------------


async def test_a_failed_task_run_marked_success_lets_the_execution_run_on(fake: Fake) -> None:
    """ExecutionService.markAs through updateTaskRunState: the FAILED task run (and its last
    attempt) becomes SUCCESS, the execution is RESTARTED with system.restarted, the next
    task runs, and it ends SUCCESS."""
    h, clock = fake
    failed = await drive(h, clock, h.run(FAILING))
    assert failed.state.current == State.FAILED
    check = next(tr for tr in failed.task_runs if tr.task_id == "check")
    restarted = await h.engine.lifecycle.mark(failed.id, check.id, State.SUCCESS)
    assert restarted.state.current == State.RESTARTED
    assert restarted.labels["system.restarted"] == "true"
    ended = await drive(h, clock, h.engine.wait(failed.id))
    assert ended.state.current == State.SUCCESS
    marked = next(tr for tr in ended.task_runs if tr.task_id == "check")
    assert [s for s, _ in marked.state.histories][-2:] == [State.FAILED, State.SUCCESS]
    assert marked.attempts[-1].current == State.SUCCESS
    assert await h.logs(ended) == ["not yet", "after ran"]


async def test_mark_refuses_what_kestra_cannot_restart_from(fake: Fake) -> None:
    """markAs: "No task found to restart execution from!" for an unknown task run; podium
    also refuses an unfinished execution (409), a state that has not ended, and a flowable
    task's run (its state follows its children's)."""
    h, clock = fake
    failed = await drive(h, clock, h.run(FAILING))
    check = next(tr for tr in failed.task_runs if tr.task_id == "check")
    with pytest.raises(ControlRefused, match="no task run nope"):
        await h.engine.lifecycle.mark(failed.id, "nope", State.SUCCESS)
    with pytest.raises(ControlRefused, match="ended state only"):
        await h.engine.lifecycle.mark(failed.id, check.id, State.RUNNING)
    with pytest.raises(NotFound):
        await h.engine.lifecycle.mark("nope", check.id, State.SUCCESS)
    nested = await drive(
        h,
        clock,
        h.run(
            """
id: nested
namespace: ns
tasks:
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: inner
        type: io.kestra.plugin.core.execution.Fail
"""
        ),
    )
    group = next(tr for tr in nested.task_runs if tr.task_id == "group")
    with pytest.raises(ControlRefused, match="flowable task group"):
        await h.engine.lifecycle.mark(nested.id, group.id, State.SUCCESS)
    inner = next(tr for tr in nested.task_runs if tr.task_id == "inner")
    await h.engine.lifecycle.mark(nested.id, inner.id, State.SUCCESS)
    ended = await drive(h, clock, h.engine.wait(nested.id))
    assert ended.state.current == State.SUCCESS
    running = await h.start(TWO_STEPS)
    await sleeping(h, clock, running)
    first = (await h.engine.controls.stored(running.id)).task_runs[0]
    with pytest.raises(RestartRefused, match="only the task runs of an ended execution"):
        await h.engine.lifecycle.mark(running.id, first.id, State.SUCCESS)
    assert await h.engine.kill(running.id)


# -- delete and replay -----------------------------------------------------------------------


async def test_delete_keeps_the_logs_when_asked(fake: Fake) -> None:
    """ExecutionService.delete with deleteLogs=false: the execution goes, its logs stay."""
    h, clock = fake
    done = await drive(h, clock, h.run(TWO_STEPS))
    await h.engine.controls.delete(done.id, logs=False)
    assert await h.store.get_execution(done.id) is None
    assert [line["message"] for line in await h.store.logs(done.id)] == ["second ran"]
    other = await drive(h, clock, h.run(TWO_STEPS))
    await h.engine.controls.delete(other.id)
    assert await h.store.logs(other.id) == []


async def test_delete_of_an_unfinished_execution_kills_it_first_when_asked(fake: Fake) -> None:
    """Kestra's includeNonTerminated; without it the execution is refused."""
    h, clock = fake
    running = await h.start(TWO_STEPS)
    await sleeping(h, clock, running)
    with pytest.raises(RestartRefused, match="kill it before deleting it"):
        await h.engine.controls.delete(running.id)
    await h.engine.controls.delete(running.id, unfinished=True)
    assert await h.store.get_execution(running.id) is None


async def test_replay_of_the_latest_revision(fake: Fake) -> None:
    """replayExecutionsByIds with latestRevision: the new execution runs the flow as it is
    now; without it, the revision the original ran."""
    h, clock = fake
    first = await drive(h, clock, h.run(TWO_STEPS))
    await h.flow(TWO_STEPS.replace("second ran", "second changed"))
    same = await h.engine.replay(first.id)
    latest = await h.engine.replay(first.id, latest=True)
    assert same.flow_revision == first.flow_revision
    assert latest.flow_revision != first.flow_revision
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(same.id), h.engine.wait(latest.id)))
    assert [await h.logs(e) for e in ends] == [["second ran"], ["second changed"]]
