"""Run flows and single tasks in-process against a real store, for tests.

`Harness.run(yaml)` runs a flow to its end and returns the execution with its
logs; time comes from a FakeClock when a test wants to skip sleeps.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from daemon.config import Settings
from daemon.flow import Flow, load_flow
from daemon.registry import default_plugins
from daemon.runtime import Runtime
from daemon.sdk.clock import Clock, FakeClock
from daemon.sdk.execution import Execution
from daemon.store import open_store
from daemon.store.base import Store
from daemon.triggering import Triggers
from daemon.webhooks import WebhookRegistry

T = TypeVar("T")


class Harness:
    def __init__(self, runtime: Runtime, store: Store) -> None:
        self.runtime = runtime
        self.store = store

    @classmethod
    async def open(cls, data_dir: Path, clock: Clock | None = None) -> Harness:
        plugins = await asyncio.to_thread(default_plugins)  # imports plug-in modules once
        store = open_store(data_dir)
        await store.open()
        return cls(Runtime(data_dir, store, clock=clock, plugins=plugins), store)

    async def close(self) -> None:
        await self.runtime.close()
        await self.store.close()

    async def flow(self, source: str) -> Flow:
        """Load a flow as the daemon does: off the event loop (it may read time-zone files)."""
        flow = await asyncio.to_thread(load_flow, textwrap.dedent(source), "test.yaml")
        self.runtime.add_flow(flow)
        return flow

    async def start(
        self, source: str | Flow, inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Execution:
        flow = await self.flow(source) if isinstance(source, str) else source
        return await self.runtime.submit(flow, inputs or {}, **kwargs)

    async def run(
        self, source: str | Flow, inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Execution:
        execution = await self.start(source, inputs, **kwargs)
        return await self.runtime.wait(execution.id)

    async def logs(self, execution: Execution, level: str | None = None) -> list[str]:
        await self.store.flush()
        return [line["message"] for line in await self.store.logs(execution.id, min_level=level)]

    async def stored(self, execution: Execution) -> dict[str, Any]:
        await self.store.flush()
        doc = await self.store.get_execution(execution.id)
        assert doc is not None
        return doc


async def drive(h: Harness, clock: FakeClock, job: Awaitable[T]) -> T:
    """Await `job`, moving fake time to the next sleeper whenever everything else is idle."""
    waiter = asyncio.ensure_future(job)
    while not waiter.done():
        await h.store.flush()
        await settle()
        if waiter.done():
            break
        if clock.sleeping:
            await clock.advance_to_next()
        else:
            await asyncio.wait([waiter], timeout=0.005)  # real I/O (store commits) in flight
    return waiter.result()


class TriggerHarness:
    """A flow's triggers running through the daemon's `Triggers`, and what they started."""

    def __init__(self, h: Harness, flow: Flow, settings: Settings) -> None:
        self.h = h
        self.flow = flow
        self.settings = settings
        self.webhooks = WebhookRegistry()
        self.triggers = Triggers(h.runtime, settings, self.webhooks)
        self.executions: list[Execution] = []
        self._changed = asyncio.Event()
        self.unsubscribe = h.runtime.subscribe(self._seen)

    def _seen(self, kind: str, execution: Execution, task_run: Any, extra: Any) -> None:
        if (
            kind == "execution"
            and execution.flow_id == self.flow.id
            and execution not in self.executions
        ):
            self.executions.append(execution)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 20) -> list[Execution]:
        """Wait (bounded, not a timing assertion) until `count` executions were created."""
        async with asyncio.timeout(timeout):
            while len(self.executions) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.executions

    async def finished(self, timeout: float = 20) -> list[Execution]:
        """Every execution started so far, each waited for until it ended."""
        async with asyncio.timeout(timeout):
            return [await self.h.runtime.wait(e.id) for e in list(self.executions)]


@asynccontextmanager
async def running_triggers(
    h: Harness, source: str, settings: Settings | None = None
) -> AsyncIterator[TriggerHarness]:
    """Load a flow and run its triggers until the block ends."""
    flow = await h.flow(source)
    settings = settings or Settings(data_dir=h.runtime.data_dir)
    th = TriggerHarness(h, flow, settings)
    th.triggers.start(flow)
    try:
        yield th
    finally:
        await th.triggers.stop_all()
        th.unsubscribe()


def task_states(execution: Execution) -> dict[str, str]:
    """taskId (with [value] inside ForEach) -> final state."""
    return {
        (tr.task_id + (f"[{tr.value}]" if tr.value is not None else "")): tr.state.current.value
        for tr in execution.task_runs
    }


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)
