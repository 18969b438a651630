"""Squadcast's Incident Webhook (kestra-io/plugin-squadcast, formerly plugin-notifications):
an incident event written by the flow, or one about an execution.

The webhook URL (https://api.squadcast.com/v2/incidents/api/<token>) carries its token:
messages show only its host. `status: resolve` with the `event_id` of an earlier trigger
resolves that incident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from daemon.sdk.input_parsers import as_text
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices


class SquadcastIncomingWebhook(IncomingWebhook):
    """Post a Squadcast incident event (`payload`: its JSON, as text or a mapping, with
    `message`, `description`, `status`, `event_id`, `tags`)."""

    types = (
        "io.kestra.plugin.squadcast.SquadcastIncomingWebhook",
        "io.kestra.plugin.notifications.squadcast.SquadcastIncomingWebhook",
    )
    service = "Squadcast"
    noun = "event"


class SquadcastExecution(WebhookAlert):
    """Kestra's SquadcastExecution: an incident with the flow's `message` whose description
    is the execution's summary (squadcast-template.peb), with its priority, event id,
    status and tags."""

    types = (
        "io.kestra.plugin.squadcast.SquadcastExecution",
        "io.kestra.plugin.notifications.squadcast.SquadcastExecution",
    )
    alert_channel: ClassVar[str] = "squadcast"
    service = "Squadcast"
    noun = "event"

    message: Annotated[str, Dynamic] = Field(min_length=1)
    """The incident's title."""
    priority: Annotated[str | None, Dynamic] = None
    """P1 to P5; Squadcast takes anything else as unset."""
    event_id: Annotated[str | None, Dynamic, BeforeValidator(as_text)] = None
    """Ties a later `status: resolve` to this incident."""
    status: Annotated[str | None, Dynamic] = None
    """trigger or resolve."""
    tags: Annotated[dict[str, str] | None, Dynamic, BeforeValidator(as_text), JsonText] = None

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        event: dict[str, Any] = {"message": self.message, "description": summary.text()}
        for key, value in (
            ("priority", self.priority),
            ("event_id", self.event_id),
            ("status", self.status),
            ("tags", self.tags or None),
        ):
            if value is not None:
                event[key] = value
        await self.post(event, services.clock, note)
        return None
