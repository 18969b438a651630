"""NATS tasks with Kestra's names and properties (kestra-io/plugin-nats): core Produce,
Consume (JetStream, explicit acks) and Request, and the JetStream key-value store's
CreateBucket, Put, Get and Delete, on nats-py.

A message of `from` is a map `{headers, data}`; `data` is sent as text, or decoded from
base64 with `serializationType: BASE64`. Consume writes an Ion file of Kestra's message
shape: `{subject, headers, data, timestamp}`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from daemon.sdk.brokers import import_module, read_from, write_records
from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.natsconn import DeliverPolicy, connect, consumer_config, message
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText

if TYPE_CHECKING:
    from nats.aio.client import Client


class NatsTask(Task):
    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    token: Annotated[str | None, Dynamic] = None
    creds: Annotated[str | None, Dynamic] = None

    @contextlib.asynccontextmanager
    async def client(self, ctx: RunContext) -> AsyncIterator[Client]:
        for secret in (self.password, self.token, self.creds):
            if secret:
                ctx.secrets.add(secret)
        try:
            nc = await connect(
                self.url,
                username=self.username,
                password=self.password,
                token=self.token,
                creds=self.creds,
                reconnect=True,
            )
        except (OSError, TimeoutError) as exc:
            raise TaskFailed(f"cannot connect to NATS at {self.url}: {exc}") from None
        except Exception as exc:  # nats-py's own errors (authorization, no servers...)
            raise TaskFailed(f"cannot connect to NATS at {self.url}: {exc!r}") from None
        import nats.errors

        try:
            yield nc
        except nats.errors.Error as exc:
            raise TaskFailed(f"NATS: {exc}") from None
        finally:
            await nc.close()


def _headers(value: Any) -> dict[str, str] | None:
    if not value:
        return None
    return {
        str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in value.items()
    }


def _payload(item: Any, serialization: str) -> tuple[bytes, dict[str, str] | None]:
    if not isinstance(item, dict):
        raise TaskFailed(
            f"a message is a map of headers and data, got {item!r}", non_retryable=True
        )
    data = item.get("data")
    if serialization == "BASE64":
        try:
            return base64.b64decode(str(data), validate=True), _headers(item.get("headers"))
        except binascii.Error:
            raise TaskFailed(
                "serializationType BASE64 needs base64 data", non_retryable=True
            ) from None
    text = data if isinstance(data, str) else json.dumps(data)
    return text.encode(), _headers(item.get("headers"))


class Produce(NatsTask):
    """Kestra's Produce: each message of `from` published on `subject`."""

    types = ("io.kestra.plugin.nats.core.Produce", "io.kestra.plugin.nats.Produce")

    subject: Annotated[str, Dynamic]
    from_: Annotated[Any, Dynamic] = Field(alias="from")
    serialization_type: Literal["STRING", "BASE64"] = "STRING"

    async def run(self, ctx: RunContext) -> Output:
        items = [
            _payload(item, self.serialization_type) for item in await read_from(ctx, self.from_)
        ]
        async with self.client(ctx) as nc:
            for data, headers in items:
                await nc.publish(self.subject, data, headers=headers)
            await nc.flush()
        return {"messagesCount": len(items)}


class Request(NatsTask):
    """Kestra's Request: one message, and the reply's data as `response` (None when none
    came within `requestTimeout`)."""

    types = ("io.kestra.plugin.nats.core.Request", "io.kestra.plugin.nats.Request")

    subject: Annotated[str, Dynamic]
    from_: Annotated[Any, Dynamic] = Field(alias="from")
    request_timeout: Duration = timedelta(milliseconds=5000)

    @field_validator("request_timeout", mode="before")
    @classmethod
    def _milliseconds(cls, value: Any) -> Any:
        return timedelta(milliseconds=value) if isinstance(value, int) else value

    async def run(self, ctx: RunContext) -> Output:
        items = await read_from(ctx, self.from_)
        if not items:
            raise TaskFailed("`from` holds no message", non_retryable=True)
        data, headers = _payload(items[0], "STRING")
        async with self.client(ctx) as nc:
            import nats.errors

            try:
                reply = await nc.request(
                    self.subject,
                    data,
                    timeout=self.request_timeout.total_seconds(),
                    headers=headers,
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return {"response": None}
        return {"response": reply.data.decode("utf-8", errors="replace")}


class Consume(NatsTask):
    """Kestra's Consume: JetStream messages of `subject`, each acknowledged once written,
    until none comes within `pollDuration`, `maxRecords` or `maxDuration`."""

    types = ("io.kestra.plugin.nats.core.Consume", "io.kestra.plugin.nats.Consume")

    subject: Annotated[str, Dynamic]
    durable_id: Annotated[str | None, Dynamic] = None
    since: Annotated[str | None, Dynamic] = None
    poll_duration: Duration = timedelta(seconds=2)
    batch_size: int = Field(default=10, ge=1)
    max_records: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None
    deliver_policy: DeliverPolicy = "All"

    async def run(self, ctx: RunContext) -> Output:
        records: list[dict[str, Any]] = []
        started = ctx.clock.now()
        async with self.client(ctx) as nc:
            import nats.errors
            import nats.js.errors

            js = nc.jetstream()
            try:
                sub = await js.pull_subscribe(
                    self.subject,
                    durable=self.durable_id,
                    config=consumer_config(self.deliver_policy, self.since),
                )
            except nats.js.errors.NotFoundError:
                raise TaskFailed(
                    f"no JetStream stream captures the subject '{self.subject}'",
                    non_retryable=True,
                ) from None
            while True:
                want = self.batch_size
                if self.max_records is not None:
                    want = min(want, self.max_records - len(records))
                try:
                    batch = await sub.fetch(want, timeout=self.poll_duration.total_seconds())
                except nats.errors.TimeoutError:
                    break
                for msg in batch:
                    records.append(message(msg))
                    await msg.ack()
                if self.max_records is not None and len(records) >= self.max_records:
                    break
                if self.max_duration and ctx.clock.now() - started > self.max_duration:
                    break
            if not self.durable_id:
                await sub.unsubscribe()
        uri = await write_records(ctx, records, f"{self.id}.ion")
        return {"messagesCount": len(records), "uri": uri}


class KvTask(NatsTask):
    bucket_name: Annotated[str, Dynamic]

    async def bucket(self, nc: Client) -> Any:
        import nats.js.errors

        try:
            return await nc.jetstream().key_value(self.bucket_name)
        except nats.js.errors.BucketNotFoundError:
            raise TaskFailed(
                f"no key-value bucket '{self.bucket_name}'", non_retryable=True
            ) from None


class CreateBucket(NatsTask):
    """Kestra's kv.CreateBucket."""

    types = ("io.kestra.plugin.nats.kv.CreateBucket",)

    name: Annotated[str, Dynamic]
    description: Annotated[str | None, Dynamic] = None
    metadata: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    history_per_key: int = Field(default=1, ge=1, le=64)
    bucket_size: int | None = None
    value_size: int | None = None

    async def run(self, ctx: RunContext) -> Output:
        api = await import_module("nats.js.api")
        config = api.KeyValueConfig(
            bucket=self.name,
            description=self.description,
            history=self.history_per_key,
            max_bytes=self.bucket_size or -1,
            max_value_size=self.value_size or -1,
        )
        if self.metadata:
            config.metadata = dict(self.metadata)  # type: ignore[attr-defined]
        async with self.client(ctx) as nc:
            kv = await nc.jetstream().create_key_value(config)
            status = await kv.status()
        info = status.stream_info.config
        return {
            "bucket": status.bucket,
            "description": info.description,
            "history": status.history,
            "entryCount": status.values,
            "bucketSize": info.max_bytes,
            "valueSize": info.max_msg_size,
            "metadata": getattr(info, "metadata", None) or self.metadata or {},
        }


class Put(KvTask):
    """Kestra's kv.Put: each value stored as JSON; `revisions` per key."""

    types = ("io.kestra.plugin.nats.kv.Put",)

    values: Annotated[dict[str, Any], Dynamic, JsonText]

    async def run(self, ctx: RunContext) -> Output:
        revisions = {}
        async with self.client(ctx) as nc:
            kv = await self.bucket(nc)
            for key, value in self.values.items():
                revisions[key] = await kv.put(key, json.dumps(value).encode())
        return {"revisions": revisions}


class Get(KvTask):
    """Kestra's kv.Get: `output` maps each key found to its (JSON) value."""

    types = ("io.kestra.plugin.nats.kv.Get",)

    keys: Annotated[list[str] | None, Dynamic, JsonText] = None
    key_revisions: Annotated[dict[str, int] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        wanted = (
            list(self.key_revisions.items())
            if self.key_revisions
            else [(key, None) for key in self.keys or []]
        )
        output: dict[str, Any] = {}
        async with self.client(ctx) as nc:
            import nats.js.errors

            kv = await self.bucket(nc)
            for key, revision in wanted:
                try:
                    entry = await kv.get(key, revision=revision)
                except nats.js.errors.KeyNotFoundError:
                    continue
                if entry.value is not None:
                    try:
                        output[key] = json.loads(entry.value)
                    except ValueError:
                        output[key] = entry.value.decode("utf-8", errors="replace")
        return {"output": output}


class Delete(KvTask):
    """Kestra's kv.Delete: the keys are deleted (a delete marker each)."""

    types = ("io.kestra.plugin.nats.kv.Delete",)

    keys: Annotated[list[str], Dynamic, JsonText]

    async def run(self, ctx: RunContext) -> Output:
        deleted = {}
        async with self.client(ctx) as nc:
            kv = await self.bucket(nc)
            for key in self.keys:
                deleted[key] = bool(await kv.delete(key))
        return {"deleted": deleted}
