"""The store contract, run against every implementation; SQLite-only details at the end."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.state import iso
from daemon.store import SqliteStore, Store, StoreError, open_store
from daemon.store.base import sortable_time
from daemon.store.postgres import PostgresStore
from daemon.store.sqlite_schema import MIGRATIONS
from tests.cluster_helpers import fresh_database

Factory = Callable[[], Store]

IMPLEMENTATIONS: dict[str, Callable[[str, FakeClock], Store]] = {
    "sqlite": lambda where, clock: SqliteStore(Path(where) / "podium.db", clock=clock),
    "postgresql": lambda where, clock: PostgresStore(where, clock=clock),
}
"""Each builds a store on `where`: a data directory, or the DSN of a fresh database."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.services] if name == "postgresql" else [])
        for name in sorted(IMPLEMENTATIONS)
    ]
)
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The implementation, with its PostgreSQL server if it needs one.

    Synchronous: the session server starts on first use, which blocks, and must not
    happen inside the event loop.
    """
    if request.param == "postgresql":
        return request.param, request.getfixturevalue("postgres_dsn")
    return request.param, None


@pytest.fixture
async def make_store(
    backend: tuple[str, str | None], tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Factory]:
    """New, unopened instances on one database: a restart, or a second process."""
    name, server = backend
    build = IMPLEMENTATIONS[name]
    if server is None:
        yield lambda: build(str(tmp_path / "data"), clock)
        return
    async with fresh_database(server) as dsn:
        yield lambda: build(dsn, clock)


@pytest.fixture
async def store(make_store: Factory) -> AsyncIterator[Store]:
    async with make_store() as opened:
        yield opened


def execution(
    ident: str,
    *,
    namespace: str = "company.team",
    flow_id: str = "hello",
    state: str = "RUNNING",
    start: str = "2026-01-01T00:00:00Z",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": ident,
        "namespace": namespace,
        "flowId": flow_id,
        "flowRevision": 1,
        "inputs": {"name": "world"},
        "labels": [{"key": k, "value": v} for k, v in (labels or {}).items()],
        "state": {
            "current": state,
            "histories": [{"state": "CREATED", "date": start}],
            "startDate": start,
        },
    }


def task_run(ident: str, execution_id: str = "e1", state: str = "SUCCESS") -> dict[str, Any]:
    return {
        "id": ident,
        "executionId": execution_id,
        "namespace": "company.team",
        "flowId": "hello",
        "taskId": f"task_{ident}",
        "parentTaskRunId": None,
        "value": None,
        "iteration": None,
        "attempts": [{"state": {"current": state}}],
        "outputs": {"n": 1},
        "state": {"current": state, "histories": [], "startDate": "2026-01-01T00:00:00Z"},
    }


def log(message: str, level: str = "INFO", task_run_id: str | None = "t1") -> dict[str, Any]:
    return {
        "executionId": "e1",
        "taskRunId": task_run_id,
        "taskId": "task",
        "namespace": "company.team",
        "flowId": "hello",
        "level": level,
        "timestamp": "2026-01-01T00:00:01Z",
        "message": message,
        "attemptNumber": 0,
    }


# flows


async def test_each_new_source_is_the_next_revision(store: Store) -> None:
    assert await store.save_flow("ns", "f", "a") == 1
    assert await store.save_flow("ns", "f", "b") == 2
    assert await store.get_flow("ns", "f") == (2, "b")
    assert await store.get_flow("ns", "f", 1) == (1, "a")
    assert await store.get_flow("ns", "f", 7) is None
    assert await store.get_flow("ns", "other") is None


async def test_saving_the_latest_source_again_keeps_its_revision(store: Store) -> None:
    await store.save_flow("ns", "f", "a")
    assert await store.save_flow("ns", "f", "a") == 1
    await store.save_flow("ns", "f", "b")
    assert await store.save_flow("ns", "f", "a") == 3


async def test_list_flows_shows_the_latest_revision_of_each(store: Store, clock: FakeClock) -> None:
    await store.save_flow("ns", "f", "a")
    await store.save_flow("ns", "f", "b")
    await store.save_flow("ab", "g", "c")
    flows = await store.list_flows()
    assert [(f["namespace"], f["id"], f["revision"], f["source"]) for f in flows] == [
        ("ab", "g", 1, "c"),
        ("ns", "f", 2, "b"),
    ]
    assert flows[0]["updated"] == iso(clock.now())


async def test_deleted_flow_is_hidden_but_its_revisions_stay_readable(store: Store) -> None:
    await store.save_flow("ns", "f", "a")
    await store.save_flow("ns", "g", "x")
    await store.delete_flow("ns", "f")
    assert await store.get_flow("ns", "f") is None
    assert await store.get_flow("ns", "f", 1) == (1, "a")
    assert [f["id"] for f in await store.list_flows()] == ["g"]
    assert await store.save_flow("ns", "f", "a") == 2
    assert await store.get_flow("ns", "f") == (2, "a")


# executions and task runs


async def test_execution_reads_back_with_task_runs_in_creation_order(store: Store) -> None:
    doc = execution("e1", labels={"env": "dev"})
    await store.save_execution({**doc, "taskRunList": [{"stale": True}]})
    for ident in ("t3", "t1", "t2"):
        await store.save_task_run(task_run(ident))
    got = await store.get_execution("e1")
    assert got is not None
    assert [t["id"] for t in got.pop("taskRunList")] == ["t3", "t1", "t2"]
    assert got == doc
    assert await store.get_execution("missing") is None


async def test_a_later_save_replaces_the_row_and_keeps_the_order(store: Store) -> None:
    await store.save_execution(execution("e1", state="RUNNING"))
    await store.save_task_run(task_run("t1", state="RUNNING"))
    await store.save_task_run(task_run("t2", state="RUNNING"))
    await store.save_task_run(task_run("t1", state="FAILED"))
    await store.save_execution(execution("e1", state="FAILED"))
    got = await store.get_execution("e1")
    assert got is not None
    assert got["state"]["current"] == "FAILED"
    assert [(t["id"], t["state"]["current"]) for t in got["taskRunList"]] == [
        ("t1", "FAILED"),
        ("t2", "RUNNING"),
    ]
    assert (await store.search_executions())[1] == 1


async def test_a_queued_task_run_is_committed_once_a_write_queued_after_it_is(
    store: Store,
) -> None:
    """`save_task_run` queues at the call, in order, awaited or not: the executor leaves a
    task run's end to commit with the execution's final state queued after it (#18)."""
    await store.save_execution(execution("e1", state="RUNNING"))
    committed = asyncio.ensure_future(store.save_task_run(task_run("t1")))
    store.save_task_run(task_run("t2"), wait=False)  # not even awaited
    await store.save_execution(execution("e1", state="SUCCESS"))
    assert committed.done() and committed.exception() is None
    got = await store.get_execution("e1")
    assert got is not None
    assert [(t["id"], t["state"]["current"]) for t in got["taskRunList"]] == [
        ("t1", "SUCCESS"),
        ("t2", "SUCCESS"),
    ]
    with pytest.raises(ValueError, match="no 'executionId'"):
        store.save_task_run({"id": "t3", "state": {"current": "SUCCESS"}})


async def test_create_execution_inserts_only_an_id_not_seen_before(store: Store) -> None:
    assert await store.create_execution(execution("e1", state="CREATED")) is True
    again = execution("e1", state="RUNNING", labels={"env": "prod"})
    assert await store.create_execution(again) is False
    got = await store.get_execution("e1")
    assert got is not None
    assert got["state"]["current"] == "CREATED"
    assert got["labels"] == []
    await store.save_execution(execution("e2"))
    assert await store.create_execution(execution("e2", state="CREATED")) is False
    assert (await store.search_executions(states=["CREATED"]))[1] == 1
    with pytest.raises(ValueError, match="execution 'e3' has no 'namespace'"):
        await store.create_execution({**execution("e3"), "namespace": ""})


async def test_concurrent_creates_of_one_id_from_two_instances_have_one_winner(
    make_store: Factory,
) -> None:
    async with make_store() as one, make_store() as two:
        results = await asyncio.gather(*(
            (one if i % 2 else two).create_execution(execution("e1", flow_id=f"f{i}"))
            for i in range(10)
        ))  # fmt: skip
        assert sorted(results) == [False] * 9 + [True]
        got = await two.get_execution("e1")
        assert got is not None
        assert got["flowId"] == f"f{results.index(True)}"


async def test_500_concurrent_task_run_saves_all_land(store: Store) -> None:
    await store.save_execution(execution("e1"))
    await asyncio.gather(*(store.save_task_run(task_run(f"t{i:03}")) for i in range(500)))
    got = await store.get_execution("e1")
    assert got is not None
    assert [t["id"] for t in got["taskRunList"]] == [f"t{i:03}" for i in range(500)]


async def test_concurrent_saves_share_commits(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "podium.db") as store:
        await asyncio.gather(*(store.save_task_run(task_run(f"t{i}")) for i in range(500)))
        assert store.commits < 500


async def test_unawaited_saves_are_readable_after_flush(store: Store) -> None:
    await store.save_execution(execution("e1"), wait=False)
    await store.save_task_run(task_run("t1"), wait=False)
    await store.flush()
    got = await store.get_execution("e1")
    assert got is not None
    assert [t["id"] for t in got["taskRunList"]] == ["t1"]


async def test_close_commits_what_is_still_queued(make_store: Factory) -> None:
    async with make_store() as store:
        await store.save_execution(execution("e1"), wait=False)
        store.append_logs([log("bye")])
    async with make_store() as store:
        assert await store.get_execution("e1") is not None
        assert [line["message"] for line in await store.logs("e1")] == ["bye"]


async def test_saved_doc_is_a_snapshot_of_the_call(store: Store) -> None:
    doc = execution("e1")
    await store.save_execution(doc, wait=False)
    doc["state"]["current"] = "MUTATED"
    await store.flush()
    got = await store.get_execution("e1")
    assert got is not None
    assert got["state"]["current"] == "RUNNING"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"executionId": "e1", "state": {"current": "RUNNING"}}, "has no 'id'"),
        ({"id": "t9", "state": {"current": "RUNNING"}}, "task run 't9' has no 'executionId'"),
        ({"id": "t9", "executionId": "e1"}, "'state.current'"),
        ({"id": "t9", "executionId": "e1", "state": {"current": "X"}, "v": {1}}, "JSON"),
    ],
)
async def test_malformed_task_run_is_refused_and_the_batch_still_lands(
    store: Store, doc: dict[str, Any], message: str
) -> None:
    """Refused at the call, before anything is queued: the writes around it land."""
    await store.save_execution(execution("e1"))
    saves = [store.save_task_run(task_run(f"t{i}")) for i in range(2)]
    with pytest.raises(ValueError, match=re.escape(message)):
        store.save_task_run(doc)
    saves += [store.save_task_run(task_run(f"t{i}")) for i in range(2, 5)]
    assert await asyncio.gather(*saves) == [None] * 5
    got = await store.get_execution("e1")
    assert got is not None
    assert [t["id"] for t in got["taskRunList"]] == [f"t{i}" for i in range(5)]


async def test_execution_without_id_is_a_clear_value_error(store: Store) -> None:
    doc = execution("e1")
    del doc["id"]
    with pytest.raises(ValueError, match="execution has no 'id'"):
        await store.save_execution(doc)
    with pytest.raises(ValueError, match="startDate"):
        await store.save_execution(execution("e2", start="yesterday"))


async def test_search_filters_and_pages_newest_first(store: Store) -> None:
    docs = [
        execution("a", namespace="company", start="2026-01-01T00:00:00Z"),
        execution("b", namespace="company.team", start="2026-01-02T00:00:00.5Z"),
        execution("c", namespace="company.team.sub", flow_id="other", state="FAILED",
                  start="2026-01-03T00:00:00+01:00", labels={"env": "prod", "team": "x"}),
        execution("d", namespace="companyx", start="2026-01-04T00:00:00Z",
                  labels={"env": "prod"}),
        execution("e", namespace="company.team", state="SUCCESS", start="2026-01-02T00:00:00Z",
                  labels={"env": "dev"}),
    ]  # fmt: skip
    for doc in docs:
        await store.save_execution(doc)

    async def ids(**filters: Any) -> tuple[list[str], int]:
        found, total = await store.search_executions(**filters)
        assert all("taskRunList" not in doc for doc in found)
        return [doc["id"] for doc in found], total

    assert await ids() == (["d", "c", "b", "e", "a"], 5)
    assert await ids(namespace="company") == (["c", "b", "e", "a"], 4)
    assert await ids(namespace="company.team") == (["c", "b", "e"], 3)
    # Kestra's namespace EQUALS filter and searchExecutionsByFlowId: that namespace alone
    assert await ids(namespace="company.team", exact_namespace=True) == (["b", "e"], 2)
    assert await ids(namespace="company", exact_namespace=True) == (["a"], 1)
    assert await ids(flow_id="other") == (["c"], 1)
    assert await ids(states=["SUCCESS", "FAILED"]) == (["c", "e"], 2)
    assert await ids(states=[]) == ([], 0)
    assert await ids(labels={"env": "prod"}) == (["d", "c"], 2)
    assert await ids(labels={"env": "prod", "team": "x"}) == (["c"], 1)
    assert await ids(labels={"env": "x"}) == ([], 0)
    # half-open window, compared in UTC: c starts at 2026-01-02T23:00:00Z
    window = {"start_after": "2026-01-02T00:00:00Z", "start_before": "2026-01-02T23:00:00Z"}
    assert await ids(**window) == (["b", "e"], 2)
    assert await ids(start_after="2026-01-02T00:00:00.1Z") == (["d", "c", "b"], 3)
    assert await ids(start_before="2026-01-02T23:00:00.000001Z") == (["c", "b", "e", "a"], 4)
    assert await ids(page=1, size=2) == (["d", "c"], 5)
    assert await ids(page=3, size=2) == (["a"], 5)
    assert await ids(page=4, size=2) == ([], 5)
    assert await ids(namespace="company", states=["RUNNING"], size=1) == (["b"], 2)
    with pytest.raises(ValueError, match="page"):
        await store.search_executions(page=0)


async def test_count_executions_by_flow_and_state(store: Store) -> None:
    await store.save_execution(execution("a", state="RUNNING"))
    await store.save_execution(execution("b", state="QUEUED"))
    await store.save_execution(execution("c", state="SUCCESS"))
    await store.save_execution(execution("d", state="RUNNING", flow_id="other"))
    assert await store.count_executions("company.team", "hello", ["RUNNING", "QUEUED"]) == 2
    assert await store.count_executions("company", "hello", ["RUNNING"]) == 0
    assert await store.count_executions("company.team", "hello", []) == 0


async def test_delete_execution_takes_its_task_runs_logs_and_metrics(store: Store) -> None:
    await store.save_execution(execution("e1"))
    await store.save_execution(execution("e2"))
    await store.save_task_run(task_run("t1"))
    await store.save_task_run(task_run("t2", execution_id="e2"))
    store.append_logs([log("x")])
    store.append_metrics([{"executionId": "e1", "name": "rows", "value": 3}])
    await store.delete_execution("e1")
    assert await store.get_execution("e1") is None
    assert await store.logs("e1") == []
    assert await store.metrics("e1") == []
    other = await store.get_execution("e2")
    assert other is not None
    assert [t["id"] for t in other["taskRunList"]] == ["t2"]


# logs and metrics


async def test_logs_come_back_in_order_written_and_filter_by_level(store: Store) -> None:
    lines = [
        log("one", "DEBUG"),
        log("two", "INFO", task_run_id=None),
        log("three", "WARN", task_run_id="t2"),
        log("four", "ERROR"),
        log("five", "TRACE"),
    ]
    store.append_logs(lines[:2])
    store.append_logs(lines[2:])
    store.append_logs([])
    await store.flush()
    assert await store.logs("e1") == lines
    assert [x["message"] for x in await store.logs("e1", min_level="WARN")] == ["three", "four"]
    assert [x["message"] for x in await store.logs("e1", task_run_id="t1")] == [
        "one",
        "four",
        "five",
    ]
    assert await store.logs("e1", task_run_id="t1", min_level="INFO") == [lines[3]]
    assert await store.logs("other") == []
    with pytest.raises(ValueError, match="min_level"):
        await store.logs("e1", min_level="LOUD")


async def test_a_bad_log_line_refuses_the_whole_call(store: Store) -> None:
    with pytest.raises(ValueError, match="level 'WARNING'"):
        store.append_logs([log("ok"), log("bad", "WARNING")])
    with pytest.raises(ValueError, match="executionId"):
        store.append_logs([{"message": "orphan"}])
    await store.flush()
    assert await store.logs("e1") == []


async def test_logs_can_be_appended_from_another_thread(store: Store) -> None:
    await asyncio.to_thread(store.append_logs, [log("from a thread")])
    await store.flush()
    assert [x["message"] for x in await store.logs("e1")] == ["from a thread"]


async def test_metrics_round_trip_in_order(store: Store) -> None:
    metrics = [
        {"executionId": "e1", "taskRunId": "t1", "taskId": "x", "name": n, "type": "counter",
         "value": v, "tags": {"k": "v"}, "timestamp": "2026-01-01T00:00:00Z"}
        for n, v in (("rows", 10), ("bytes", 2.5), ("rows", 11))
    ]  # fmt: skip
    store.append_metrics(metrics)
    await store.flush()
    assert await store.metrics("e1") == metrics
    assert await store.metrics("e2") == []


# KV


@pytest.mark.parametrize("value", ["text", 42, 1.5, True, None, [1, "a"], {"deep": {"x": [1]}}])
async def test_kv_keeps_the_type_of_the_value(store: Store, value: Any) -> None:
    assert await store.kv.get("ns", "k") == (False, None)
    await store.kv.set("ns", "k", value)
    assert await store.kv.get("ns", "k") == (True, value)


async def test_kv_is_scoped_by_namespace_and_overwritten(store: Store) -> None:
    await store.kv.set("a", "k", 1)
    await store.kv.set("b", "k", 2)
    await store.kv.set("a", "k", 3)
    await store.kv.set("a", "j", "x")
    assert await store.kv.get("a", "k") == (True, 3)
    assert await store.kv.get("b", "k") == (True, 2)
    assert [(e["key"], e["value"]) for e in await store.kv.list("a")] == [("j", "x"), ("k", 3)]
    assert await store.kv.delete("a", "k") is True
    assert await store.kv.delete("a", "k") is False
    assert await store.kv.get("a", "k") == (False, None)
    assert await store.kv.get("b", "k") == (True, 2)


async def test_expired_kv_key_reads_as_missing(store: Store, clock: FakeClock) -> None:
    expiry = iso(clock.now() + timedelta(seconds=10))
    assert expiry is not None
    await store.kv.set("ns", "short", "v", expires_at=expiry)
    await store.kv.set("ns", "long", "w")
    assert await store.kv.get("ns", "short") == (True, "v")
    listed = await store.kv.list("ns")
    assert [e["key"] for e in listed] == ["long", "short"]
    assert listed[0]["expiresAt"] is None
    assert listed[1]["expiresAt"] is not None
    await clock.advance(10)
    assert await store.kv.get("ns", "short") == (False, None)
    assert [e["key"] for e in await store.kv.list("ns")] == ["long"]
    assert await store.kv.delete("ns", "short") is False
    await store.kv.set("ns", "short", "again")
    assert await store.kv.get("ns", "short") == (True, "again")


# trigger state and claims


async def test_state_round_trip(store: Store) -> None:
    assert await store.state.get("schedule:ns.f.daily") is None
    await store.state.set("schedule:ns.f.daily", {"last": "2026-01-01T00:00:00Z"})
    await store.state.set("schedule:ns.f.daily", {"last": "2026-01-02T00:00:00Z", "n": 2})
    assert await store.state.get("schedule:ns.f.daily") == {
        "last": "2026-01-02T00:00:00Z",
        "n": 2,
    }


async def test_claim_is_true_once_even_across_restarts(make_store: Factory) -> None:
    async with make_store() as store:
        assert await store.state.claim("file:/in/a.csv:abc") is True
        assert await store.state.claim("file:/in/a.csv:abc") is False
        assert await store.state.claim("file:/in/b.csv:def") is True
    async with make_store() as store:
        assert await store.state.claim("file:/in/a.csv:abc") is False


async def test_claimed_reads_a_claim_without_taking_it(make_store: Factory) -> None:
    """podium's own: the file triggers write down a batch before they claim its files."""
    async with make_store() as store:
        assert await store.state.claimed("file:/in/a.csv:abc") is False
        assert await store.state.claimed("file:/in/a.csv:abc") is False
        assert await store.state.claim("file:/in/a.csv:abc") is True
    async with make_store() as store:
        assert await store.state.claimed("file:/in/a.csv:abc") is True


async def test_concurrent_claims_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.state.claim("slot:2026-01-01T00:00Z") for _ in range(20))
    )
    assert sorted(results) == [False] * 19 + [True]


async def test_claims_from_two_instances_have_one_winner_per_key(make_store: Factory) -> None:
    async with make_store() as one, make_store() as two:
        results = await asyncio.gather(*(
            store.state.claim(f"slot:{key}") for key in range(10) for store in (one, two)
        ))  # fmt: skip
        assert [sorted(results[i : i + 2]) for i in range(0, 20, 2)] == [[False, True]] * 10


# lifecycle and sharing the database


async def test_a_second_instance_reads_what_the_first_writes(make_store: Factory) -> None:
    async with make_store() as daemon, make_store() as cli:
        await daemon.save_execution(execution("e1"))
        await daemon.save_task_run(task_run("t1"))
        got = await cli.get_execution("e1")
        assert got is not None
        assert [t["id"] for t in got["taskRunList"]] == ["t1"]
        await daemon.save_task_run(task_run("t2"))
        assert (await cli.search_executions(namespace="company"))[1] == 1
        got = await cli.get_execution("e1")
        assert got is not None
        assert len(got["taskRunList"]) == 2


async def test_reopening_keeps_the_data(make_store: Factory) -> None:
    async with make_store() as store:
        await store.save_flow("ns", "f", "a")
        await store.save_execution(execution("e1"))
        await store.kv.set("ns", "k", [1])
    async with make_store() as store:
        assert await store.get_flow("ns", "f") == (1, "a")
        assert await store.get_execution("e1") is not None
        assert await store.kv.get("ns", "k") == (True, [1])


async def test_a_store_that_is_not_open_says_so(make_store: Factory) -> None:
    store = make_store()
    with pytest.raises(StoreError, match="not open"):
        await store.get_execution("e1")
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.save_execution(execution("e1"))
    with pytest.raises(StoreError, match="not open"):
        store.append_logs([log("late")])


# SQLite only


def _sql(path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


async def test_sqlite_reopen_does_not_rerun_migrations(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "podium.db"
    async with SqliteStore(path, clock=clock):
        pass
    applied = await asyncio.to_thread(_sql, path, "SELECT * FROM schema_version")
    assert [version for version, _ in applied] == list(range(1, len(MIGRATIONS) + 1))
    await clock.advance(3600)
    async with SqliteStore(path, clock=clock):
        pass
    assert await asyncio.to_thread(_sql, path, "SELECT * FROM schema_version") == applied
    assert await asyncio.to_thread(_sql, path, "PRAGMA journal_mode") == [("wal",)]


async def test_sqlite_newer_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    async with SqliteStore(path):
        pass
    await asyncio.to_thread(_sql, path, "INSERT INTO schema_version VALUES (999, 'future')")
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        await SqliteStore(path).open()


async def test_sqlite_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    await asyncio.to_thread(path.write_text, "flows:\n  - id: hello\n" * 100)
    with pytest.raises(StoreError, match=r"podium\.db: not a usable SQLite database"):
        await SqliteStore(path).open()


async def test_sqlite_failing_write_costs_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    async with SqliteStore(path) as store:
        await asyncio.to_thread(
            _sql,
            path,
            "CREATE TRIGGER refuse BEFORE INSERT ON task_runs WHEN NEW.id = 'bad'"
            " BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        ids = ["t0", "t1", "bad", "t2"]
        results = await asyncio.gather(
            *(store.save_task_run(task_run(i)) for i in ids), return_exceptions=True
        )
        assert results[:2] == [None, None] and results[3] is None
        assert isinstance(results[2], StoreError)
        assert "task run bad" in str(results[2]) and "refused by test" in str(results[2])
        await store.save_execution(execution("e1"))
        got = await store.get_execution("e1")
        assert got is not None
        assert [t["id"] for t in got["taskRunList"]] == ["t0", "t1", "t2"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("data", "data/podium.db"),
        ("data/my.db", "data/my.db"),
        ("sqlite://{tmp}/x.sqlite", "x.sqlite"),
    ],
)
async def test_open_store_picks_the_file(tmp_path: Path, setting: str, expected: str) -> None:
    text = setting.format(tmp=tmp_path) if "{tmp}" in setting else str(tmp_path / setting)
    async with open_store(text) as store:
        assert isinstance(store, SqliteStore)
        assert str(store.path).endswith(expected)
        assert await store.state.claim("x") is True
    assert await asyncio.to_thread((tmp_path / expected).exists)


# what the UI asks across executions (issue #15): text search, deleted task runs, insights


async def test_search_takes_text_found_in_the_id_namespace_or_flow(store: Store) -> None:
    await store.save_execution(execution("abc123", namespace="sales.eu", flow_id="daily_load"))
    await store.save_execution(execution("xyz789", namespace="ops", flow_id="cleanup"))
    for text, expected in (("LOAD", ["abc123"]), ("sales", ["abc123"]), ("yz7", ["xyz789"]),
                           ("nowhere", [])):  # fmt: skip
        found, total = await store.search_executions(q=text)
        assert ([d["id"] for d in found], total) == (expected, len(expected)), text


async def test_search_latest_end_takes_ended_executions_the_last_to_end_first(
    store: Store,
) -> None:
    """Kestra's JdbcExecutionRepository.lastExecutions: executions with an end date only,
    ordered by it (an execution started first may end last)."""
    early = execution("early", state="SUCCESS", start="2026-01-01T00:00:00Z")
    early["state"]["endDate"] = "2026-01-01T05:00:00Z"
    late = execution("late", state="FAILED", start="2026-01-01T01:00:00Z")
    late["state"]["endDate"] = "2026-01-01T02:00:00+01:00"  # 01:00 UTC: before early's end
    for doc in (early, late, execution("running", start="2026-01-01T03:00:00Z")):
        await store.save_execution(doc)
    found, total = await store.search_executions(flow_id="hello", latest_end=True, size=1)
    assert ([d["id"] for d in found], total) == (["early"], 2)
    everything, _ = await store.search_executions(latest_end=True)
    assert [d["id"] for d in everything] == ["early", "late"]


async def test_delete_task_runs_removes_only_those_of_that_execution(store: Store) -> None:
    await store.save_execution(execution("e1"))
    await store.save_execution(execution("e2"))
    for ident, owner in (("t1", "e1"), ("t2", "e1"), ("t3", "e2")):
        await store.save_task_run(task_run(ident, execution_id=owner))
    await store.delete_task_runs("e1", ["t1", "t3"])
    await store.delete_task_runs("e1", [])
    one, two = await store.get_execution("e1"), await store.get_execution("e2")
    assert one is not None and two is not None
    assert [t["id"] for t in one["taskRunList"]] == ["t2"]
    assert [t["id"] for t in two["taskRunList"]] == ["t3"]


async def test_insights_list_the_executions_of_a_window_in_brief(store: Store) -> None:
    from daemon.store.insights import Window

    ended = execution("e1", state="SUCCESS", start="2026-01-01T10:00:00Z")
    ended["state"]["endDate"] = "2026-01-01T10:00:03.5Z"
    await store.save_execution(ended)
    await store.save_execution(execution("e2", namespace="other", start="2026-01-01T11:00:00Z"))
    await store.save_execution(execution("e3", start="2026-01-02T10:00:00Z"))
    briefs = await store.insights.execution_briefs(
        Window.of(after="2026-01-01T00:00:00Z", before="2026-01-02T00:00:00Z")
    )
    assert [(b["id"], b["state"]) for b in briefs] == [("e1", "SUCCESS"), ("e2", "RUNNING")]
    assert briefs[0]["startDate"] == "2026-01-01T10:00:00.000000Z"
    assert briefs[0]["endDate"] == "2026-01-01T10:00:03.500000Z" and briefs[1]["endDate"] is None
    only = await store.insights.execution_briefs(Window.of(namespace="company", flow_id="hello"))
    assert [b["id"] for b in only] == ["e1", "e3"]


async def test_insights_search_log_lines_of_every_execution(store: Store) -> None:
    from daemon.store.insights import Window

    await store.save_execution(execution("e1", start="2026-01-01T10:00:00Z"))
    await store.save_execution(execution("e2", namespace="other", start="2026-01-03T10:00:00Z"))
    store.append_logs([
        {**log("Loading the Orders table", "INFO"), "executionId": "e1"},
        {**log("orders loaded: 42", "WARN"), "executionId": "e2"},
        {**log("unrelated", "ERROR"), "executionId": "e2"},
    ])  # fmt: skip
    await store.flush()
    lines, total = await store.insights.search_logs(Window(), text="ORDERS")
    assert ([line["message"] for line in lines], total) == (
        ["orders loaded: 42", "Loading the Orders table"],
        2,
    )
    lines, total = await store.insights.search_logs(Window(), min_level="WARN", page=1, size=1)
    assert (lines[0]["message"], total) == ("unrelated", 2)
    lines, _ = await store.insights.search_logs(Window.of(namespace="company"), text="orders")
    assert [line["message"] for line in lines] == ["Loading the Orders table"]
    lines, _ = await store.insights.search_logs(Window.of(after="2026-01-02T00:00:00Z"))
    assert {line["executionId"] for line in lines} == {"e2"}


@pytest.mark.parametrize(
    ("given", "indexed"),
    [
        ("2026-12-07T01:02:03.123456Z", "2026-12-07T01:02:03.123456Z"),  # kept as is
        ("2026-12-07T01:02:03Z", "2026-12-07T01:02:03.000000Z"),  # Kestra's whole second
        ("2026-12-07T01:02:03.123+00:00", "2026-12-07T01:02:03.123000Z"),
        ("2026-12-07T01:02:03.123456+02:00", "2026-12-06T23:02:03.123456Z"),
        ("2026-12-07 01:02:03.123456Z", "2026-12-07T01:02:03.123456Z"),  # same width, a space
        ("2026-12-07T01:02:03.123456", "2026-12-07T01:02:03.123456Z"),  # naive: UTC
    ],
)
def test_indexed_dates_have_one_width_so_text_order_is_time_order(given: str, indexed: str) -> None:
    assert sortable_time(given) == indexed


@pytest.mark.parametrize("bad", ["2026-13-07T01:02:03.123456Z", "yesterday", "", 12])
def test_an_indexed_date_that_is_no_date_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="is not an ISO-8601 date"):
        sortable_time(bad, "execution 'x' startDate")
