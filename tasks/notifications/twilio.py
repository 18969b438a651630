"""Twilio Notify (kestra-io/plugin-twilio, formerly plugin-notifications): a notification
written by the flow, or one about an execution.

`url` is a Notify service's https://notify.twilio.com/v1/Services/IS…/Notifications; the
request is a form (application/x-www-form-urlencoded) with HTTP basic authentication by
`accountSID` and `authToken`, as Kestra sends it. A payload's JSON object becomes the
form's fields (a list repeats its field, as Notify's `Identity` and `Tag` take several);
TwilioExecution's fields are Notify's `Body`, `Identity` and `Tag`.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from urllib.parse import urlencode

from pydantic import BeforeValidator, Field

from daemon.sdk.errors import TaskFailed
from daemon.sdk.input_parsers import as_text
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic
from tasks.notifications.delivery import HttpConnection, IncomingWebhook, Note
from tasks.notifications.summary import ExecutionSummary, WebhookAlert, cut

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

BODY_MAX = 1600  # what an SMS through Twilio carries


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _TwilioAccount(HttpConnection):
    service = "Twilio"
    noun = "notification"

    account_sid: Annotated[str, Dynamic] = Field(min_length=1, alias="accountSID")
    """The account's SID, the user of the basic authentication."""
    auth_token: Annotated[str, Dynamic] = Field(min_length=1)
    """The account's auth token (keep it in a secret)."""

    def headers(self) -> dict[str, str]:
        pair = f"{self.account_sid}:{self.auth_token}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}

    def encode(self, message: Any) -> tuple[bytes, str]:
        if not isinstance(message, dict):
            raise TaskFailed(
                "the Twilio payload must be a JSON object: its keys are the form's fields",
                non_retryable=True,
            )
        fields = [
            (key, _field(item))
            for key, value in message.items()
            if value is not None
            for item in (value if isinstance(value, list) else [value])
        ]
        charset = self.options.default_charset
        body = urlencode(fields, encoding=charset).encode("ascii")
        return body, f"application/x-www-form-urlencoded; charset={charset}"


class TwilioAlert(_TwilioAccount, IncomingWebhook):
    """Send a Twilio Notify notification (`payload`: a JSON object of its fields, as text
    or a mapping, e.g. {"Identity": "00000001", "Body": "…"})."""

    types = (
        "io.kestra.plugin.twilio.notify.TwilioAlert",
        "io.kestra.plugin.twilio.core.TwilioAlert",
        "io.kestra.plugin.notifications.twilio.TwilioAlert",
    )


class TwilioExecution(_TwilioAccount, WebhookAlert):
    """Kestra's TwilioExecution: a few lines on the execution's flow, state, failed task and
    link (twilio-template.peb) as the notification's Body, to an identity or a tag."""

    types = (
        "io.kestra.plugin.twilio.notify.TwilioExecution",
        "io.kestra.plugin.twilio.core.TwilioExecution",
        "io.kestra.plugin.notifications.twilio.TwilioExecution",
    )
    alert_channel: ClassVar[str] = "twilio"

    body: Annotated[str | None, Dynamic] = None
    """The notification's text instead of the execution's."""
    identity: Annotated[str | None, Dynamic, BeforeValidator(as_text)] = None
    """The Notify identity (a user's devices) to notify."""
    tag: Annotated[str | None, Dynamic, BeforeValidator(as_text)] = None
    """The Notify tag (a group of users) to notify."""

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        text = self.body if self.body is not None else summary.brief()
        fields = {"Body": cut(text, BODY_MAX), "Identity": self.identity, "Tag": self.tag}
        await self.post(fields, services.clock, note)
        return None
