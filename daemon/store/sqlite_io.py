"""The embedded store's plumbing: one SQLite file, one write connection, group commit.

Durability costs a commit, and a commit per task run caps the executor at a few
hundred runs a second. So the writes of one turn of the event loop are gathered and
committed in a single transaction at the end of that turn. Where that commit runs:
- on the event loop itself, when nothing else is being written: a commit in WAL mode
  with `synchronous = NORMAL` appends to the WAL and does not fsync (~25 us), while
  handing it to a thread and back costs ~90 us at the median and ~1 ms at the 99th
  percentile (two wake-ups and two GIL hand-offs; issue #18, the webhook's p50 and p99);
- on the writer thread otherwise: when the thread still has writes to commit (order is
  kept), when another process holds SQLite's write lock (the loop never waits on it),
  when the WAL has grown past WRITER_CHECKPOINT_PAGES (the thread copies it back after
  the commit), and for writes from other threads or loops. The thread drains its queue
  into one transaction and wakes every waiting caller in one hop per event loop.
Reads never queue behind writes: they use their own connections (WAL) on worker
threads, which is also what lets `podium executions list` read the file while a daemon
writes. The queries themselves live in `daemon.store.sqlite`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from daemon.sdk.clock import Clock
from daemon.store.base import StoreError, StoreLost
from daemon.store.sqlite_batch import Op, Outcome, RowKey, Write, coalesced, settle
from daemon.store.sqlite_checkpoint import Checkpointer
from daemon.store.sqlite_conn import PAGE_CACHE_KIB, Readers, begin, connect, rollback
from daemon.store.sqlite_file import DatabaseFile, broken
from daemon.store.sqlite_schema import migrate

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 10_000
"""Ops per transaction: bounds how long the first caller of a burst waits."""
WRITER_CHECKPOINT_PAGES = 16_384
"""WAL pages (64 MiB at SQLite's 4 KiB pages) past which the writer thread checkpoints.
The checkpointer thread's checkpoints race the commits: under sustained writes frames
are appended while it copies, it never copies them all, and the WAL never starts over
(8 s of writes left a 2 GB WAL beside a 20 MB database). The writer thread's commits
keep SQLite's automatic checkpoint at this many pages: between two of its transactions
it copies the rest (the frames since the thread's last one) and the WAL starts over at
the next commit. Commits on the event loop run without it (it would copy there), and
once the WAL file is past this size every commit goes to the writer thread until the
WAL started over and was cut back to WAL_SIZE_LIMIT."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes a WAL file is truncated back to when it starts over (SQLite keeps it otherwise)."""
UNAWAITED_DELAY = 0.002
"""Seconds a write nobody waits for may wait for company before it is committed."""
CHECK_INTERVAL = 2.0
"""Seconds between full checks of the database file (deleted, replaced, corrupted) when
nothing is written; every group commit checks its identity anyway."""


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
        self._soon = False  # a hand-over is due at the end of this iteration
        self._later: asyncio.TimerHandle | None = None  # one due UNAWAITED_DELAY from now
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # the write connection
        self._conn_lock = threading.Lock()  # held by whoever commits on it
        self._queued = 0  # batches handed to the writer thread and not yet committed
        self._queued_lock = threading.Lock()
        self._wal = Path(f"{path}-wal")
        self._page_size = 4096
        self._autocheckpoint = 0  # the write connection's wal_autocheckpoint
        self._readers = Readers(path, timeout)
        self._gone_lock = threading.Lock()
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
            conn = connect(self.path, self._timeout)
        except (OSError, sqlite3.Error) as exc:
            # a file there that is not a database may already say so here
            what = "not a usable SQLite database" if broken(exc) else "cannot open"
            raise StoreError(f"{self.path}: {what}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            # checkpoints run on their own thread (daemon/store/sqlite_checkpoint.py); the
            # writer thread's only once the WAL passed WRITER_CHECKPOINT_PAGES, never
            # on the event loop (_checkpoints)
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            migrate(conn, self.path, self._clock)
            # no busy handler on the write connection: a commit on the event loop never
            # waits for another process's write lock, the writer thread waits in _begin
            conn.execute("PRAGMA busy_timeout = 0")
            self._file.remember()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable SQLite database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="podium-store-writer", daemon=True
        )
        self._writer.start()
        self.checkpointer.start()

    def _checkpoint_connection(self) -> sqlite3.Connection:
        conn = connect(self.path, self._timeout, create=False)
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
        self._readers.close()
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
        with self._gone_lock:  # the writer thread and a health check may both find it
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
        soon: bool = True,
    ) -> asyncio.Future[Any] | None:
        """Queue a write; with `wait`, the future of its outcome. The writes of the store's
        own loop are committed together at the end of the loop iteration, or, when nobody
        waits for any of them (or nobody waits yet: not `soon`), UNAWAITED_DELAY later:
        an execution's RUNNING and the task runs before its awaited end then share the
        end's commit."""
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
            self._enqueue([op])
        else:
            if wait and soon and not self._soon:
                self._soon = True
                loop.call_soon(self._hand_over)
            elif self._later is None and not self._soon:
                self._later = loop.call_later(UNAWAITED_DELAY, self._hand_over)
            self._handoff.append(op)
        return future

    def _hand_over(self) -> None:
        """The end of a loop turn: its writes committed here, or queued to the thread."""
        ops, self._handoff = self._handoff, []
        self._soon = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if not ops:
            return
        if self._broken is not None:  # nobody reads the queue any more
            self._fail(ops, StoreLost(f"{self.path}: store writer stopped: {self._broken!r}"))
            return
        if not self._commit_here(ops):
            self._enqueue(ops)

    def _enqueue(self, ops: list[Op]) -> None:
        with self._queued_lock:
            self._queued += 1
        self._queue.put(ops)

    def _commit_here(self, ops: list[Op]) -> bool:
        """Commit on the calling thread (the event loop) if that can be done at once: the
        writer thread has nothing left to commit (else these would overtake its writes), no
        other process holds SQLite's write lock (never waited for here), and the WAL needs
        no checkpoint. False: nothing was done, the thread is to commit them."""
        conn = self._conn
        if self._queued or conn is None or not self._conn_lock.acquire(blocking=False):
            return False
        try:
            if self._wal_over():
                return False
            if self._lost(ops):
                return True
            try:
                self._checkpoints(conn, 0)
                begin(conn, 0)
            except sqlite3.Error:  # locked by another process, or worse: the thread decides
                rollback(conn)
                return False
            self._commit(conn, ops, begun=True)
            return True
        finally:
            self._conn_lock.release()

    def _wal_over(self) -> bool:
        """Whether the WAL file is past WRITER_CHECKPOINT_PAGES (a `stat`: no descriptor of
        the file is opened or closed). Its size grows only once its frames fill it."""
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return False
        return size > WRITER_CHECKPOINT_PAGES * self._page_size

    def _checkpoints(self, conn: sqlite3.Connection, pages: int) -> None:
        """SQLite's automatic checkpoint: off on the loop, on in the writer thread."""
        if self._autocheckpoint != pages:
            conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            self._autocheckpoint = pages

    def _lost(self, ops: list[Op]) -> bool:
        """Whether the file is gone (deleted, replaced, corrupted): `ops` then failed."""
        due = time.monotonic() - self._checked >= CHECK_INTERVAL
        if self._verify(header=due) is None:
            return False
        self._fail(ops, StoreLost(str(self._gone)))
        return True

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
                batches = 0
                while True:
                    if item is None:
                        stopping = True
                    else:
                        pending.extend(item)
                        batches += 1
                    if stopping or len(pending) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if pending:
                    with self._conn_lock:
                        if not self._lost(pending):
                            self._checkpoints(conn, WRITER_CHECKPOINT_PAGES)
                            self._commit(conn, pending)
                pending = []
                with self._queued_lock:
                    self._queued -= batches
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
            self._fail(pending, StoreLost(f"{self.path}: store writer stopped: {exc!r}"))
        finally:
            with self._conn_lock:
                self._conn = None
                conn.close()

    def _commit(self, conn: sqlite3.Connection, ops: list[Op], *, begun: bool = False) -> None:
        """All ops in one transaction (`begun`: already open); if that fails, each alone: a
        bad op costs only itself."""
        started = time.perf_counter()
        try:
            if not begun:
                begin(conn, self._timeout)
            results = [None if fn is None else fn(conn) for fn in coalesced(ops)]
            conn.execute("COMMIT")
        except Exception as exc:
            rollback(conn)
            problem = broken(exc)
            if problem is not None:
                self._lose(problem)
                self._fail(ops, StoreLost(str(self._gone)))
                return
            outcomes = [self._commit_one(conn, op) for op in ops]
        else:
            self._committed(started)
            outcomes = [(result, None) for result in results]
        self._settle(ops, outcomes)

    def _commit_one(self, conn: sqlite3.Connection, op: Op) -> Outcome:
        started = time.perf_counter()
        try:
            begin(conn, self._timeout if threading.current_thread() is self._writer else 0)
            result = op.fn(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            rollback(conn)
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
        settle(ops, outcomes, logger)

    def _fail(self, ops: list[Op], error: BaseException) -> None:
        """Every op of `ops` failed with `error`, nothing of them written."""
        self._settle(ops, [(None, error)] * len(ops))

    # reads

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check()
        return await asyncio.to_thread(self._read_sync, fn)

    def _read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One read transaction, so that multi-statement reads see one snapshot."""
        conn = None
        try:
            conn = self._readers.take()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                rollback(conn)
        except sqlite3.Error as exc:
            problem = broken(exc)
            if problem is not None:
                self._lose(problem)
                raise StoreError(str(self._gone)) from exc
            raise StoreError(f"{self.path}: read failed: {exc}") from exc
        finally:
            if conn is not None:
                self._readers.give_back(conn)
