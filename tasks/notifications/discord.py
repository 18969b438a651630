"""Discord webhooks: a payload written by the flow, or the ready-made execution message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText, Model
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert, cut

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


def discord_message(summary: ExecutionSummary) -> dict[str, Any]:
    description = summary.headline
    if summary.custom_message:
        description = f"{summary.custom_message}\n\n{description}"
    if summary.error:
        description += f"\n```\n{summary.error}\n```"
    embed: dict[str, Any] = {
        "title": cut(summary.title, 256),
        "description": cut(description, _DESCRIPTION_MAX),
        "color": _COLOURS[summary.color],
        "fields": [
            {"name": name, "value": cut(value or "-", _FIELD_MAX), "inline": True}
            for name, value in summary.facts()
        ],
        "timestamp": summary.start.isoformat(),
    }
    if summary.link:
        embed["url"] = summary.link
    return {"content": summary.title, "embeds": [embed], "tts": False}


class Embed(Model):
    """One of DiscordExecution's `embedList` (Kestra's DiscordTemplate.Embed)."""

    title: str | None = None
    website_url: str | None = None
    description: str | None = None
    thumbnail: str | None = None
    author_name: str | None = None
    # [red, green, blue], as Kestra writes it; Discord wants one integer.
    color: list[Annotated[int, Field(ge=0, le=255)]] | None = Field(
        default=None, min_length=3, max_length=3
    )
    footer: str | None = None

    def discord(self, avatar_url: str | None) -> dict[str, Any]:
        """Discord's embed object, with what was set."""
        embed: dict[str, Any] = {}
        for key, value in (
            ("title", self.title),
            ("description", self.description),
            ("url", self.website_url),
        ):
            if value is not None:
                embed[key] = value
        if self.thumbnail is not None:
            embed["thumbnail"] = {"url": self.thumbnail}
        if self.author_name is not None:
            author = {"name": self.author_name, "url": self.website_url, "icon_url": avatar_url}
            embed["author"] = {k: v for k, v in author.items() if v is not None}
        if self.color is not None:
            red, green, blue = self.color
            embed["color"] = (red << 16) + (green << 8) + blue
        if self.footer is not None:
            embed["footer"] = {"text": self.footer}
        return embed


def with_embeds(
    message: dict[str, Any], embeds: list[Embed], summary: ExecutionSummary, avatar: str | None
) -> dict[str, Any]:
    """The flow's embeds instead of the summary's one, as Kestra's DiscordTemplate: the
    first of them gets the execution's details, which win over its own description and
    footer (the execution template's keys in Kestra); what it set besides (title,
    colour, link, thumbnail, author) stays."""
    own = [embed.discord(avatar) for embed in embeds]
    if not own:
        return message
    summary_embed = message["embeds"][0]
    first = {**summary_embed, **own[0]}
    first["description"] = summary_embed["description"]
    first["footer"] = {"text": summary.headline}
    return {**message, "embeds": [first, *own[1:]]}


class DiscordExecution(WebhookAlert):
    """Kestra's DiscordExecution: an embed with the execution's state, failed task and error
    (in the first of `embedList`, when the flow gives its own embeds)."""

    types = (
        "io.kestra.plugin.discord.DiscordExecution",
        "io.kestra.plugin.notifications.discord.DiscordExecution",
    )
    alert_channel: ClassVar[str] = "discord"
    service = "Discord"

    username: Annotated[str | None, Dynamic] = None
    avatar_url: Annotated[str | None, Dynamic] = None
    content: Annotated[str | None, Dynamic] = None
    embed_list: Annotated[list[Embed] | None, Dynamic, JsonText] = None

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        message = discord_message(summary)
        if self.embed_list:
            message = with_embeds(message, self.embed_list, summary, self.avatar_url)
        for key, value in (
            ("username", self.username),
            ("avatar_url", self.avatar_url),
            ("content", self.content),
        ):
            if value is not None:
                message[key] = value
        await self.post(message, services.clock, note)
        return None
