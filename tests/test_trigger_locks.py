"""Kestra's trigger lock in podium: a trigger waiting for the end of the execution it started
is locked by it, and unlocking it (TriggerController.unlockTrigger, Trigger.unlock) lets it
go on at once while the execution still runs (AbstractScheduler: a trigger whose
executionId is set is not evaluated; unlock clears it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

import tasks.core
import tasks.flow
from daemon.engine.core import Engine
from daemon.engine.trigger_locks import NotLocked, TriggerLocks
from daemon.flows.registry import Plugins
from daemon.sdk.clock import FakeClock
from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.state import State
from daemon.store import open_store
from tests.harness import Harness, eventually, settle
from tests.test_supervisor_control import idle_triggers

KEY = ("ns", "flow", "trigger")


async def test_a_hold_ends_with_the_execution_or_when_released() -> None:
    """The lock is held while the execution runs; released, the wait ends with None and
    the lock is gone; a trigger holding none cannot be released ("not locked")."""
    locks = TriggerLocks()
    with pytest.raises(NotLocked, match=r"Trigger is not locked: trigger trigger of ns\.flow"):
        locks.release(KEY)
    ends: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    held = asyncio.create_task(locks.hold(KEY, "e1", ends))
    await settle()
    assert locks.holder(KEY) == "e1"
    ends.set_result("the ended execution")
    assert await held == "the ended execution"
    assert locks.holder(KEY) is None
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    held = asyncio.create_task(locks.hold(KEY, "e2", never))
    await settle()
    assert locks.release(KEY) == "e2"
    assert await held is None
    assert never.cancelled()  # nothing waits for it any longer
    assert locks.holder(KEY) is None
    with pytest.raises(NotLocked):
        locks.release(KEY)


async def test_a_stopped_trigger_leaves_no_lock() -> None:
    locks = TriggerLocks()
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    held = asyncio.create_task(locks.hold(KEY, "e1", never))
    await settle()
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    assert locks.holder(KEY) is None


class Waiting(Trigger):
    """A trigger that starts an execution and waits for its end, as a polling trigger
    without allowConcurrent; it says how each wait ended."""

    types = ("tests.Waiting",)
    ends: ClassVar[list[str]] = []

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        while True:
            execution = await emit({}, {})
            ended: Execution | None = await ctx.wait_locked(execution.id)
            self.ends.append("released" if ended is None else ended.state.current.value)
            await ctx.clock.sleep(3600)


WAITING = """\
id: waiting
namespace: test
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
triggers:
  - id: poll
    type: tests.Waiting
"""


@pytest.fixture
async def waiting_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    plugins = Plugins()
    for module in (tasks.core, tasks.flow):
        plugins.add_module(module)
    plugins.triggers.register(Waiting)
    store = open_store(tmp_path / "data")
    await store.open()
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    h = Harness(Engine(tmp_path / "data", store, clock=clock, plugins=plugins), store)
    Waiting.ends.clear()
    try:
        yield h
    finally:
        await h.close()


async def test_unlocking_a_trigger_lets_it_go_on_while_its_execution_runs(
    waiting_harness: Harness,
) -> None:
    """The supervisor's unlock releases the lock of a trigger waiting for its execution
    (the execution goes on, PAUSED here); a trigger waiting for nothing is NotLocked, an
    unknown one NotFound."""
    h = waiting_harness
    async with idle_triggers(h, WAITING, h.engine.resources.plugins) as th:
        triggers, loaded = th.triggers, th.flow
        triggers.start(loaded)
        [execution] = await th.wait_for(1)
        await settle()
        assert triggers.unlock(loaded, "poll") == execution.id
        await settle()
        assert Waiting.ends == ["released"]

        async def paused() -> bool:
            return (await h.stored(execution))["state"]["current"] == State.PAUSED.value

        await eventually(paused, "the execution pausing")  # it runs on, unlocked or not
        with pytest.raises(NotLocked, match="Trigger is not locked"):
            triggers.unlock(loaded, "poll")  # it sleeps until its next poll: no lock
        with pytest.raises(NotFound):
            triggers.unlock(loaded, "nope")
