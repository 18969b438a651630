"""NATS JetStream triggers: one execution per message (RealtimeTrigger) or per batch
(Trigger), with Kestra's properties (kestra-io/plugin-nats core.RealtimeTrigger/Trigger).

What a message is promised:

* **Durable.** The trigger pulls through a durable consumer (`durableId`, or one named
  after the flow and trigger), so JetStream keeps its position while podium is down and
  delivers what was published meanwhile once it is back.
* **Acknowledged after its execution is stored.** Unacknowledged, JetStream delivers it
  again once the consumer's ack wait (30 s) has passed: messages a killed podium had
  fetched come back that long after, possibly after newer ones.
* **Never a second execution.** A message's execution is emitted with a key made of its
  stream, the stream's creation time and its sequence number in the stream, which are
  the same on every delivery: the execution id derives from the key, so a redelivered
  message finds the execution its first delivery stored. A batch is keyed by its first
  message, and carries its last sequence (`trigger.lastSequence`): when a redelivered
  batch is longer than the one stored, the extra messages are handed back (nak) for the
  next batch.

In a cluster every node runs the trigger (`exclusive` is false): the durable consumer is
a consumer group, JetStream hands each message to one of them, and the keys keep a
message redelivered to another node from running twice.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from daemon.sdk.brokers import Reconnector
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.files import StorageError
from daemon.sdk.ion import dumps
from daemon.sdk.natsconn import DeliverPolicy, connect, consumer_config, message
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Dynamic, templated_values, with_rendered

if TYPE_CHECKING:
    from nats.aio.msg import Msg

# A fetch waits this long for messages at most, then checks the connection and waits again.
FETCH_WAIT = 1.0
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")


class NatsTrigger(Trigger):
    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    token: Annotated[str | None, Dynamic] = None
    creds: Annotated[str | None, Dynamic] = None
    subject: Annotated[str, Dynamic]
    durable_id: Annotated[str | None, Dynamic] = None
    since: Annotated[str | None, Dynamic] = None
    batch_size: int = Field(default=10, ge=1)
    deliver_policy: DeliverPolicy = "All"

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        templated = templated_values(self)
        if templated:
            rendered = await asyncio.to_thread(ctx.render, templated)
            return await with_rendered(self, rendered)._connect(emit, ctx)
        return await self._connect(emit, ctx)

    def _durable(self, ctx: TriggerContext) -> str:
        if self.durable_id:
            return self.durable_id
        name = f"podium_{ctx.flow.namespace}_{ctx.flow.id}_{ctx.trigger_id}"
        return _NOT_IN_NAME.sub("_", name)

    async def _connect(self, emit: Emit, ctx: TriggerContext) -> None:
        for secret in (self.password, self.token, self.creds):
            if secret:
                ctx.secrets.add(secret)
        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        nats = await _nats()

        async def session(connected: Callable[[], None]) -> None:
            nc = await connect(
                self.url,
                username=self.username,
                password=self.password,
                token=self.token,
                creds=self.creds,
            )
            try:
                js = nc.jetstream()
                try:
                    stream = await js.find_stream_name_by_subject(self.subject)
                except nats.js.errors.NotFoundError:
                    raise NoStream(f"no JetStream stream captures '{self.subject}'") from None
                info = await js.stream_info(stream)
                epoch = f"{stream}:{info.created.isoformat() if info.created else ''}"
                sub = await js.pull_subscribe(
                    self.subject,
                    durable=self._durable(ctx),
                    stream=stream,
                    config=consumer_config(self.deliver_policy, self.since),
                )
                connected()
                await self._consume(sub, nc, emit, ctx, epoch, where)
            finally:
                await nc.close()

        errors = (OSError, TimeoutError, nats.errors.Error, NoStream)
        await Reconnector(ctx, where, self.url, errors).run(session)

    async def _fetch(self, sub: Any, nc: Any, want: int, wait: float) -> list[Msg]:
        nats = await _nats()
        if nc.is_closed or not nc.is_connected:
            raise ConnectionError("the connection closed")
        try:
            return list(await sub.fetch(want, timeout=wait))
        except nats.errors.TimeoutError:
            if nc.is_closed or not nc.is_connected:
                raise ConnectionError("the connection closed") from None
            return []

    async def _consume(
        self, sub: Any, nc: Any, emit: Emit, ctx: TriggerContext, epoch: str, where: str
    ) -> None:
        raise NotImplementedError


class NoStream(Exception):
    """No stream captures the subject (yet): retried like a lost connection."""


async def _nats() -> Any:
    from daemon.sdk.brokers import import_module

    await import_module("nats.js.errors")
    return await import_module("nats")


class RealtimeTrigger(NatsTrigger):
    """Kestra's NATS RealtimeTrigger: one execution per message, its `subject`, `headers`,
    `data` and `timestamp` as `trigger.*`."""

    types = ("io.kestra.plugin.nats.core.RealtimeTrigger", "io.kestra.plugin.nats.RealtimeTrigger")

    async def _consume(
        self, sub: Any, nc: Any, emit: Emit, ctx: TriggerContext, epoch: str, where: str
    ) -> None:
        while True:
            for msg in await self._fetch(sub, nc, self.batch_size, FETCH_WAIT):
                variables = message(msg)
                if await self.admits(ctx, variables, where=where):
                    key = f"{epoch}:{msg.metadata.sequence.stream}"
                    await emit({}, variables, key=key)
                await msg.ack()


class NatsBatchTrigger(NatsTrigger):
    """Kestra's NATS Trigger: every `interval`, messages fetched `batchSize` at a time until
    none comes within `pollDuration`, `maxRecords` or `maxDuration`, into one execution
    with `trigger.uri` (an Ion file) and `trigger.messagesCount`."""

    types = ("io.kestra.plugin.nats.core.Trigger", "io.kestra.plugin.nats.Trigger")

    interval: Duration = timedelta(seconds=60)
    poll_duration: Duration = timedelta(seconds=2)
    max_records: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None

    async def _consume(
        self, sub: Any, nc: Any, emit: Emit, ctx: TriggerContext, epoch: str, where: str
    ) -> None:
        while True:
            batch: list[Msg] = []
            started = ctx.clock.now()
            while True:
                want = self.batch_size
                if self.max_records is not None:
                    want = min(want, self.max_records - len(batch))
                fetched = await self._fetch(sub, nc, want, self.poll_duration.total_seconds())
                batch += fetched
                if not fetched or (self.max_records and len(batch) >= self.max_records):
                    break
                if self.max_duration and ctx.clock.now() - started > self.max_duration:
                    break
            if batch:
                await self._flush(batch, emit, ctx, epoch, where)
            await ctx.clock.sleep(self.interval.total_seconds())

    async def _flush(
        self, batch: list[Msg], emit: Emit, ctx: TriggerContext, epoch: str, where: str
    ) -> None:
        first = batch[0].metadata.sequence.stream
        last = batch[-1].metadata.sequence.stream
        flow = ctx.flow
        prefix = f"/{flow.namespace.replace('.', '/')}/{flow.id}/triggers/{self.id}"
        lines = "".join(dumps(message(msg)) + "\n" for msg in batch).encode()
        try:
            uri = await ctx.files.put(lines, prefix=prefix, name=f"{uuid.uuid4().hex}.ion")
        except StorageError as exc:
            for msg in batch:
                await msg.nak()
            raise ConnectionError(f"cannot store the batch: {exc}") from None
        variables = {"uri": uri, "messagesCount": len(batch), "lastSequence": last}
        if not await self.admits(ctx, variables, where=where):
            for msg in batch:
                await msg.ack()
            return
        execution = await emit({}, variables, key=f"{epoch}:{first}")
        stored = (execution.trigger or {}).get("variables", {}).get("lastSequence", last)
        for msg in batch:
            if msg.metadata.sequence.stream <= stored:
                await msg.ack()
            else:
                await msg.nak()
