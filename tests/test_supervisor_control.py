"""The trigger supervisor's run-time controls behind Kestra's TriggerController: pause,
resume and delete a backfill, restart a trigger, and forget what was set on it at run
time (Kestra's deletion of a trigger's state), on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

import tasks.core
from daemon.config.settings import Settings
from daemon.engine.core import Engine
from daemon.engine.supervisor import DISABLED_STATE, NoBackfill
from daemon.flows.loader import load_flow
from daemon.flows.registry import Plugins
from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import NotFound
from daemon.sdk.plugin import Emit, Trigger
from daemon.store import open_store
from tests.harness import Harness, TriggerHarness, settle
from tests.test_trigger_schedule import T0, WatchedClock, caught_up, dates, flow, harness

HOURLY = 'cron: "0 * * * *"'


@asynccontextmanager
async def idle_triggers(
    h: Harness, source: str, plugins: Plugins | None = None
) -> AsyncIterator[TriggerHarness]:
    """A supervisor for the flow whose triggers the test starts itself (`start`), so that
    what it sets on a trigger before then is in place when the trigger first runs."""
    loaded = await asyncio.to_thread(load_flow, source, "test.yaml", plugins)
    h.engine.catalog.add(loaded)
    th = TriggerHarness(h, loaded, Settings(data_dir=h.engine.data_dir))
    try:
        yield th
    finally:
        await th.triggers.stop_all()
        th.unsubscribe()


async def context(th: TriggerHarness) -> dict[str, Any]:
    [found] = await th.triggers.contexts(th.flow)
    return found


async def test_a_paused_backfill_holds_its_slots_back_while_the_live_schedule_goes_on(
    tmp_path: Path,
) -> None:
    """TriggerController.pauseBackfill / unpauseBackfill (Backfill.paused): the slots of a
    paused backfill do not run; resumed, the ones not run yet run (each once)."""
    async with harness(tmp_path, T0 + timedelta(seconds=30)) as (h, clock):
        async with idle_triggers(h, flow(HOURLY)) as th:
            triggers, loaded = th.triggers, th.flow
            await triggers.backfill(loaded, "schedule", T0 - timedelta(hours=3), T0, {})
            await triggers.pause_backfill(loaded, "schedule", True)
            assert (await context(th))["backfill"] == {
                "start": "2025-12-31T21:00:00Z",
                "end": "2026-01-01T00:00:00Z",
                "inputs": {},
                "paused": True,
            }
            triggers.start(loaded)
            await caught_up(h, clock)
            assert th.executions == []
            await clock.advance(3600)
            await caught_up(h, clock)
            assert dates(th) == ["2026-01-01T01:00:00Z"]
            await triggers.pause_backfill(loaded, "schedule", False)
            await caught_up(h, clock)
            assert dates(th) == [
                "2026-01-01T01:00:00Z",
                "2025-12-31T21:00:00Z",
                "2025-12-31T22:00:00Z",
                "2025-12-31T23:00:00Z",
                "2026-01-01T00:00:00Z",
            ]
            assert (await context(th))["backfill"]["paused"] is False
            await triggers.pause_backfill(loaded, "schedule", True)
            await triggers.pause_backfill(loaded, "schedule", False)
            await caught_up(h, clock)
            assert len(th.executions) == 5  # resumed again: every slot ran already


async def test_a_deleted_backfill_never_runs_and_another_can_be_asked(tmp_path: Path) -> None:
    """TriggerController.deleteBackfill: the trigger goes on without it; with none left,
    pausing, resuming or deleting is refused ("No backfill found")."""
    async with harness(tmp_path, T0 + timedelta(seconds=30)) as (h, clock):
        async with idle_triggers(h, flow(HOURLY)) as th:
            triggers, loaded = th.triggers, th.flow
            await triggers.backfill(loaded, "schedule", T0 - timedelta(hours=2), T0, {})
            await triggers.delete_backfill(loaded, "schedule")
            triggers.start(loaded)
            await caught_up(h, clock)
            assert th.executions == []
            assert (await context(th))["backfill"] is None
            for refused in (
                triggers.pause_backfill(loaded, "schedule", True),
                triggers.pause_backfill(loaded, "schedule", False),
                triggers.delete_backfill(loaded, "schedule"),
            ):
                with pytest.raises(NoBackfill, match="No backfill found for trigger schedule"):
                    await refused
            await triggers.backfill(loaded, "schedule", T0 - timedelta(hours=1), T0, {})
            await caught_up(h, clock)
            assert dates(th) == ["2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z"]


async def test_reset_forgets_what_was_set_at_run_time_and_runs_as_the_source_says(
    tmp_path: Path,
) -> None:
    """TriggerController.deleteTrigger: the trigger's state is dropped and recreated from
    the flow: enabled again (durably), no backfill, no last event."""
    async with harness(tmp_path, T0 + timedelta(seconds=30)) as (h, clock):
        async with idle_triggers(h, flow(HOURLY)) as th:
            triggers, loaded = th.triggers, th.flow
            triggers.start(loaded)
            await caught_up(h, clock)
            await clock.advance(3600)
            await caught_up(h, clock)
            assert (await context(th))["executionId"] == th.executions[0].id
            await triggers.set_disabled(loaded, "schedule", True)
            await triggers.backfill(loaded, "schedule", T0 - timedelta(hours=1), T0, {})
            assert await h.store.state.get(DISABLED_STATE) == {
                "triggers": [["test", "scheduled", "schedule"]]
            }
            await triggers.reset(loaded, "schedule")
            assert await h.store.state.get(DISABLED_STATE) == {"triggers": []}
            found = await context(th)
            assert (found["disabled"], found["backfill"], found["date"]) == (False, None, None)
            assert found["executionId"] is None
            await caught_up(h, clock)
            await clock.advance(3600)
            await caught_up(h, clock)
            assert dates(th)[-1] == "2026-01-01T02:00:00Z"  # running again
            assert "2025-12-31T23:00:00Z" not in dates(th)  # the backfill was dropped unrun
        async with idle_triggers(h, flow(HOURLY)) as again:
            await again.triggers.restore()
            assert (await context(again))["disabled"] is False


class Counted(Trigger):
    """A trigger that counts how many times it was started, then waits to be stopped."""

    types = ("tests.Counted",)
    starts: ClassVar[list[str]] = []

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        self.starts.append(self.id)
        await asyncio.Event().wait()


COUNTED = """\
id: counted
namespace: test
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: first
    type: tests.Counted
  - id: second
    type: tests.Counted
"""


async def test_restart_starts_one_trigger_again_and_leaves_the_others(tmp_path: Path) -> None:
    """TriggerController.restartTrigger: the trigger is stopped and evaluated anew; a
    trigger disabled at run time stays stopped; an unknown trigger is NotFound."""
    plugins = Plugins()
    plugins.add_module(tasks.core)
    plugins.triggers.register(Counted)
    store = open_store(tmp_path / "data")
    await store.open()
    h = Harness(Engine(tmp_path / "data", store, clock=WatchedClock(T0), plugins=plugins), store)
    Counted.starts.clear()
    try:
        async with idle_triggers(h, COUNTED, plugins) as th:
            triggers, loaded = th.triggers, th.flow
            triggers.start(loaded)
            await settle()
            assert sorted(Counted.starts) == ["first", "second"]
            await triggers.restart(loaded, "first")
            await settle()
            assert sorted(Counted.starts) == ["first", "first", "second"]
            assert triggers.running(loaded.uid) == 2
            await triggers.set_disabled(loaded, "first", True)
            await triggers.restart(loaded, "first")
            await settle()
            assert triggers.running(loaded.uid) == 1
            with pytest.raises(NotFound, match="has no trigger 'nope'"):
                await triggers.restart(loaded, "nope")
    finally:
        await h.close()
