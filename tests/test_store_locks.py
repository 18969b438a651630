"""The embedded store keeps SQLite's file locks for as long as it is open.

SQLite's "How To Corrupt An SQLite Database File" (https://www.sqlite.org/howtocorrupt.html,
2.2): closing any descriptor of a database file drops every POSIX advisory lock the
process holds on it, SQLite's included. The store reads the file's header to notice a
corrupted file (daemon/store/sqlite_file.py); done with a fresh `open()`/`close()`, that
check dropped the shared lock of the daemon's connections, and the next process to close
a connection to the file (`podium executions list`, the sqlite3 shell) took itself for the
last one, checkpointed and deleted the WAL under the running daemon.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from daemon.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
# SQLite's unix VFS: a shared lock is a read lock on bytes PENDING_BYTE+2 .. +511
SHARED_FIRST, SHARED_SIZE = 0x40000000 + 2, 510


def _locked_by_another_process(db: Path) -> bool:
    """Asked from a child process: a process sees no conflict with its own locks."""
    probe = textwrap.dedent(
        f"""
        import fcntl, os, struct, sys
        fd = os.open(sys.argv[1], os.O_RDONLY)
        ask = struct.pack("hhqqi", fcntl.F_WRLCK, 0, {SHARED_FIRST}, {SHARED_SIZE}, 0)
        kind = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, ask))[0]
        print("locked" if kind != fcntl.F_UNLCK else "free")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(db)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "locked"


def _other_process_reads(db: Path) -> None:
    """What `podium executions list` does to the file: a connection, a read, a close."""
    code = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    code += "c.execute('SELECT count(*) FROM state').fetchone(); c.close()"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True)


async def test_the_header_check_keeps_sqlites_shared_lock(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    async with SqliteStore(db) as store:
        await store.state.set("a", {"v": 1})
        assert await asyncio.to_thread(_locked_by_another_process, db)
        assert await store.problem() is None  # reads the header
        assert await asyncio.to_thread(_locked_by_another_process, db)


async def test_another_process_reading_leaves_the_daemons_wal_alone(tmp_path: Path) -> None:
    """While podium serves, another process reads the file and closes its connection: the
    WAL stays, since podium's connections still use it."""
    db = tmp_path / "podium.db"
    async with SqliteStore(db) as store:
        await store.state.set("a", {"v": 1})
        assert await store.problem() is None
        await asyncio.to_thread(_other_process_reads, db)
        assert await asyncio.to_thread((tmp_path / "podium.db-wal").exists)
        await store.state.set("b", {"v": 2})
        assert await store.state.get("b") == {"v": 2}


def test_a_commit_after_another_process_read_survives_a_crash(tmp_path: Path) -> None:
    """The loss the dropped lock caused: a commit podium reported durable, made after
    another process read the file, was gone after a crash (kill -9, power cut)."""
    db = tmp_path / "podium.db"
    daemon = textwrap.dedent(
        """
        import asyncio, os, subprocess, sys
        from daemon.store.sqlite import SqliteStore

        async def main(db):
            store = SqliteStore(db)
            await store.open()
            await store.state.set("a", {"v": 1})
            await store.problem()
            code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('SELECT count(*) FROM state').fetchone(); c.close()")
            subprocess.run([sys.executable, "-c", code, db], check=True)
            await store.state.set("b", {"v": 2})
            os._exit(9)  # crashes with "b" committed

        asyncio.run(main(sys.argv[1]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run([sys.executable, "-c", daemon, str(db)], env=env, timeout=60)
    assert crashed.returncode == 9
    with sqlite3.connect(db) as conn:
        keys = sorted(row[0] for row in conn.execute("SELECT key FROM state"))
    assert keys == ["a", "b"]


async def test_two_stores_on_one_file_share_its_descriptor(tmp_path: Path) -> None:
    """The second store on a file does not open (and later close) one of its own: closing
    the first leaves the second's locks in place, and the last close lets go of it."""
    db = tmp_path / "podium.db"

    def descriptors() -> int:
        return sum(
            1
            for fd in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{fd}") == str(db)
        )

    first = SqliteStore(db)
    await first.open()
    second = SqliteStore(db)
    await second.open()
    await second.state.set("a", {"v": 1})
    await first.close()
    assert await second.problem() is None
    assert await asyncio.to_thread(_locked_by_another_process, db)
    await second.close()
    assert await asyncio.to_thread(descriptors) == 0
