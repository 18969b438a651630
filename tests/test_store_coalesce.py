"""Writes that replace one row whole, several in one group commit, run once (issue #18: the
writer thread's share of a short execution was one statement per state change). The row
ends with its last content at the position of its first write; writes that could see the
difference keep them apart."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.store.sqlite import SqliteStore
from daemon.store.sqlite_batch import APPEND_ONLY, Op, Write, coalesced
from tests.test_store import execution, log, task_run

UPSERT = "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v"
CREATE = "INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, v TEXT)")
    db.execute("CREATE TABLE other (n INTEGER)")
    yield db
    db.close()


class Recorder:
    """Writes that note each statement they run."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def upsert(self, ident: str, value: str) -> Op:
        fn = self._fn(UPSERT, ident, value)
        return Op(fn, f"{ident}={value}", None, None, ("t", ident), replaces=True)

    def create(self, ident: str, value: str) -> Op:
        return Op(self._fn(CREATE, ident, value), f"create {ident}", None, None, ("t", ident))

    def other(self, key: tuple[str, str] | None) -> Op:
        def fn(conn: sqlite3.Connection) -> int:
            self.ran.append("other")
            return conn.execute("INSERT INTO other VALUES (1)").rowcount

        return Op(fn, "other", None, None, key)

    def _fn(self, sql: str, ident: str, value: str) -> Write:
        def fn(conn: sqlite3.Connection) -> int:
            self.ran.append(f"{ident}={value}")
            return conn.execute(sql, (ident, value)).rowcount

        return fn


def run(conn: sqlite3.Connection, ops: list[Op]) -> list[Any]:
    return [None if fn is None else fn(conn) for fn in coalesced(ops)]


def rows(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT id, v FROM t ORDER BY seq").fetchall()


def test_a_row_replaced_several_times_is_written_once_with_its_last_content_where_it_was_first(
    conn: sqlite3.Connection,
) -> None:
    rec = Recorder()
    run(conn, [rec.upsert("a", "1"), rec.upsert("b", "1"), rec.upsert("a", "2")])
    assert rec.ran == ["a=2", "b=1"]
    # `a` keeps the rowid of its first write: task runs are listed by it
    assert rows(conn) == [("a", "2"), ("b", "1")]


def test_three_writes_of_one_row_run_as_one(conn: sqlite3.Connection) -> None:
    rec = Recorder()
    ops = [rec.upsert("a", "1"), rec.upsert("a", "2"), rec.upsert("a", "3")]
    assert coalesced(ops)[1:] == [None, None]
    run(conn, ops)
    assert rec.ran == ["a=3"] and rows(conn) == [("a", "3")]


def test_an_insert_that_must_find_the_row_absent_keeps_the_writes_around_it_apart(
    conn: sqlite3.Connection,
) -> None:
    """create_execution answers whether it created the row: merging the upsert before it
    into the one after would change that answer."""
    rec = Recorder()
    results = run(conn, [rec.upsert("a", "1"), rec.create("a", "x"), rec.upsert("a", "2")])
    assert rec.ran == ["a=1", "a=x", "a=2"]
    assert results == [1, 0, 1]
    assert rows(conn) == [("a", "2")]


def test_a_write_without_a_key_keeps_every_row_apart(conn: sqlite3.Connection) -> None:
    """Any other statement (a kill's UPDATE, a purge) may read the rows: a barrier."""
    rec = Recorder()
    run(conn, [rec.upsert("a", "1"), rec.other(None), rec.upsert("a", "2")])
    assert rec.ran == ["a=1", "other", "a=2"]


def test_appends_stand_between_nothing(conn: sqlite3.Connection) -> None:
    rec = Recorder()
    run(conn, [rec.upsert("a", "1"), rec.other(APPEND_ONLY), rec.upsert("a", "2")])
    assert rec.ran == ["a=2", "other"]
    assert rows(conn) == [("a", "2")]


def test_writes_of_other_rows_are_not_merged(conn: sqlite3.Connection) -> None:
    rec = Recorder()
    run(conn, [rec.upsert("a", "1"), rec.upsert("b", "1"), rec.upsert("c", "1")])
    assert rec.ran == ["a=1", "b=1", "c=1"]


def test_merging_starts_again_after_a_barrier(conn: sqlite3.Connection) -> None:
    rec = Recorder()
    ops = [rec.upsert("a", "1"), rec.upsert("a", "2"), rec.other(None)]
    ops += [rec.upsert("a", "3"), rec.upsert("a", "4")]
    run(conn, ops)
    assert rec.ran == ["a=2", "other", "a=4"]


def test_an_empty_batch_runs_nothing() -> None:
    assert coalesced([]) == []


async def test_the_store_keeps_the_last_state_and_the_order_of_first_writes(
    tmp_path: Path,
) -> None:
    """Through the store: an execution saved RUNNING then SUCCESS, task runs RUNNING then
    SUCCESS interleaved, logs among them, all in one loop iteration (one transaction)."""
    store = SqliteStore(tmp_path / "podium.db")
    await store.open()
    try:
        await store.create_execution(execution("e1", state="CREATED"))
        await store.save_execution(execution("e1", state="RUNNING"), wait=False)
        await store.save_task_run(task_run("t1", state="RUNNING"), wait=False)
        store.append_logs([log("started", task_run_id="t1")])
        await store.save_task_run(task_run("t2", state="RUNNING"), wait=False)
        await store.save_task_run(task_run("t1", state="SUCCESS"), wait=False)
        await store.save_task_run(task_run("t2", state="FAILED"), wait=False)
        await store.save_execution(execution("e1", state="FAILED"))
        doc = await store.get_execution("e1")
        assert doc is not None
        assert doc["state"]["current"] == "FAILED"
        assert [(t["id"], t["state"]["current"]) for t in doc["taskRunList"]] == [
            ("t1", "SUCCESS"),
            ("t2", "FAILED"),
        ]
        assert [line["message"] for line in await store.logs("e1")] == ["started"]
    finally:
        await store.close()


async def test_a_bad_write_in_a_coalesced_batch_costs_only_itself(tmp_path: Path) -> None:
    """A bad write costs only itself: after the batch fails, every write runs on its own,
    the good ones each with its own content."""
    store = SqliteStore(tmp_path / "podium.db")
    await store.open()
    try:

        def bad(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        io = store._io
        first = io.put(lambda conn: None, "a write before", True)
        await store.save_execution(execution("e1", state="RUNNING"), wait=False)
        failing = io.put(bad, "a bad write", True)
        await store.save_execution(execution("e1", state="SUCCESS"), wait=False)
        assert first is not None and failing is not None
        await first
        with pytest.raises(Exception, match="no_such_table"):
            await failing
        await store.flush()
        doc = await store.get_execution("e1")
        assert doc is not None and doc["state"]["current"] == "SUCCESS"
    finally:
        await store.close()
