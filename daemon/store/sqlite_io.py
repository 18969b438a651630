"""The embedded store's plumbing: one SQLite file, one writer thread, group commit.

Durability costs a commit, and a commit per task run caps the executor at a few
hundred runs a second. So every write is queued to one thread that owns the write
connection; each round it drains the queue into a single transaction and, once that
commits, wakes every waiting caller in one hop per event loop. Reads never queue
behind writes: they use their own connections (WAL) on worker threads, which is
also what lets `podium executions list` read the file while a daemon writes.
The queries themselves live in `daemon.store.sqlite`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from daemon.sdk.clock import Clock
from daemon.store.base import StoreError, StoreLost
from daemon.store.sqlite_batch import Op, RowKey, Write, coalesced
from daemon.store.sqlite_checkpoint import Checkpointer
from daemon.store.sqlite_file import DatabaseFile, broken
from daemon.store.sqlite_schema import migrate

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 10_000
"""Ops per transaction: bounds how long the first caller of a burst waits."""
WRITER_CHECKPOINT_PAGES = 16_384
"""WAL pages (64 MiB at SQLite's 4 KiB pages) past which the writer checkpoints itself.
The checkpointer thread's checkpoints race the writer: under sustained writes frames are
appended while it copies, it never copies them all, and the WAL never starts over (8 s of
writes left a 2 GB WAL beside a 20 MB database). The writer's checkpoint, between its
transactions, copies the rest (the frames since the thread's last one) and the WAL starts
over at the next commit."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes a WAL file is truncated back to when it starts over (SQLite keeps it otherwise)."""
CHECK_INTERVAL = 2.0
"""Seconds between full checks of the database file (deleted, replaced, corrupted) when
nothing is written; every group commit checks its identity anyway."""


Outcome = tuple[Any, BaseException | None]


def _resolve(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, exc in items:
        if future.done():  # the caller was cancelled; the write happened anyway
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# Each connection's page cache (SQLite's default is 2 MiB) fills as the database grows,
# one per reader thread plus the writer: bounded small, the daemon's memory stays flat over
# many executions; the OS page cache still holds the hot pages for every connection.
PAGE_CACHE_KIB = 512


def _connect(path: Path, timeout: float, *, create: bool = True) -> sqlite3.Connection:
    """Autocommit mode: every transaction here is begun and ended explicitly. Without
    `create`, a missing file is an error rather than a new empty database."""
    target: str | Path = path if create else f"{path.absolute().as_uri()}?mode=rw"
    conn = sqlite3.connect(
        target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=not create
    )
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    return conn


class SqliteIO:
    """The file's connections: the writer thread behind its queue, and a pool of readers."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        timeout: float,
        on_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.path = path
        self.commits = 0
        """Transactions committed by the writer; bench/store.py shows the grouping with it."""
        self._on_commit = on_commit  # called in the writer thread with each commit's seconds
        self._clock = clock
        self._timeout = timeout
        # lists of ops handed over together, or None: stop
        self._queue: queue.SimpleQueue[list[Op] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that opened the store
        self._handoff: list[Op] = []  # its writes of this loop iteration, handed over at its end
        self._writer: threading.Thread | None = None
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._open = False
        self._closed = False
        self._broken: BaseException | None = None
        self._file = DatabaseFile(path)
        self._gone: str | None = None  # what happened to the file, once it did
        self._checked = 0.0  # monotonic time of the last full check of the file
        self.checkpointer = Checkpointer(
            self._checkpoint_connection, lambda: self.commits, lambda: self._verify(header=True)
        )

    # lifecycle

    async def open(self) -> None:
        if self._open or self._closed:
            raise StoreError(f"{self.path}: a store is opened once")
        await asyncio.to_thread(self._open_sync)
        self._loop = asyncio.get_running_loop()
        self._open = True

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path, self._timeout)
        except (OSError, sqlite3.Error) as exc:
            # a file there that is not a database may already say so here
            what = "not a usable SQLite database" if broken(exc) else "cannot open"
            raise StoreError(f"{self.path}: {what}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            # checkpoints run on their own thread (daemon/store/sqlite_checkpoint.py); the
            # writer's own only once the WAL passed WRITER_CHECKPOINT_PAGES
            conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            migrate(conn, self.path, self._clock)
            self._file.remember()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable SQLite database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="podium-store-writer", daemon=True
        )
        self._writer.start()
        self.checkpointer.start()

    def _checkpoint_connection(self) -> sqlite3.Connection:
        conn = _connect(self.path, self._timeout, create=False)
        conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # new writes are refused from here; queued ones still commit
        self._hand_over()
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        """One connection after the other, the writer's last: the last connection to close
        copies the WAL back and deletes it, and two closing at once each see the other."""
        self.checkpointer.stop()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
        self._file.forget()

    def _check(self) -> None:
        if self._broken is not None:
            raise StoreLost(f"{self.path}: store writer stopped: {self._broken!r}")
        if self._gone is not None:
            raise StoreLost(self._gone)
        if not self._open or self._closed:
            raise StoreError(f"{self.path}: store is not open")

    # the file itself

    async def problem(self) -> str | None:
        """Why nothing can be stored durably now (the file deleted, replaced, corrupted),
        or None. Checked afresh: /health and /metrics ask."""
        if not self._open or self._closed:
            return f"{self.path}: store is not open"
        return await asyncio.to_thread(self._verify, header=True)

    def _verify(self, *, header: bool) -> str | None:
        if self._gone is None:
            problem = self._file.problem(header=header)
            if header:
                self._checked = time.monotonic()
            if problem is not None:
                self._lose(problem)
        return self._gone

    def _lose(self, problem: str) -> None:
        """From now on every write and read fails, saying so: what would be written
        could never be read back, not even after a restart."""
        with self._readers_lock:  # the writer thread and a health check may both find it
            if self._gone is not None:
                return
            self._gone = (
                f"the database file {self.path} {problem} while podium was running: "
                "nothing can be stored any more; stop podium and restore the file (or "
                "start it again to begin with an empty database)"
            )
        logger.critical("store: %s", self._gone)

    # the writer thread

    def put(
        self,
        fn: Write,
        what: str,
        wait: bool,
        *,
        key: RowKey | None = None,
        replaces: bool = False,
    ) -> asyncio.Future[Any] | None:
        """Queue a write; with `wait`, the future of its outcome. The writes of the store's
        own loop go to the writer together at the end of the loop iteration: one wake-up of
        the writer thread (and one GIL hand-off) for them all, not one per write."""
        self._check()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a thread of its own (fire-and-forget writes only)
            loop = None
        future: asyncio.Future[Any] | None = None
        if wait:
            if loop is None:
                raise RuntimeError("a write waited for needs a running event loop")
            future = loop.create_future()
        op = Op(fn, what, future, loop if wait else None, key, replaces)
        if loop is not self._loop or loop is None:
            self._queue.put([op])
        else:
            if not self._handoff:
                loop.call_soon(self._hand_over)
            self._handoff.append(op)
        return future

    def _hand_over(self) -> None:
        ops, self._handoff = self._handoff, []
        if not ops:
            return
        if self._broken is not None:  # nobody reads the queue any more
            error = StoreLost(f"{self.path}: store writer stopped: {self._broken!r}")
            self._settle(ops, [(None, error)] * len(ops))
            return
        self._queue.put(ops)

    async def write(self, fn: Write, what: str, *, key: RowKey | None = None) -> Any:
        future = self.put(fn, what, wait=True, key=key)
        assert future is not None
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        pending: list[Op] = []
        try:
            while not stopping:
                try:
                    item = self._queue.get(timeout=CHECK_INTERVAL)
                except queue.Empty:
                    self._verify(header=True)
                    continue
                while True:
                    if item is None:
                        stopping = True
                    else:
                        pending.extend(item)
                    if stopping or len(pending) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if pending:
                    due = time.monotonic() - self._checked >= CHECK_INTERVAL
                    if self._verify(header=due) is not None:
                        error = StoreLost(str(self._gone))
                        self._settle(pending, [(None, error)] * len(pending))
                    else:
                        self._commit(conn, pending)
                pending = []
        except BaseException as exc:
            self._broken = exc
            logger.exception("store: writer thread stopped")
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    pending.extend(item)
            error = StoreLost(f"{self.path}: store writer stopped: {exc!r}")
            self._settle(pending, [(None, error)] * len(pending))
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, ops: list[Op]) -> None:
        """All ops in one transaction; if that fails, each alone: a bad op costs only itself."""
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [None if fn is None else fn(conn) for fn in coalesced(ops)]
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            problem = broken(exc)
            if problem is not None:
                self._lose(problem)
                error = StoreLost(str(self._gone))
                self._settle(ops, [(None, error)] * len(ops))
                return
            outcomes = [self._commit_one(conn, op) for op in ops]
        else:
            self._committed(started)
            outcomes = [(result, None) for result in results]
        self._settle(ops, outcomes)

    def _commit_one(self, conn: sqlite3.Connection, op: Op) -> Outcome:
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = op.fn(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            error = StoreError(f"{self.path}: could not write {op.what}: {exc}")
            error.__cause__ = exc
            return None, error
        self._committed(started)
        return result, None

    def _committed(self, started: float) -> None:
        self.commits += 1
        if self._on_commit is not None:
            try:
                self._on_commit(time.perf_counter() - started)
            except Exception:  # an observer must never stop the writer
                logger.exception("store: the commit observer failed")

    def _settle(self, ops: list[Op], outcomes: list[Outcome]) -> None:
        """Wake callers with one `call_soon_threadsafe` per loop, not one per op."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for op, (result, exc) in zip(ops, outcomes, strict=True):
            if op.future is None or op.loop is None:
                if exc is not None:
                    logger.error("store: lost unawaited write: %s", exc)
                continue
            by_loop.setdefault(op.loop, []).append((op.future, result, exc))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    # reads

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check()
        return await asyncio.to_thread(self._read_sync, fn)

    def _read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One read transaction, so that multi-statement reads see one snapshot."""
        with self._readers_lock:
            conn = self._readers.pop() if self._readers else None
        try:
            if conn is None:
                conn = _connect(self.path, self._timeout, create=False)
                conn.execute("PRAGMA query_only = ON")
                conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                _rollback(conn)
        except sqlite3.Error as exc:
            problem = broken(exc)
            if problem is not None:
                self._lose(problem)
                raise StoreError(str(self._gone)) from exc
            raise StoreError(f"{self.path}: read failed: {exc}") from exc
        finally:
            if conn is not None:
                with self._readers_lock:
                    keep = not self._closed
                    if keep:
                        self._readers.append(conn)
                if not keep:
                    conn.close()
