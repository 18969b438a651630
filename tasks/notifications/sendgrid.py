"""SendGrid's Mail Send API (kestra-io/plugin-twilio, formerly plugin-notifications):
SendGridMailSend, and SendGridMailExecution's ready-made execution mail.

The request is the one SendGrid's Java SDK builds for Kestra: POST /v3/mail/send with
`Authorization: Bearer <API key>` and a v3 mail (one personalization with the recipients
and the subject, the text part before the HTML one, attachments base64-encoded). SendGrid
answers 202 with an empty body; its status, headers and body are the task's outputs.
`endpointOverride` (podium's) reaches another host: SendGrid's EU one
(https://api.eu.sendgrid.com) or a test server.
"""

from __future__ import annotations

import base64
from email.utils import parseaddr
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Deprecated, Dynamic, JsonText
from tasks.notifications.delivery import Note, RequestOptions, post_json
from tasks.notifications.mail import Attachment, Envelope, attachment_bytes
from tasks.notifications.summary import ExecutionAlert, ExecutionSummary

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

API = "https://api.sendgrid.com"
# Kestra's text part when its textContent renders empty.
EMPTY_TEXT = "Please view this email in a modern email client"


def _address(text: str) -> dict[str, str]:
    """SendGrid's {email, name} of "Name <a@b.c>" or "a@b.c"."""
    name, email = parseaddr(text)
    return {"email": email, "name": name} if name else {"email": email}


class _SendGridMail(Envelope):
    sendgrid_api_key: Annotated[str, Dynamic] = Field(min_length=1)
    """A SendGrid API key allowed to send mail (keep it in a secret)."""
    subject: Annotated[str | None, Dynamic] = None
    html_content: Annotated[str | None, Dynamic] = None
    text_content: Annotated[str | None, Dynamic] = None
    html_text_content: Annotated[str | None, Dynamic, Deprecated("use 'htmlContent'")] = None
    attachments: Annotated[list[Attachment] | None, Dynamic, JsonText] = None
    """Files from storage, attached for download."""
    embedded_images: Annotated[list[Attachment] | None, Dynamic, JsonText] = None
    """Images from storage the HTML shows inline (`<img src="cid:NAME">`)."""
    endpoint_override: Annotated[str | None, Dynamic] = None
    """Another root of the API than https://api.sendgrid.com (podium's)."""

    def _content(self, html: str | None, text: str | None) -> list[dict[str, str]]:
        parts = []
        if text is not None:
            parts.append({"type": "text/plain", "value": text or EMPTY_TEXT})
        if html is not None:
            parts.append({"type": "text/html", "value": html})
        return parts

    async def _attachments(self, services: AlertServices) -> list[dict[str, str]]:
        found = []
        for disposition, listed in (
            ("attachment", self.attachments),
            ("inline", self.embedded_images),
        ):
            for attachment in listed or []:
                data = await attachment_bytes(services, attachment)
                entry = {
                    "content": base64.b64encode(data).decode("ascii"),
                    "type": attachment.content_type,
                    "filename": attachment.name,
                    "disposition": disposition,
                }
                if disposition == "inline":
                    entry["content_id"] = attachment.name
                found.append(entry)
        return found

    async def send(
        self,
        services: AlertServices,
        note: Note,
        subject: str | None,
        html: str | None,
        text: str | None,
    ) -> Output:
        personalization: dict[str, Any] = {"to": [_address(a) for a in self.to]}
        if self.cc:
            personalization["cc"] = [_address(a) for a in self.cc]
        if subject is not None:
            personalization["subject"] = subject
        mail: dict[str, Any] = {
            "personalizations": [personalization],
            "from": _address(self.from_),
            "content": self._content(html, text),
        }
        if attachments := await self._attachments(services):
            mail["attachments"] = attachments
        root = (self.endpoint_override or API).strip().rstrip("/")
        reply = await post_json(
            f"the mail to {', '.join(self.to)}",
            f"{root}/v3/mail/send",
            mail,
            RequestOptions(),
            clock=services.clock,
            note=note,
            headers={"Authorization": f"Bearer {self.sendgrid_api_key}"},
        )
        return {"body": reply.text, "headers": reply.headers, "statusCode": reply.status}


class SendGridMailSend(_SendGridMail):
    """Kestra's SendGridMailSend: one mail through SendGrid; its outputs are SendGrid's
    answer (`statusCode`, `headers`, `body`)."""

    types = (
        "io.kestra.plugin.twilio.sendgrid.SendGridMailSend",
        "io.kestra.plugin.notifications.sendgrid.SendGridMailSend",
    )

    @model_validator(mode="after")
    def _something_to_say(self) -> SendGridMailSend:
        if (self.html_content, self.html_text_content, self.text_content) == (None, None, None):
            raise ValueError("give 'htmlContent' or 'textContent' (SendGrid needs a body)")
        return self

    async def run(self, ctx: RunContext) -> Output:
        html = self.html_content if self.html_content is not None else self.html_text_content
        outputs = await self.send(ctx, ctx.logger.warning, self.subject, html, self.text_content)
        ctx.logger.info(f"SendGrid accepted the mail to {', '.join(self.to)}")
        return outputs


class SendGridMailExecution(_SendGridMail, ExecutionAlert):
    """Kestra's SendGridMailExecution: the execution's summary as HTML and text; the
    subject defaults to "[namespace] flow ➛ STATE"."""

    types = (
        "io.kestra.plugin.twilio.sendgrid.SendGridMailExecution",
        "io.kestra.plugin.notifications.sendgrid.SendGridMailExecution",
    )
    alert_channel: ClassVar[str] = "sendgrid"

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        html = self.html_content or self.html_text_content or summary.html()
        text = self.text_content or summary.text()
        return await self.send(services, note, self.subject or summary.title, html, text)
