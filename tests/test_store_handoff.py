"""The embedded store commits the writes of one loop iteration together, on the loop itself
while its writer thread is idle, else through the writer thread; it loses none of them on
the way and never lets a later write overtake an earlier one.

Issue #18: one wake-up of the writer and one GIL hand-off per write was a good part of
what a short execution cost; handing even one batch to the thread and back costs ~90 us at
the median and ~1 ms at the 99th percentile, a commit in WAL mode without fsync ~25 us.
SQLite's own word on WAL commits and checkpoints: https://www.sqlite.org/wal.html"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from daemon.store import sqlite_io
from daemon.store.sqlite import SqliteStore
from tests.test_store import log


class CountingQueue(queue.SimpleQueue[Any]):
    """The writer's queue, counting what is put in it."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[int] = []

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.puts.append(-1 if item is None else len(item))
        super().put(item, block, timeout)


async def _opened(path: Path) -> tuple[SqliteStore, CountingQueue]:
    store = SqliteStore(path)
    counting = CountingQueue()
    store._io._queue = counting  # before the writer thread starts reading it
    await store.open()
    return store, counting


def _frames(path: Path) -> int:
    """The frames in the WAL, as another connection's checkpoint counts them."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def _thread(conn: sqlite3.Connection) -> int:
    """A write that says which thread committed it."""
    return threading.get_ident()


async def test_the_writes_of_one_iteration_commit_together_on_the_idle_loop(
    tmp_path: Path,
) -> None:
    store, counting = await _opened(tmp_path / "podium.db")
    try:
        await store.flush()  # what opening the store wrote
        commits = store._io.commits
        for n in range(100):
            store.append_logs([log(f"line {n}")])
        waited = store.state.set("k", {"v": 1})  # awaited below: joins the same commit
        where = store._io.put(_thread, "which thread", wait=True)
        assert where is not None
        await waited
        assert await where == threading.get_ident()  # the loop's own thread
        assert store._io.commits == commits + 1
        assert counting.puts == []  # the writer thread was never woken
        assert len(await store.logs("e1")) == 100
        assert await store.state.get("k") == {"v": 1}
    finally:
        await store.close()


async def test_a_write_lock_held_elsewhere_never_blocks_the_loop_and_keeps_order(
    tmp_path: Path,
) -> None:
    """Another process (`podium executions delete`, the sqlite3 shell) holding SQLite's
    write lock: the loop goes on turning, the writes wait on the writer thread, in order."""
    path = tmp_path / "podium.db"
    store, counting = await _opened(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        first = asyncio.ensure_future(store.state.set("k", {"v": 1}))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(store.state.set("k", {"v": 2}))
        where = asyncio.ensure_future(store._io.write(_thread, "which thread"))
        turns = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            turns += 1
        assert turns == 20
        assert not first.done() and not second.done()
        assert counting.puts == [1, 2]  # the next iteration's batch queued behind the first
        await asyncio.to_thread(other.execute, "COMMIT")
        await asyncio.gather(first, second)
        assert await where != threading.get_ident()
        assert await store.state.get("k") == {"v": 2}
        # the thread caught up: the next commit is on the loop again
        assert await store._io.write(_thread, "which thread") == threading.get_ident()
    finally:
        await asyncio.to_thread(other.close)
        await store.close()


async def test_a_wal_past_its_bound_is_committed_and_checkpointed_by_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint copies pages and fsyncs: never on the loop. Past the bound, the commit
    goes to the writer thread, whose commit checkpoints, and the WAL starts over."""
    monkeypatch.setattr(sqlite_io, "WRITER_CHECKPOINT_PAGES", 100)  # ~400 KB
    store, _counting = await _opened(tmp_path / "podium.db")
    wal = tmp_path / "podium.db-wal"
    try:
        await asyncio.to_thread(store._io.checkpointer.stop)  # only the writer's is left
        big = "x" * 64_000
        while (await asyncio.to_thread(wal.stat)).st_size <= 100 * 4096:
            assert await store._io.write(_thread, "which thread") == threading.get_ident()
            await store.state.set("big", {"v": big})
        assert await store._io.write(_thread, "which thread") != threading.get_ident()
        for _ in range(3):  # the WAL starts over from its beginning at the next commit
            await store.state.set("small", {"v": 1})
        assert await asyncio.to_thread(_frames, tmp_path / "podium.db") < 100
        assert await store.state.get("big") == {"v": big}
    finally:
        await store.close()


async def test_writes_from_a_thread_without_a_loop_go_straight_to_the_writer(
    tmp_path: Path,
) -> None:
    store, counting = await _opened(tmp_path / "podium.db")
    try:
        thread = threading.Thread(target=store.append_logs, args=([log("from a thread")],))
        thread.start()
        await asyncio.to_thread(thread.join)
        await store.flush()
        assert counting.puts[0] == 1
        assert [line["message"] for line in await store.logs("e1")] == ["from a thread"]
    finally:
        await store.close()


async def test_writes_not_yet_handed_over_are_committed_by_close(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    store, counting = await _opened(path)
    store.append_logs([log("last words")])  # no await between this and close
    await store.close()
    assert counting.puts == [-1]  # committed on the loop, then the thread told to stop
    async with SqliteStore(path) as again:
        assert [line["message"] for line in await again.logs("e1")] == ["last words"]


async def test_unawaited_writes_wait_to_share_the_next_awaited_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An execution's RUNNING, its task runs and logs are written without waiting: held
    back, they share the commit of the awaited end instead of costing one commit each."""
    monkeypatch.setattr(sqlite_io, "UNAWAITED_DELAY", 60.0)
    store, _counting = await _opened(tmp_path / "podium.db")
    try:
        await store.flush()
        commits = store._io.commits
        for n in range(3):  # three loop iterations, one unawaited write each
            store.append_logs([log(f"line {n}")])
            await asyncio.sleep(0)
        assert store._io.commits == commits
        await store.state.set("k", {"v": 1})
        assert store._io.commits == commits + 1
        assert [line["message"] for line in await store.logs("e1")] == [
            "line 0",
            "line 1",
            "line 2",
        ]
    finally:
        await store.close()


async def test_an_unawaited_write_alone_is_still_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_io, "UNAWAITED_DELAY", 0.01)
    store, _counting = await _opened(tmp_path / "podium.db")
    try:
        await store.flush()
        commits = store._io.commits
        store.append_logs([log("alone")])
        for _ in range(500):
            if store._io.commits > commits:
                break
            await asyncio.sleep(0.01)
        assert store._io.commits == commits + 1
        assert [line["message"] for line in await store.logs("e1")] == ["alone"]
    finally:
        await store.close()
