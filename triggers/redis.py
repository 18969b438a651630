"""Redis list triggers: one execution per item (RealtimeTrigger) or per batch (Trigger).

Kestra pops items with LPOP, which loses an item whose execution was never stored.
Here an item leaves the list only into a record of what is in flight, and leaves that
record only once its execution is stored; nothing is lost, and nothing runs twice:

* A Lua script (atomic in Redis) pops the items and records them in a hash of this
  trigger's in-flight batches under a new sequence number. The RealtimeTrigger waits
  for an item with BLMOVE into a staging list of its own (so that it does not poll),
  and the script takes it from there.
* The batch's execution is emitted with the key `<epoch>:<sequence>`: the execution id
  derives from it, so emitting it again returns the execution stored the first time.
* Once emitted, the batch is removed from the hash. After a crash, a lost connection or
  a Redis restart (the test broker writes an append-only file), the batches still in the
  hash are emitted again first: those whose execution exists start nothing new.

The epoch is a random id kept in Redis beside the counter: if Redis loses its data the
counter starts again, under a new epoch, so that old keys are not reused. In a cluster a
trigger runs on one node at a time (`exclusive`), which takes over its in-flight batches.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from daemon.sdk.brokers import (
    Reconnector,
    SerdeType,
    redis_client,
    serde_decode,
    uncancelled,
)
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.execution import new_id
from daemon.sdk.files import StorageError
from daemon.sdk.ion import dumps
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Dynamic, templated_values, with_rendered

if TYPE_CHECKING:
    from redis.asyncio import Redis

# BLMOVE waits this long at most, then is called again: a dead server shows up meanwhile.
BLOCK_SECONDS = 5.0
SOCKET_TIMEOUT = BLOCK_SECONDS + 10.0

# KEYS: source, in-flight hash, counter. ARGV: how many, the batch's sequence or "" for new.
# Pops up to ARGV[1] items from the head and records them in flight, atomically.
_CLAIM = """
local items = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not items then return false end
local seq = ARGV[2]
local batch = {}
if seq == '' then
  seq = tostring(redis.call('INCR', KEYS[3]))
else
  local held = redis.call('HGET', KEYS[2], seq)
  if held then batch = cjson.decode(held) end
end
for _, item in ipairs(items) do batch[#batch + 1] = item end
redis.call('HSET', KEYS[2], seq, cjson.encode(batch))
return {seq, cjson.encode(items)}
"""


class RedisListTrigger(Trigger):
    url: Annotated[str, Dynamic]
    key: Annotated[str, Dynamic]
    serde_type: SerdeType = "STRING"

    def exclusive(self) -> bool:
        """One node pops and holds the in-flight record; another takes over if it dies."""
        return True

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        templated = templated_values(self)
        if templated:
            rendered = await asyncio.to_thread(ctx.render, templated)
            return await with_rendered(self, rendered)._connect(emit, ctx)
        return await self._connect(emit, ctx)

    def _keys(self, ctx: TriggerContext) -> dict[str, str]:
        flow = ctx.flow
        base = f"podium:trigger:{flow.namespace}.{flow.id}.{ctx.trigger_id}"
        return {
            "staging": f"{base}:staging",
            "inflight": f"{base}:inflight",
            "seq": f"{base}:seq",
            "epoch": f"{base}:epoch",
        }

    async def _connect(self, emit: Emit, ctx: TriggerContext) -> None:
        client = await redis_client(self.url, SOCKET_TIMEOUT)
        import redis.exceptions  # loaded by redis_client

        kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("password"):
            ctx.secrets.add(str(kwargs["password"]))
        address = f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

        async def session(connected: Callable[[], None]) -> None:
            await uncancelled(client.ping())
            connected()
            keys = self._keys(ctx)
            await uncancelled(client.set(keys["epoch"], new_id(), nx=True))
            epoch = (await uncancelled(client.get(keys["epoch"]))).decode()
            held = await uncancelled(client.hgetall(keys["inflight"]))
            for seq in sorted(held, key=int):
                items = json.loads(held[seq])
                await self._deliver(client, emit, ctx, keys, epoch, seq.decode(), items, where)
            await self._consume(client, emit, ctx, keys, epoch, where)

        try:
            await Reconnector(ctx, where, address, errors).run(session)
        finally:
            await client.aclose()

    async def _claim(
        self, client: Redis, keys: dict[str, str], source: str, count: int, seq: str = ""
    ) -> tuple[str, list[Any]] | None:
        claimed = await uncancelled(
            client.eval(_CLAIM, 3, source, keys["inflight"], keys["seq"], count, seq)  # type: ignore[arg-type]
        )
        if not claimed:
            return None
        return claimed[0].decode(), json.loads(claimed[1])

    async def _consume(
        self,
        client: Redis,
        emit: Emit,
        ctx: TriggerContext,
        keys: dict[str, str],
        epoch: str,
        where: str,
    ) -> None:
        raise NotImplementedError

    async def _deliver(
        self,
        client: Redis,
        emit: Emit,
        ctx: TriggerContext,
        keys: dict[str, str],
        epoch: str,
        seq: str,
        items: list[Any],
        where: str,
    ) -> None:
        """Emit the batch `seq` (again, after a crash: then its execution is found), then
        forget it."""
        values = []
        for item in items:
            try:
                values.append(serde_decode(item, self.serde_type))
            except ValueError as exc:
                ctx.logger.error(
                    "%s: an item of '%s' is not valid JSON (%s); it starts no execution",
                    where,
                    self.key,
                    exc,
                )
                ctx.count_rejected()
        if values:
            await self._emit(emit, ctx, values, f"{epoch}:{seq}", where)
        await uncancelled(client.hdel(keys["inflight"], seq))

    async def _emit(
        self, emit: Emit, ctx: TriggerContext, values: list[Any], key: str, where: str
    ) -> None:
        raise NotImplementedError


class RealtimeTrigger(RedisListTrigger):
    """Kestra's Redis list RealtimeTrigger: one execution per item, `trigger.value`."""

    types = (
        "io.kestra.plugin.redis.list.RealtimeTrigger",
        "io.kestra.plugin.redis.RealtimeTrigger",
        "io.kestra.plugin.redis.RealtimeTriggerList",
    )

    async def _consume(
        self,
        client: Redis,
        emit: Emit,
        ctx: TriggerContext,
        keys: dict[str, str],
        epoch: str,
        where: str,
    ) -> None:
        while True:
            claimed = await self._claim(client, keys, keys["staging"], 1)
            if claimed is None:
                claimed = await self._claim(client, keys, self.key, 1)
            if claimed is None:
                await uncancelled(
                    client.blmove(self.key, keys["staging"], BLOCK_SECONDS, "LEFT", "RIGHT")
                )
                continue
            seq, items = claimed
            await self._deliver(client, emit, ctx, keys, epoch, seq, items, where)

    async def _emit(
        self, emit: Emit, ctx: TriggerContext, values: list[Any], key: str, where: str
    ) -> None:
        for value in values:
            if await self.admits(ctx, {"value": value}, where=where):
                await emit({}, {"value": value}, key=key)


class ListTrigger(RedisListTrigger):
    """Kestra's Redis list Trigger: every `interval`, items popped `count` at a time until
    `maxRecords`, `maxDuration` or an empty list, into one execution with `trigger.uri`
    (an Ion file) and `trigger.count`."""

    types = (
        "io.kestra.plugin.redis.list.Trigger",
        "io.kestra.plugin.redis.TriggerList",
        "io.kestra.plugin.redis.Trigger",
    )

    interval: Duration = timedelta(seconds=60)
    count: int = Field(default=100, ge=1)
    max_records: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None

    async def _consume(
        self,
        client: Redis,
        emit: Emit,
        ctx: TriggerContext,
        keys: dict[str, str],
        epoch: str,
        where: str,
    ) -> None:
        while True:
            started, seq, items = ctx.clock.now(), "", []
            while True:
                want = self.count
                if self.max_records is not None:
                    want = min(want, self.max_records - len(items))
                claimed = await self._claim(client, keys, self.key, want, seq)
                if claimed is None:
                    break
                seq, popped = claimed
                items += popped
                if self.max_records is not None and len(items) >= self.max_records:
                    break
                if self.max_duration and ctx.clock.now() - started > self.max_duration:
                    break
            if items:
                await self._deliver(client, emit, ctx, keys, epoch, seq, items, where)
            await ctx.clock.sleep(self.interval.total_seconds())

    async def _emit(
        self, emit: Emit, ctx: TriggerContext, values: list[Any], key: str, where: str
    ) -> None:
        flow = ctx.flow
        prefix = f"/{flow.namespace.replace('.', '/')}/{flow.id}/triggers/{self.id}"
        lines = "".join(dumps(value) + "\n" for value in values).encode()
        try:
            uri = await ctx.files.put(lines, prefix=prefix, name=f"{uuid.uuid4().hex}.ion")
        except StorageError as exc:
            # Kept in flight: the batch is emitted again after the next reconnect.
            raise ConnectionError(f"cannot store the batch: {exc}") from None
        variables = {"uri": uri, "count": len(values)}
        if await self.admits(ctx, variables, where=where):
            await emit({}, variables, key=key)
