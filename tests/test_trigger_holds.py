"""Kestra's locked triggers, `allowConcurrent` and `stopAfter` of a Schedule, on a fake clock.

Kestra docs, workflow-components/triggers: "Each trigger ID is limited to a single active
execution at a time. If a scheduled execution is still running, the next one will be
queued instead of started immediately" ("Locked triggers": Schedule and polling
triggers); the common property `allowConcurrent` ("Set it to true to allow multiple
executions from this trigger to run at the same time", the concurrency page's
sleep_concurrent flow); and `stopAfter`, which disables the trigger once an execution it
started ends in one of the listed states (schedule-trigger page, `myflow` with
`stopAfter: [FAILED, KILLED]`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, TriggerHarness, running_triggers, settle

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@asynccontextmanager
async def clocked(data_dir: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    clock = FakeClock(T0)
    h = await Harness.open(data_dir, clock=clock)
    try:
        yield h, clock
    finally:
        await h.close()


def sleepy(extra: str = "", task: str = "") -> str:
    """A flow sleeping 2.5 s, scheduled every second (the docs' sleep_concurrent flow)."""
    task = (
        task
        or """
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2.5S"""
    )
    return f"""
id: sleep_concurrent
namespace: company.team
tasks:{task}
triggers:
  - id: schedule
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
{extra}"""


async def tick(h: Harness, clock: FakeClock, seconds: float, steps: int) -> None:
    for _ in range(steps):
        await clock.advance(seconds)
        await quiet(h, clock)


async def quiet(h: Harness, clock: FakeClock) -> None:
    """Until nothing moves any more at this fake time. Loop turns alone are not enough:
    a trigger waiting for an execution that already ended reads it from the store on a
    worker thread, which takes real time (under load, more than any number of turns), and
    a slot it missed meanwhile is never started. Settled once the sleepers (the triggers'
    next slots, the running Sleep tasks) and the running executions stay the same a few
    rounds in a row; bounded, so that a test that never settles fails on its assertion."""
    seen: tuple[int, int] | None = None
    same = 0
    for _ in range(200):
        await h.store.flush()
        await settle()
        await asyncio.sleep(0.005)  # real time, for the worker threads
        now = (clock.sleeping, len(h.engine.local._running))
        same = same + 1 if now == seen else 0
        seen = now
        if same >= 3:
            return


async def ended(th: TriggerHarness, clock: FakeClock) -> list[Execution]:
    """Stop the trigger, let what it started end, and return it."""
    await th.triggers.stop_all()
    await tick(th.h, clock, 0.5, 8)
    return [await th.h.engine.wait(e.id) for e in th.executions]


def overlapping(executions: list[Execution]) -> bool:
    spans = sorted((e.state.start, e.state.end) for e in executions)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


async def test_a_schedule_waits_for_its_running_execution(tmp_path: Path) -> None:
    async with clocked(tmp_path) as (h, clock), running_triggers(h, sleepy()) as th:
        await tick(h, clock, 0.5, 16)
        started = len(th.executions)
        runs = await ended(th, clock)
        assert 2 <= started <= 4  # one at a time over 8 s of 2.5 s runs, not one per second
        assert not overlapping(runs)
        assert {e.state.current for e in runs} == {State.SUCCESS}


async def test_allow_concurrent_lets_executions_overlap(tmp_path: Path) -> None:
    source = sleepy("    allowConcurrent: true\n")
    async with clocked(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await tick(h, clock, 0.5, 8)
        started = len(th.executions)
        runs = await ended(th, clock)
        assert started >= 4  # one per second
        assert overlapping(runs)


async def test_stop_after_disables_the_trigger_after_a_failed_execution(tmp_path: Path) -> None:
    fail = """
  - id: fail
    type: io.kestra.plugin.core.execution.Fail"""
    source = sleepy("    stopAfter:\n      - FAILED\n      - KILLED\n", task=fail)
    async with clocked(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await tick(h, clock, 0.5, 4)
        await tick(h, clock, 1, 5)
        runs = await ended(th, clock)
        assert [e.state.current for e in runs] == [State.FAILED]
        assert not th.triggers.enabled(th.flow, "schedule")


async def test_stop_after_keeps_the_trigger_for_other_states(tmp_path: Path) -> None:
    ok = """
  - id: ok
    type: io.kestra.plugin.core.log.Log
    message: fine"""
    source = sleepy("    stopAfter: [FAILED]\n", task=ok)
    async with clocked(tmp_path) as (h, clock), running_triggers(h, source) as th:
        await tick(h, clock, 1, 4)
        runs = await ended(th, clock)
        assert len(runs) >= 3
        assert {e.state.current for e in runs} == {State.SUCCESS}
        assert th.triggers.enabled(th.flow, "schedule")


async def test_an_unlock_releases_a_held_trigger_at_once() -> None:
    """TriggerController.unlockTrigger: a Schedule waiting for the execution it started goes
    on at once when unlocked, the execution still running (daemon/engine/trigger_holds.py
    waits through the supervisor's TriggerLocks)."""
    import asyncio

    from daemon.engine.trigger_holds import TriggerHolds
    from daemon.engine.trigger_locks import TriggerLocks
    from daemon.sdk.execution import Execution as _Execution

    never: asyncio.Future[_Execution] = asyncio.get_running_loop().create_future()

    async def wait(execution_id: str) -> _Execution:
        return await never

    holds, locks = TriggerHolds(wait), TriggerLocks()
    key = ("test", "flow", "daily")
    holds._held[key] = "running-execution"
    waiting = asyncio.create_task(holds.released(key, locks))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiting.done() and locks.holder(key) == "running-execution"
    assert locks.release(key) == "running-execution"
    await asyncio.wait_for(waiting, 5)
    assert locks.holder(key) is None
