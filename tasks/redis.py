"""Redis tasks with Kestra's names and properties: list ListPush/ListPop, string
Set/Get/Delete and pubsub Publish, on redis-py's asyncio client.

As in Kestra's plug-in, ListPush adds to the head of the list (LPUSH) and ListPop takes
from the head (LPOP), `count` items per round trip, until `maxRecords` or `maxDuration`
or an empty list. `serdeType` STRING hands values over as text, JSON parses them
(ListPop, Get) or writes them as JSON text (ListPush, Set, Publish).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AliasChoices, Field

from daemon.sdk.brokers import (
    SerdeType,
    read_from,
    redis_client,
    serde_decode,
    serde_encode,
    uncancelled,
    write_records,
)
from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Seconds to connect and for one reply: a command that waits longer has lost its server.
SOCKET_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def connect(url: str, ctx: RunContext) -> AsyncIterator[Redis]:
    """A client for one task run; a password in the URL is masked in the logs."""
    try:
        client = await redis_client(url, SOCKET_TIMEOUT)
    except ValueError as exc:
        raise TaskFailed(f"invalid Redis url: {exc}", non_retryable=True) from None
    import redis.exceptions  # loaded by redis_client

    password = client.connection_pool.connection_kwargs.get("password")
    if password:
        ctx.secrets.add(str(password))
    try:
        yield client
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise TaskFailed(f"Redis at {_address(client)}: {exc}") from None
    except redis.exceptions.ResponseError as exc:
        raise TaskFailed(f"Redis refused the command: {exc}", non_retryable=True) from None
    finally:
        await client.aclose()


def _address(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


class RedisTask(Task):
    url: Annotated[str, Dynamic]
    serde_type: SerdeType = "STRING"


class ListPush(RedisTask):
    """Kestra's ListPush: items of `from` (a list, one value, or a stored Ion file) pushed
    to the head of the list at `key`."""

    types = ("io.kestra.plugin.redis.list.ListPush", "io.kestra.plugin.redis.ListPush")

    key: Annotated[str, Dynamic]
    from_: Annotated[Any, Dynamic] = Field(alias="from")

    async def run(self, ctx: RunContext) -> Output:
        items = [serde_encode(item, self.serde_type) for item in await read_from(ctx, self.from_)]
        async with connect(self.url, ctx) as client:
            if items:
                await uncancelled(client.lpush(self.key, *items))
        ctx.metric("inserted.records.count", "counter", len(items), {"key": self.key})
        return {"count": len(items)}


class ListPop(RedisTask):
    """Kestra's ListPop: items taken from the head of the list into a stored Ion file."""

    types = ("io.kestra.plugin.redis.list.ListPop", "io.kestra.plugin.redis.ListPop")

    key: Annotated[str, Dynamic]
    count: Annotated[int, Dynamic, Field(ge=1)] = 100
    max_records: Annotated[int | None, Dynamic, Field(ge=1)] = None
    max_duration: Annotated[Duration | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        if self.max_records is None and self.max_duration is None:
            raise TaskFailed(
                "maxDuration or maxRecords must be set to avoid an infinite loop",
                non_retryable=True,
            )
        records: list[Any] = []
        started = ctx.clock.now()
        async with connect(self.url, ctx) as client:
            while True:
                want = self.count
                if self.max_records is not None:
                    want = min(want, self.max_records - len(records))
                popped = await uncancelled(client.lpop(self.key, want)) or []
                try:
                    records += [serde_decode(item, self.serde_type) for item in popped]
                except ValueError as exc:
                    raise TaskFailed(
                        f"an item of '{self.key}' is not JSON ({exc})", non_retryable=True
                    ) from None
                if not popped or (self.max_records and len(records) >= self.max_records):
                    break
                if self.max_duration and ctx.clock.now() - started > self.max_duration:
                    break
        uri = await write_records(ctx, records, f"{self.id}.ion")
        ctx.metric("popped.records.count", "counter", len(records), {"key": self.key})
        return {"count": len(records), "uri": uri}


class SetOptions(Model):
    """Kestra's Set options: an expiry, NX/XX, KEEPTTL."""

    expiration_duration: Duration | None = None
    expiration_date: datetime | None = None
    must_not_exist: bool = False
    must_exist: bool = False
    keep_ttl: bool = Field(default=False, validation_alias=AliasChoices("keepTtl", "keepttl"))


class Set(RedisTask):
    """Kestra's string Set; `get: true` returns the value it replaced as `oldValue`."""

    types = ("io.kestra.plugin.redis.string.Set", "io.kestra.plugin.redis.Set")

    key: Annotated[str, Dynamic]
    value: Annotated[Any, Dynamic]
    options: SetOptions = Field(default_factory=SetOptions)
    get: bool = False

    async def run(self, ctx: RunContext) -> Output:
        options = self.options
        async with connect(self.url, ctx) as client:
            old = await uncancelled(
                client.set(
                    self.key,
                    serde_encode(self.value, self.serde_type),
                    px=options.expiration_duration,
                    pxat=options.expiration_date,
                    nx=options.must_not_exist,
                    xx=options.must_exist,
                    keepttl=options.keep_ttl,
                    get=self.get,
                )
            )
        if self.get and old is not None:
            return {"oldValue": old.decode("utf-8", errors="replace")}
        return {}


class Get(RedisTask):
    """Kestra's string Get: `data` is the value (None when the key is missing, or the
    task fails with `failedOnMissing`)."""

    types = ("io.kestra.plugin.redis.string.Get", "io.kestra.plugin.redis.Get")

    key: Annotated[str, Dynamic]
    failed_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        async with connect(self.url, ctx) as client:
            raw = await uncancelled(client.get(self.key))
        if raw is None:
            if self.failed_on_missing:
                raise TaskFailed(f"Missing keys '{self.key}'")
            return {"key": self.key, "data": None}
        try:
            return {"key": self.key, "data": serde_decode(raw, self.serde_type)}
        except ValueError as exc:
            raise TaskFailed(
                f"'{self.key}' does not hold JSON ({exc})", non_retryable=True
            ) from None


class Delete(RedisTask):
    """Kestra's string Delete; `failedOnMissing` fails when a key was not there."""

    types = ("io.kestra.plugin.redis.string.Delete", "io.kestra.plugin.redis.Delete")

    keys: Annotated[list[str], Dynamic, JsonText]
    failed_on_missing: bool = False

    async def run(self, ctx: RunContext) -> Output:
        async with connect(self.url, ctx) as client:
            count = int(await uncancelled(client.delete(*self.keys))) if self.keys else 0
        if self.failed_on_missing and count != len(self.keys):
            raise TaskFailed(f"{len(self.keys) - count} of the keys {self.keys} were missing")
        return {"count": count}


class Publish(RedisTask):
    """Kestra's pubsub Publish: each item of `from` published on `channel`."""

    types = ("io.kestra.plugin.redis.pubsub.Publish", "io.kestra.plugin.redis.Publish")

    channel: Annotated[str, Dynamic]
    from_: Annotated[Any, Dynamic] = Field(alias="from")

    async def run(self, ctx: RunContext) -> Output:
        items = [serde_encode(item, self.serde_type) for item in await read_from(ctx, self.from_)]
        async with connect(self.url, ctx) as client:
            async with client.pipeline(transaction=False) as pipe:
                for item in items:
                    pipe.publish(self.channel, item)
                await uncancelled(pipe.execute())
        return {"count": len(items)}
