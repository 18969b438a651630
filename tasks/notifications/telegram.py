"""Telegram (kestra-io/plugin-telegram, formerly plugin-notifications): TelegramSend posts a
message through the Bot API's sendMessage, TelegramExecution the execution summary.

The request is Kestra's: POST `{endpointOverride}/bot{token}/sendMessage` with
`{"chat_id": channel, "text": payload, "parse_mode": ...}`, delivered when Telegram answers
200 with `"ok": true`. Kestra's docs call `payload` "Telegram JSON (must include text)"
while its code sends it as the text: a payload that is a JSON object with a `text` is taken
as the sendMessage body (its own fields kept, chat_id and parse_mode from the task), any
other payload is the text itself. The token is part of the URL: messages show only the
endpoint's host.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Deprecated, Dynamic
from tasks.notifications.delivery import Note, RequestOptions, post_json
from tasks.notifications.summary import ExecutionAlert, ExecutionSummary, human_duration

if TYPE_CHECKING:
    from daemon.sdk.clock import Clock
    from daemon.sdk.services import AlertServices

API = "https://api.telegram.org"
ParseMode = Literal["HTML", "MARKDOWNV2"]
_PARSE_MODES = {"HTML": "HTML", "MARKDOWNV2": "MarkdownV2"}  # Telegram's spelling
_MARKDOWN_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


class _TelegramConnection(Task):
    token: Annotated[str, Dynamic] = Field(min_length=1)
    channel: Annotated[str, Dynamic] = Field(min_length=1)
    parse_mode: Annotated[ParseMode | None, Dynamic] = None
    endpoint_override: Annotated[str | None, Dynamic] = None
    options: Annotated[RequestOptions, Dynamic] = Field(default_factory=RequestOptions)

    async def send(self, message: dict[str, Any], clock: Clock, note: Note) -> None:
        body = {**message, "chat_id": self.channel}
        if self.parse_mode is not None:
            body["parse_mode"] = _PARSE_MODES[self.parse_mode]
        endpoint = (self.endpoint_override or API).rstrip("/")
        await post_json(
            "the Telegram message",
            f"{endpoint}/bot{self.token}/sendMessage",
            body,
            self.options,
            clock=clock,
            note=note,
            check=_not_ok,
        )


def _not_ok(body: bytes) -> str | None:
    """Telegram answers `{"ok": false, "description": ...}` for what it did not send."""
    try:
        answer = json.loads(body)
    except ValueError:
        return "Telegram's answer is not JSON"
    if isinstance(answer, dict) and answer.get("ok") is True:
        return None
    description = answer.get("description") if isinstance(answer, dict) else None
    return f"Telegram did not send it: {description or 'its answer says ok: false'}"


def payload_message(payload: str) -> dict[str, Any]:
    """A JSON object with a `text` is a sendMessage body; anything else is the text."""
    if payload.lstrip().startswith("{"):
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("text"), str):
            return parsed
    return {"text": payload}


class TelegramSend(_TelegramConnection):
    """Kestra's TelegramSend: `payload` to the chat `channel` as the bot `token`."""

    types = (
        "io.kestra.plugin.telegram.TelegramSend",
        "io.kestra.plugin.notifications.telegram.TelegramSend",
    )

    payload: Annotated[str, Dynamic] = Field(min_length=1)

    async def run(self, ctx: RunContext) -> Output:
        await self.send(payload_message(self.payload), ctx.clock, ctx.logger.warning)
        return None


def telegram_text(summary: ExecutionSummary, parse_mode: ParseMode | None) -> str:
    """Kestra's telegram-template.peb: `<namespace flow id ➛ STATE> how it ended after
    duration (link)`, then the customMessage; escaped for the parse mode."""

    def escape(text: str) -> str:
        if parse_mode == "HTML":
            return html.escape(text, quote=False)
        if parse_mode == "MARKDOWNV2":
            return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
        return text

    if summary.failed_task is not None:
        ended = f"Failed on task `{summary.failed_task}`"
    elif summary.state == "SUCCESS":
        ended = "Succeeded"
    else:
        ended = f"Ended {summary.state}"
    text = f"<{summary.namespace} {summary.flow_id} {summary.id} ➛ {summary.state}> {ended} "
    text += f"after {human_duration(summary.duration)}"
    text += f" ({summary.link})" if summary.link else ""
    if summary.custom_message:
        text += f"\n\n{summary.custom_message}"
    return escape(text)


class TelegramExecution(_TelegramConnection, ExecutionAlert):
    """Kestra's TelegramExecution: one line on the execution's flow, state, failed task,
    duration and link."""

    types = (
        "io.kestra.plugin.telegram.TelegramExecution",
        "io.kestra.plugin.notifications.telegram.TelegramExecution",
    )
    alert_channel: ClassVar[str] = "telegram"

    # Inherited from TelegramSend in Kestra, and overwritten by the summary there.
    payload: Annotated[
        Any,
        Deprecated(
            "TelegramExecution sends the execution summary and ignores it; use "
            "TelegramSend to send a message of your own"
        ),
    ] = None

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> None:
        await self.send({"text": telegram_text(summary, self.parse_mode)}, services.clock, note)
