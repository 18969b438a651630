"""What PostgreSQL and asyncpg say when things go wrong, told apart and said plainly: a
lost connection (ride it out) from a refusal (report it), a DSN without its password."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg  # type: ignore[import-untyped]

from daemon.store.base import StoreError

_LOST = (
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,  # a fast shutdown ends our session
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,  # the protocol left mid-exchange (see below)
    OSError,  # refused, reset, unknown host, connect timeout
)


# What asyncpg says of a connection left in the middle of an exchange with a server that
# went away (a fast shutdown's FATAL message, a reset socket): "cannot switch to state 15;
# another operation (2) is in progress", "cannot perform operation: another operation is
# in progress / is cancelling". That connection is of no use any more.
_BROKEN_WORDS = (
    "connection is closed",
    "released back to the pool",
    "another operation",
    "not connected",
)


def connection_lost(exc: BaseException) -> bool:
    """Errors worth waiting out: the server is (re)starting or out of reach, or the
    connection was left broken by that (to be discarded, never used again).

    A pooled connection that dies is handed back to the pool at once, so using it
    afterwards says "released back to the pool" rather than "closed". asyncpg's
    `InternalClientError` (its protocol state machine out of step with the server) is
    only ever seen here when the server vanished mid-exchange.
    """
    if isinstance(exc, _LOST):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and any(
        words in str(exc) for words in _BROKEN_WORDS
    )


def is_closed(conn: Any) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # it died and the pool took it back
        return True


def redact(dsn: str) -> str:
    """The DSN to show in messages: the password removed from user info and query."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return dsn
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    user = userinfo.partition(":")[0]
    path, question, query = tail.partition("?")
    if question:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "password"]
        query = urlencode(kept)
        question = "?" if kept else ""
    return f"{scheme}://{user}{at}{hosts}{slash}{path}{question}{query}"


def reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused (is PostgreSQL running and listening there?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    return str(exc) or type(exc).__name__


def check_dsn(dsn: str) -> None:
    """Refuse what asyncpg would only refuse later with a bare `ValueError`."""
    try:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("expected postgresql://user@host:port/database")
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise StoreError(f"invalid PostgreSQL URL {redact(dsn)!r}: {exc}") from None


@contextlib.asynccontextmanager
async def pooled(pool: Any) -> AsyncIterator[Any]:
    """A pooled connection, as `pool.acquire()`, except that one which failed with a lost
    connection is cut before it goes back: the pool's reset would otherwise run on it and
    raise its own error ("cannot switch to state 15; another operation (2) is in
    progress") in place of the one that tells the caller to retry."""
    async with pool.acquire() as conn:
        try:
            yield conn
        except Exception as exc:
            if connection_lost(exc):
                # a connection the pool already took back cannot be cut: the pool's own
                # reset sees it is broken, and the caller must see its error, not this one
                with contextlib.suppress(Exception):
                    conn.terminate()
            raise
