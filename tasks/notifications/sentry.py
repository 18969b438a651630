"""Sentry (kestra-io/plugin-sentry, formerly plugin-notifications): SentryAlert sends an
event written by the flow, SentryExecution one about an execution.

Both take a project's DSN (`scheme://PUBLIC_KEY[:SECRET]@host[:port][/prefix]/PROJECT_ID`,
sentry.io's or a self-hosted one) and post to its ingest endpoint, as Kestra does:
`{prefix}/api/{project}/envelope/` (an envelope: header line, item header line, event) or,
with `endpointType: STORE`, `{prefix}/api/{project}/store/` (the event alone), the public
key in the query string (`sentry_key`). The secret key is never sent nor shown. A `dsn`
without a key is taken as the ingest URL itself. An envelope goes as Sentry's
application/x-sentry-envelope (Kestra labels it application/json), its item's length in
bytes.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from daemon.sdk.state import iso
from tasks.notifications.delivery import HttpConnection, Note, json_payload
from tasks.notifications.summary import ExecutionSummary, HttpAlert

if TYPE_CHECKING:
    from datetime import datetime

    from daemon.sdk.clock import Clock
    from daemon.sdk.services import AlertServices

SENTRY_VERSION = "7"
CLIENT = "podium"
EVENT_MAX = 1024 * 1024  # Sentry drops a larger event
EndpointType = Literal["ENVELOPE", "STORE"]
Platform = Literal[
    "AS3", "C", "CFML", "COCOA", "CSHARP", "ELIXIR", "HASKELL", "GO", "GROOVY", "JAVA",
    "JAVASCRIPT", "NATIVE", "NODE", "OBJC", "OTHER", "PERL", "PHP", "PYTHON", "RUBY",
]  # fmt: skip
Level = Literal["FATAL", "ERROR", "WARNING", "INFO", "DEBUG"]
EVENT_ID = re.compile(r"[0-9a-f]{32}")
_KEY = re.compile(r"[A-Za-z0-9._~-]+")
_HOST = re.compile(r"([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
# SentryAlert's event when the flow gives none (Kestra's DEFAULT_PAYLOAD).
DEFAULT_PAYLOAD = """{
  "timestamp": "{{ execution.startDate }}",
  "platform": "java",
  "level": "error",
  "message": {"message": "Execution {{ execution.id }} failed"},
  "extra": {
    "Namespace": "{{ flow.namespace }}",
    "Flow ID": "{{ flow.id }}",
    "Execution ID": "{{ execution.id }}"
  }
}"""


def ingest(dsn: str, endpoint: EndpointType) -> tuple[str, str | None]:
    """(the ingest URL, the DSN without its secret key) of a DSN; a URL with no key is the
    ingest URL itself. TaskFailed, never quoting the DSN, when it cannot be read."""
    text = dsn.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise TaskFailed("invalid Sentry DSN: not a URL", non_retryable=True) from None
    if "@" not in parts.netloc:
        return text, None

    def invalid(why: str) -> TaskFailed:
        return TaskFailed(f"invalid Sentry DSN: {why}", non_retryable=True)

    scheme = parts.scheme.lower()
    userinfo, _, host = parts.netloc.rpartition("@")
    if scheme not in ("http", "https"):
        raise invalid("it must start with http:// or https://")
    if "@" in userinfo or not _HOST.fullmatch(host):
        raise invalid("the host after '@' cannot be read")
    key = unquote(userinfo).partition(":")[0]
    if not _KEY.fullmatch(key):
        raise invalid("no public key before '@'")
    segments = [s for s in parts.path.split("/") if s]
    if not segments or not segments[-1].isdigit() or parts.query or parts.fragment:
        raise invalid("the path must end with the numeric project id")
    prefix = "".join(f"/{s}" for s in segments[:-1])
    project = segments[-1]
    kind = endpoint.lower()
    url = (
        f"{scheme}://{host}{prefix}/api/{project}/{kind}/"
        f"?sentry_version={SENTRY_VERSION}&sentry_client={CLIENT}&sentry_key={key}"
    )
    return url, f"{scheme}://{key}@{host}{prefix}/{project}"


def _event_id(event: dict[str, Any]) -> str:
    given = str(event.get("event_id", "")).replace("-", "").lower()
    return given if EVENT_ID.fullmatch(given) else uuid.uuid4().hex


class _SentryConnection(HttpConnection):
    service = "Sentry"
    noun = "event"

    dsn: Annotated[str, Dynamic] = Field(min_length=1)
    """The project's DSN, from its Client Keys settings (keep it in a secret)."""
    endpoint_type: Annotated[EndpointType, Dynamic] = "ENVELOPE"
    """ENVELOPE (Sentry's current endpoint) or STORE (the older one, for an old Sentry)."""

    async def send_event(self, event: dict[str, Any], clock: Clock, note: Note) -> None:
        import orjson

        url, public_dsn = ingest(self.dsn, self.endpoint_type)
        event = {**event, "event_id": _event_id(event)}
        item = orjson.dumps(event)
        if len(item) > EVENT_MAX:
            raise TaskFailed(
                f"the Sentry event is {len(item)} bytes; Sentry takes at most {EVENT_MAX}",
                non_retryable=True,
            )
        if self.endpoint_type == "STORE":
            await self.post(item, clock, note, url=url)
            return
        header: dict[str, Any] = {"event_id": event["event_id"], "sent_at": iso(clock.now())}
        if public_dsn is not None:
            header["dsn"] = public_dsn
        item_header = {"type": "event", "length": len(item), "content_type": "application/json"}
        envelope = b"\n".join([orjson.dumps(header), orjson.dumps(item_header), item, b""])
        hint = "the project may not take envelopes: try endpointType: STORE"
        await self.post(envelope, clock, note, url=url, hints={401: hint, 404: hint})

    def encode(self, message: Any) -> tuple[bytes, str]:
        if self.endpoint_type == "STORE":
            return message, f"application/json; charset={self.options.default_charset}"
        return message, "application/x-sentry-envelope"


class SentryAlert(_SentryConnection):
    """Send a Sentry event (`payload`: the event's JSON, as text or a mapping; by default
    "Execution <id> failed" with the flow's namespace, id and execution id)."""

    types = (
        "io.kestra.plugin.sentry.SentryAlert",
        "io.kestra.plugin.notifications.sentry.SentryAlert",
    )

    payload: Annotated[str | dict[str, Any], Dynamic] = DEFAULT_PAYLOAD

    async def run(self, ctx: RunContext) -> Output:
        event = json_payload(self.payload, self.service)
        if not isinstance(event, dict):
            raise TaskFailed(
                "the Sentry payload must be a JSON object (an event)", non_retryable=True
            )
        await self.send_event(event, ctx.clock, ctx.logger.warning)
        return None


def sentry_event(summary: ExecutionSummary, task: SentryExecution, now: datetime) -> dict[str, Any]:
    """Kestra's sentry-template.peb and SentryTemplate: the execution's facts and link as
    `extra` (with the flow's own extra), the task's event id, platform, level, transaction
    and server name. The message names the flow, state and failed task, not the duration:
    Sentry groups events by it."""
    message = summary.title
    if summary.failed_task is not None:
        message += f": failed on task {summary.failed_task}"
    extra: dict[str, Any] = dict(summary.facts())
    if summary.link:
        extra["Link"] = summary.link
    if summary.error:
        extra["Error"] = summary.error
    if summary.custom_message:
        extra["Message"] = summary.custom_message
    event: dict[str, Any] = {
        "event_id": task.event_id or uuid.uuid4().hex,
        "timestamp": iso(now),
        "platform": task.platform.lower(),
        "level": task.level.lower(),
        "message": {"message": message},
        "extra": {**extra, **(task.extra or {})},
    }
    if task.transaction is not None:
        event["transaction"] = task.transaction
    if task.server_name is not None:
        event["server_name"] = task.server_name
    if task.errors:
        event["errors"] = task.errors
    return event


class SentryExecution(_SentryConnection, HttpAlert):
    """Kestra's SentryExecution: an event about an execution, its state, failed task,
    error and link."""

    types = (
        "io.kestra.plugin.sentry.SentryExecution",
        "io.kestra.plugin.notifications.sentry.SentryExecution",
    )
    alert_channel: ClassVar[str] = "sentry"

    event_id: Annotated[str | None, Dynamic] = Field(default=None, pattern=EVENT_ID.pattern)
    """32 lowercase hexadecimal digits; a new one for each event when unset."""
    platform: Annotated[Platform, Dynamic] = "JAVA"
    level: Annotated[Level, Dynamic] = "ERROR"
    transaction: Annotated[str | None, Dynamic] = None
    """What caused the alert (Sentry's transaction name)."""
    server_name: Annotated[str | None, Dynamic] = None
    """The host the event is recorded from."""
    extra: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None
    """More metadata, added to the execution's facts."""
    errors: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        now = services.clock.now()
        await self.send_event(sentry_event(summary, self, now), services.clock, note)
        return None
