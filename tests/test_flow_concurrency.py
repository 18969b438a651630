"""A flow's `concurrency` block run as Kestra's own tests run it: the flow-concurrency-*
flows of kestra-io/kestra core/src/test/resources/flows/valids, with the assertions of
FlowConcurrencyCaseTest. Kestra's test-only `io.kestra.core.tasks.test.Sleep` (duration
in milliseconds) is written as io.kestra.plugin.core.flow.Sleep with the same duration.
Time is a FakeClock, so a 2-second Sleep takes no time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.engine.core import Engine
from daemon.flows.registry import default_plugins
from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from daemon.store import open_store
from tests.cluster_helpers import fresh_database
from tests.harness import Harness, drive, eventually

Fake = tuple[Harness, FakeClock]


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[Fake]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


def kestra_flow(name: str, concurrency: str, tasks: str | None = None) -> str:
    """One of Kestra's flow-concurrency-* flows: its concurrency block and its tasks."""
    return f"""
id: flow-concurrency-{name}
namespace: io.kestra.tests

concurrency:
{concurrency}

tasks:
{tasks or SLEEP_2S}
"""


SLEEP_2S = """  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S"""


def history(execution: Execution) -> list[State]:
    return [state for state, _ in execution.state.histories]


async def stored_history(h: Harness, execution: Execution) -> list[str]:
    return [s["state"] for s in (await h.stored(execution))["state"]["histories"]]


async def running(h: Harness, execution: Execution) -> None:
    """Kestra's runOneUntilRunning: wait until the execution is stored RUNNING."""

    async def is_running() -> bool:
        await h.store.flush()
        doc = await h.store.get_execution(execution.id)
        return doc is not None and doc["state"]["current"] == "RUNNING"

    await eventually(is_running, f"execution {execution.id} RUNNING")


# -- limit and behavior -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "refused"), [("CANCEL", State.CANCELLED), ("FAIL", State.FAILED)]
)
async def test_executions_past_the_limit_are_refused_while_the_first_runs(
    fake: Fake, behavior: str, refused: State
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyCancel / flowConcurrencyFail with
    flow-concurrency-cancel.yml and flow-concurrency-fail.yml: the first runs, the next two
    end CANCELLED (FAILED) at once, and the first is still running."""
    h, _ = fake
    flow = await h.flow(kestra_flow(behavior.lower(), f"  behavior: {behavior}\n  limit: 1"))
    first = await h.start(flow)
    await running(h, first)
    refused_ones = [await h.start(flow), await h.start(flow)]
    assert [e.state.current for e in refused_ones] == [refused, refused]
    for one in refused_ones:
        assert await stored_history(h, one) == ["CREATED", refused.value]
        assert one.error == (
            "flow io.kestra.tests.flow-concurrency-"
            f"{behavior.lower()} has reached its concurrency limit of 1"
        )
    assert (await h.stored(first))["state"]["current"] == "RUNNING"
    assert await h.engine.kill(first.id)
    assert (await h.engine.wait(first.id)).state.current == State.KILLED


async def test_a_queued_execution_runs_once_the_first_ends(fake: Fake) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueue with flow-concurrency-queue.yml: the
    second is CREATED, QUEUED, then RUNNING, and both end SUCCESS."""
    h, clock = fake
    flow = await h.flow(kestra_flow("queue", "  behavior: QUEUE\n  limit: 1"))
    first = await h.start(flow)
    await running(h, first)
    second = await h.start(flow)
    assert second.state.current == State.QUEUED
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(first.id), h.engine.wait(second.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]
    assert history(ends[1])[:3] == [State.CREATED, State.QUEUED, State.RUNNING]


# -- pauses and restarts ------------------------------------------------------------------

PAUSE = """  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    delay: {delay}
    tasks:
      - id: post-pause
        type: io.kestra.plugin.core.log.Log
        message: Post-pause"""


async def paused(h: Harness, execution: Execution) -> None:
    async def is_paused() -> bool:
        await h.store.flush()
        doc = await h.store.get_execution(execution.id)
        return doc is not None and doc["state"]["current"] == "PAUSED"

    await eventually(is_paused, f"execution {execution.id} PAUSED")


async def test_a_paused_execution_keeps_its_slot_and_the_next_queues(fake: Fake) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueuePause with
    flow-concurrency-queue-pause.yml: the first is PAUSED (holding its slot), the second
    queues, then runs once the first resumes and ends; both end SUCCESS."""
    h, clock = fake
    flow = await h.flow(
        kestra_flow("queue-pause", "  behavior: QUEUE\n  limit: 1", PAUSE.format(delay="PT2S"))
    )
    first = await h.start(flow)
    await paused(h, first)
    second = await h.start(flow)
    assert second.state.current == State.QUEUED
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(first.id), h.engine.wait(second.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]
    assert history(ends[1])[:3] == [State.CREATED, State.QUEUED, State.RUNNING]


async def test_an_execution_arriving_while_the_first_is_paused_is_cancelled(fake: Fake) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyCancelPause with
    flow-concurrency-cancel-pause.yml: the second is CANCELLED (CREATED, CANCELLED) and
    the paused first ends SUCCESS."""
    h, clock = fake
    flow = await h.flow(
        kestra_flow("cancel-pause", "  behavior: CANCEL\n  limit: 1", PAUSE.format(delay="PT1S"))
    )
    first = await h.start(flow)
    await paused(h, first)
    second = await h.start(flow)
    assert await stored_history(h, second) == ["CREATED", "CANCELLED"]
    assert (await drive(h, clock, h.engine.wait(first.id))).state.current == State.SUCCESS


async def test_a_restarted_execution_queues_behind_the_running_one(fake: Fake) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueueRestarted with
    flow-concurrency-queue-fail.yml: the first fails and the queued second runs; the first,
    restarted meanwhile, is stored QUEUED (RESTARTED then QUEUED in its history) and fails
    again once the second has failed; the second went CREATED, QUEUED, RUNNING."""
    h, clock = fake
    tasks = SLEEP_2S + "\n  - id: fail\n    type: io.kestra.plugin.core.execution.Fail"
    flow = await h.flow(kestra_flow("queue-fail", "  behavior: QUEUE\n  limit: 1", tasks))
    first = await h.start(flow)
    second = await h.start(flow)
    assert (await drive(h, clock, h.engine.wait(first.id))).state.current == State.FAILED
    await running(h, second)
    restarted = await h.engine.restart(first.id)
    assert restarted.state.current == State.QUEUED
    assert (await h.stored(first))["state"]["current"] == "QUEUED"
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(second.id), h.engine.wait(first.id)))
    assert [e.state.current for e in ends] == [State.FAILED, State.FAILED]
    assert history(ends[0])[:3] == [State.CREATED, State.QUEUED, State.RUNNING]
    states = history(ends[1])
    assert State.RESTARTED in states and State.QUEUED in states[states.index(State.RESTARTED) :]
    assert started_after(ends[1], ends[0])


def started_after(later: Execution, earlier: Execution) -> bool:
    last_running = max(at for s, at in later.state.histories if s == State.RUNNING)
    return last_running >= earlier.state.histories[-1][1]


# -- what holds across a restart of podium, on both stores ------------------------------


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)],
)
def server(request: pytest.FixtureRequest) -> str | None:
    """PostgreSQL's DSN for the postgresql case (synchronous: the session server starts on
    first use, which blocks), None for the embedded store."""
    return request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else None


class Podium:
    """podium on one store, started again and again as a restarted daemon is."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.running: list[Harness] = []

    async def start(self, clock: FakeClock) -> Harness:
        plugins = await asyncio.to_thread(default_plugins)
        store = open_store(self.url)
        await store.open()
        harness = Harness(Engine(self.data_dir, store, clock=clock, plugins=plugins), store)
        self.running.append(harness)
        return harness

    async def crash(self, h: Harness) -> None:
        """Stop as a crash would: what runs stays stored RUNNING, queued ones QUEUED."""
        self.running.remove(h)
        await h.engine.close(hand_over=True)
        await h.store.close()

    async def stop(self) -> None:
        while self.running:
            await self.running.pop().close()


@pytest.fixture
async def podium(server: str | None, tmp_path: Path) -> AsyncIterator[Podium]:
    if server is None:
        started = Podium(str(tmp_path), tmp_path)
        yield started
        await started.stop()
        return
    async with fresh_database(server) as dsn:
        started = Podium(dsn, tmp_path)
        yield started
        await started.stop()


async def test_a_restarted_execution_queued_earlier_still_waits_after_a_restart(
    podium: Podium,
) -> None:
    """flow-concurrency-queue-fail.yml (FlowConcurrencyCaseTest.flowConcurrencyQueueRestarted)
    with podium stopped while the restarted first is QUEUED behind the running second: the
    first was created earlier, yet after the restart the second takes its slot back before
    the first is queued again, and the first runs only once the second has ended."""
    clock = FakeClock()
    h = await podium.start(clock)
    tasks = SLEEP_2S + "\n  - id: fail\n    type: io.kestra.plugin.core.execution.Fail"
    flow = await h.flow(kestra_flow("queue-fail", "  behavior: QUEUE\n  limit: 1", tasks))
    first = await h.start(flow)
    await running(h, first)
    await clock.advance(1)
    second = await h.start(flow)
    assert (await drive(h, clock, h.engine.wait(first.id))).state.current == State.FAILED
    await running(h, second)
    assert (await h.engine.restart(first.id)).state.current == State.QUEUED
    await podium.crash(h)

    later = FakeClock(clock.now())
    h = await podium.start(later)
    assert await h.engine.lifecycle.recover() == 2
    assert (await h.stored(first))["state"]["current"] == "QUEUED"
    ends = await drive(h, later, asyncio.gather(h.engine.wait(second.id), h.engine.wait(first.id)))
    assert [e.state.current for e in ends] == [State.FAILED, State.FAILED]
    assert started_after(ends[1], ends[0])
