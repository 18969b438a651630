"""MQTT triggers: one execution per message (RealtimeTrigger) or per batch (Trigger).

What a message is promised (QoS 1, the default):

* **No loss.** The trigger keeps a persistent session (MQTT 3.1.1 clean session off, or
  MQTT 5 clean start off with a session expiry) under a stable client id, so the broker
  queues what is published while podium is down. A message is acknowledged only after
  the execution it started is durably stored; if podium dies before that, the broker
  delivers it again.
* **No second execution for a redelivery.** Before `emit`, a marker keyed by the packet
  id goes to the store with the payload's digest and the time. The broker re-sends an
  unacknowledged message with the same packet id and the DUP flag set; for such a
  message whose marker matches, the executions of the flow started since the marker are
  searched for one carrying that message (topic and packet id, or the batch file's URI).
  Found: it is acknowledged without a new execution. Packet ids are reused once
  acknowledged, hence the digest, the DUP flag and the search rather than a permanent
  claim: MQTT gives no id that is unique for ever.
* **What is left.** This is exactly-once in effect, not in theory: a message whose first
  delivery is lost in the instant between its arrival and its marker's write, and that
  has the same packet id, topic and payload as the last message acknowledged under that
  id, is taken for that one and acknowledged without an execution.

QoS 2 subscribes at QoS 1: paho keeps QoS 2 receive state only in memory, so a crash
would lose the message or wedge the session; the de-duplication above gives the effect
QoS 2 asks for. QoS 0 messages are neither queued nor acknowledged: at most once.

A payload that does not parse with serdeType JSON is logged (naming the topic) and
acknowledged without an execution: left unacknowledged it would come back on every
reconnect and hold one of the broker's in-flight slots for ever.

In a cluster a trigger is run by one node at a time (`exclusive`), keeping one client id
and so one session wherever it moves, unless all its topics are shared subscriptions
(`$share/<group>/<filter>`): then every node runs it, the broker hands each message to
one of them, and each node's client id ends with its node id (two clients with one id
would take the session from each other).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from types import TracebackType
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, AliasChoices, Field, field_validator

from daemon.sdk.brokers import Endpoint, parse_endpoint, tls_context
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import new_id
from daemon.sdk.files import StorageError
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Dynamic, has_template, templated_values, with_rendered
from daemon.sdk.retry import Backoff
from daemon.sdk.state import iso

SerdeType = Literal["STRING", "JSON", "BYTES"]

# Reconnect after 1 s, 2 s, 4 s ... at most this long.
MAX_RECONNECT_DELAY = 30.0
# How long an MQTT 5 broker keeps the session (and queues messages) while podium is away.
SESSION_EXPIRY = 7 * 24 * 3600
# Kestra's default connection timeout.
DEFAULT_CONNECTION_TIMEOUT = 30.0
_SEARCH_PAGE = 100
MQTT_PORTS = (1883, 8883)
SHARED_PREFIX = "$share/"


def parse_server(server: str) -> Endpoint:
    """Ports default as in Kestra: 1883, or 8883 over TLS."""
    return parse_endpoint(server, MQTT_PORTS)


def check_filter(topic: str) -> str:
    """A subscription filter: `+` and `#` only as whole levels, `#` only last; or a shared
    subscription, `$share/<group>/<filter>`."""
    if not topic:
        raise ValueError("a topic cannot be empty")
    topic_filter = topic
    if topic.startswith(SHARED_PREFIX):
        group, _, topic_filter = topic[len(SHARED_PREFIX) :].partition("/")
        if not group or "+" in group or "#" in group:
            raise ValueError(
                "a shared subscription is $share/<group>/<filter>, with a group "
                "name that holds neither '+' nor '#'"
            )
        if not topic_filter:
            raise ValueError(
                "a shared subscription is $share/<group>/<filter>: the filter is missing"
            )
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError("'#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError("'+' must be a whole level")
    return topic


def decode(payload: bytes, serde: SerdeType) -> Any:
    """The payload as flows see it; BYTES becomes base64 text (what Kestra's JSON gives)."""
    if serde == "JSON":
        return json.loads(payload)
    if serde == "STRING":
        return payload.decode("utf-8", errors="replace")
    return base64.b64encode(payload).decode("ascii")


@dataclass(frozen=True)
class Received:
    """One PUBLISH as paho saw it, DUP flag included (aiomqtt's Message drops it)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool


class Session(Protocol):
    """The slice of the aiomqtt client the triggers use, plus manual acks."""

    session_present: bool

    async def __aenter__(self) -> Session: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def subscribe(self, topic: list[tuple[str, int]]) -> Any: ...

    async def unsubscribe(self, topic: list[str]) -> None: ...

    def next_message(self) -> Awaitable[Received]: ...

    def ack(self, item: Received) -> None: ...


@cache
def _session_class() -> Callable[..., Session]:
    """aiomqtt 2.x can neither acknowledge manually nor show the DUP flag or the
    CONNACK's session-present flag; the paho client underneath does all three."""
    import aiomqtt
    import paho.mqtt.client as paho

    class SessionClient(aiomqtt.Client):
        session_present = False

        def __init__(self, *args: Any, connect_timeout: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._client.manual_ack_set(True)
            self._client.connect_timeout = connect_timeout
            self._iterator = self.messages

        def _on_connect(
            self,
            client: paho.Client,
            userdata: Any,
            flags: paho.ConnectFlags,
            reason_code: Any,
            properties: Any = None,
        ) -> None:
            self.session_present = bool(flags.session_present)
            super()._on_connect(client, userdata, flags, reason_code, properties)

        def _on_message(
            self, client: paho.Client, userdata: Any, message: paho.MQTTMessage
        ) -> None:
            item = Received(
                message.topic,
                bytes(message.payload),
                message.qos,
                bool(message.retain),
                message.mid,
                bool(message.dup),
            )
            self._queue.put_nowait(item)  # type: ignore[arg-type]

        def next_message(self) -> Awaitable[Received]:
            """Raises MqttError once the connection is gone."""
            return self._iterator.__anext__()  # type: ignore[return-value]

        def ack(self, item: Received) -> None:
            if item.qos:
                self._client.ack(item.mid, item.qos)

    return SessionClient


class MqttTrigger(Trigger):
    """What both MQTT triggers share: connection, persistent session, reconnects, dedup."""

    server: Annotated[str, Dynamic]
    client_id: Annotated[str | None, Dynamic] = None
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    version: Literal["V3", "V5"] = Field(
        default="V5", validation_alias=AliasChoices("version", "mqttVersion")
    )
    connection_timeout: Duration | None = None
    crt: Annotated[str | None, Dynamic] = None
    https_hostname_verification_enabled: bool | None = None
    topic: list[Annotated[str, AfterValidator(check_filter)]]
    qos: Literal[0, 1, 2] = 1
    serde_type: SerdeType = "JSON"

    @field_validator("server")
    @classmethod
    def _valid_server(cls, value: str) -> str:
        if not has_template(value):  # checked once rendered, when the trigger starts
            parse_server(value)
        return value

    @field_validator("topic", mode="before")
    @classmethod
    def _topics(cls, value: Any) -> Any:
        topics = [value] if isinstance(value, str) else value
        if isinstance(topics, list) and not topics:
            raise ValueError("at least one topic is needed")
        return topics

    def exclusive(self) -> bool:
        """Several nodes subscribed to a plain topic would each start an execution per
        message; a shared subscription gives each message to one subscriber."""
        return not all(topic.startswith(SHARED_PREFIX) for topic in self.topic)

    def _node(self, ctx: TriggerContext) -> str | None:
        """This node's id when its client must differ from the other nodes' (shared)."""
        node = ctx.node_id
        return node if node and not self.exclusive() else None

    # -- the connection ------------------------------------------------------------------

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        """Renders the templated properties (`{{ secret('MQTT_PASSWORD') }}`) once, then
        connects; a rendered value that does not fit stops the trigger with the reason."""
        templated = templated_values(self)
        if not templated:
            return await self._connect(emit, ctx)
        rendered = await asyncio.to_thread(ctx.render, templated)  # kv() and read() block
        return await with_rendered(self, rendered)._connect(emit, ctx)

    async def _connect(self, emit: Emit, ctx: TriggerContext) -> None:
        import aiomqtt

        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        endpoint = parse_server(self.server)
        client_id = self.client_id or f"podium-{ctx.flow.namespace}.{ctx.flow.id}.{self.id}"
        node = self._node(ctx)
        if node is not None:
            client_id = f"{client_id}-{node}"
        context = None
        if endpoint.tls:
            try:
                context = await asyncio.to_thread(
                    tls_context, self.crt, self.https_hostname_verification_enabled
                )
            except (OSError, ssl.SSLError) as exc:
                raise PodiumError(f"cannot load the CA certificate (crt): {exc}") from None
        password = self.password or endpoint.password
        if password:
            ctx.secrets.add(password)
        backoff, connected_once = Backoff(1.0, MAX_RECONNECT_DELAY, clock=ctx.clock), False
        down_since: datetime | None = None  # one line when an outage starts, one when it ends
        connected = ctx.connection
        connected(False)
        while True:
            session = self._session(endpoint, client_id, context)
            try:
                async with session:
                    connected(True)
                    if down_since is not None:
                        seconds = (ctx.clock.now() - down_since).total_seconds()
                        ctx.logger.info(
                            "%s: connected to %s again after %.0fs", where, endpoint, seconds
                        )
                    down_since, connected_once = None, True
                    backoff.reset()
                    await self._subscribe(session, ctx, client_id, where)
                    await self._consume(session, emit, ctx, client_id, where)
            except aiomqtt.MqttError as exc:
                connected(False)
                if down_since is None:
                    down_since = ctx.clock.now()
                    what = "lost the connection to" if connected_once else "cannot connect to"
                    ctx.logger.warning(
                        "%s: %s %s (%s); reconnecting, backing off up to %.0fs",
                        where,
                        what,
                        endpoint,
                        exc,
                        MAX_RECONNECT_DELAY,
                    )
            await backoff.sleep()

    def _session(
        self, endpoint: Endpoint, client_id: str, context: ssl.SSLContext | None
    ) -> Session:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        timeout = (
            self.connection_timeout.total_seconds()
            if self.connection_timeout
            else DEFAULT_CONNECTION_TIMEOUT
        )
        options: dict[str, Any]
        if self.version == "V5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY
            options = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,
                "properties": properties,
            }
        else:
            options = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        return _session_class()(
            endpoint.host,
            endpoint.port,
            identifier=client_id,
            username=self.username or endpoint.username,
            password=self.password or endpoint.password,
            timeout=timeout,
            connect_timeout=timeout,
            tls_context=context,
            **options,
        )

    async def _subscribe(
        self, session: Session, ctx: TriggerContext, client_id: str, where: str
    ) -> None:
        """Subscribe what the session lacks: re-subscribing would make the broker send its
        retained messages again, and start their executions again on every restart."""
        state = ctx.state
        node = self._node(ctx)
        key = ctx.state_key("session", node) if node is not None else ctx.state_key("session")
        qos: int = min(self.qos, 1)
        previous = await state.get(key) or {}
        known: list[str] = []
        if (
            session.session_present
            and previous.get("clientId") == client_id
            and previous.get("qos") == qos
        ):
            known = list(previous.get("topics") or [])
        removed = [topic for topic in known if topic not in self.topic]
        if removed:
            await session.unsubscribe(removed)
        added = [(topic, qos) for topic in self.topic if topic not in known]
        refused: list[str] = []
        if added:
            granted = await session.subscribe(added)
            for (topic, _), code in zip(added, granted, strict=True):
                if getattr(code, "is_failure", False):
                    refused.append(topic)
                    ctx.logger.error(
                        "%s: the broker refused the subscription to '%s' (%s)", where, topic, code
                    )
        if removed or added:
            await state.set(
                key,
                {
                    "clientId": client_id,
                    "qos": qos,
                    "topics": [topic for topic in self.topic if topic not in refused],
                },
            )

    async def _consume(
        self, session: Session, emit: Emit, ctx: TriggerContext, client_id: str, where: str
    ) -> None:
        raise NotImplementedError

    # -- one message -------------------------------------------------------------------

    async def _read(
        self, item: Received, session: Session, ctx: TriggerContext, client_id: str, where: str
    ) -> tuple[Any, str] | None:
        """The decoded payload and the message's digest; None when there is nothing to do
        (malformed, or a redelivery whose execution exists): the message is acknowledged
        here then."""
        try:
            payload, digest = await asyncio.to_thread(_decode_and_digest, item, self.serde_type)
        except (ValueError, RecursionError) as exc:
            ctx.logger.error(
                "%s: the payload of a message on topic '%s' is not valid JSON "
                "(%s); no execution started",
                where,
                item.topic,
                exc,
            )
            ctx.count_rejected()
            session.ack(item)
            return None
        if item.dup and item.qos:
            started = await _started_by(ctx, _marker_key(ctx, client_id, item), digest)
            if started is not None:
                ctx.logger.info(
                    "%s: message %d on topic '%s' was delivered again; its "
                    "execution %s exists, so none is started",
                    where,
                    item.mid,
                    item.topic,
                    started,
                )
                session.ack(item)
                return None
        return payload, digest

    async def _mark(
        self,
        ctx: TriggerContext,
        client_id: str,
        item: Received,
        digest: str,
        since: datetime,
        match: Mapping[str, Any],
    ) -> None:
        if item.qos:
            await ctx.state.set(
                _marker_key(ctx, client_id, item),
                {"digest": digest, "since": iso(since), "match": dict(match)},
            )


def _decode_and_digest(item: Received, serde: SerdeType) -> tuple[Any, str]:
    digest = hashlib.sha256(item.topic.encode() + b"\0" + item.payload).hexdigest()
    return decode(item.payload, serde), digest


def _marker_key(ctx: TriggerContext, client_id: str, item: Received) -> str:
    return ctx.state_key("msg", client_id, str(item.mid))


async def _started_by(ctx: TriggerContext, key: str, digest: str) -> str | None:
    """The id of the execution this message already started, if its marker says it may
    have and the store confirms it."""
    state = ctx.state
    marker = await state.get(key)
    if not marker or marker.get("digest") != digest:
        return None
    match: dict[str, Any] = marker["match"]
    page = 1
    while True:
        docs, total = await ctx.executions.search(
            namespace=ctx.flow.namespace,
            flow_id=ctx.flow.id,
            start_after=marker["since"],
            page=page,
            size=_SEARCH_PAGE,
        )
        for doc in docs:
            trigger = doc.get("trigger") or {}
            variables = trigger.get("variables") or {}
            if (
                doc.get("namespace") == ctx.flow.namespace
                and trigger.get("id") == ctx.trigger_id
                and all(variables.get(k) == v for k, v in match.items())
            ):
                return str(doc["id"])
        if page * _SEARCH_PAGE >= total:
            return None
        page += 1


class RealtimeTrigger(MqttTrigger):
    """Kestra's MQTT RealtimeTrigger: one execution per message, as it arrives."""

    types = ("io.kestra.plugin.mqtt.RealtimeTrigger",)

    async def _consume(
        self, session: Session, emit: Emit, ctx: TriggerContext, client_id: str, where: str
    ) -> None:
        while True:
            item = await session.next_message()
            read = await self._read(item, session, ctx, client_id, where)
            if read is None:
                continue
            payload, digest = read
            variables = {
                "id": item.mid,
                "topic": item.topic,
                "qos": item.qos,
                "retain": item.retain,
                "payload": payload,
            }
            if not await self.admits(ctx, variables):
                ctx.logger.info(
                    "%s: the trigger's conditions do not hold; the message on topic "
                    "'%s' starts no execution",
                    where,
                    item.topic,
                )
                ctx.count_rejected()
                session.ack(item)
                continue
            await self._mark(
                ctx, client_id, item, digest, ctx.clock.now(), {"topic": item.topic, "id": item.mid}
            )
            await emit({}, variables)
            session.ack(item)


class MqttBatchTrigger(MqttTrigger):
    """Kestra's MQTT Trigger: messages gathered into one file, one execution per batch.

    A batch closes at `maxRecords` messages or `maxDuration` after its first message
    (`interval` when neither is set). Its messages are acknowledged once the execution is
    stored, so a batch can only grow as large as the broker lets messages be in flight
    unacknowledged: MQTT 5 (the default) allows up to 65535, while Mosquitto gives
    MQTT 3.1.1 clients 20 (`max_inflight_messages`).

    The file has one JSON document per line ({id, topic, qos, payload, retain}), which
    is also valid ION text, the format Kestra writes there.
    """

    types = ("io.kestra.plugin.mqtt.Trigger",)

    interval: Duration = timedelta(seconds=60)
    max_records: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None

    async def _consume(
        self, session: Session, emit: Emit, ctx: TriggerContext, client_id: str, where: str
    ) -> None:
        batch: list[tuple[Received, Any, str]] = []
        deadline: datetime | None = None
        limit = self.max_duration or (None if self.max_records else self.interval)
        incoming: asyncio.Future[Received] | None = None
        try:
            while True:
                if incoming is None:
                    incoming = asyncio.ensure_future(session.next_message())
                if deadline is not None:
                    timer = asyncio.ensure_future(ctx.clock.sleep_until(deadline))
                    waiters: list[asyncio.Future[Any]] = [incoming, timer]
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        timer.cancel()
                else:
                    await asyncio.wait([incoming])
                if incoming.done():
                    item = incoming.result()
                    incoming = None
                    read = await self._read(item, session, ctx, client_id, where)
                    if read is not None:
                        batch.append((item, *read))
                        if deadline is None and limit is not None:
                            deadline = ctx.clock.now() + limit
                full = self.max_records is not None and len(batch) >= self.max_records
                due = deadline is not None and ctx.clock.now() >= deadline
                if batch and (full or due):
                    await self._flush(batch, session, emit, ctx, client_id, where)
                    batch, deadline = [], None
        finally:
            if incoming is not None:
                incoming.cancel()

    async def _flush(
        self,
        batch: list[tuple[Received, Any, str]],
        session: Session,
        emit: Emit,
        ctx: TriggerContext,
        client_id: str,
        where: str,
    ) -> None:
        records = [
            {
                "id": item.mid,
                "topic": item.topic,
                "qos": item.qos,
                "payload": payload,
                "retain": item.retain,
            }
            for item, payload, _ in batch
        ]
        uri = await self._stored(records, ctx, where)
        variables = {"uri": uri, "messagesCount": len(batch)}
        if not await self.admits(ctx, variables):
            ctx.logger.info(
                "%s: the trigger's conditions do not hold; the batch of %d messages starts "
                "no execution",
                where,
                len(batch),
            )
            ctx.count_rejected()
            for item, _, _ in batch:
                session.ack(item)
            return
        since = ctx.clock.now()
        await asyncio.gather(
            *(
                self._mark(ctx, client_id, item, digest, since, {"uri": uri})
                for item, _, digest in batch
            )
        )
        await emit({}, variables)
        for item, _, _ in batch:
            session.ack(item)

    async def _stored(self, records: list[dict[str, Any]], ctx: TriggerContext, where: str) -> str:
        """The batch's file. While the storage refuses it (a full disk) its messages wait
        unacknowledged, the broker keeping them, and storing is tried again, backing off."""
        flow = ctx.flow
        prefix = f"/{flow.namespace.replace('.', '/')}/{flow.id}/triggers/{self.id}"
        backoff = Backoff(1.0, MAX_RECONNECT_DELAY, clock=ctx.clock)
        while True:
            try:
                return await ctx.files.put(
                    _batch_lines(records), prefix=prefix, name=f"{new_id()}.ion"
                )
            except StorageError as exc:
                ctx.logger.error(
                    "%s: %s; the batch of %d messages waits unacknowledged, stored again in %.0fs",
                    where,
                    exc,
                    len(records),
                    backoff.upcoming,
                )
            await backoff.sleep()


def _batch_lines(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()
