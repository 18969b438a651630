"""AMQP 0-9-1 (RabbitMQ) triggers: one execution per message (RealtimeTrigger) or per
batch (Trigger), with Kestra's properties (kestra-io/plugin-amqp).

What a message is promised (`autoAck: false`, the default):

* **Acknowledged only after its execution is stored**; until then RabbitMQ keeps it (a
  durable queue keeps it across a broker restart) and delivers it again to the next
  consumer when the connection ends.
* **No second execution for a redelivery.** AMQP gives a message no id that is the same
  on each delivery, so before emitting, the trigger writes to the store, under the
  message's digest (its body and the properties a publisher sets), the key its
  execution is emitted with; the last `MARKERS` messages are remembered. A delivery
  RabbitMQ flags as `redelivered` whose digest is remembered is emitted with the same
  key: the execution id derives from it, so the execution the first delivery stored is
  found and none starts. A batch is split the same way: redelivered messages go with the
  batch they were first in, new ones into a new batch.
* **What is left.** Two messages with the same body and properties are told apart only
  by order: a redelivered copy of one whose marker was never written (the trigger died in
  between) would be taken for the other, if that other is still remembered.

With `autoAck: true` RabbitMQ forgets a message as it sends it: at most once, as Kestra.
In a cluster the trigger runs on one node at a time (`exclusive`), the node holding the
markers of what is in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field

from daemon.sdk.amqpconn import AmqpConnection, digest, incoming
from daemon.sdk.brokers import Reconnector, SerdeType, import_module
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.execution import new_id
from daemon.sdk.files import StorageError
from daemon.sdk.ion import dumps
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import templated_values, with_rendered

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

# Digests of the last messages emitted, with their keys.
MARKERS = 1000
PREFETCH = 100


class Markers:
    """Which key each recently emitted message went out with, kept in the store."""

    def __init__(self, ctx: TriggerContext) -> None:
        self.ctx = ctx
        self.key = ctx.state_key("markers")
        self.entries: dict[str, str] = {}

    async def load(self) -> None:
        stored = await self.ctx.state.get(self.key) or {}
        self.entries = dict(stored.get("entries") or {})

    def known(self, message: AbstractIncomingMessage) -> str | None:
        return self.entries.get(digest(message)) if message.redelivered else None

    async def remember(self, messages: list[AbstractIncomingMessage], key: str) -> None:
        for message in messages:
            found = digest(message)
            self.entries.pop(found, None)
            self.entries[found] = key
        while len(self.entries) > MARKERS:
            self.entries.pop(next(iter(self.entries)))
        await self.ctx.state.set(self.key, {"entries": self.entries})


class AmqpTrigger(AmqpConnection, Trigger):
    queue: str
    consumer_tag: str = "Kestra"
    auto_ack: bool = False
    serde_type: SerdeType = "STRING"

    def exclusive(self) -> bool:
        return True

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        templated = templated_values(self)
        if templated:
            rendered = await asyncio.to_thread(ctx.render, templated)
            return await with_rendered(self, rendered)._connect(emit, ctx)
        return await self._connect(emit, ctx)

    async def _connect(self, emit: Emit, ctx: TriggerContext) -> None:
        if self.password:
            ctx.secrets.add(self.password)
        aio_pika = await import_module("aio_pika")
        aiormq = await import_module("aiormq")
        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        markers = Markers(ctx)
        await markers.load()

        async def session(connected: Callable[[], None]) -> None:
            connection = await self.open()
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def closed(*_: Any) -> None:
                if not lost.done():
                    lost.set_result(None)

            connection.close_callbacks.add(closed)
            try:
                channel = await connection.channel()
                channel.close_callbacks.add(closed)
                await channel.set_qos(prefetch_count=PREFETCH)
                queue = await channel.get_queue(self.queue, ensure=True)
                connected()
                work = asyncio.ensure_future(self._consume(queue, emit, ctx, markers, where))
                try:
                    await asyncio.wait([work, lost], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    work.cancel()
                    await asyncio.gather(work, return_exceptions=True)
                if work.done() and not work.cancelled() and work.exception() is not None:
                    raise work.exception()  # type: ignore[misc]
                raise ConnectionError("the connection closed")
            finally:
                if not connection.is_closed:
                    await connection.close()

        errors = (OSError, TimeoutError, aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError)
        await Reconnector(ctx, where, self.address(), errors).run(session)

    async def _decode(
        self, message: AbstractIncomingMessage, ctx: TriggerContext, where: str
    ) -> dict[str, Any] | None:
        try:
            fields = incoming(message, self.serde_type)
        except ValueError as exc:
            ctx.logger.error(
                "%s: a message of queue '%s' is not valid JSON (%s); no execution started",
                where,
                self.queue,
                exc,
            )
            ctx.count_rejected()
            return None
        return fields

    async def _consume(
        self,
        queue: AbstractQueue,
        emit: Emit,
        ctx: TriggerContext,
        markers: Markers,
        where: str,
    ) -> None:
        raise NotImplementedError


class RealtimeTrigger(AmqpTrigger):
    """Kestra's AMQP RealtimeTrigger: one execution per message, its Message as `trigger`."""

    types = ("io.kestra.plugin.amqp.RealtimeTrigger",)

    async def _consume(
        self,
        queue: AbstractQueue,
        emit: Emit,
        ctx: TriggerContext,
        markers: Markers,
        where: str,
    ) -> None:
        async with queue.iterator(no_ack=self.auto_ack, consumer_tag=self.consumer_tag) as it:
            async for message in it:
                fields = await self._decode(message, ctx, where)
                if fields is not None and await self.admits(ctx, fields, where=where):
                    key = markers.known(message) or new_id()
                    if not self.auto_ack:
                        await markers.remember([message], key)
                    await emit({}, fields, key=key)
                if not self.auto_ack:
                    await message.ack()


class AmqpBatchTrigger(AmqpTrigger):
    """Kestra's AMQP Trigger: every `interval`, the queue's messages until `maxRecords`,
    `maxDuration` or an empty queue, into one execution with `trigger.uri` (an Ion file
    of Messages) and `trigger.count`."""

    types = ("io.kestra.plugin.amqp.Trigger",)

    interval: Duration = timedelta(seconds=60)
    max_records: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None

    async def _consume(
        self,
        queue: AbstractQueue,
        emit: Emit,
        ctx: TriggerContext,
        markers: Markers,
        where: str,
    ) -> None:
        while True:
            started = ctx.clock.now()
            batch: list[AbstractIncomingMessage] = []
            while self.max_records is None or len(batch) < self.max_records:
                if self.max_duration and ctx.clock.now() - started > self.max_duration:
                    break
                message = await queue.get(no_ack=self.auto_ack, fail=False, timeout=5)
                if message is None:
                    break
                batch.append(message)
            groups: dict[str, list[tuple[AbstractIncomingMessage, dict[str, Any]]]] = {}
            fresh = new_id()
            for message in batch:
                fields = await self._decode(message, ctx, where)
                if fields is not None:
                    groups.setdefault(markers.known(message) or fresh, []).append((message, fields))
            for key, members in groups.items():
                await self._flush(key, members, emit, ctx, markers, where)
            if not self.auto_ack:
                for message in batch:
                    await message.ack()
            await ctx.clock.sleep(self.interval.total_seconds())

    async def _flush(
        self,
        key: str,
        members: list[tuple[AbstractIncomingMessage, dict[str, Any]]],
        emit: Emit,
        ctx: TriggerContext,
        markers: Markers,
        where: str,
    ) -> None:
        flow = ctx.flow
        prefix = f"/{flow.namespace.replace('.', '/')}/{flow.id}/triggers/{self.id}"
        lines = "".join(dumps(fields) + "\n" for _, fields in members).encode()
        try:
            uri = await ctx.files.put(lines, prefix=prefix, name=f"{uuid.uuid4().hex}.ion")
        except StorageError as exc:
            raise ConnectionError(f"cannot store the batch: {exc}") from None
        variables = {"uri": uri, "count": len(members)}
        if not await self.admits(ctx, variables, where=where):
            return
        if not self.auto_ack:
            await markers.remember([message for message, _ in members], key)
        await emit({}, variables, key=key)
