"""Zenduty's Events API (kestra-io/plugin-zenduty, formerly plugin-notifications): an event
written by the flow, or one about an execution.

`url` is https://www.zenduty.com/api/events/<integration key>/: messages show only its
host. Zenduty answers 201 with the event it created. ZendutyExecution's `urls` are written
as Kestra takes them, a list of addresses, and sent as the Events API wants them,
{link_url, link_text} objects, the execution's page among them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from daemon.sdk.input_parsers import as_text
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

AlertType = Literal["CRITICAL", "ACKNOWLEDGED", "RESOLVED", "ERROR", "WARNING", "INFO"]


class ZendutyAlert(IncomingWebhook):
    """Post a Zenduty event (`payload`: the Events API's JSON, as text or a mapping, with
    its required `message` and `alert_type`)."""

    types = (
        "io.kestra.plugin.zenduty.ZendutyAlert",
        "io.kestra.plugin.notifications.zenduty.ZendutyAlert",
    )
    service = "Zenduty"
    noun = "event"


class ZendutyExecution(WebhookAlert):
    """Kestra's ZendutyExecution: an event about an execution (zenduty-template.peb): its
    alert type follows the execution (error when it failed, resolved otherwise) and its
    entity is the execution, so that Zenduty ties the events of one execution together."""

    types = (
        "io.kestra.plugin.zenduty.ZendutyExecution",
        "io.kestra.plugin.notifications.zenduty.ZendutyExecution",
    )
    alert_channel: ClassVar[str] = "zenduty"
    service = "Zenduty"
    noun = "event"

    message: Annotated[str | None, Dynamic] = None
    """The event's title; the execution's title when unset."""
    summary_text: Annotated[str | None, Dynamic] = Field(default=None, alias="summary")
    """The event's description; the execution's summary when unset."""
    alert_type: Annotated[AlertType | None, Dynamic] = None
    entity_id: Annotated[str | None, Dynamic, BeforeValidator(as_text)] = None
    """Zenduty's key of the incident; the execution id when unset."""
    urls: Annotated[list[str] | None, Dynamic, JsonText] = None
    """Links shown with the event (the execution's page is added when podium knows it)."""

    def event(self, summary: ExecutionSummary) -> dict[str, Any]:
        failed = summary.failed_task is not None or summary.state == "FAILED"
        alert_type = self.alert_type or ("ERROR" if failed else "RESOLVED")
        links = [{"link_url": url, "link_text": url} for url in self.urls or []]
        if summary.link:
            links.append({"link_url": summary.link, "link_text": "Execution"})
        event: dict[str, Any] = {
            "message": self.message or summary.title,
            "summary": self.summary_text or summary.text(),
            "alert_type": alert_type.lower(),
            "entity_id": self.entity_id or summary.id,
        }
        if links:
            event["urls"] = links
        return event

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        await self.post(self.event(summary), services.clock, note)
        return None
