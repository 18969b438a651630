"""Google Chat incoming webhooks (kestra-io/plugin-googleworkspace, formerly
plugin-notifications): a message written by the flow, or the execution summary.

A space's webhook URL (https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…)
carries its credentials in the query string: messages show only its host. Google Chat
answers 200 with the message it created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert, cut

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

TEXT_MAX = 4096  # Google Chat refuses a longer text


class GoogleChatIncomingWebhook(IncomingWebhook):
    """Post Google Chat's JSON (`payload`, as text or a mapping, e.g. {"text": "…"}) to a
    space's incoming webhook."""

    types = (
        "io.kestra.plugin.googleworkspace.chat.GoogleChatIncomingWebhook",
        "io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook",
    )
    service = "Google Chat"


def google_chat_text(summary: ExecutionSummary) -> str:
    """Kestra's google-chat-template.peb: the title linked to the execution in bold
    (`*<link|title>*`, Google Chat's markup), how it ended, then the facts and the error."""
    title = f"<{summary.link}|{summary.title}>" if summary.link else summary.title
    return cut(summary.text(heading=f"*{title}*", fence=True).rstrip(), TEXT_MAX)


class GoogleChatExecution(WebhookAlert):
    """Kestra's GoogleChatExecution: the execution's flow, state, failed task and link, as a
    Google Chat text message (`text` replaces it, as Kestra's does)."""

    types = (
        "io.kestra.plugin.googleworkspace.chat.GoogleChatExecution",
        "io.kestra.plugin.notifications.google.GoogleChatExecution",
    )
    alert_channel: ClassVar[str] = "googlechat"
    service = "Google Chat"

    text: Annotated[str | None, Dynamic] = None
    """The message's text instead of the execution summary."""

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        text = cut(self.text, TEXT_MAX) if self.text is not None else google_chat_text(summary)
        await self.post({"text": text}, services.clock, note)
        return None
