"""AMQP 0-9-1 (RabbitMQ) tasks with Kestra's names and properties (kestra-io/plugin-amqp):
Publish, Consume, CreateQueue, DeclareExchange and QueueBind, on aio-pika.

Publish waits for the broker's confirmation of every message (publisher confirms), so a
task that succeeded has handed each message to the broker. Consume writes Kestra's
Message maps to an Ion file and acknowledges the messages once the file is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.amqpconn import AmqpConnection, incoming, outgoing
from daemon.sdk.brokers import SerdeType, read_from, write_records
from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel

# How long Consume waits for one more message before it calls the queue drained.
DRAIN_WAIT = 1.0


class AmqpTask(AmqpConnection, Task):
    @contextlib.asynccontextmanager
    async def channel(self, ctx: RunContext) -> AsyncIterator[AbstractChannel]:
        if self.password:
            ctx.secrets.add(self.password)
        try:
            connection = await self.open()
        except ValueError as exc:
            raise TaskFailed(str(exc), non_retryable=True) from None
        except Exception as exc:  # aio-pika/aiormq: refused, unreachable, bad login
            raise TaskFailed(f"cannot connect to {self.address()}: {exc!r}") from None
        import aio_pika.exceptions

        try:
            async with connection:
                yield await connection.channel()
        except aio_pika.exceptions.AMQPError as exc:
            raise TaskFailed(f"{self.address()}: {exc!r}") from None


class Publish(AmqpTask):
    """Kestra's Publish: each item of `from` (a Message map, a list, or a stored file)."""

    types = ("io.kestra.plugin.amqp.Publish",)

    exchange: Annotated[str, Dynamic]
    routing_key: Annotated[str, Dynamic] = ""
    from_: Annotated[Any, Dynamic] = Field(alias="from")
    serde_type: SerdeType = "STRING"

    async def run(self, ctx: RunContext) -> Output:
        items = await read_from(ctx, self.from_)
        async with self.channel(ctx) as channel:
            exchange = (
                channel.default_exchange
                if not self.exchange
                else await channel.get_exchange(self.exchange, ensure=True)
            )
            for item in items:
                await exchange.publish(await outgoing(item, self.serde_type), self.routing_key)
        ctx.metric("records", "counter", len(items))
        return {"messagesCount": len(items)}


class Consume(AmqpTask):
    """Kestra's Consume: messages of `queue` into a stored file, until `maxRecords`,
    `maxDuration` or an empty queue; `count` and `uri`."""

    types = ("io.kestra.plugin.amqp.Consume",)

    queue: Annotated[str, Dynamic]
    consumer_tag: str = "Kestra"
    auto_ack: bool = False
    max_records: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None
    serde_type: SerdeType = "STRING"

    async def run(self, ctx: RunContext) -> Output:
        if self.max_records is None and self.max_duration is None:
            raise TaskFailed("maxDuration or maxRecords must be set", non_retryable=True)
        records, pending = [], []
        started = ctx.clock.now()
        async with self.channel(ctx) as channel:
            queue = await channel.get_queue(self.queue, ensure=True)
            while self.max_records is None or len(records) < self.max_records:
                if self.max_duration and ctx.clock.now() - started > self.max_duration:
                    break
                message = await queue.get(no_ack=self.auto_ack, fail=False, timeout=DRAIN_WAIT)
                if message is None:
                    break
                try:
                    records.append(incoming(message, self.serde_type))
                except ValueError as exc:
                    raise TaskFailed(f"a message is not JSON ({exc})", non_retryable=True) from None
                pending.append(message)
            uri = await write_records(ctx, records, f"{self.id}.ion")
            if not self.auto_ack:
                for message in pending:
                    await message.ack()
        return {"count": len(records), "uri": uri}


class CreateQueue(AmqpTask):
    """Kestra's CreateQueue."""

    types = ("io.kestra.plugin.amqp.CreateQueue",)

    name: Annotated[str, Dynamic]
    durability: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    args: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        async with self.channel(ctx) as channel:
            await channel.declare_queue(
                self.name,
                durable=self.durability,
                exclusive=self.exclusive,
                auto_delete=self.auto_delete,
                arguments=self.args or None,
            )
        return {"queue": self.name}


class DeclareExchange(AmqpTask):
    """Kestra's DeclareExchange (`exchangeType` DIRECT, FANOUT, TOPIC or HEADERS)."""

    types = ("io.kestra.plugin.amqp.DeclareExchange", "io.kestra.plugin.amqp.CreateExchange")

    name: Annotated[str, Dynamic]
    exchange_type: Literal["DIRECT", "FANOUT", "TOPIC", "HEADERS"] = "DIRECT"
    durability: bool = True
    auto_delete: bool = False
    internal: bool = False
    args: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        async with self.channel(ctx) as channel:
            await channel.declare_exchange(
                self.name,
                self.exchange_type.lower(),
                durable=self.durability,
                auto_delete=self.auto_delete,
                internal=self.internal,
                arguments=self.args or None,
            )
        return {"exchange": self.name}


class QueueBind(AmqpTask):
    """Kestra's QueueBind."""

    types = ("io.kestra.plugin.amqp.QueueBind",)

    exchange: Annotated[str, Dynamic]
    queue: Annotated[str, Dynamic]
    routing_key: Annotated[str, Dynamic] = ""
    args: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        async with self.channel(ctx) as channel:
            queue = await channel.get_queue(self.queue, ensure=True)
            await queue.bind(self.exchange, self.routing_key, arguments=self.args or None)
        return {"queue": self.queue, "exchange": self.exchange}
