"""The embedded store's connections to its SQLite file, and the pool its reads use."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

# Each connection's page cache (SQLite's default is 2 MiB) fills as the database grows,
# one per reader thread plus the writer: bounded small, the daemon's memory stays flat over
# many executions; the OS page cache still holds the hot pages for every connection.
PAGE_CACHE_KIB = 512


def connect(path: Path, timeout: float, *, create: bool = True) -> sqlite3.Connection:
    """Autocommit mode: every transaction here is begun and ended explicitly. Without
    `create`, a missing file is an error rather than a new empty database."""
    target: str | Path = path if create else f"{path.absolute().as_uri()}?mode=rw"
    conn = sqlite3.connect(
        target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=not create
    )
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def begin(conn: sqlite3.Connection, timeout: float) -> None:
    """BEGIN IMMEDIATE on a connection without a busy handler: while another process holds
    the write lock, tried again for up to `timeout` seconds (0: not at all), as SQLite's
    own busy handler would."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", None) == "SQLITE_BUSY"
            left = deadline - time.monotonic()
            if not (busy and left > 0):
                raise
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


class Readers:
    """Read-only connections, one per worker thread reading at a time, kept for the next
    read until the store closes."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = connect(self._path, self._timeout, create=False)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        except BaseException:
            conn.close()
            raise
        return conn

    def give_back(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
