"""Opsgenie's Alert API (kestra-io/plugin-opsgenie, formerly plugin-notifications): an alert
written by the flow, or one about an execution.

`url` is the alert-creation endpoint (https://api.opsgenie.com/v2/alerts, or the EU one);
`authorizationToken` is sent as the Authorization header as written, as Kestra does:
Opsgenie wants "GenieKey <API key>". Opsgenie answers 202 and creates the alert
asynchronously. OpsgenieExecution always sends the execution's facts as the alert's
`details` (Kestra's template has them only when a `details` variable it never sets is
defined) and the execution's title as the `message` Opsgenie requires when the flow gives
none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText
from tasks.notifications.delivery import IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert, cut

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

# Opsgenie's limits: longer texts are refused or cut by it.
MESSAGE_MAX = 130
DESCRIPTION_MAX = 15000
Priority = Literal["P1", "P2", "P3", "P4", "P5"]


class _GenieKey(Task):
    authorization_token: Annotated[str | None, Dynamic] = None
    """The Authorization header, "GenieKey <API key>" (keep it in a secret)."""

    def headers(self) -> dict[str, str]:
        token = self.authorization_token
        return {"Authorization": token} if token else {}


class OpsgenieAlert(_GenieKey, IncomingWebhook):
    """Post an Opsgenie alert (`payload`: the Alert API's JSON, as text or a mapping)."""

    types = (
        "io.kestra.plugin.opsgenie.OpsgenieAlert",
        "io.kestra.plugin.notifications.opsgenie.OpsgenieAlert",
    )
    service = "Opsgenie"
    noun = "alert"


def _entities(entries: Mapping[str, str] | None) -> list[dict[str, str]]:
    """Kestra's `id: type` maps, as Opsgenie's list of {id, type}."""
    return [{"id": key, "type": value} for key, value in (entries or {}).items()]


class OpsgenieExecution(_GenieKey, WebhookAlert):
    """Kestra's OpsgenieExecution: an alert about an execution, its state, failed task,
    error and link (opsgenie-template.peb), with the flow's message, alias, responders,
    visibility, tags and priority."""

    types = (
        "io.kestra.plugin.opsgenie.OpsgenieExecution",
        "io.kestra.plugin.notifications.opsgenie.OpsgenieExecution",
    )
    alert_channel: ClassVar[str] = "opsgenie"
    service = "Opsgenie"
    noun = "alert"

    message: Annotated[str | None, Dynamic] = None
    """The alert's title; the execution's title ("[namespace] flow ➛ STATE") when unset."""
    alias: Annotated[str | None, Dynamic] = None
    """Opsgenie's key of an open alert: a new one with the same alias is a duplicate."""
    responders: Annotated[
        dict[str, Literal["team", "user", "escalation", "schedule"]] | None, Dynamic, JsonText
    ] = None
    """Who is notified: id -> team, user, escalation or schedule."""
    visible_to: Annotated[dict[str, Literal["team", "user"]] | None, Dynamic, JsonText] = None
    """Who else sees the alert: id -> team or user."""
    tags: Annotated[list[str] | None, Dynamic, JsonText] = None
    priority: Annotated[Priority | None, Dynamic] = None
    """P1 (critical) to P5; Opsgenie's default is P3."""

    def alert_body(self, summary: ExecutionSummary) -> dict[str, Any]:
        details = dict(summary.facts())
        if summary.link:
            details["Link"] = summary.link
        body: dict[str, Any] = {
            "message": cut(self.message or summary.title, MESSAGE_MAX),
            "description": cut(summary.text(), DESCRIPTION_MAX),
            "details": details,
        }
        if self.alias is not None:
            body["alias"] = self.alias
        if self.responders:
            body["responders"] = _entities(self.responders)
        if self.visible_to:
            body["visibleTo"] = _entities(self.visible_to)
        if self.tags:
            body["tags"] = self.tags
        if self.priority is not None:
            body["priority"] = self.priority
        return body

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        await self.post(self.alert_body(summary), services.clock, note)
        return None
