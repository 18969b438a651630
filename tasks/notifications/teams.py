"""Microsoft Teams incoming webhooks: a payload written by the flow, or the execution card."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

_COLOURS = {"good": "2E7D32", "warning": "EF6C00", "danger": "C62828"}


class TeamsIncomingWebhook(IncomingWebhook):
    """Post a Teams card (`payload`, as JSON text or a mapping) to a channel webhook."""

    types = (
        "io.kestra.plugin.microsoft365.teams.TeamsIncomingWebhook",
        "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook",
    )
    service = "Teams"


def teams_card(
    summary: ExecutionSummary,
    theme_color: str | None,
    activity_title: str | None,
    activity_subtitle: str | None,
) -> dict[str, Any]:
    """A MessageCard, the format Teams' incoming webhooks (and Kestra's template) use."""
    section: dict[str, Any] = {
        "activityTitle": activity_title or summary.title,
        "activitySubtitle": activity_subtitle or summary.headline,
        "facts": [{"name": name, "value": value} for name, value in summary.facts()],
        "markdown": True,
    }
    text = [summary.custom_message] if summary.custom_message else []
    if summary.error:
        text.append(f"Error: {summary.error}")
    if text:
        section["text"] = "\n\n".join(text)
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": theme_color or _COLOURS[summary.color],
        "summary": f"{summary.title}: {summary.headline}",
        "sections": [section],
    }
    if summary.link:
        card["potentialAction"] = [
            {
                "@type": "OpenUri",
                "name": "See the execution",
                "targets": [{"os": "default", "uri": summary.link}],
            }
        ]
    return card


class TeamsExecution(WebhookAlert):
    """Kestra's TeamsExecution: a card with the execution's state, failed task and error."""

    types = (
        "io.kestra.plugin.microsoft365.teams.TeamsExecution",
        "io.kestra.plugin.notifications.teams.TeamsExecution",
    )
    alert_channel: ClassVar[str] = "teams"
    service = "Teams"

    theme_color: Annotated[str | None, Dynamic] = None
    activity_title: Annotated[str | None, Dynamic] = None
    activity_subtitle: Annotated[str | None, Dynamic] = None

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        card = teams_card(summary, self.theme_color, self.activity_title, self.activity_subtitle)
        await self.post(card, services.clock, note)
        return None
