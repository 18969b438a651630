"""PagerDuty's Events API v2: an event written by the flow, or one about an execution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic
from daemon.sdk.state import iso
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert

if TYPE_CHECKING:
    from datetime import datetime

    from daemon.sdk.services import AlertServices

SUMMARY_MAX = 1024  # PagerDuty refuses a longer payload.summary


class PagerDutyAlert(IncomingWebhook):
    """Post a PagerDuty event (`payload`: Events API v2 JSON, as text or a mapping) to `url`,
    the events endpoint (https://events.pagerduty.com/v2/enqueue)."""

    types = (
        "io.kestra.plugin.pagerduty.PagerDutyAlert",
        "io.kestra.plugin.notifications.pagerduty.PagerDutyAlert",
    )
    service = "PagerDuty"


def pagerduty_event(
    summary: ExecutionSummary,
    *,
    routing_key: str | None,
    dedup_key: str | None,
    event_action: str | None,
    payload_summary: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Kestra's pagerduty-template.peb: the execution's source, severity (error once a task
    failed) and state, the keys the task sets, a link to the execution when there is one.
    A summary is required by PagerDuty: the execution's title when the flow sets none."""
    event: dict[str, Any] = {}
    if routing_key is not None:
        event["routing_key"] = routing_key
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    event["event_action"] = event_action or "trigger"
    text = payload_summary if payload_summary is not None else summary.title
    details = [
        {"title": "Flow ID", "value": summary.flow_id},
        {"title": "Execution Status", "value": summary.state},
    ]
    details += [{"title": n, "value": v} for n, v in summary.facts() if n not in ("Flow", "State")]
    if summary.error:
        details.append({"title": "Error", "value": summary.error})
    event["payload"] = {
        "summary": text[:SUMMARY_MAX],
        "source": f"{summary.namespace} {summary.id}",
        "severity": "info" if summary.failed_task is None else "error",
        "custom_details": details,
        "timestamp": iso(now),
    }
    if summary.link:
        event["links"] = [{"href": summary.link, "text": summary.headline}]
    return event


class PagerDutyExecution(WebhookAlert):
    """Kestra's PagerDutyExecution: an event about an execution, its state and failed task."""

    types = (
        "io.kestra.plugin.pagerduty.PagerDutyExecution",
        "io.kestra.plugin.notifications.pagerduty.PagerDutyExecution",
    )
    alert_channel: ClassVar[str] = "pagerduty"
    service = "PagerDuty"
    noun = "event"

    routing_key: Annotated[str | None, Dynamic] = None
    """The integration key of a PagerDuty service."""
    deduplication_key: Annotated[str | None, Dynamic] = None
    """Correlates the trigger, acknowledge and resolve events of one alert."""
    event_action: Annotated[str | None, Dynamic] = None
    """trigger (the default), acknowledge or resolve."""
    payload_summary: Annotated[str | None, Dynamic] = Field(default=None, max_length=SUMMARY_MAX)
    """The alert's title in PagerDuty."""

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        event = pagerduty_event(
            summary,
            routing_key=self.routing_key,
            dedup_key=self.deduplication_key,
            event_action=self.event_action,
            payload_summary=self.payload_summary,
            now=services.clock.now(),
        )
        await self.post(event, services.clock, note)
        return None
