"""Run flows and single tasks in-process against a real store, for tests.

`Harness.run(yaml)` runs a flow to its end and returns the execution with its
logs; time comes from a FakeClock when a test wants to skip sleeps.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from daemon.config.settings import Settings
from daemon.engine.contexts import ExecutionLog, TaskContext
from daemon.engine.core import Engine
from daemon.engine.events import Event, ExecutionChanged
from daemon.engine.supervisor import TriggerSupervisor
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow
from daemon.flows.registry import default_plugins
from daemon.sdk.clock import Clock, FakeClock
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution, TaskRun
from daemon.store import open_store
from daemon.store.base import Store

T = TypeVar("T")


class Harness:
    def __init__(self, engine: Engine, store: Store) -> None:
        self.engine = engine
        self.store = store

    @classmethod
    async def open(cls, data_dir: Path, clock: Clock | None = None) -> Harness:
        plugins = await asyncio.to_thread(default_plugins)  # imports plug-in modules once
        store = open_store(data_dir)
        await store.open()
        return cls(Engine(data_dir, store, clock=clock, plugins=plugins), store)

    async def close(self) -> None:
        await self.engine.close()
        await self.store.close()

    async def flow(self, source: str) -> Flow:
        """Load a flow as the daemon does: off the event loop (it may read time-zone files)."""
        flow = await asyncio.to_thread(load_flow, textwrap.dedent(source), "test.yaml")
        self.engine.catalog.add(flow)
        return flow

    async def start(
        self, source: str | Flow, inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Execution:
        flow = await self.flow(source) if isinstance(source, str) else source
        return await self.engine.submit(flow, inputs or {}, **kwargs)

    async def run(
        self, source: str | Flow, inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Execution:
        execution = await self.start(source, inputs, **kwargs)
        return await self.engine.wait(execution.id)

    async def logs(self, execution: Execution, level: str | None = None) -> list[str]:
        await self.store.flush()
        return [line["message"] for line in await self.store.logs(execution.id, min_level=level)]

    async def stored(self, execution: Execution) -> dict[str, Any]:
        await self.store.flush()
        doc = await self.store.get_execution(execution.id)
        assert doc is not None
        return doc

    def supervisor(self, settings: Settings | None = None) -> TriggerSupervisor:
        """A triggers' supervisor on this engine, as `podium serve` builds it."""
        settings = settings or Settings(data_dir=self.engine.data_dir)
        return self.engine.supervisor(WebhookRegistry(), settings.allowed_paths)

    def task_context(self, flow: Flow, execution: Execution, task_run: TaskRun) -> TaskContext:
        """The context a task of `flow` runs with, for driving one plug-in directly."""
        resources = self.engine.resources
        logger = ExecutionLog(resources, execution, task_run)
        return TaskContext(
            resources, self.engine, self.engine.pauses, flow, execution, task_run, {}, logger
        )


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
    """A flow's triggers running through the daemon's supervisor, and what they started."""

    def __init__(self, h: Harness, flow: Flow, settings: Settings) -> None:
        self.h = h
        self.flow = flow
        self.settings = settings
        self.webhooks = WebhookRegistry()
        self.triggers = h.engine.supervisor(self.webhooks, settings.allowed_paths)
        self.executions: list[Execution] = []
        self._changed = asyncio.Event()
        self.unsubscribe = h.engine.subscribe(self._seen)

    def _seen(self, event: Event) -> None:
        if isinstance(event, ExecutionChanged):
            execution = event.execution
            if execution.flow_id == self.flow.id and execution not in self.executions:
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
            return [await self.h.engine.wait(e.id) for e in list(self.executions)]


@asynccontextmanager
async def running_triggers(
    h: Harness, source: str, settings: Settings | None = None
) -> AsyncIterator[TriggerHarness]:
    """Load a flow and run its triggers until the block ends."""
    flow = await h.flow(source)
    settings = settings or Settings(data_dir=h.engine.data_dir)
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


def problems(source: str, filename: str = "f.yaml") -> list[str]:
    """Every problem of a flow that does not load, as `podium validate` prints them: the
    YAML is dedented and its leading blank lines dropped, so line 1 is its first line."""
    with pytest.raises(FlowError) as info:
        load_flow(textwrap.dedent(source).lstrip(), filename)
    return [str(p) for p in info.value.problems]


async def eventually(
    check: Callable[[], Awaitable[bool]],
    what: str = "the condition",
    *,
    timeout: float = 20,
    interval: float = 0.02,
) -> None:
    """Wait (bounded) for what happens outside this loop's reach, with no event to wait on:
    another node, a broker, a reconnect. Fails with `what` when it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        await asyncio.sleep(interval)
