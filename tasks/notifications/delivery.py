"""Sending one notification: timeouts, a few attempts with backoff, one clear failure.

A notification is worth a few retries (a webhook answering 502 or 429, an SMTP server
saying 421) but never worth holding an execution for long: after `SEND_ATTEMPTS` the
task fails with the last reason. Webhook URLs are secrets (whoever has one can post),
so messages show only their scheme, host and port.
"""

from __future__ import annotations

import codecs
import errno
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, field_validator

from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, Model

if TYPE_CHECKING:
    import aiohttp

    from daemon.sdk.clock import Clock

SEND_ATTEMPTS = 3
RETRY_DELAY = 1.0  # seconds before the second attempt, doubled before each next one
MAX_RETRY_AFTER = 30.0  # a 429's Retry-After is followed up to this many seconds
DEFAULT_TIMEOUT = timedelta(seconds=10)  # Kestra's readTimeout default for these tasks
BODY_EXCERPT = 300  # characters of a refused response's body kept in the error
ANSWER_MAX = 1 << 16  # bytes of an accepted answer a `check` reads

Note = Callable[[str], None]


class SendError(Exception):
    """One attempt that did not deliver; `retryable` when another attempt may."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


async def deliver(
    what: str, attempt: Callable[[], Awaitable[None]], *, clock: Clock, note: Note
) -> None:
    """Run `attempt` until it delivers, at most SEND_ATTEMPTS times; TaskFailed otherwise."""
    for number in range(1, SEND_ATTEMPTS + 1):
        try:
            await attempt()
            return
        except SendError as exc:
            if not exc.retryable or number == SEND_ATTEMPTS:
                tries = f" after {number} attempts" if number > 1 else ""
                raise TaskFailed(f"cannot send {what}{tries}: {exc.reason}") from None
            delay = RETRY_DELAY * 2 ** (number - 1)
            if exc.retry_after is not None:
                delay = min(max(delay, exc.retry_after), MAX_RETRY_AFTER)
            note(
                f"sending {what} failed (attempt {number} of {SEND_ATTEMPTS}): {exc.reason}; "
                f"retrying in {delay:g}s"
            )
            await clock.sleep(delay)


class RequestOptions(Model):
    """Kestra's `options` of the webhook tasks (AbstractHttpOptionsTask.RequestOptions)."""

    connect_timeout: Duration | None = None
    read_timeout: Duration = DEFAULT_TIMEOUT
    read_idle_timeout: Duration | None = None
    connection_pool_idle_timeout: Duration | None = None  # no pool is kept between sends
    max_content_length: int | None = None  # the answer is never read past an excerpt
    default_charset: str = "UTF-8"
    headers: dict[str, str] | None = None

    @field_validator("default_charset")
    @classmethod
    def _known_charset(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown charset '{value}'") from None
        return value

    @property
    def connect(self) -> timedelta:
        return self.connect_timeout or self.read_timeout


def shown_url(url: str) -> str:
    """What of a webhook URL may be logged: scheme, host and port, never the path."""
    from yarl import URL

    try:
        parsed = URL(url)
    except ValueError:
        return "<invalid URL>"
    if not parsed.host:
        return "<invalid URL>"
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    rest = "/…" if parsed.raw_path not in ("", "/") or parsed.raw_query_string else ""
    return f"{parsed.scheme}://{parsed.host}{port}{rest}"


# Reads an accepted answer's body; returns why it is a refusal after all, or None.
BodyCheck = Callable[[bytes], "str | None"]


@dataclass(frozen=True)
class Reply:
    """What the far end answered to a delivered request (the first ANSWER_MAX bytes)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def send_http(
    what: str,
    url: str,
    body: bytes,
    content_type: str,
    options: RequestOptions,
    *,
    clock: Clock,
    note: Note,
    headers: Mapping[str, str] | None = None,
    check: BodyCheck | None = None,
    hints: Mapping[int, str] | None = None,
) -> Reply:
    """POST `body` to `url`, retrying network errors, 5xx and 429. `headers` (a vendor's
    authentication) come after the flow's `options.headers`; `check` reads the body of a
    2xx answer, for APIs that say "not done" in it (Telegram's ok); `hints` complete the
    reason of a refusal with that status (what to change in the flow)."""
    import aiohttp
    from yarl import URL

    shown = shown_url(url)
    try:
        target = URL(url.strip())
    except ValueError:
        target = URL()
    if target.scheme not in ("http", "https") or not target.host:
        raise TaskFailed(
            f"cannot send {what}: the url must be an absolute http:// or "
            f"https:// URL (got {shown})",
            non_retryable=True,
        )
    sent = {"Content-Type": content_type, **(options.headers or {}), **(headers or {})}
    # sock_read bounds each wait for data; total also stops an answer that trickles in.
    connect, read = options.connect.total_seconds(), options.read_timeout.total_seconds()
    timeout = aiohttp.ClientTimeout(total=connect + read, sock_connect=connect, sock_read=read)
    replies: list[Reply] = []
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def attempt() -> None:
            try:
                async with session.post(target, data=body, headers=sent) as response:
                    if response.status >= 300:
                        raise await _refused(response, hints or {})
                    reply = Reply(
                        response.status,
                        dict(response.headers),
                        await _read_up_to(response, ANSWER_MAX),
                    )
                    refusal = check(reply.body) if check is not None else None
                    if refusal is not None:
                        raise SendError(refusal, retryable=False)
                    replies.append(reply)
            except TimeoutError:
                raise SendError(
                    f"no answer from {shown} within {format_duration(options.read_timeout)}",
                    retryable=True,
                ) from None
            except aiohttp.ClientError as exc:
                raise SendError(_network_reason(exc, shown), retryable=True) from None

        await deliver(what, attempt, clock=clock, note=note)
    return replies[-1]


def json_body(message: Any, charset: str) -> tuple[bytes, str]:
    """A JSON request body and its Content-Type; a text is sent as written."""
    import orjson

    body = message.encode(charset) if isinstance(message, str) else orjson.dumps(message)
    return body, f"application/json; charset={charset}"


async def post_json(
    what: str,
    url: str,
    payload: Any,
    options: RequestOptions,
    *,
    clock: Clock,
    note: Note,
    headers: Mapping[str, str] | None = None,
    check: BodyCheck | None = None,
) -> Reply:
    """POST a JSON document (a text is sent as written) with `send_http`."""
    body, content_type = json_body(payload, options.default_charset)
    return await send_http(
        what, url, body, content_type, options, clock=clock, note=note, headers=headers, check=check
    )


async def _read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit:
        part = await response.content.read(limit - len(data))
        if not part:
            break
        data += part
    return bytes(data)


async def _refused(response: aiohttp.ClientResponse, hints: Mapping[int, str]) -> SendError:
    raw = await response.content.read(BODY_EXCERPT * 4)
    text = raw.decode("utf-8", errors="replace").strip()
    if len(text) > BODY_EXCERPT:
        text = text[:BODY_EXCERPT] + "…"
    reason = f"response code {response.status}" + (f" and body: {text}" if text else "")
    status = response.status
    if status in hints:
        reason += f" ({hints[status]})"
    return SendError(
        reason, retryable=status >= 500 or status == 429, retry_after=_retry_after(response.headers)
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date, or nothing: our own backoff applies


def _network_reason(exc: aiohttp.ClientError, shown: str) -> str:
    """One line for what aiohttp raised, without the URL it may quote."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot connect to {shown}: cannot resolve host '{exc.host}'"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"cannot connect to {shown}: TLS certificate refused ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        reason = (
            "connection refused"
            if os_error.errno == errno.ECONNREFUSED
            else (os_error.strerror or str(os_error))
        )
        return f"cannot connect to {shown}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{shown} closed the connection without answering"
    return f"{shown}: {type(exc).__name__}"


def json_payload(payload: str | dict[str, Any], what: str) -> Any:
    """A payload written as JSON text is checked here, not by the far end's 400."""
    if not isinstance(payload, str):
        return payload
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        raise TaskFailed(f"the {what} payload is not JSON: {exc}", non_retryable=True) from None


class HttpConnection(Task):
    """A vendor's HTTP API reached with Kestra's `options`. Each vendor's task names itself
    in `service`, says how it authenticates (`headers`) and, when its API does not take
    JSON, how a message is written (`encode`)."""

    service: ClassVar[str]
    noun: ClassVar[str] = "message"  # what one send is called in logs and errors

    options: Annotated[RequestOptions, Dynamic] = Field(default_factory=RequestOptions)

    @property
    def what(self) -> str:
        return f"the {self.service} {self.noun}"

    def target(self) -> str:
        """Where a message goes when `post` is given no url."""
        raise NotImplementedError(f"{type(self).__name__} has no url of its own")

    def headers(self) -> dict[str, str]:
        """The vendor's own headers (authentication), sent after `options.headers`."""
        return {}

    def encode(self, message: Any) -> tuple[bytes, str]:
        """The request body and its Content-Type: JSON by default."""
        return json_body(message, self.options.default_charset)

    async def post(
        self,
        message: Any,
        clock: Clock,
        note: Note,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        what: str | None = None,
        hints: Mapping[int, str] | None = None,
    ) -> Reply:
        """Deliver `message` to `url` (by default the task's own, `target`)."""
        body, content_type = self.encode(message)
        return await send_http(
            what or self.what,
            url if url is not None else self.target(),
            body,
            content_type,
            self.options,
            clock=clock,
            note=note,
            headers={**self.headers(), **(headers or {})},
            hints=hints,
        )


class WebhookConnection(HttpConnection):
    """An HTTP API reached at the flow's `url` (a webhook's, an endpoint's)."""

    url: Annotated[str, Dynamic] = Field(min_length=1)

    def target(self) -> str:
        return self.url


class IncomingWebhook(WebhookConnection):
    """A service's incoming webhook: post the flow's `payload` (the service's JSON, as text
    or a mapping) to `url`."""

    payload: Annotated[str | dict[str, Any], Dynamic]

    def message(self) -> Any:
        return json_payload(self.payload, self.service)

    async def run(self, ctx: RunContext) -> Output:
        payload = self.message()
        ctx.logger.debug(
            f"{self.service} webhook payload: {json.dumps(payload, ensure_ascii=False)}"
        )
        await self.post(payload, ctx.clock, ctx.logger.warning)
        return None
