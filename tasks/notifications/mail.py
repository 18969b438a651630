"""Mail over SMTP (aiosmtplib): MailSend, and MailExecution's ready-made execution message.

Kestra's transport strategies: SMTPS (TLS from the first byte, its default), SMTP_TLS
(STARTTLS required) and SMTP (plain, upgraded with STARTTLS when the server offers it).
Certificates are checked against the system's CA bundle (SSL_CERT_FILE may name another).
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model, has_template
from tasks.notifications.delivery import Note, SendError, deliver
from tasks.notifications.summary import ExecutionAlert, ExecutionSummary

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

Strategy = Literal["SMTP", "SMTPS", "SMTP_TLS"]
DEFAULT_PORTS: dict[str, int] = {"SMTP": 25, "SMTPS": 465, "SMTP_TLS": 587}
# Kestra's text part when only HTML is given.
HTML_ONLY_TEXT = "Please view this email in a modern email client"


def _addresses(value: Any) -> Any:
    """Kestra separates addresses with ';' in one string; a YAML list is read too."""
    if isinstance(value, str):
        return [part.strip() for part in value.replace(",", ";").split(";") if part.strip()]
    return value


Addresses = Annotated[list[str], BeforeValidator(_addresses)]


def _check_addresses(value: list[str]) -> list[str]:
    for text in value:
        parsed = getaddresses([text])
        if len(parsed) != 1 or "@" not in parsed[0][1]:
            raise ValueError(f"'{text}' is not an email address")
    return value


class Attachment(Model):
    uri: str
    name: str
    content_type: str = "application/octet-stream"


class Envelope(Task):
    """Who a mail is from and to, as Kestra's mail tasks (SMTP and SendGrid) write it."""

    from_: Annotated[str, Dynamic] = Field(alias="from")
    to: Annotated[Addresses, Dynamic] = Field(min_length=1)
    cc: Annotated[Addresses | None, Dynamic] = None

    # Expressions are checked once rendered (Kestra's `Property<String>`), not at load.
    @field_validator("to", "cc")
    @classmethod
    def _valid(cls, value: list[str] | None) -> list[str] | None:
        if value is None or has_template(value):
            return value
        return _check_addresses(value)

    @field_validator("from_")
    @classmethod
    def _valid_from(cls, value: str) -> str:
        if not has_template(value):
            _check_addresses([value])
        return value


async def attachment_bytes(services: AlertServices, attachment: Attachment) -> bytes:
    """An attachment's content, read from storage by its URI."""
    try:
        path = await services.files.path(attachment.uri)
        return await asyncio.to_thread(path.read_bytes)
    except Exception as exc:
        raise TaskFailed(f"attachment '{attachment.name}': {exc}", non_retryable=True) from None


class MailSend(Envelope):
    """Send one mail; `htmlTextContent` and `plainTextContent` become its two alternatives."""

    types = ("io.kestra.plugin.email.MailSend", "io.kestra.plugin.notifications.mail.MailSend")

    host: Annotated[str, Dynamic] = Field(min_length=1)
    port: Annotated[int | None, Dynamic] = Field(default=None, ge=1, le=65535)
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    transport_strategy: Annotated[Strategy, Dynamic] = "SMTPS"
    session_timeout: Annotated[int, Dynamic] = Field(default=10000, ge=1)  # milliseconds
    subject: Annotated[str | None, Dynamic] = None
    html_text_content: Annotated[str | None, Dynamic] = None
    plain_text_content: Annotated[str | None, Dynamic] = None
    attachments: Annotated[list[Attachment] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        message = await self._message(
            ctx, self.subject, self.html_text_content, self.plain_text_content
        )
        await self._send(message, ctx, ctx.logger.warning)
        ctx.logger.info(f"mail sent to {', '.join(self.to)} through {self._server}")
        return None

    @property
    def _server(self) -> str:
        return f"{self.host}:{self.port or DEFAULT_PORTS[self.transport_strategy]}"

    async def _message(
        self, services: AlertServices, subject: str | None, html: str | None, text: str | None
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.from_
        message["To"] = ", ".join(self.to)
        if self.cc:
            message["Cc"] = ", ".join(self.cc)
        if subject is not None:
            message["Subject"] = subject
        message["Date"] = format_datetime(services.clock.now())
        # An explicit domain: make_msgid would otherwise ask DNS for this host's name.
        domain = getaddresses([self.from_])[0][1].rpartition("@")[2] or "podium.local"
        message["Message-ID"] = make_msgid(domain=domain)
        if text is None and html is not None:
            text = HTML_ONLY_TEXT
        message.set_content(text or "")
        if html is not None:
            message.add_alternative(html, subtype="html")
        for attachment in self.attachments or []:
            data = await attachment_bytes(services, attachment)
            maintype, _, subtype = attachment.content_type.partition("/")
            message.add_attachment(
                data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.name,
            )
        return message

    async def _send(self, message: EmailMessage, services: AlertServices, note: Note) -> None:
        import aiosmtplib

        strategy = self.transport_strategy
        port = self.port or DEFAULT_PORTS[strategy]
        # Reading the CA bundle is file I/O: done off the event loop.
        context = await asyncio.to_thread(ssl.create_default_context)
        server = self._server

        async def attempt() -> None:
            try:
                await aiosmtplib.send(
                    message,
                    hostname=self.host,
                    port=port,
                    username=self.username or None,
                    password=self.password or None,
                    use_tls=strategy == "SMTPS",
                    start_tls=True
                    if strategy == "SMTP_TLS"
                    else (False if strategy == "SMTPS" else None),
                    timeout=self.session_timeout / 1000,
                    tls_context=context,
                )
            except aiosmtplib.SMTPException as exc:
                raise _smtp_failure(exc, server) from None
            except ssl.SSLError as exc:
                raise _tls_failure(exc, server) from None
            except OSError as exc:
                raise SendError(
                    f"cannot connect to {server}: {exc.strerror or exc}", retryable=True
                ) from None

        await deliver(f"the mail to {', '.join(self.to)}", attempt, clock=services.clock, note=note)


def _smtp_failure(exc: Exception, server: str) -> SendError:
    """The SMTP reply, as the server said it; 4xx replies are temporary, 5xx final."""
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        temporary = all(400 <= r.code < 500 for r in exc.recipients)
        return SendError(f"{server} refused the recipients ({refused})", retryable=temporary)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = (
            "refused the login"
            if isinstance(exc, aiosmtplib.SMTPAuthenticationError)
            else "replied"
        )
        return SendError(
            f"{server} {what}: {exc.code} {exc.message}", retryable=400 <= exc.code < 500
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return SendError(f"no answer from {server} in time: {exc}", retryable=True)
    if isinstance(exc.__cause__, ssl.SSLError):
        return _tls_failure(exc.__cause__, server)
    if isinstance(exc, aiosmtplib.SMTPConnectError) and isinstance(exc.__cause__, OSError):
        cause = exc.__cause__
        reason = (
            "connection refused"
            if cause.errno == errno.ECONNREFUSED
            else (cause.strerror or str(cause))
        )
        return SendError(f"cannot connect to {server}: {reason}", retryable=True)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return SendError(f"{server}: {exc}", retryable=False)
    return SendError(f"{server}: {exc}", retryable=True)


def _tls_failure(exc: ssl.SSLError, server: str) -> SendError:
    """A certificate or protocol refusal: the same on every attempt."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"certificate verify failed: {exc.verify_message}"
    else:
        reason = exc.reason or str(exc)
    return SendError(f"TLS with {server} failed: {reason}", retryable=False)


class MailExecution(MailSend, ExecutionAlert):
    """Kestra's MailExecution: the execution's summary as HTML and text; the subject defaults
    to "[namespace] flow ➛ STATE"."""

    types = (
        "io.kestra.plugin.email.MailExecution",
        "io.kestra.plugin.notifications.mail.MailExecution",
    )
    alert_channel: ClassVar[str] = "mail"

    async def run(self, ctx: RunContext) -> Output:
        return await ExecutionAlert.run(self, ctx)

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> None:
        message = await self._message(
            services,
            self.subject or summary.title,
            self.html_text_content or summary.html(),
            self.plain_text_content or summary.text(),
        )
        await self._send(message, services, note)
