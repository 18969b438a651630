"""Several nodes on one PostgreSQL store, in one process: claims, waits, kills, takeover of
a dead node's work, fencing, trigger leases and flows shared through the database."""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from daemon.cluster.leases import lock_key
from daemon.flows.loader import load_flow
from daemon.flows.registry import Plugins, default_plugins
from daemon.sdk.execution import Execution, TaskRun, new_id
from daemon.sdk.state import State, StateHistory
from daemon.store.postgres_cluster import UNFINISHED
from tests.cluster_helpers import Node, execution_rows, fresh_database
from tests.harness import eventually

pytestmark = pytest.mark.timeout(90)

SLEEPY = """
id: sleepy
namespace: cluster.test
inputs:
  - id: n
    type: INT
    defaults: 0
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
  - id: out
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n }}"
"""
LONG = """
id: long
namespace: cluster.test
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return default_plugins()


@pytest.fixture
async def dsn(postgres_dsn: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_dsn) as url:
        yield url


@pytest.fixture
async def nodes(
    dsn: str, tmp_path: Path, plugins: Plugins
) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    started: list[Node] = []

    async def start(name: str, capacity: int = 0) -> Node:
        node = await Node(name, dsn, tmp_path / "data", plugins, capacity).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()


async def add_flow(node: Node, source: str) -> None:
    """As the API or a flows directory does: into the store; every node loads it."""
    flow = await asyncio.to_thread(load_flow, textwrap.dedent(source), "test.yaml", node.plugins)
    await node.store.save_flow(flow.namespace, flow.id, flow.source)


async def loaded(node: Node, flow_id: str) -> None:
    async def check() -> bool:
        return ("cluster.test", flow_id) in node.engine.catalog

    await eventually(check, f"{node.name} loads {flow_id}")


async def test_executions_submitted_on_one_node_run_once_across_all(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    a, b, c = (
        await nodes("a", capacity=4),
        await nodes("b", capacity=4),
        await nodes("c", capacity=4),
    )
    await add_flow(a, SLEEPY)
    for node in (a, b, c):
        await loaded(node, "sleepy")
    flow = a.engine.catalog[("cluster.test", "sleepy")]
    submitted = [await a.engine.submit(flow, {"n": i}) for i in range(24)]
    # wait() answers on any node, whoever ran the execution
    done = await asyncio.gather(*(c.engine.wait(e.id) for e in submitted))
    assert [e.state.current for e in done] == [State.SUCCESS] * 24
    rows = await execution_rows(dsn)
    assert len(rows) == 24 and {r["state"] for r in rows} == {"SUCCESS"}
    owners = {r["owner"] for r in rows}
    assert len(owners) > 1, f"capacity 4 per node must spread 24 executions: {owners}"
    for e in done:
        stored = await b.store.get_execution(e.id)
        assert stored is not None
        assert [tr["taskId"] for tr in stored["taskRunList"]] == ["nap", "out"]


async def test_an_idempotent_submit_creates_one_execution_cluster_wide(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    a, b = await nodes("a"), await nodes("b")
    await add_flow(a, SLEEPY)
    await loaded(a, "sleepy")
    await loaded(b, "sleepy")
    flows = [n.engine.catalog[("cluster.test", "sleepy")] for n in (a, b)]
    same = "0000000000000000000001"
    first, second, third = await asyncio.gather(
        a.engine.submit(flows[0], {"n": 1}, execution_id=same),
        b.engine.submit(flows[1], {"n": 2}, execution_id=same),
        a.engine.submit(flows[0], {"n": 3}, execution_id=same),
    )
    assert first.id == second.id == third.id == same
    final = await b.engine.wait(same)
    assert final.state.current == State.SUCCESS
    assert len(await execution_rows(dsn)) == 1


async def test_kill_reaches_the_node_that_runs_the_execution(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    a = await nodes("a")
    await add_flow(a, LONG)
    await loaded(a, "long")
    execution = await a.engine.submit(a.engine.catalog[("cluster.test", "long")])

    async def running_on_a() -> bool:
        return execution.id in a.engine.local._running

    await eventually(running_on_a, "node a claims the execution")
    b = await nodes("b")  # joins later: it never runs it, only asks for the kill
    assert await b.engine.kill(execution.id)
    final = await b.engine.wait(execution.id)
    assert final.state.current == State.KILLED
    assert not await b.engine.kill(execution.id), "an ended execution cannot be killed"


async def test_a_dead_nodes_execution_is_taken_over_keeping_finished_task_runs(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    a = await nodes("a")
    await add_flow(a, SLEEPY)
    await loaded(a, "sleepy")
    flow = a.engine.catalog[("cluster.test", "sleepy")]
    # What a node killed mid-execution leaves: its row with an old heartbeat, a RUNNING
    # execution it owns, its first task run finished, the second one interrupted.
    now = a.engine.clock.now()
    execution = Execution(
        id=new_id(),
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        state=StateHistory(State.CREATED, now),
        inputs={"n": 7},
    )
    execution.state.set(State.RUNNING, now)
    nap = TaskRun(
        id=new_id(),
        execution_id=execution.id,
        namespace=flow.namespace,
        flow_id=flow.id,
        task_id="nap",
        state=StateHistory(State.CREATED, now),
    )
    nap.state.set(State.RUNNING, now)
    nap.state.set(State.SUCCESS, now)
    out = TaskRun(
        id=new_id(),
        execution_id=execution.id,
        namespace=flow.namespace,
        flow_id=flow.id,
        task_id="out",
        state=StateHistory(State.CREATED, now),
    )
    out.state.set(State.RUNNING, now)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO nodes (id, host, pid, started, heartbeat) VALUES "
            "('ghost', 'gone', 1, now() - interval '1 hour', "
            "now() - interval '1 hour')"
        )
        await a.store.save_execution(execution.to_json(task_runs=False))
        await a.store.save_task_run(nap.to_json())
        await a.store.save_task_run(out.to_json())
        await conn.execute("UPDATE executions SET owner = 'ghost' WHERE id = $1", execution.id)
        final = await a.engine.wait(execution.id)
        assert final.state.current == State.SUCCESS
        stored = await a.store.get_execution(execution.id)
        assert stored is not None
        runs = {tr["taskId"]: tr for tr in stored["taskRunList"]}
        assert runs["nap"]["id"] == nap.id, "the finished task run is kept, not run again"
        assert [h["state"] for h in runs["nap"]["state"]["histories"]] == [
            "CREATED",
            "RUNNING",
            "SUCCESS",
        ]
        assert runs["out"]["state"]["current"] == "SUCCESS"
        assert runs["out"]["outputs"] == {"value": "7"}
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE id = 'ghost'") == 0
        assert (
            await conn.fetchval("SELECT owner FROM executions WHERE id = $1", execution.id) == "a"
        )
    finally:
        await conn.close()


async def test_a_node_declared_dead_stops_instead_of_running_on(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    a = await nodes("a")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM nodes WHERE id = 'a'")
    finally:
        await conn.close()
    async with asyncio.timeout(10):
        await a.fenced.wait()
    # It stopped heartbeating instead of writing on, and did not register itself again.
    (heartbeat,) = [t for t in a.cluster._tasks if t.get_name() == "cluster heartbeat"]
    await asyncio.wait_for(heartbeat, 10)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE id = 'a'") == 0
    finally:
        await conn.close()


async def test_a_restarted_node_takes_back_what_it_left_queued(
    dsn: str, tmp_path: Path, plugins: Plugins
) -> None:
    a = await Node("a", dsn, tmp_path / "data", plugins, capacity=1).start()
    await add_flow(a, LONG)
    await loaded(a, "long")
    flow = a.engine.catalog[("cluster.test", "long")]
    first = await a.engine.submit(flow)

    async def claimed() -> bool:
        return first.id in a.engine.local._running

    await eventually(claimed, "node a runs the first execution")
    second = await a.engine.submit(flow)
    await a.stop()  # kills the first (KILLED); the second was never claimed
    rows = {r["id"]: r for r in await execution_rows(dsn)}
    assert rows[first.id]["state"] == "KILLED"
    assert rows[second.id]["state"] == "CREATED" and rows[second.id]["owner"] is None
    b = await Node("b", dsn, tmp_path / "data", plugins).start()
    try:

        async def running_on_b() -> bool:
            return second.id in b.engine.local._running

        await eventually(running_on_b, "node b claims the execution a left")
        assert await b.engine.kill(second.id)
    finally:
        await b.stop()


async def test_a_trigger_lease_is_held_by_one_node_and_moves_when_it_goes(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    a, b = await nodes("a"), await nodes("b")
    holders: list[str] = []
    a_has_it = asyncio.Event()

    async def hold(node: Node, release: asyncio.Event) -> None:
        async with node.cluster.leases.lease("trigger", "ns", "flow", "t") as lost:
            holders.append(node.name)
            if node is a:
                a_has_it.set()
            waiter = asyncio.create_task(lost.wait())
            releaser = asyncio.create_task(release.wait())
            await asyncio.wait([waiter, releaser], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            releaser.cancel()

    release_a, release_b = asyncio.Event(), asyncio.Event()
    job_a = asyncio.create_task(hold(a, release_a))
    await asyncio.wait_for(a_has_it.wait(), 10)
    job_b = asyncio.create_task(hold(b, release_b))
    # What b's waiting loop tries, tried here: a holds the lock, so b cannot take it.
    assert not await b.cluster.leases._try_lock(lock_key("trigger", "ns", "flow", "t"))
    assert holders == ["a"], "b must wait while a holds the lease"
    # a's lock connection dies (its process or machine went away): PostgreSQL frees the
    # lock, a learns it lost the lease, b takes it.
    assert a.cluster.leases._conn is not None
    a.cluster.leases._conn.terminate()
    await asyncio.wait_for(job_a, 10)

    async def b_holds() -> bool:
        return holders == ["a", "b"]

    await eventually(b_holds, "b takes the lease over")
    release_b.set()
    await job_b
    assert lock_key("trigger", "ns", "flow", "t") == lock_key("trigger", "ns", "flow", "t")
    assert lock_key("a", "b") != lock_key("a", "c")


async def test_flows_are_shared_through_the_database(nodes: Callable[..., Awaitable[Node]]) -> None:
    a, b = await nodes("a"), await nodes("b")
    await add_flow(a, SLEEPY)
    await loaded(b, "sleepy")
    changed = SLEEPY.replace("PT0.3S", "PT0.1S")
    await add_flow(a, changed)

    async def new_revision() -> bool:
        flow = b.engine.catalog.get("cluster.test", "sleepy")
        return flow is not None and flow.revision == 2

    await eventually(new_revision, "b loads revision 2")
    await a.store.delete_flow("cluster.test", "sleepy")

    async def gone() -> bool:
        return ("cluster.test", "sleepy") not in b.engine.catalog

    await eventually(gone, "b unloads the deleted flow")
    # A late joiner loads what the database holds at start.
    await add_flow(a, LONG)
    c = await nodes("c")
    assert ("cluster.test", "long") in c.engine.catalog
    assert ("cluster.test", "sleepy") not in c.engine.catalog


async def test_a_malformed_control_message_is_ignored(
    nodes: Callable[..., Awaitable[Node]], caplog: pytest.LogCaptureFixture
) -> None:
    a = await nodes("a")
    await a.cluster.tables.notify("podium_control", "{not json")
    await a.cluster.tables.notify("podium_flows", '{"no": "keys"}')

    async def logged() -> bool:
        text = caplog.text
        return "malformed control message" in text and "malformed flow notification" in text

    await eventually(logged, "both are logged")
    assert a.engine.local.running == 0


def test_unfinished_states_are_the_non_terminal_ones() -> None:
    assert set(UNFINISHED) == {s.value for s in State if not s.terminated}
    assert "SUCCESS" not in UNFINISHED and "RUNNING" in UNFINISHED


async def test_a_store_url_that_is_not_postgres_is_no_cluster(tmp_path: Path) -> None:
    from daemon.store import open_store

    store: Any = open_store(tmp_path / "data")
    assert store.shared is False


TICK = """
id: tick
namespace: cluster.test
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: clock
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""


async def test_a_schedule_slot_fires_once_however_many_nodes_run_the_trigger(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    await add_flow(a, TICK)
    for node in (a, b, c):
        await loaded(node, "tick")

    async def some_slots() -> bool:
        _, total = await a.store.search_executions(flow_id="tick", size=100)
        return total >= 4

    await eventually(some_slots, "four slots fired")
    for node in (a, b, c):
        await node.triggers.stop_all()
    await a.engine.drain()
    docs, _ = await a.store.search_executions(flow_id="tick", size=100)
    dates = [d["trigger"]["variables"]["date"] for d in docs]
    assert len(dates) == len(set(dates)), f"a slot fired twice: {sorted(dates)}"


LIMITED = """
id: limited
namespace: cluster.test
concurrency:
  limit: 1
  behavior: QUEUE
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.2S
"""


async def test_a_flow_concurrency_limit_holds_across_the_cluster(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    await add_flow(a, LIMITED)
    for node in (a, b, c):
        await loaded(node, "limited")
    submitted = []
    for i in range(6):
        node = (a, b, c)[i % 3]
        submitted.append(await node.engine.submit(node.engine.catalog[("cluster.test", "limited")]))
    finals = [await b.engine.wait(e.id) for e in submitted]
    assert {f.state.current for f in finals} == {State.SUCCESS}
    spans = []
    for final in finals:
        running = next(at for state, at in final.state.histories if state == State.RUNNING)
        spans.append((running, final.state.histories[-1][1]))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two executions of a limit-1 flow overlapped: {spans}"
    owners = {r["owner"] for r in await execution_rows(dsn)}
    assert len(owners) == 1, "the node holding the flow's lease runs all its executions"


async def test_a_flow_queue_size_holds_across_the_cluster(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    """flow-concurrency-queue-size.yml (FlowConcurrencyCaseTest.flowConcurrencyQueueSize,
    kestra PR #17046) with its executions submitted on three nodes: the node holding the
    flow's lease admits them all, so one runs, one waits QUEUED and one is CANCELLED at
    once (CREATED, CANCELLED), wherever each was submitted."""
    a, b, c = await nodes("a"), await nodes("b"), await nodes("c")
    queue_of_one = LIMITED.replace("behavior: QUEUE", "behavior: QUEUE\n  queueSize: 1")
    await add_flow(a, queue_of_one.replace("PT0.2S", "PT2S"))  # the first outlasts the rest
    for node in (a, b, c):
        await loaded(node, "limited")
    submitted = []
    for node in (a, b, c):
        flow = node.engine.catalog[("cluster.test", "limited")]
        submitted.append(await node.engine.submit(flow))
    finals = [await b.engine.wait(e.id) for e in submitted]
    assert sorted(f.state.current.value for f in finals) == ["CANCELLED", "SUCCESS", "SUCCESS"]
    cancelled = next(f for f in finals if f.state.current == State.CANCELLED)
    assert [s for s, _ in cancelled.state.histories] == [State.CREATED, State.CANCELLED]
    queued = [f for f in finals if State.QUEUED in [s for s, _ in f.state.histories]]
    assert len(queued) == 1


async def test_a_queued_execution_is_killed_from_another_node(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueueKilled across nodes: the kill asked on
    one node reaches the node holding the flow's lease, where the execution waits QUEUED;
    it ends KILLED without running and the running one goes on."""
    a, b = await nodes("a"), await nodes("b")
    await add_flow(a, LIMITED.replace("PT0.2S", "PT30S"))
    for node in (a, b):
        await loaded(node, "limited")
    flow = a.engine.catalog[("cluster.test", "limited")]
    first, second = await a.engine.submit(flow), await a.engine.submit(flow)

    async def queued() -> bool:
        doc = await b.store.get_execution(second.id)
        return doc is not None and doc["state"]["current"] == "QUEUED"

    await eventually(queued, "the second waits QUEUED on the lease holder")
    assert await b.engine.kill(second.id)
    final = await b.engine.wait(second.id)
    assert [s for s, _ in final.state.histories] == [State.CREATED, State.QUEUED, State.KILLED]
    doc = await b.store.get_execution(first.id)
    assert doc is not None and doc["state"]["current"] == "RUNNING"
    assert await b.engine.kill(first.id)
    assert (await b.engine.wait(first.id)).state.current == State.KILLED


async def test_a_draining_node_keeps_its_executions(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    a = await nodes("a")
    await add_flow(a, SLEEPY.replace("PT0.3S", "PT3S"))  # longer than the node timeout
    await loaded(a, "sleepy")
    execution = await a.engine.submit(a.engine.catalog[("cluster.test", "sleepy")], {"n": 1})

    async def running_on_a() -> bool:
        return execution.id in a.engine.local._running

    await eventually(running_on_a, "a runs it")
    b = await nodes("b")
    await a.cluster.stop_claiming()  # SIGTERM: no new work, the running one drains
    await a.engine.drain()
    final = await a.engine.wait(execution.id)
    assert final.state.current == State.SUCCESS
    rows = await execution_rows(dsn)
    assert [r["owner"] for r in rows] == ["a"]
    assert b.engine.local.stats["SUCCESS"] == 0, "b did not take over a live, draining node"


async def test_a_node_stopping_past_its_grace_hands_its_executions_over(
    nodes: Callable[..., Awaitable[Node]], dsn: str, tmp_path: Path, plugins: Plugins
) -> None:
    a = await Node("a", dsn, tmp_path / "data", plugins).start()
    await add_flow(a, SLEEPY.replace("PT0.3S", "PT2S"))
    await loaded(a, "sleepy")
    execution = await a.engine.submit(a.engine.catalog[("cluster.test", "sleepy")], {"n": 5})

    async def running_on_a() -> bool:
        return execution.id in a.engine.local._running

    await eventually(running_on_a, "a runs it")
    b = await nodes("b")
    # SIGTERM on a and its grace period over: interrupted, not stored KILLED; a leaves.
    await a.triggers.stop_all()
    await a.cluster.stop_claiming()
    await a.engine.close(hand_over=True)
    await a.cluster.stop()
    await a.cluster.leave()
    await a.store.close()
    final = await b.engine.wait(execution.id)
    assert final.state.current == State.SUCCESS
    runs = {tr.task_id: tr for tr in final.task_runs}
    assert runs["out"].outputs == {"value": "5"}
    assert [r["owner"] for r in await execution_rows(dsn)] == ["b"]
    assert State.KILLED not in [state for state, _ in final.state.histories]


WAITING = """
id: waiting
namespace: cluster.test
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved_by
        type: STRING
      - id: amount
        type: INT
  - id: out
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approve.onResume.approved_by }} {{ outputs.approve.onResume.amount }}"
"""


async def test_an_execution_paused_on_one_node_is_resumed_from_another(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    from daemon.sdk.errors import InputError

    a = await nodes("a")
    await add_flow(a, WAITING)
    await loaded(a, "waiting")
    execution = await a.engine.submit(a.engine.catalog[("cluster.test", "waiting")])

    async def paused() -> bool:
        doc = await a.store.get_execution(execution.id)
        return doc is not None and doc["state"]["current"] == "PAUSED"

    await eventually(paused, "the execution pauses on a")
    b = await nodes("b")
    await loaded(b, "waiting")
    with pytest.raises(InputError) as bad:
        await b.engine.resume(execution.id, {"approved_by": "ada", "amount": "lots"})
    assert "amount" in str(bad.value)
    assert await paused(), "bad inputs resume nothing"
    assert await b.engine.resume(execution.id, {"approved_by": "ada", "amount": "3"})
    final = await b.engine.wait(execution.id)
    assert final.state.current == State.SUCCESS
    out = next(tr for tr in final.task_runs if tr.task_id == "out")
    assert out.outputs == {"value": "ada 3"}
    assert not await b.engine.resume(execution.id, {}), "an ended execution is not paused"


REVIEWED = """
id: reviewed
namespace: cluster.test
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    inputs:
      - id: amount
        type: INT
  - id: out
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approval.decision }} {{ outputs.approval.inputs.amount }}"
"""


async def test_an_approval_waiting_on_one_node_is_reviewed_from_another(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    """An Approval (Kestra's Approval.java) waiting on node a is decided through node b:
    b checks the review against the task as written (a missing comment, an input that does
    not fit) before a decides it."""
    from daemon.sdk.errors import InputError
    from daemon.sdk.review import Decision, Review, ReviewRefused

    a = await nodes("a")
    await add_flow(a, REVIEWED)
    await loaded(a, "reviewed")
    execution = await a.engine.submit(a.engine.catalog[("cluster.test", "reviewed")])

    async def waiting() -> bool:
        return a.engine.pauses.holds(execution.id)

    await eventually(waiting, "the approval waits on a")
    await a.store.flush()
    doc = await a.store.get_execution(execution.id)
    assert doc is not None
    run_id = next(tr["id"] for tr in doc["taskRunList"] if tr["taskId"] == "approval")
    b = await nodes("b")
    await loaded(b, "reviewed")
    now = b.engine.clock.now()
    with pytest.raises(ReviewRefused, match="a comment is required to deny"):
        await b.engine.review(execution.id, run_id, Review(Decision.DENIED, now))
    with pytest.raises(InputError, match="amount"):
        await b.engine.review(
            execution.id, run_id, Review(Decision.APPROVED, now, inputs={"amount": "lots"})
        )
    assert await waiting(), "a refused review decides nothing"
    review = Review(Decision.APPROVED, now, "fine", {"amount": "3"}, "ada")
    assert await b.engine.review(execution.id, run_id, review)
    final = await b.engine.wait(execution.id)
    assert final.state.current == State.SUCCESS
    runs = {tr.task_id: tr for tr in final.task_runs}
    assert runs["out"].outputs == {"value": "APPROVED 3"}
    assert (runs["approval"].outputs["by"], runs["approval"].outputs["comment"]) == ("ada", "fine")
    assert not await b.engine.review(execution.id, run_id, review), "decided already"


async def test_an_execution_a_live_node_owns_but_does_not_run_is_run_by_it(
    nodes: Callable[..., Awaitable[Node]], dsn: str
) -> None:
    """What a claim leaves when PostgreSQL restarts between its commit and its answer
    (issue #13 finding 5: CREATED for minutes, owned by a live node): the node finds it
    when it checks what it owns against what it runs, and runs it, once. Kestra's
    counterpart: ServiceLivenessManagerTest keeps its schedule whatever the repository
    answered last."""
    a = await nodes("a")
    await add_flow(a, SLEEPY)
    await loaded(a, "sleepy")
    flow = a.engine.catalog[("cluster.test", "sleepy")]
    execution = Execution(
        id=new_id(),
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        state=StateHistory(State.CREATED, a.engine.clock.now()),
        inputs={"n": 3},
    )
    doc = json.dumps(execution.to_json(task_runs=False))
    conn = await asyncpg.connect(dsn)
    try:  # stored and owned in one statement: no claim pass ever sees it unowned
        await conn.execute(
            "INSERT INTO executions (id, namespace, flow_id, state, labels, doc, owner) "
            "VALUES ($1, $2, $3, 'CREATED', '[]'::jsonb, $4::json, 'a')",
            execution.id,
            flow.namespace,
            flow.id,
            doc,
        )
        # Every connection of the node cut, as a restart does: it reconnects and checks.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    final = await a.engine.wait(execution.id)
    assert final.state.current == State.SUCCESS
    stored = await a.store.get_execution(execution.id)
    assert stored is not None
    assert [tr["taskId"] for tr in stored["taskRunList"]] == ["nap", "out"]
    assert stored["taskRunList"][1]["outputs"] == {"value": "3"}
