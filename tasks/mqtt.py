"""MQTT Publish: send one message, a list of them, or every line of a stored file.

`from` is a map or a list (each item one message), a `kestra://` URI of a stored file
(each line one message: a JSON document, as the MQTT Trigger's batch files hold, or plain
text with serdeType STRING), or, beyond Kestra, any other text as one message.
Serialisation follows `serdeType`: JSON sends the JSON text; STRING sends text as it is
and anything else as JSON; BYTES expects base64 text (what the triggers hand out) and
sends the bytes it decodes to.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field

from daemon.sdk.brokers import parse_endpoint, tls_context
from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic

SerdeType = Literal["STRING", "JSON", "BYTES"]

# Kestra's default connection timeout.
DEFAULT_CONNECTION_TIMEOUT = 30.0
# Messages handed to the client at once; paho keeps the rest of a window in flight itself.
PUBLISH_WINDOW = 100
# Kestra's default ports: 1883, or 8883 over TLS.
MQTT_PORTS = (1883, 8883)


def _check_server(server: str) -> str:
    parse_endpoint(server, MQTT_PORTS)
    return server


def _check_topic(topic: str) -> str:
    if not topic:
        raise ValueError("a topic cannot be empty")
    if "+" in topic or "#" in topic:
        raise ValueError("a published topic cannot hold the wildcards '+' or '#'")
    return topic


def serialize(value: Any, serde: SerdeType) -> bytes:
    if serde == "JSON":
        return json.dumps(value, ensure_ascii=False).encode()
    if serde == "STRING":
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text.encode()
    if not isinstance(value, str):
        raise TaskFailed(
            f"serdeType BYTES needs base64 text, got a {type(value).__name__}", non_retryable=True
        )
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise TaskFailed(
            f"serdeType BYTES needs base64 text, got {value[:40]!r}", non_retryable=True
        ) from None


def _file_messages(path: Path, uri: str, serde: SerdeType) -> list[bytes]:
    """Each non-empty line is a message; a line that is not JSON is text for STRING only."""
    out = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                if serde != "STRING":
                    raise TaskFailed(
                        f"line {number} of {uri} is not JSON ({exc})", non_retryable=True
                    ) from None
                value = line
            out.append(serialize(value, serde))
    return out


class Publish(Task):
    """Kestra's MQTT Publish: messages to one topic, each acknowledged per its QoS."""

    types = ("io.kestra.plugin.mqtt.Publish",)

    server: Annotated[str, Dynamic, AfterValidator(_check_server)]
    client_id: Annotated[str | None, Dynamic] = None
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    version: Literal["V3", "V5"] = Field(
        default="V5", validation_alias=AliasChoices("version", "mqttVersion")
    )
    connection_timeout: Duration | None = None
    crt: Annotated[str | None, Dynamic] = None
    https_hostname_verification_enabled: bool | None = None
    topic: Annotated[str, Dynamic, AfterValidator(_check_topic)]
    from_: Annotated[Any, Dynamic] = Field(alias="from")
    qos: Annotated[Literal[0, 1, 2], Dynamic] = 1
    retain: bool = False
    serde_type: SerdeType = "JSON"

    async def run(self, ctx: RunContext) -> Output:
        import aiomqtt

        endpoint = parse_endpoint(self.server, MQTT_PORTS)
        host, port, tls = endpoint.host, endpoint.port, endpoint.tls
        where = str(endpoint)
        password = self.password or endpoint.password
        if password:
            ctx.secrets.add(password)
        messages = await self._messages(ctx)
        context = None
        if tls:
            try:
                context = await asyncio.to_thread(
                    tls_context, self.crt, self.https_hostname_verification_enabled
                )
            except (OSError, ssl.SSLError) as exc:
                raise TaskFailed(
                    f"cannot load the CA certificate (crt): {exc}", non_retryable=True
                ) from None
        timeout = (
            self.connection_timeout.total_seconds()
            if self.connection_timeout
            else DEFAULT_CONNECTION_TIMEOUT
        )
        protocol = (
            aiomqtt.ProtocolVersion.V5 if self.version == "V5" else aiomqtt.ProtocolVersion.V311
        )
        client = aiomqtt.Client(
            host,
            port,
            identifier=self.client_id,
            username=self.username or endpoint.username,
            password=password,
            protocol=protocol,
            timeout=timeout,
            tls_context=context,
        )
        try:
            async with client:
                for start in range(0, len(messages), PUBLISH_WINDOW):
                    await asyncio.gather(
                        *(
                            client.publish(self.topic, payload, qos=self.qos, retain=self.retain)
                            for payload in messages[start : start + PUBLISH_WINDOW]
                        )
                    )
        except aiomqtt.MqttError as exc:
            raise TaskFailed(f"cannot publish to {where}: {exc}") from None
        ctx.metric("records", "counter", len(messages), {"topic": self.topic})
        return {"messagesCount": len(messages)}

    async def _messages(self, ctx: RunContext) -> Sequence[bytes]:
        value = self.from_
        if isinstance(value, str) and value.startswith("kestra://"):
            path = await ctx.file_path(value)
            return await asyncio.to_thread(_file_messages, path, value, self.serde_type)
        items = value if isinstance(value, list) else [value]
        return [serialize(item, self.serde_type) for item in items]
