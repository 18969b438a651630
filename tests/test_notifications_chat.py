"""Telegram's TelegramSend and TelegramExecution against a local stand-in for
api.telegram.org (kestra-io/plugin-telegram: TelegramSendTest, TelegramExecutionTest and
its FakeTelegramController), and DiscordExecution's `embedList` (kestra-io/plugin-discord
DiscordTemplate.Embed) against a local stand-in for a Discord webhook."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

import tasks.notifications.delivery as delivery
from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tests.harness import Harness, task_states

TOKEN = "6090305634:AAH-secret-token"


@dataclass
class FakeApi:
    """What the stand-in received: (token, body) per sendMessage, and JSON per webhook."""

    url: str = ""
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "RETRY_DELAY", 0.01)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    """Answers as the Bot API does: 200 with ok true and the message; 400 with ok false
    and a description for an unknown chat; `quiet` chats get 200 with ok false."""
    fake = FakeApi()

    async def send_message(request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        fake.messages.append((request.match_info["token"], body))
        if body.get("chat_id") == "missing":
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
                status=400,
            )
        if body.get("chat_id") == "quiet":
            return web.json_response({"ok": False, "description": "Forbidden: bot was blocked"})
        return web.json_response({"ok": True, "result": {"message_id": 1, "text": body["text"]}})

    async def webhook(request: web.Request) -> web.Response:
        fake.webhooks.append(json.loads(await request.text()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", send_message)
    app.router.add_post("/api/webhooks/{tail:.*}", webhook)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


def flow(body: str) -> str:
    return "id: alerting\nnamespace: company.team\n" + textwrap.dedent(body)


def telegram(api: FakeApi, extra: str, task_id: str = "tell", kind: str = "TelegramSend") -> str:
    return (
        f"  - id: {task_id}\n"
        f"    type: io.kestra.plugin.telegram.{kind}\n"
        f"    endpointOverride: {api.url}\n"
        f'    token: "{TOKEN}"\n' + textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ")
    ) + "\n"


# -- TelegramSend ------------------------------------------------------------------------------


async def test_telegram_send_posts_the_payload_as_the_text_to_the_chat(
    h: Harness, api: FakeApi
) -> None:
    """TelegramSendTest.run: POST /bot{token}/sendMessage with chat_id and text; the
    plug-in's old name (plugin-notifications) is the same task."""
    ex = await h.run(
        flow(
            "tasks:\n"
            + telegram(api, 'channel: "2072728690"\npayload: "Hello from {{ flow.id }}"')
            + telegram(api, "channel: channel\npayload: Hello", task_id="old_name").replace(
                "io.kestra.plugin.telegram.", "io.kestra.plugin.notifications.telegram."
            )
        )
    )
    assert ex.state.current == State.SUCCESS, await h.logs(ex, "ERROR")
    assert api.messages == [
        (TOKEN, {"chat_id": "2072728690", "text": "Hello from alerting"}),
        (TOKEN, {"chat_id": "channel", "text": "Hello"}),
    ]


@pytest.mark.parametrize(
    ("mode", "sent"), [("HTML", "HTML"), ("MARKDOWNV2", "MarkdownV2"), ("{{ 'HTML' }}", "HTML")]
)
async def test_telegram_parse_mode_is_sent_in_telegrams_spelling(
    h: Harness, api: FakeApi, mode: str, sent: str
) -> None:
    """TelegramSendTest run_withParseModeAsHTML / MARKDOWNV2 / AsExpression."""
    ex = await h.run(
        flow("tasks:\n" + telegram(api, f'channel: c\npayload: "<b>hi</b>"\nparseMode: "{mode}"'))
    )
    assert ex.state.current == State.SUCCESS, await h.logs(ex, "ERROR")
    assert api.messages == [(TOKEN, {"chat_id": "c", "text": "<b>hi</b>", "parse_mode": sent})]


async def test_a_json_payload_with_text_is_the_sendmessage_body(h: Harness, api: FakeApi) -> None:
    """TelegramSend's documented example: `payload: {"text": "Telegram Alert"}`, "valid
    Telegram JSON (must include text)"; its other sendMessage fields pass through."""
    payload = '{"text": "Telegram Alert", "disable_notification": true}'
    ex = await h.run(flow("tasks:\n" + telegram(api, f"channel: c\npayload: '{payload}'")))
    assert ex.state.current == State.SUCCESS, await h.logs(ex, "ERROR")
    assert api.messages == [
        (TOKEN, {"text": "Telegram Alert", "disable_notification": True, "chat_id": "c"})
    ]


@pytest.mark.parametrize(
    ("chat", "reason"),
    [
        ("missing", 'response code 400 and body: {"ok": false'),
        ("missing", "Bad Request: chat not found"),
        ("quiet", "Telegram did not send it: Forbidden: bot was blocked"),
    ],
)
async def test_a_refused_message_fails_once_with_telegrams_reason_and_no_token(
    h: Harness, api: FakeApi, chat: str, reason: str
) -> None:
    """TelegramBotApiService: not 200 or not ok is ErrorSendingMessageException; a 4xx or
    an ok: false is not retried, and the token (in the URL) never reaches the logs."""
    ex = await h.run(flow("tasks:\n" + telegram(api, f"channel: {chat}\npayload: hi")))
    assert ex.state.current == State.FAILED
    assert len(api.messages) == 1
    errors = await h.logs(ex, "ERROR")
    assert any(reason in line for line in errors), errors
    assert not any(TOKEN in line or "secret-token" in line for line in await h.logs(ex))


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("channel: c", "payload"),
        ("payload: hi", "channel"),
        ("channel: c\npayload: hi\nparseMode: MarkdownV2", "parseMode"),
        ("channel: c\npayload: hi\nparse_mode_typo: HTML", "parse_mode_typo"),
    ],
)
async def test_telegram_send_with_missing_or_malformed_properties_is_a_load_error(
    h: Harness, api: FakeApi, extra: str, named: str
) -> None:
    """TelegramSend's required token/channel/payload, and parseMode's case-sensitive
    values (TelegramSendTest deserialize_parseMode_withInvalidMixedCase)."""
    with pytest.raises(FlowError, match=named):
        await h.flow(flow("tasks:\n" + telegram(api, extra)))


# -- TelegramExecution ----------------------------------------------------------------------------

FAILING = """
tasks:
  - id: extract
    type: io.kestra.plugin.core.log.Log
    message: extracting
  - id: load
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: disk full
errors:
"""


async def test_telegram_execution_tells_the_chat_which_task_failed(
    h: Harness, api: FakeApi
) -> None:
    """TelegramExecutionTest: the text names the namespace, flow and execution, the state
    and `Failed on task \\`failed\\``; the link when podium knows its public URL."""
    h.engine.options.public_url = "http://podium.example:8080"  # type: ignore[attr-defined]
    ex = await h.run(
        flow(
            FAILING
            + telegram(
                api, "channel: channel\ncustomMessage: the nightly load", kind="TelegramExecution"
            )
        )
    )
    assert task_states(ex)["tell"] == "SUCCESS", await h.logs(ex, "ERROR")
    ((token, body),) = api.messages
    assert token == TOKEN and body["chat_id"] == "channel"
    link = f"http://podium.example:8080/ui/executions/company.team/alerting/{ex.id}"
    head, _, rest = body["text"].partition(" after ")
    assert head == f"<company.team alerting {ex.id} ➛ FAILED> Failed on task `load`"
    assert rest.endswith(f" ({link})\n\nthe nightly load")


async def test_telegram_execution_escapes_its_text_for_html(h: Harness, api: FakeApi) -> None:
    """With parseMode HTML, Telegram would refuse the `<...>` of the template as a tag:
    the text is escaped for the mode it is sent in."""
    ex = await h.run(
        flow(FAILING + telegram(api, "channel: c\nparseMode: HTML", kind="TelegramExecution"))
    )
    assert task_states(ex)["tell"] == "SUCCESS", await h.logs(ex, "ERROR")
    ((_, body),) = api.messages
    assert body["parse_mode"] == "HTML"
    assert body["text"].startswith(f"&lt;company.team alerting {ex.id} ➛ FAILED&gt; Failed on")


# -- DiscordExecution's embedList ----------------------------------------------------------------


async def test_discord_execution_sends_the_flows_embeds_with_the_execution_in_the_first(
    h: Harness, api: FakeApi
) -> None:
    """DiscordExecution's example (`embedList: [{title, color: [255, 255, 255]}]`) and
    DiscordTemplate.getEmbedMap: title, url (websiteUrl), thumbnail, author (name, the
    website URL, the avatar), RGB colour as one integer, footer; the first embed carries
    the execution's description and footer, the others go as written."""
    webhook = f"{api.url}/api/webhooks/1/abc"
    ex = await h.run(
        flow(
            FAILING
            + f"""\
  - id: tell
    type: io.kestra.plugin.discord.DiscordExecution
    url: {webhook}
    username: MyUsername
    avatarUrl: https://example.com/avatar.png
    embedList:
      - title: "Discord Notification for {{{{ flow.id }}}}"
        color: [255, 128, 0]
        websiteUrl: https://example.com/runbook
        thumbnail: https://example.com/thumb.png
        authorName: Kestra
        description: replaced by the execution's
        footer: replaced too
      - title: Second
        description: as written
        footer: mine
"""
        )
    )
    assert task_states(ex)["tell"] == "SUCCESS", await h.logs(ex, "ERROR")
    (message,) = api.webhooks
    assert message["username"] == "MyUsername"
    first, second = message["embeds"]
    assert first["title"] == "Discord Notification for alerting"
    assert first["color"] == 0xFF8000
    assert first["url"] == "https://example.com/runbook"
    assert first["thumbnail"] == {"url": "https://example.com/thumb.png"}
    assert first["author"] == {
        "name": "Kestra",
        "url": "https://example.com/runbook",
        "icon_url": "https://example.com/avatar.png",
    }
    assert "Failed on task load" in first["description"]
    assert "disk full" in first["description"]
    assert first["footer"]["text"].startswith("Failed on task load after ")
    assert {f["name"]: f["value"] for f in first["fields"]}["Execution"] == ex.id
    assert second == {"title": "Second", "description": "as written", "footer": {"text": "mine"}}


@pytest.mark.parametrize(
    ("embed", "named"),
    [
        ("{title: t, color: [255, 255]}", "color"),
        ("{title: t, color: [0, 0, 256]}", "color"),
        ("{title: t, colour: [0, 0, 0]}", "colour"),
    ],
)
async def test_a_malformed_embed_is_a_load_error(h: Harness, embed: str, named: str) -> None:
    """An embed's colour is three values 0-255 (Kestra's `Integer[] color`, "[255, 255,
    255]"); an unknown key is a typo."""
    with pytest.raises(FlowError, match=named):
        await h.flow(
            flow(f"""
tasks:
  - id: tell
    type: io.kestra.plugin.discord.DiscordExecution
    url: https://discord.example/api/webhooks/1/abc
    embedList:
      - {embed}
""")
        )
