"""Slack incoming webhooks: a message written by the flow, or the ready-made execution one.

Rocket.Chat and Mattermost accept the same payloads, as Kestra's examples show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import model_validator

from daemon.sdk.plugin import Output
from daemon.sdk.properties import Deprecated, Dynamic
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices


class SlackIncomingWebhook(IncomingWebhook):
    """Post `payload` (Slack's JSON, as text or a mapping) or plain `messageText`."""

    types = (
        "io.kestra.plugin.slack.notifications.SlackIncomingWebhook",
        "io.kestra.plugin.slack.SlackIncomingWebhook",
        "io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
    )
    service = "Slack"

    # Slack alone takes `messageText` instead of a payload.
    payload: Annotated[str | dict[str, Any] | None, Dynamic] = None  # type: ignore[assignment]
    message_text: Annotated[str | None, Dynamic] = None

    @model_validator(mode="after")
    def _something_to_say(self) -> SlackIncomingWebhook:
        if self.payload is None and self.message_text is None:
            raise ValueError("give 'payload' (Slack's JSON message) or 'messageText'")
        return self

    def message(self) -> Any:
        if self.payload is None:
            return {"text": self.message_text}
        return super().message()


def _escape(text: str) -> str:
    """Slack's mrkdwn gives &, < and > a meaning: user text must not open a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(summary: ExecutionSummary) -> dict[str, Any]:
    title = _escape(summary.title)
    heading = f"*<{summary.link}|{title}>*" if summary.link else f"*{title}*"
    text = f"{heading}\n> {_escape(summary.headline)}"
    blocks: list[dict[str, Any]] = []
    if summary.custom_message:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(summary.custom_message)}}
        )
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if summary.error:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"```{_escape(summary.error)}```"},
            }
        )
    fields = [{"title": name, "value": value, "short": True} for name, value in summary.facts()]
    if summary.error:
        fields.append({"title": "Error", "value": summary.error, "short": False})
    attachment: dict[str, Any] = {
        "color": summary.color,
        "fields": fields,
        "ts": int(summary.start.timestamp()),
    }
    if summary.link:
        attachment["title_link"] = summary.link
    return {"text": text, "blocks": blocks, "attachments": [attachment]}


class SlackStyleExecution(WebhookAlert):
    """The execution summary as a Slack message, which Zulip's Slack-compatible incoming
    webhook takes too (Kestra's zulip-template.peb is its slack-template.peb)."""

    channel: Annotated[str | None, Dynamic] = None
    username: Annotated[str | None, Dynamic] = None
    icon_url: Annotated[str | None, Dynamic] = None
    icon_emoji: Annotated[str | None, Dynamic] = None

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        message = slack_message(summary)
        for key, value in (
            ("channel", self.channel),
            ("username", self.username),
            ("icon_url", self.icon_url),
            ("icon_emoji", self.icon_emoji),
        ):
            if value is not None:
                message[key] = value
        await self.post(message, services.clock, note)
        return None


class SlackExecution(SlackStyleExecution):
    """Kestra's SlackExecution: the execution's flow, state, failed task, error and link."""

    types = (
        "io.kestra.plugin.slack.notifications.SlackExecution",
        "io.kestra.plugin.slack.SlackExecution",
        "io.kestra.plugin.notifications.slack.SlackExecution",
    )
    alert_channel: ClassVar[str] = "slack"
    service = "Slack"

    payload: Annotated[
        Any,
        Deprecated(
            "SlackExecution sends the execution summary and ignores it; use "
            "SlackIncomingWebhook to send a payload of your own"
        ),
    ] = None
