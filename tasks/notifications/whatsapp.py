"""WhatsApp webhooks (kestra-io/plugin-meta, formerly plugin-notifications): a payload
written by the flow, or the execution summary as a text message.

Kestra's WhatsApp tasks post to a webhook URL of the account's (not Meta's Cloud API):
WhatsAppExecution's body is whatsapp-template.peb's, `contacts` (the `whatsAppIds` with
the `profileName`) and one text message `from` the sender, plus `recipient_id`. Kestra's
template writes the text's `body` as a list of lines; it is sent here as one text, the
form WhatsApp's text messages have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from daemon.sdk.input_parsers import as_text
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert, cut

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

TEXT_MAX = 4096  # WhatsApp's longest text message

Text = Annotated[str | None, Dynamic, BeforeValidator(as_text)]  # ids written as numbers


class WhatsAppIncomingWebhook(IncomingWebhook):
    """Post WhatsApp's JSON (`payload`, as text or a mapping) to a webhook."""

    types = (
        "io.kestra.plugin.meta.whatsapp.WhatsAppIncomingWebhook",
        "io.kestra.plugin.notifications.whatsapp.WhatsAppIncomingWebhook",
    )
    service = "WhatsApp"


class WhatsAppExecution(WebhookAlert):
    """Kestra's WhatsAppExecution: the execution's flow, state, failed task, error and link
    as a text message (`textBody` replaces it)."""

    types = (
        "io.kestra.plugin.meta.whatsapp.WhatsAppExecution",
        "io.kestra.plugin.notifications.whatsapp.WhatsAppExecution",
    )
    alert_channel: ClassVar[str] = "whatsapp"
    service = "WhatsApp"

    profile_name: Annotated[str | None, Dynamic] = None
    """The name shown with each of `whatsAppIds`."""
    whats_app_ids: Annotated[
        list[Annotated[str, BeforeValidator(as_text)]] | None, Dynamic, JsonText
    ] = None
    """The contacts' WhatsApp ids (wa_id)."""
    from_: Text = Field(default=None, alias="from")
    """The sender's WhatsApp id (its phone number)."""
    message_id: Text = None
    text_body: Annotated[str | None, Dynamic] = None
    """The message's text instead of the execution summary."""
    recipient_id: Text = None

    def whatsapp_message(self, summary: ExecutionSummary) -> dict[str, Any]:
        text = self.text_body if self.text_body is not None else summary.text().rstrip()
        message: dict[str, Any] = {"text": {"body": cut(text, TEXT_MAX)}, "type": "text"}
        if self.from_ is not None:
            message["from"] = self.from_
        if self.message_id is not None:
            message["id"] = self.message_id
        contacts = [
            {"profile": {"name": self.profile_name}, "wa_id": wa_id}
            if self.profile_name is not None
            else {"wa_id": wa_id}
            for wa_id in self.whats_app_ids or []
        ]
        body: dict[str, Any] = {"contacts": contacts, "messages": [message]}
        if self.recipient_id is not None:
            body["recipient_id"] = self.recipient_id
        return body

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        await self.post(self.whatsapp_message(summary), services.clock, note)
        return None
