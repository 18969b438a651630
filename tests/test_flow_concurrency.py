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
from daemon.flows.definition import Flow
from daemon.flows.registry import default_plugins
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from daemon.store import open_store
from tests.cluster_helpers import fresh_database
from tests.harness import Harness, drive, eventually, problems, settle

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


# -- kills --------------------------------------------------------------------------------

QUEUE_KILLED = kestra_flow(
    "queue-killed", "  behavior: QUEUE\n  limit: 1", SLEEP_2S.replace("PT2S", "PT10S")
)


async def test_killing_the_running_execution_starts_the_next_queued_only(fake: Fake) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyKilled with flow-concurrency-queue-killed.yml:
    the first is killed (KILLED, having run), the second starts, the third stays QUEUED
    since the limit of 1 is taken again."""
    h, _ = fake
    flow = await h.flow(QUEUE_KILLED)
    first = await h.start(flow)
    await running(h, first)
    second, third = await h.start(flow), await h.start(flow)
    assert (second.state.current, third.state.current) == (State.QUEUED, State.QUEUED)
    assert await h.engine.kill(first.id)
    killed = await h.engine.wait(first.id)
    assert killed.state.current == State.KILLED and State.RUNNING in history(killed)
    await running(h, second)
    await settle()
    assert (await h.stored(third))["state"]["current"] == "QUEUED"
    for execution in (second, third):
        assert await h.engine.kill(execution.id)


async def test_killing_a_queued_execution_ends_it_and_starts_nothing(fake: Fake) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueueKilled with
    flow-concurrency-queue-killed.yml: the queued second is killed (KILLED, never RUNNING,
    no task run) while the first runs; the third stays QUEUED."""
    h, _ = fake
    flow = await h.flow(QUEUE_KILLED)
    first = await h.start(flow)
    await running(h, first)
    second, third = await h.start(flow), await h.start(flow)
    assert await h.engine.kill(second.id)
    killed = await h.engine.wait(second.id)
    assert history(killed) == [State.CREATED, State.QUEUED, State.KILLED]
    assert killed.task_runs == []
    assert await stored_history(h, second) == ["CREATED", "QUEUED", "KILLED"]
    await settle()
    assert (await h.stored(third))["state"]["current"] == "QUEUED"
    assert (await h.stored(first))["state"]["current"] == "RUNNING"
    for execution in (first, third):
        assert await h.engine.kill(execution.id)
    assert (await h.engine.wait(third.id)).state.current == State.KILLED


# -- queueSize (and queueLimit) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"), [("queue-size", "queueSize"), ("queue-limit", "queueLimit")]
)
async def test_an_execution_arriving_at_a_full_queue_is_cancelled(
    fake: Fake, name: str, key: str
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueueSize with flow-concurrency-queue-size.yml
    (kestra PR #17046; flow-concurrency-queue-limit.yml spells it queueLimit): with limit 1
    and a queue of 1, the second is QUEUED, the third CANCELLED with exactly CREATED,
    CANCELLED; the first two end SUCCESS, the second through QUEUED then RUNNING."""
    h, clock = fake
    flow = await h.flow(kestra_flow(name, f"  behavior: QUEUE\n  limit: 1\n  {key}: 1"))
    first = await h.start(flow)
    await running(h, first)
    second = await h.start(flow)
    third = await h.start(flow)
    assert second.state.current == State.QUEUED
    assert third.state.current == State.CANCELLED
    assert await stored_history(h, third) == ["CREATED", "CANCELLED"]
    assert third.error == (
        f"flow io.kestra.tests.flow-concurrency-{name} has reached its concurrency limit of 1 "
        "and its queue is full (at most 1 may wait)"
    )
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(first.id), h.engine.wait(second.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]
    assert history(ends[1])[:3] == [State.CREATED, State.QUEUED, State.RUNNING]
    assert (await h.engine.wait(third.id)).state.current == State.CANCELLED


async def test_the_queue_takes_new_executions_again_as_it_drains(fake: Fake) -> None:
    """flow-concurrency-queue-size.yml (kestra PR #17046): the cap is on the executions
    waiting now, so once the queued one starts, the next arrival queues again."""
    h, clock = fake
    flow = await h.flow(kestra_flow("queue-size", "  behavior: QUEUE\n  limit: 1\n  queueSize: 1"))
    first = await h.start(flow)
    second = await h.start(flow)
    await drive(h, clock, h.engine.wait(first.id))
    await running(h, second)
    third = await h.start(flow)
    assert third.state.current == State.QUEUED
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(second.id), h.engine.wait(third.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]


async def test_killing_a_queued_execution_makes_room_in_a_full_queue(fake: Fake) -> None:
    """flow-concurrency-queue-size.yml (kestra PR #17046 counts the executions queued now):
    the one waiting is killed, so the next arrival queues instead of being cancelled."""
    h, clock = fake
    flow = await h.flow(kestra_flow("queue-size", "  behavior: QUEUE\n  limit: 1\n  queueSize: 1"))
    first = await h.start(flow)
    second = await h.start(flow)
    assert await h.engine.kill(second.id)
    third = await h.start(flow)
    assert third.state.current == State.QUEUED
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(first.id), h.engine.wait(third.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]


async def test_a_queue_size_of_zero_cancels_every_execution_past_the_limit(fake: Fake) -> None:
    """Concurrency.queueSize (kestra PR #17046) counts the executions that may wait: with
    none allowed, QUEUE refuses as CANCEL does."""
    h, clock = fake
    flow = await h.flow(kestra_flow("queue-size", "  limit: 1\n  queueSize: 0"))
    first = await h.start(flow)
    second = await h.start(flow)
    assert second.state.current == State.CANCELLED
    assert (await drive(h, clock, h.engine.wait(first.id))).state.current == State.SUCCESS


# -- duration -----------------------------------------------------------------------------

QUEUE_DURATION = """
id: flow-concurrency-queue-duration
namespace: io.kestra.tests

concurrency:
  limit: 1
  behavior: QUEUE
  duration: PT5S

tasks:
  - id: sleep
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 30
"""


async def test_a_slot_held_past_the_duration_goes_to_the_queued_execution(fake: Fake) -> None:
    """flow-concurrency-queue-duration.yml as Kestra ships it (Concurrency.duration, kestra
    PR #14355: "Maximum duration an execution can hold a concurrency slot"; JdbcExecutor's
    concurrencySlotTimeoutCheck releases the slot and pops the next queued execution): the
    first runs `sleep 30`, the second waits QUEUED; 5 seconds on, the second runs while the
    first, not killed, still runs."""
    h, clock = fake
    flow = await h.flow(QUEUE_DURATION)
    first = await h.start(flow)
    await running(h, first)
    second = await h.start(flow)
    assert second.state.current == State.QUEUED
    await clock.advance(4.9)
    await settle()
    assert (await h.stored(second))["state"]["current"] == "QUEUED"
    await clock.advance(0.1)
    await running(h, second)
    assert (await h.stored(first))["state"]["current"] == "RUNNING"
    for execution in (first, second):
        killed = await h.engine.kill(execution.id)
        assert killed, (await h.stored(execution))["state"]
    assert [(await h.engine.wait(e.id)).state.current for e in (first, second)] == [
        State.KILLED,
        State.KILLED,
    ]


def started_at(execution: Execution) -> float:
    first = execution.state.histories[0][1]
    return next(
        (at - first).total_seconds() for s, at in execution.state.histories if s == State.RUNNING
    )


async def test_an_execution_past_its_duration_frees_nothing_when_it_ends(fake: Fake) -> None:
    """Concurrency.duration (kestra PR #14355): once its slot is released, the execution no
    longer counts. The first releases its slot at 20 s and the second takes it until 40 s;
    the first ending at 30 s must not start the third early (podium counts each slot once;
    see daemon/engine/admission.py)."""
    h, clock = fake
    flow = await h.flow(
        kestra_flow(
            "queue-duration",
            "  limit: 1\n  duration: PT20S",
            SLEEP_2S.replace("PT2S", "PT30S"),
        )
    )
    executions = [await h.start(flow) for _ in range(3)]
    ends = await drive(h, clock, asyncio.gather(*(h.engine.wait(e.id) for e in executions)))
    assert [e.state.current for e in ends] == [State.SUCCESS] * 3
    assert [started_at(e) for e in ends] == [0.0, 20.0, 40.0]


async def test_an_execution_ending_within_its_duration_frees_its_slot_as_usual(
    fake: Fake,
) -> None:
    """Concurrency.duration bounds the slot, no more (kestra PR #14355: the monitor is
    deleted when the execution ends): ending before it, the next one starts then, once."""
    h, clock = fake
    flow = await h.flow(kestra_flow("queue-duration", "  limit: 1\n  duration: PT1H"))
    executions = [await h.start(flow) for _ in range(3)]
    ends = await drive(h, clock, asyncio.gather(*(h.engine.wait(e.id) for e in executions)))
    assert [started_at(e) for e in ends] == [0.0, 2.0, 4.0]
    assert h.engine.local._slot_timers == {}


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


async def test_the_queue_and_its_size_hold_across_a_restart(podium: Podium) -> None:
    """Kestra keeps queued executions in its ExecutionQueued table (JDBC) across restarts;
    podium keeps them stored QUEUED and queues them again in arrival order. After a
    restart the recovered one keeps its place (it is not cancelled for a full queue), and
    a new arrival meets the same full queue (queueSize, kestra PR #17046)."""
    clock = FakeClock()
    h = await podium.start(clock)
    source = kestra_flow(
        "queue-size",
        "  behavior: QUEUE\n  limit: 1\n  queueSize: 1",
        SLEEP_2S.replace("PT2S", "PT10S"),
    )
    flow = await h.flow(source)
    first = await h.start(flow)
    await running(h, first)
    second, third = await h.start(flow), await h.start(flow)
    assert (second.state.current, third.state.current) == (State.QUEUED, State.CANCELLED)
    await podium.crash(h)

    h = await podium.start(FakeClock(clock.now()))
    clock = h.engine.clock  # type: ignore[assignment]
    assert await h.engine.lifecycle.recover() == 2
    assert (await h.stored(second))["state"]["current"] == "QUEUED"
    fourth = await h.start(await h.flow(source))
    assert fourth.state.current == State.CANCELLED
    assert isinstance(clock, FakeClock)
    ends = await drive(h, clock, asyncio.gather(h.engine.wait(first.id), h.engine.wait(second.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]
    assert history(ends[1])[:3] == [State.CREATED, State.QUEUED, State.RUNNING]


async def test_a_slot_duration_counts_from_when_the_slot_was_taken_across_a_restart(
    podium: Podium,
) -> None:
    """Concurrency.duration (kestra PR #14355, whose monitor is stored with its deadline):
    the first took its slot at 0 s, podium stops at 1 s and starts again at 6 s; its
    5-second slot is over, so the queued second starts at once, not 5 seconds later."""
    clock = FakeClock()
    h = await podium.start(clock)
    source = kestra_flow(
        "queue-duration",
        "  behavior: QUEUE\n  limit: 1\n  duration: PT5S",
        SLEEP_2S.replace("PT2S", "PT30S"),
    )
    flow = await h.flow(source)
    first = await h.start(flow)
    await running(h, first)
    second = await h.start(flow)
    await clock.advance(1)
    await podium.crash(h)

    later = FakeClock(clock.now())
    await later.advance(5)
    h = await podium.start(later)
    assert await h.engine.lifecycle.recover() == 2
    ends = await drive(h, later, asyncio.gather(h.engine.wait(first.id), h.engine.wait(second.id)))
    assert [e.state.current for e in ends] == [State.SUCCESS, State.SUCCESS]
    assert started_at(ends[1]) == 6.0


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


# -- malformed concurrency blocks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "limit: 1\n  queueSize: -1",
            "f.yaml:6:14: concurrency.queueSize: Input should be greater than or equal to 0 "
            "(got -1)",
        ),
        (
            "limit: 1\n  queueLimit: many",
            "f.yaml:6:15: concurrency.queueLimit: Input should be a valid integer, unable to "
            "parse string as an integer (got 'many')",
        ),
        (
            "limit: 1\n  queueSize: 1\n  queueLimit: 2",
            "f.yaml:5:3: concurrency: 'queueSize' and 'queueLimit' both cap the queue: give "
            "only one of them",
        ),
        (
            "limit: 1\n  duration: five seconds",
            "f.yaml:6:13: concurrency.duration: 'five seconds' is not an ISO-8601 duration "
            "(expected e.g. PT15S, PT1H30M, P1D) (got 'five seconds')",
        ),
        (
            "limit: 1\n  duration: PT0S",
            "f.yaml:5:3: concurrency: 'duration' must be a positive ISO-8601 duration, e.g. PT1H",
        ),
        (
            "limit: 1\n  queueSize: 1\n  maxQueued: 2",
            "f.yaml:7:14: concurrency.maxQueued: unknown property 'maxQueued'",
        ),
        (
            "limit: 1\n  behavior: DROP",
            "f.yaml:6:13: concurrency.behavior: Input should be 'QUEUE', 'CANCEL' or 'FAIL' "
            "(got 'DROP')",
        ),
    ],
)
def test_a_malformed_concurrency_block_is_refused_with_its_line(block: str, message: str) -> None:
    """Concurrency.java: limit @Min(1), behavior one of QUEUE/CANCEL/FAIL, duration an
    ISO-8601 Duration; queueSize/queueLimit (kestra PR #17046) a count of executions."""
    source = (
        "id: f\nnamespace: ns\n\nconcurrency:\n"
        f"  {block}\n"
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    assert problems(source) == [message]


def test_the_new_properties_load_with_kestras_names_and_defaults() -> None:
    """Concurrency.java: behavior defaults to QUEUE; queueSize and duration are unset
    (no cap on the queue, no bound on a slot) unless given."""
    from daemon.flows.loader import load_flow

    flow: Flow = load_flow(kestra_flow("queue-size", "  limit: 2"), "f.yaml")
    assert flow.concurrency is not None
    assert (flow.concurrency.behavior, flow.concurrency.queue_cap, flow.concurrency.duration) == (
        "QUEUE",
        None,
        None,
    )
    flow = load_flow(QUEUE_DURATION.replace("PT5S", "PT1H30M"), "f.yaml")
    assert flow.concurrency is not None and flow.concurrency.duration is not None
    assert flow.concurrency.duration.total_seconds() == 5400
    with pytest.raises(FlowError):
        load_flow(kestra_flow("x", "  queueSize: 1"), "f.yaml")  # limit is required
