"""The PostgreSQL store's plumbing: the pool, riding out restarts, and group commit.

Writes queue to one writer task. Each round it takes everything queued into one
transaction (runs of the same statement as one `executemany`) and, once that
commits, resolves every waiting caller: concurrent saves share a commit, as with
SQLite. Reads take their own pooled connection and never queue behind writes.

A lost connection is not an error until it has lasted `reconnect_timeout`: each
operation retries with backoff, and a write transaction whose COMMIT got no answer
is looked up by its transaction id (`txid_status`) before it is run again, so that
a write lands exactly once even when the server died under it.
The queries themselves live in `daemon.store.postgres`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from daemon.sdk.clock import Clock
from daemon.sdk.retry import Backoff
from daemon.store.base import StoreError
from daemon.store.postgres_errors import (
    check_dsn,
    connection_lost,
    is_closed,
    pooled,
    reason,
    redact,
)
from daemon.store.postgres_schema import migrate

if TYPE_CHECKING:
    from daemon.store.base import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")
Fn = Callable[[Any], Awaitable[Any]]
"""A write that needs a result or several statements: called with the connection."""

MAX_BATCH = 10_000
"""Ops per transaction: bounds how long the first caller of a burst waits."""
BACKOFF_FIRST = 0.1  # seconds before the first retry after a lost connection
BACKOFF_MAX = 2.0  # longest pause between retries
CONNECT_TIMEOUT = 10.0  # seconds one connection attempt may take
CLOSE_TIMEOUT = 5.0  # seconds the pool may take to close before its connections are cut


class _InDoubt(Exception):
    """A transaction whose COMMIT got no answer is still running on the server."""


class Op:
    """One queued write: a statement with its rows, or a function, or neither (a flush).

    `future` is None when nobody awaits it.
    """

    __slots__ = ("fn", "future", "idempotent", "rows", "sql", "what")

    def __init__(
        self,
        what: str,
        *,
        sql: str | None = None,
        rows: Sequence[Sequence[Any]] = (),
        fn: Fn | None = None,
        idempotent: bool = False,
    ) -> None:
        self.what = what
        self.sql = sql
        self.rows = rows
        self.fn = fn
        self.idempotent = idempotent
        """Running it twice has the effect of running it once (an upsert of one row)."""
        self.future: asyncio.Future[Any] | None = None


Outcome = tuple[Any, BaseException | None]


class PostgresIO:
    """The pool and the writer task; everything runs on the loop that opened it."""

    def __init__(
        self, store: Store, dsn: str, clock: Clock, reconnect_timeout: float, pool_size: int
    ) -> None:
        self.dsn = dsn
        self.where = redact(dsn)
        self.commits = 0
        """Transactions committed by the writer; bench/store.py shows the grouping with it."""
        self._store = store
        self._clock = clock
        self.reconnect_timeout = reconnect_timeout
        self._pool_size = pool_size
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._queue: deque[Op | None] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._writer_conn: Any = None
        self._writer_done = False
        self._closed = False
        self._up = True

    # lifecycle

    @property
    def pool(self) -> Any:
        self._check()
        return self._pool

    async def open(self) -> None:
        if self._pool is not None or self._closed:
            raise StoreError(f"PostgreSQL at {self.where}: a store is opened once")
        check_dsn(self.dsn)
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=0,  # connects on first use, where failures are retried
                max_size=self._pool_size,
                timeout=min(CONNECT_TIMEOUT, self.reconnect_timeout),
            )
        except (ValueError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"invalid PostgreSQL URL {self.where!r}: {exc}") from None

        async def migrated() -> None:
            async with pool.acquire() as conn:
                await migrate(conn, self._clock, self.where)

        try:
            await self.retrying(migrated)
        except StoreError:
            pool.terminate()
            raise
        except ValueError as exc:  # asyncpg's ClientConfigurationError: a bad URL parameter
            pool.terminate()
            raise StoreError(f"invalid PostgreSQL URL {self.where!r}: {exc}") from None
        except (asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
            pool.terminate()
            raise StoreError(f"PostgreSQL at {self.where}: cannot open: {exc}") from None
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._writer = self._loop.create_task(self._write_loop(), name="podium-store-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                self._enqueue(None)
                await self._writer
        except BaseException:  # cancelled (a shutdown deadline): cut, do not wait
            if self._pool is not None:
                self._pool.terminate()
            raise
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
            except TimeoutError:
                self._pool.terminate()

    def _check(self) -> None:
        if self._pool is None or self._closed:
            raise StoreError(f"PostgreSQL at {self.where}: store is not open")

    # riding out a lost connection

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it gets through; a lost connection is retried with backoff."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                if not (connection_lost(exc) or isinstance(exc, _InDoubt)):
                    raise
                now = loop.time()
                if deadline is None:
                    deadline = now + self.reconnect_timeout
                    self._lost(exc)
                if now >= deadline:
                    raise StoreError(
                        f"PostgreSQL at {self.where}: cannot connect: {reason(exc)};"
                        f" gave up after {self.reconnect_timeout:g}s"
                    ) from exc
                await backoff.sleep(at_most=deadline - now)
                continue
            if not self._up:
                self._up = True
                logger.info("store: PostgreSQL at %s is reachable again", self.where)
            return result

    def _lost(self, exc: BaseException) -> None:
        if self._up:
            self._up = False
            logger.warning(
                "store: cannot reach PostgreSQL at %s (%s); retrying for up to %gs",
                self.where,
                reason(exc),
                self.reconnect_timeout,
            )

    # reads

    async def read(self, fn: Callable[[Any], Awaitable[T]], *, snapshot: bool = False) -> T:
        """`fn` on a pooled connection; `snapshot` runs it in one read-only transaction."""
        pool = self.pool

        async def attempt() -> T:
            async with pooled(pool) as conn:
                if not snapshot:
                    return await fn(conn)
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    return await fn(conn)

        try:
            return await self.retrying(attempt)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"PostgreSQL at {self.where}: read failed: {exc}") from exc

    # the writer

    def put(self, op: Op, wait: bool) -> asyncio.Future[Any] | None:
        """Queue `op`; from a thread other than the loop's only without waiting."""
        self._check()
        if wait:
            assert self._loop is not None
            op.future = self._loop.create_future()
            self._enqueue(op)
            return op.future
        if threading.get_ident() == self._thread:
            self._enqueue(op)
        else:
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._enqueue, op)
            except RuntimeError:  # the loop is closed
                raise StoreError(f"PostgreSQL at {self.where}: store is not open") from None
        return None

    async def write(self, op: Op) -> Any:
        future = self.put(op, wait=True)
        assert future is not None
        return await future

    async def flush(self) -> None:
        """Queued behind the thread-crossing callbacks already scheduled, not before them."""
        self._check()
        assert self._loop is not None
        op = Op("flush")
        op.future = self._loop.create_future()
        self._loop.call_soon(self._enqueue, op)
        await op.future

    def _enqueue(self, op: Op | None) -> None:
        if self._writer_done and op is not None:
            self._settle([op], [(None, StoreError(f"PostgreSQL at {self.where}: store closed"))])
            return
        self._queue.append(op)
        self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch: list[Op] = []
                stopping = False
                while self._queue and len(batch) < MAX_BATCH:
                    op = self._queue.popleft()
                    if op is None:
                        stopping = True
                        break
                    batch.append(op)
                if batch:
                    try:
                        await self._commit(batch)
                    except asyncio.CancelledError:
                        error = StoreError(f"PostgreSQL at {self.where}: store closed")
                        self._settle(batch, [(None, error)] * len(batch))
                        raise
                    except Exception as exc:  # a bug here must not stop every later write
                        logger.exception("store: writer failed on a batch")
                        error = StoreError(f"PostgreSQL at {self.where}: write failed: {exc!r}")
                        self._settle(batch, [(None, error)] * len(batch))
                if stopping:
                    return
        finally:
            self._writer_done = True
            await self._drop_writer_connection()
            late = [op for op in self._queue if op is not None]
            self._queue.clear()
            error = StoreError(f"PostgreSQL at {self.where}: store closed")
            self._settle(late, [(None, error)] * len(late))

    async def _commit(self, ops: list[Op]) -> None:
        """All ops in one transaction; if that fails, each alone: a bad op costs only itself."""
        try:
            results = await self._transact(ops)
        except StoreError as exc:  # unreachable for reconnect_timeout: all fail alike
            outcomes: list[Outcome] = [(None, exc)] * len(ops)
        except Exception:
            outcomes = [await self._commit_one(op) for op in ops]
        else:
            outcomes = [(result, None) for result in results]
        self._settle(ops, outcomes)

    async def _commit_one(self, op: Op) -> Outcome:
        try:
            return (await self._transact([op]))[0], None
        except StoreError as exc:
            return None, exc
        except Exception as exc:
            error = StoreError(f"PostgreSQL at {self.where}: could not write {op.what}: {exc}")
            error.__cause__ = exc
            return None, error

    async def _transact(self, ops: list[Op]) -> list[Any]:
        """One transaction, retried on a lost connection, applied once whatever the loss.

        When a batch holds a write that must not happen twice (an insert, a claim), its
        transaction id is taken first: if the COMMIT then gets no answer, the server is
        asked whether it committed before anything runs again. Batches of upserts only
        skip that round trip: running one again changes nothing.
        """
        if all(op.sql is None and op.fn is None for op in ops):  # flushes only
            return [None] * len(ops)
        once = not all(op.idempotent for op in ops)
        in_doubt: tuple[int, list[Any]] | None = None

        async def attempt() -> list[Any]:
            nonlocal in_doubt
            conn = await self._writer_connection()
            try:
                if in_doubt is not None:
                    sent, done = in_doubt
                    status = await conn.fetchval("SELECT txid_status($1)", sent)
                    if status == "committed":
                        self.commits += 1
                        return done
                    if status == "in progress":
                        raise _InDoubt(f"transaction {sent} still in progress")
                    in_doubt = None
                started = time.perf_counter()
                transaction = conn.transaction()
                await transaction.start()
                try:
                    xid = await conn.fetchval("SELECT txid_current()") if once else None
                    results = await _run(conn, ops)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await transaction.rollback()
                    raise
                if xid is not None:
                    in_doubt = (xid, results)
                await transaction.commit()
                in_doubt = None
            except Exception as exc:
                if connection_lost(exc):
                    await self._drop_writer_connection(broken=True)
                raise
            self._committed(time.perf_counter() - started)
            return results

        return await self.retrying(attempt)

    async def _writer_connection(self) -> Any:
        """The writer keeps one connection: handing it back after every batch would cost
        the pool's reset query, a round trip per commit."""
        conn = self._writer_conn
        if conn is not None and is_closed(conn):
            await self._drop_writer_connection()
            conn = None
        if conn is None:
            conn = self._writer_conn = await self._pool.acquire()
        return conn

    async def _drop_writer_connection(self, *, broken: bool = False) -> None:
        """Hand the writer's connection back; a `broken` one is cut first, never reset
        and reused (its protocol may be stuck mid-exchange with a server that is gone)."""
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            if broken:
                conn.terminate()
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    def _committed(self, seconds: float) -> None:
        """Counted and observed as SQLite's commits are, under the same name."""
        self.commits += 1
        observe = self._store.observe_write
        if observe is not None:
            try:
                observe("commit", seconds)
            except Exception:  # a metrics bug must not fail (or repeat) a committed write
                logger.exception("store: the commit observer failed")

    def _settle(self, ops: list[Op], outcomes: list[Outcome]) -> None:
        for op, (result, exc) in zip(ops, outcomes, strict=True):
            if op.future is None:
                if exc is not None:
                    logger.error("store: lost unawaited write: %s", exc)
            elif op.future.done():  # the caller was cancelled; the write happened anyway
                continue
            elif exc is not None:
                op.future.set_exception(exc)
            else:
                op.future.set_result(result)


async def _run(conn: Any, ops: list[Op]) -> list[Any]:
    """The ops in order; a run of one statement goes to the server as one `executemany`."""
    results: list[Any] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.fn is not None:
            results.append(await op.fn(conn))
            i += 1
            continue
        j = i
        rows: list[Sequence[Any]] = []
        while j < len(ops) and ops[j].sql == op.sql and ops[j].fn is None:
            rows.extend(ops[j].rows)
            j += 1
        if op.sql is not None and rows:
            await conn.executemany(op.sql, rows)
        results.extend([None] * (j - i))
        i = j
    return results
