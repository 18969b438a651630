"""PostgreSQL connections for the SQL tasks: Kestra's url forms, one asyncpg pool per target.

Kestra opens a JDBC connection per task run. podium keeps one pool per target (url, user,
password, TLS mode) and event loop, created on first use, so that the statements of a
taxi load, and every execution after it, reuse warm connections. `close_pools()` closes
them: the daemon calls it at shutdown, tests at teardown.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import socket
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from daemon.sdk.errors import TaskFailed

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

CONNECT_TIMEOUT = 10.0  # seconds; the PostgreSQL JDBC driver's default connectTimeout
POOL_MAX_SIZE = 10  # connections per target, shared by every task that runs at once
CLOSE_TIMEOUT = 5.0  # seconds a pool may take to close before its connections are cut

_JDBC = "jdbc:postgresql:"
_SCHEMES = ("postgresql://", "postgres://")
_EXPECTED = "expected jdbc:postgresql://host:port/database or postgresql://host:port/database"
# JDBC url parameters with a libpq/asyncpg meaning; the driver's other tuning knobs
# (prepareThreshold, tcpKeepAlive, loggerLevel...) mean nothing here and are dropped.
_JDBC_PARAMETERS = {
    "user": "user",
    "password": "password",
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
}
_JDBC_SETTINGS = {
    "currentSchema": "search_path",
    "ApplicationName": "application_name",
    "options": "options",
}


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect; `where` and `user` are safe to print."""

    dsn: str
    user: str | None
    password: str | None = field(repr=False)
    ssl: str | None
    server_settings: tuple[tuple[str, str], ...]
    timeout: float
    where: str

    @property
    def key(self) -> tuple[Any, ...]:
        """The pool this target shares: a password change gets a pool of its own."""
        secret = hashlib.sha256((self.password or "").encode()).hexdigest()
        return (self.dsn, self.user, secret, self.ssl, self.server_settings)

    @property
    def who(self) -> str:
        return self.user or "the default user"


def parse_target(
    url: str,
    username: str | None,
    password: str | None,
    ssl: bool | None = None,
    ssl_mode: str | None = None,
) -> Target:
    """A Kestra `url` (JDBC or libpq form) plus the task's credentials and TLS choice.

    `username`/`password` properties win over credentials written in the url.
    """
    text = url.strip()
    jdbc = text.startswith(_JDBC)
    if jdbc:
        rest = text[len(_JDBC) :]
        text = "postgresql:" + (rest if rest.startswith("//") else "//localhost:5432/" + rest)
    if not text.startswith(_SCHEMES):
        raise TaskFailed(
            f"invalid PostgreSQL url '{_without_credentials(url)}': {_EXPECTED}", non_retryable=True
        )
    parts = urlsplit(text)
    query: list[tuple[str, str]] = []
    settings: list[tuple[str, str]] = []
    timeout = CONNECT_TIMEOUT
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if not jdbc:
            query.append((name, value))
        elif name in _JDBC_PARAMETERS:
            query.append((_JDBC_PARAMETERS[name], value))
        elif name in _JDBC_SETTINGS:
            settings.append((_JDBC_SETTINGS[name], value))
        elif name == "ssl" and value.lower() == "true" and ssl_mode is None:
            ssl_mode = "require"
        elif name == "connectTimeout" and value.isdigit() and int(value) > 0:
            timeout = float(value)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    url_user = userinfo.partition(":")[0] or None
    for name, value in query:
        if name == "user":
            url_user = value
    dsn = parts._replace(query=urlencode(query)).geturl()
    mode = ssl_mode or ("require" if ssl else None)
    database = parts.path.lstrip("/") or (username or url_user or "")
    return Target(
        dsn=dsn,
        user=username or url_user,
        password=password or None,
        ssl=mode.lower().replace("_", "-") if mode else None,
        server_settings=tuple(settings),
        timeout=timeout,
        where=f"{hosts or 'localhost'}/{database}",
    )


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{tail}"


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
        ssl=target.ssl,
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
    if isinstance(
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
