"""LINE's Messaging API (kestra-io/plugin-line, formerly plugin-notifications): LineExecution
sends the execution summary, or the flow's `textBody`, as a text message.

Kestra has no LINE webhook task: `textBody` is how a flow sends its own words. Without
`recipientIds` the message is broadcast to every friend of the Official Account (plugin-line:
POST /v2/bot/message/broadcast); with them it is pushed to each (plugin-notifications' form:
POST /v2/bot/message/push, `{"to": id, "messages": [...]}`). `url` is the API's root; a full
push or broadcast URL, as the older plug-in took, is trimmed back to it. Each message
carries an X-Line-Retry-Key kept across attempts, so that LINE sends a retried one once.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from tasks.notifications.delivery import Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert, cut

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

API = "https://api.line.me"
PUSH = "/v2/bot/message/push"
BROADCAST = "/v2/bot/message/broadcast"
TEXT_MAX = 5000  # LINE refuses a longer text message


def api_root(url: str) -> str:
    """The API's root, from the root itself or a full push or broadcast URL."""
    root = url.strip().rstrip("/")
    for operation in (PUSH, BROADCAST):
        root = root.removesuffix(operation)
    return root


class LineExecution(WebhookAlert):
    """Kestra's LineExecution: the execution's state, ids, start, duration, failed task,
    customMessage, customFields and link, as one LINE text message."""

    types = (
        "io.kestra.plugin.line.LineExecution",
        "io.kestra.plugin.notifications.line.LineExecution",
    )
    alert_channel: ClassVar[str] = "line"
    service = "LINE"

    url: Annotated[str, Dynamic] = Field(default=API, min_length=1)
    """The Messaging API's root (a full push or broadcast URL is taken too)."""
    channel_access_token: Annotated[str, Dynamic] = Field(min_length=1)
    """The channel access token of the Official Account (keep it in a secret)."""
    recipient_ids: Annotated[list[str] | None, Dynamic, JsonText] = Field(
        default=None, min_length=1
    )
    """LINE user, group or room ids to push to; without them, a broadcast to all friends."""
    text_body: Annotated[str | None, Dynamic] = None
    """The message's text instead of the execution summary."""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.channel_access_token}"}

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        text = self.text_body if self.text_body is not None else summary.text().rstrip()
        messages = [{"type": "text", "text": cut(text, TEXT_MAX)}]
        root = api_root(self.url)
        sends: list[tuple[str, dict[str, Any], str]] = [
            (PUSH, {"to": to, "messages": messages}, f"the LINE message to {to}")
            for to in self.recipient_ids or []
        ] or [(BROADCAST, {"messages": messages}, "the LINE broadcast")]
        for operation, body, what in sends:
            await self.post(
                body,
                services.clock,
                note,
                url=root + operation,
                headers={"X-Line-Retry-Key": str(uuid.uuid4())},
                what=what,
            )
        return None
