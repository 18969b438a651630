"""PostgreSQL connections for the SQL tasks: Kestra's url forms, one asyncpg pool per target.

Kestra opens a JDBC connection per task run. podium keeps one pool per target (url, user,
password, TLS mode) and event loop, created on first use, so that the statements of a
taxi load, and every execution after it, reuse warm connections. `close_pools()` closes
them: the daemon calls it at shutdown, tests at teardown.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from daemon.sdk.errors import TaskFailed
from daemon.sdk.sqldb import Target

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

POOL_MAX_SIZE = 10  # connections per target, shared by every task that runs at once
CLOSE_TIMEOUT = 5.0  # seconds a pool may take to close before its connections are cut

# Pools belong to the event loop that made them (tests run one loop each).
_pools: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], asyncio.Task[asyncpg.Pool]]
]
_pools = weakref.WeakKeyDictionary()


async def _create(target: Target) -> asyncpg.Pool:
    import asyncpg

    # min_size 0: creating a pool connects nowhere, so a bad target fails on acquire,
    # where the error names it.
    return await asyncpg.create_pool(
        target.dsn,
        user=target.user,
        password=target.password,
        ssl=await target.ssl_argument(),
        server_settings=dict(target.server_settings) or None,
        timeout=target.timeout,
        min_size=0,
        max_size=POOL_MAX_SIZE,
    )


async def pool_for(target: Target) -> asyncpg.Pool:
    """The loop's pool for a target, created on first use (once, however many ask at once)."""
    loop = asyncio.get_running_loop()
    pools = _pools.setdefault(loop, {})
    creating = pools.get(target.key)
    if creating is None:
        creating = pools[target.key] = loop.create_task(_create(target))
    try:
        return await asyncio.shield(creating)
    except Exception as exc:
        if pools.get(target.key) is creating:
            del pools[target.key]
        raise connect_error(target, exc) from None


def open_pools() -> list[asyncpg.Pool]:
    """The pools of the running loop that are ready (for tests and diagnostics)."""
    pools = _pools.get(asyncio.get_running_loop(), {})
    return [
        task.result()
        for task in pools.values()
        if task.done() and not task.cancelled() and task.exception() is None
    ]


@asynccontextmanager
async def connection(target: Target) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one task run; connection failures become `TaskFailed`."""
    pool = await pool_for(target)
    try:
        conn = await pool.acquire()
    except Exception as exc:
        raise connect_error(target, exc) from None
    try:
        yield conn
    finally:
        # Shielded: a second cancellation must not leave the connection checked out.
        await asyncio.shield(pool.release(conn))


async def close_pools() -> None:
    """Close every pool of the running loop; connections still busy after CLOSE_TIMEOUT
    are cut."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for creating in pools.values():
        try:
            pool = await creating
        except Exception:
            continue  # never opened: nothing to close
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            pool.terminate()


def connect_error(target: Target, exc: BaseException) -> TaskFailed:
    """Why a connection failed, naming the target and user, never the password."""
    import asyncpg

    non_retryable = False
    if isinstance(exc, TaskFailed):  # the TLS settings (daemon/sdk/pgtls.py)
        reason, non_retryable = str(exc), exc.non_retryable
    elif isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"the server's certificate is not trusted: {exc.verify_message}"
        non_retryable = True
    elif isinstance(
        exc,
        asyncpg.InvalidAuthorizationSpecificationError
        | asyncpg.InvalidPasswordError
        | asyncpg.InvalidCatalogNameError,
    ):
        reason, non_retryable = str(exc), True
    elif isinstance(exc, asyncpg.PostgresError):
        reason = str(exc)
    elif isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError)
        and (exc.errno == errno.ECONNREFUSED or "Connect call failed" in str(exc))
    ):
        reason = "connection refused (is PostgreSQL running and listening there?)"
    elif isinstance(exc, socket.gaierror):
        reason = f"unknown host ({exc.strerror})"
    elif isinstance(exc, TimeoutError):
        reason = f"no answer within {target.timeout:g}s"
    elif isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        reason, non_retryable = f"invalid connection settings: {exc}", True
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TaskFailed(
        f"cannot connect to PostgreSQL at {target.where} as {target.who}: {reason}",
        non_retryable=non_retryable,
    )
