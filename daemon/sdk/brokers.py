"""What the tasks and triggers of the broker families share (they may not import each
other): broker addresses as Kestra's plug-ins write them (`tcp://[user:password@]host[:port]`
or `ssl://...`) and the TLS context for the secure ones; a trigger's reconnect loop; the
STRING/JSON payload serdes; Kestra's `from` property and stored message files.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.ion import IonError, iter_values, write_values
from daemon.sdk.retry import Backoff

T = TypeVar("T")

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from daemon.sdk.context import RunContext, TriggerContext

# Scheme -> TLS or not.
SCHEMES = {"tcp": False, "mqtt": False, "ssl": True, "mqtts": True}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def __str__(self) -> str:
        """For logs: never the credentials a URL may carry."""
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def parse_endpoint(url: str, default_ports: tuple[int, int]) -> Endpoint:
    """The address in `url`; the port defaults to `default_ports` (plain, TLS).

    Raises ValueError with what is wrong, for a load-time error.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or parts.path not in ("", "/") or parts.query:
        raise ValueError("must be tcp://host:port or ssl://host:port")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("the server URL has no host")
    tls = SCHEMES[parts.scheme.lower()]
    return Endpoint(
        parts.hostname,
        port or default_ports[tls],
        tls,
        unquote(parts.username) if parts.username is not None else None,
        unquote(parts.password) if parts.password is not None else None,
    )


def tls_context(crt: str | None, verify_hostname: bool | None) -> ssl.SSLContext:
    """Reads CA files: call it off the loop. `crt` is a CA file's path or its PEM text."""
    if crt and "-----BEGIN" in crt:
        context = ssl.create_default_context(cadata=crt)
    else:
        context = ssl.create_default_context(cafile=crt or None)
    if verify_hostname is False:
        context.check_hostname = False
    return context


# -- what the broker triggers share: staying connected ------------------------------------

# Reconnect after 1 s, 2 s, 4 s ... at most this long.
MAX_RECONNECT_DELAY = 30.0


class Reconnector:
    """A trigger's connection to its broker, kept up for as long as the trigger runs.

    `await reconnector.run(session)` calls `session(connected)` again and again: `session`
    connects, calls `connected()` once it is connected, and consumes until the connection
    fails with one of `errors`. Between attempts it backs off (1 s, 2 s ... 30 s); one log
    line says when an outage starts and one when it ends, and `TriggerContext.connection`
    tells /metrics whether the trigger is connected now.
    """

    def __init__(
        self,
        ctx: TriggerContext,
        where: str,
        address: str,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self.ctx = ctx
        self.where = where
        self.address = address
        self.errors = errors
        self.backoff = Backoff(1.0, MAX_RECONNECT_DELAY, clock=ctx.clock)
        self._down_since: datetime | None = None
        self._connected_once = False

    def connected(self) -> None:
        ctx = self.ctx
        ctx.connection(True)
        if self._down_since is not None:
            seconds = (ctx.clock.now() - self._down_since).total_seconds()
            ctx.logger.info(
                "%s: connected to %s again after %.0fs", self.where, self.address, seconds
            )
        self._down_since, self._connected_once = None, True
        self.backoff.reset()

    async def run(self, session: Callable[[Callable[[], None]], Awaitable[None]]) -> NoReturn:
        ctx = self.ctx
        ctx.connection(False)
        while True:
            try:
                await session(self.connected)
            except self.errors as exc:
                ctx.connection(False)
                if self._down_since is None:
                    self._down_since = ctx.clock.now()
                    what = "lost the connection to" if self._connected_once else "cannot connect to"
                    ctx.logger.warning(
                        "%s: %s %s (%s); reconnecting, backing off up to %.0fs",
                        self.where,
                        what,
                        self.address,
                        exc or type(exc).__name__,
                        MAX_RECONNECT_DELAY,
                    )
            await self.backoff.sleep()


# -- message payloads -------------------------------------------------------------------------

SerdeType = Literal["STRING", "JSON"]


def serde_decode(data: bytes | str, serde: SerdeType) -> Any:
    """A payload as a flow sees it: text, or the JSON value (ValueError when not JSON)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return json.loads(text) if serde == "JSON" else text


def serde_encode(value: Any, serde: SerdeType) -> bytes:
    """JSON writes the JSON text of any value; STRING writes text as it is and other
    values as JSON (a number, a map from a stored file)."""
    if serde == "STRING" and isinstance(value, str):
        return value.encode()
    return json.dumps(value, ensure_ascii=False, default=str).encode()


async def read_from(ctx: RunContext, value: Any) -> list[Any]:
    """Kestra's `from` property: a `kestra://` URI of an Ion file (one item per value), a
    list (one item per element) or anything else (one item)."""
    if isinstance(value, str) and value.startswith(SCHEME):
        path = await ctx.file_path(value)
        try:
            return await asyncio.to_thread(lambda: list(iter_values(path)))
        except IonError as exc:
            raise TaskFailed(f"{value}: {exc}", non_retryable=True) from None
    return list(value) if isinstance(value, list) else [value]


async def write_records(ctx: RunContext, records: list[Any], name: str) -> str:
    """Store records as an Ion file of the task run; returns its URI."""
    path = await ctx.working_dir() / name

    def write() -> None:
        with path.open("wb") as out:
            write_values(out, records)

    await asyncio.to_thread(write)
    return await ctx.put_file(path)


async def import_module(name: str) -> ModuleType:
    """Import a plug-in's library off the event loop the first time (an import reads files,
    and some libraries read package metadata while importing)."""
    module = sys.modules.get(name)
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, name)
    return module


async def redis_client(url: str, timeout: float) -> Redis:
    """A redis-py asyncio client for `url` (ValueError when it is not a Redis URL).

    redis-py 6: 7 and 8 look their version up in the installed packages' metadata (file
    reads) on the event loop at every connection. Await its calls with `uncancelled`.
    """
    redis = await import_module("redis.asyncio")
    return redis.Redis.from_url(  # type: ignore[no-any-return]
        url, socket_timeout=timeout, socket_connect_timeout=timeout
    )


async def uncancelled(awaitable: Awaitable[T]) -> T:
    """Await a redis-py call and re-raise a cancellation it swallowed.

    redis-py's asyncio client (6 to 8) can catch the CancelledError of a task cancelled
    while a command returns its connection to the pool; the task then runs on, marked as
    cancelling. A trigger stopped then would never stop.
    """
    result = await awaitable
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result
