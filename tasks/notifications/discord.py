"""Discord webhooks: a payload written by the flow, or the ready-made execution message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from daemon.sdk.properties import Dynamic
from tasks.notifications.delivery import IncomingWebhook, Note, RequestOptions, post_json
from tasks.notifications.summary import ExecutionAlert, ExecutionSummary

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

_COLOURS = {"good": 0x2E7D32, "warning": 0xEF6C00, "danger": 0xC62828}
# Discord refuses longer embed texts with a 400.
_FIELD_MAX = 1024
_DESCRIPTION_MAX = 4096


class DiscordIncomingWebhook(IncomingWebhook):
    """Post Discord's JSON (`payload`, as text or a mapping) to a channel webhook."""

    types = (
        "io.kestra.plugin.discord.DiscordIncomingWebhook",
        "io.kestra.plugin.notifications.discord.DiscordIncomingWebhook",
    )
    service = "Discord"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_message(summary: ExecutionSummary) -> dict[str, Any]:
    description = summary.headline
    if summary.custom_message:
        description = f"{summary.custom_message}\n\n{description}"
    if summary.error:
        description += f"\n```\n{summary.error}\n```"
    embed: dict[str, Any] = {
        "title": _cut(summary.title, 256),
        "description": _cut(description, _DESCRIPTION_MAX),
        "color": _COLOURS[summary.color],
        "fields": [
            {"name": name, "value": _cut(value or "-", _FIELD_MAX), "inline": True}
            for name, value in summary.facts()
        ],
        "timestamp": summary.start.isoformat(),
    }
    if summary.link:
        embed["url"] = summary.link
    return {"content": summary.title, "embeds": [embed], "tts": False}


class DiscordExecution(ExecutionAlert):
    """Kestra's DiscordExecution: an embed with the execution's state, failed task and error."""

    types = (
        "io.kestra.plugin.discord.DiscordExecution",
        "io.kestra.plugin.notifications.discord.DiscordExecution",
    )
    alert_channel: ClassVar[str] = "discord"

    url: Annotated[str, Dynamic] = Field(min_length=1)
    username: Annotated[str | None, Dynamic] = None
    avatar_url: Annotated[str | None, Dynamic] = None
    content: Annotated[str | None, Dynamic] = None
    options: Annotated[RequestOptions, Dynamic] = Field(default_factory=RequestOptions)

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> None:
        message = discord_message(summary)
        for key, value in (
            ("username", self.username),
            ("avatar_url", self.avatar_url),
            ("content", self.content),
        ):
            if value is not None:
                message[key] = value
        await post_json(
            "the Discord message", self.url, message, self.options, clock=services.clock, note=note
        )
