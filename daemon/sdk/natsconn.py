"""What NATS's task and trigger families share: connecting as Kestra's plug-in does (`url`,
`username`/`password`, `token`, `creds`), Kestra's deliver policies, and a JetStream
message as flows see it (`subject`, `headers`, `data`, `timestamp`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from daemon.sdk.brokers import import_module
from daemon.sdk.state import iso

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

DeliverPolicy = Literal[
    "All", "Last", "New", "ByStartSequence", "ByStartTime", "LastPerSubject"
]  # fmt: skip
_POLICIES = {
    "All": "all",
    "Last": "last",
    "New": "new",
    "ByStartSequence": "by_start_sequence",
    "ByStartTime": "by_start_time",
    "LastPerSubject": "last_per_subject",
}
CONNECT_TIMEOUT = 10.0


async def connect(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    creds: str | None = None,
    reconnect: bool = False,
) -> Client:
    """A connection; `creds` is a credentials file's path or its text. Without `reconnect`
    a lost connection closes the client (the trigger's own loop reconnects)."""
    nats = await import_module("nats")
    options: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "allow_reconnect": reconnect,
        "max_reconnect_attempts": 3 if reconnect else 0,
    }
    if username:
        options["user"] = username
    if password:
        options["password"] = password
    if token:
        options["token"] = token
    if creds:
        path = Path(creds)
        exists = await asyncio.to_thread(path.is_file) if len(creds) < 4096 else False
        from nats.aio.client import RawCredentials

        options["user_credentials"] = str(path) if exists else RawCredentials(creds)
    return await nats.connect(servers=[url], **options)  # type: ignore[no-any-return]


def consumer_config(policy: DeliverPolicy, since: str | None) -> Any:
    from nats.js.api import AckPolicy, ConsumerConfig
    from nats.js.api import DeliverPolicy as Policy

    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=Policy(_POLICIES[policy]))
    if since:
        config.deliver_policy = Policy.BY_START_TIME
        config.opt_start_time = datetime.fromisoformat(since)
    return config


def message(msg: Msg) -> dict[str, Any]:
    """Kestra's NatsMessageOutput: subject, headers (name -> values), data, timestamp."""
    timestamp = None
    try:
        timestamp = iso(msg.metadata.timestamp)
    except Exception:  # a core NATS message has no JetStream metadata
        timestamp = None
    return {
        "subject": msg.subject,
        "headers": {name: [value] for name, value in (msg.headers or {}).items()},
        "data": msg.data.decode("utf-8", errors="replace"),
        "timestamp": timestamp,
    }
