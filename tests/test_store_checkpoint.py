"""The embedded store's WAL is copied back by its own thread, not inside a commit, and
stays bounded under sustained writes.

SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages and
fsyncs the database file there: the callers of that group commit wait for it (issue #18,
the webhook's p99). https://www.sqlite.org/wal.html#automatic_checkpoint says how it works
and that an application may checkpoint from another thread instead, which is what
daemon/store/sqlite_checkpoint.py does; the writer thread checkpoints between two
transactions once the WAL is much larger (sqlite_io.WRITER_CHECKPOINT_PAGES) for the load
the checkpointer thread cannot catch up with.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from daemon.store import SqliteStore, sqlite_io

VALUE = "x" * 64_000  # ~16 pages per write


async def _size(path: Path) -> int:
    return (await asyncio.to_thread(path.stat)).st_size


async def _grown(path: Path, size: int, seconds: float = 15.0) -> int:
    """The file's size once it reached `size` (or its size after `seconds`)."""
    for _ in range(int(seconds / 0.05)):
        now = await _size(path)
        if now >= size:
            return now
        await asyncio.sleep(0.05)
    return await _size(path)


async def test_the_writer_leaves_a_small_wal_to_the_checkpointer_thread(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    store = SqliteStore(db)
    async with store:
        # no automatic checkpoint inside a commit: a commit may run on the event loop
        writer_setting = await store._io.write(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0], "read pragma"
        )
        assert writer_setting == 0
        before = await _size(db)
        for n in range(100):  # ~6 MB, in the WAL first
            await store.state.set(f"k{n}", {"v": VALUE})
        # Only a checkpoint copies pages into the database file itself.
        grown = await _grown(db, before + 6_000_000)
        assert grown >= before + 6_000_000, (before, grown)
        # The file grows while the checkpoint copies; it is counted once it is over.
        for _ in range(300):
            if store._io.checkpointer.checkpoints >= 1:
                break
            await asyncio.sleep(0.05)
        assert store._io.checkpointer.checkpoints >= 1
        assert (await store.state.get("k99")) == {"v": VALUE}


async def test_the_wal_stops_growing_when_checkpoints_keep_up(tmp_path: Path) -> None:
    """Once a checkpoint copied every frame back, the next commit starts the WAL over
    from its beginning: 30 MB written in bursts leave a WAL of a few bursts at most."""
    db = tmp_path / "podium.db"
    wal = tmp_path / "podium.db-wal"
    store = SqliteStore(db)
    async with store:
        for burst in range(10):  # ~3 MB each
            for n in range(50):
                await store.state.set(f"b{burst}-{n}", {"v": VALUE})
            seen = store._io.checkpointer.checkpoints
            for _ in range(200):  # until the checkpointer ran after this burst
                if store._io.checkpointer.checkpoints > seen:
                    break
                await asyncio.sleep(0.05)
        wal_size = await _size(wal)
        assert wal_size < 12_000_000, wal_size
        assert await _size(db) >= 25_000_000
    # closed: the last connection copied everything back and removed the WAL
    assert not await asyncio.to_thread(wal.exists)

    def count() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM state").fetchone()[0])

    assert await asyncio.to_thread(count) == 500


async def test_sustained_writes_leave_a_bounded_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes without a pause: the thread's checkpoints never copy every frame (more are
    appended meanwhile) and the WAL would never start over; it grew to 2 GB in 8 s beside a
    20 MB database. The writer's own checkpoint past WRITER_CHECKPOINT_PAGES bounds it."""
    monkeypatch.setattr(sqlite_io, "WRITER_CHECKPOINT_PAGES", 1_000)  # ~4 MB
    monkeypatch.setattr(sqlite_io, "WAL_SIZE_LIMIT", 4 * 1024 * 1024)
    db = tmp_path / "podium.db"
    wal = tmp_path / "podium.db-wal"
    largest = 0
    async with SqliteStore(db) as store:
        until = time.monotonic() + 3.0

        async def write(writer: int) -> None:
            n = 0
            while time.monotonic() < until:
                await store.state.set(f"w{writer}-{n % 50}", {"v": VALUE})
                n += 1

        async def watch() -> None:
            nonlocal largest
            while time.monotonic() < until:
                largest = max(largest, await _size(wal))
                await asyncio.sleep(0.05)

        await asyncio.gather(watch(), *(write(w) for w in range(8)))
        written = await _size(db) + await _size(wal)
    assert written > 20_000_000, written  # it did write a lot
    assert largest < 24_000_000, largest  # a few times the bound at most, never hundreds
