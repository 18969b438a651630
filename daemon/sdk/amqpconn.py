"""What AMQP 0-9-1's task and trigger families share (kestra-io/plugin-amqp): the connection
properties (`host`, `port`, `username`, `password`, `virtualHost`, or the deprecated `url`),
and a message as flows see it (Kestra's `Message`: data, contentType, headers, messageId...).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from daemon.sdk.brokers import SerdeType, import_module, serde_decode, serde_encode
from daemon.sdk.durations import format_duration, parse_duration
from daemon.sdk.properties import Dynamic, Model
from daemon.sdk.state import iso

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

CONNECT_TIMEOUT = 30.0


class AmqpConnection(Model):
    """Kestra's connection properties; `url` (amqp://user:password@host:port/vhost) is
    deprecated there and accepted here."""

    url: Annotated[str | None, Dynamic] = None
    host: Annotated[str | None, Dynamic] = None
    port: Annotated[str | int, Dynamic] = "5672"
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    virtual_host: Annotated[str, Dynamic] = "/"

    def address(self) -> str:
        if self.url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            return f"amqp://{parts.hostname}:{parts.port or 5672}{parts.path or '/'}"
        return f"amqp://{self.host}:{self.port}{self.virtual_host}"

    async def open(self) -> AbstractRobustConnection:
        """A plain (not self-reconnecting) connection: a trigger reconnects itself."""
        aio_pika = await import_module("aio_pika")
        if self.url:
            return await aio_pika.connect(self.url, timeout=CONNECT_TIMEOUT)  # type: ignore[no-any-return]
        if not self.host:
            raise ValueError("host (or the deprecated url) is required")
        return await aio_pika.connect(  # type: ignore[no-any-return]
            host=self.host,
            port=int(self.port),
            login=self.username or "guest",
            password=self.password or "guest",
            virtualhost=self.virtual_host,
            timeout=CONNECT_TIMEOUT,
        )


def incoming(message: AbstractIncomingMessage, serde: SerdeType) -> dict[str, Any]:
    """Kestra's Message of a delivery (ValueError when JSON data does not parse)."""
    expiration = message.expiration
    return {
        "data": serde_decode(message.body, serde),
        "contentType": message.content_type,
        "contentEncoding": message.content_encoding,
        "headers": {str(k): str(v) for k, v in (message.headers or {}).items()} or None,
        "deliveryMode": int(message.delivery_mode) if message.delivery_mode else None,
        "priority": message.priority,
        "messageId": message.message_id,
        "correlationId": message.correlation_id,
        "replyTo": message.reply_to,
        "expiration": _duration(expiration),
        "timestamp": iso(message.timestamp.replace(tzinfo=UTC))
        if isinstance(message.timestamp, datetime) and message.timestamp.tzinfo is None
        else iso(message.timestamp)
        if isinstance(message.timestamp, datetime)
        else None,
        "type": message.type,
        "userId": message.user_id,
        "appId": message.app_id,
    }


def _duration(expiration: Any) -> str | None:
    """aio-pika gives the expiration in seconds (a number) or as a timedelta/datetime."""
    if isinstance(expiration, timedelta):
        return format_duration(expiration)
    if isinstance(expiration, int | float) and expiration:
        return format_duration(timedelta(seconds=float(expiration)))
    return None


def digest(message: AbstractIncomingMessage) -> str:
    """What tells two deliveries of one message apart from another message: its body and
    the properties a publisher sets."""
    parts = [
        message.exchange or "",
        message.routing_key or "",
        message.message_id or "",
        str(message.timestamp or ""),
        message.correlation_id or "",
        repr(sorted((message.headers or {}).items())),
    ]
    return hashlib.sha256("\x1f".join(parts).encode() + b"\x1e" + message.body).hexdigest()


async def outgoing(item: Any, serde: SerdeType) -> Any:
    """An aio-pika Message of one item of `from`: a Kestra Message map, or plain data."""
    aio_pika = await import_module("aio_pika")
    fields = item if isinstance(item, dict) and "data" in item else {"data": item}
    expiration = fields.get("expiration")
    if isinstance(expiration, str):
        expiration = parse_duration(expiration).total_seconds()
    timestamp = fields.get("timestamp")
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return aio_pika.Message(
        serde_encode(fields.get("data"), serde),
        content_type=fields.get("contentType"),
        content_encoding=fields.get("contentEncoding"),
        headers=fields.get("headers"),
        delivery_mode=fields.get("deliveryMode") or 2,
        priority=fields.get("priority"),
        correlation_id=fields.get("correlationId"),
        reply_to=fields.get("replyTo"),
        expiration=expiration,
        message_id=fields.get("messageId"),
        timestamp=timestamp,
        type=fields.get("type"),
        user_id=fields.get("userId"),
        app_id=fields.get("appId"),
    )
