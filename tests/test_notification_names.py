"""Kestra 1.x's names of the notification tasks, as its blueprints write them.

Kestra 1.x moved these tasks out of plugin-notifications into plugin-email
(`io.kestra.plugin.email.MailSend`/`MailExecution`), plugin-slack
(`io.kestra.plugin.slack.notifications.*`, earlier `io.kestra.plugin.slack.*`),
plugin-discord (`io.kestra.plugin.discord.*`) and plugin-microsoft365
(`io.kestra.plugin.microsoft365.teams.*`) and plugin-telegram
(`io.kestra.plugin.telegram.*`), each class declaring its old name in
`@Plugin(aliases = ...)`. The flows below follow those plug-ins' own examples (their
`@Example` blocks: an `errors` branch alerting on a failed task).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from daemon.flows.registry import default_plugins
from daemon.flows.schema import flow_schema
from daemon.sdk.state import State
from tests.harness import Harness, task_states
from tests.test_notifications import MailServer, parts

# (Kestra 1.x name, the older names it still accepts)
NAMES = {
    "io.kestra.plugin.email.MailSend": ["io.kestra.plugin.notifications.mail.MailSend"],
    "io.kestra.plugin.email.MailExecution": ["io.kestra.plugin.notifications.mail.MailExecution"],
    "io.kestra.plugin.slack.notifications.SlackIncomingWebhook": [
        "io.kestra.plugin.slack.SlackIncomingWebhook",
        "io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
    ],
    "io.kestra.plugin.slack.notifications.SlackExecution": [
        "io.kestra.plugin.slack.SlackExecution",
        "io.kestra.plugin.notifications.slack.SlackExecution",
    ],
    "io.kestra.plugin.discord.DiscordIncomingWebhook": [
        "io.kestra.plugin.notifications.discord.DiscordIncomingWebhook"
    ],
    "io.kestra.plugin.discord.DiscordExecution": [
        "io.kestra.plugin.notifications.discord.DiscordExecution"
    ],
    "io.kestra.plugin.microsoft365.teams.TeamsIncomingWebhook": [
        "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook"
    ],
    "io.kestra.plugin.microsoft365.teams.TeamsExecution": [
        "io.kestra.plugin.notifications.teams.TeamsExecution"
    ],
    "io.kestra.plugin.telegram.TelegramSend": [
        "io.kestra.plugin.notifications.telegram.TelegramSend"
    ],
    "io.kestra.plugin.telegram.TelegramExecution": [
        "io.kestra.plugin.notifications.telegram.TelegramExecution"
    ],
}


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, dict[str, list[Any]]]]:
    """A local stand-in for Slack, Discord and Teams: the JSON posted, per path."""
    posts: dict[str, list[Any]] = {}

    async def receive(request: web.Request) -> web.Response:
        posts.setdefault(request.path, []).append(json.loads(await request.text()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", posts
    finally:
        await runner.cleanup()


def test_the_1x_names_are_canonical_and_the_old_ones_aliases() -> None:
    tasks = default_plugins().tasks
    for name, older in NAMES.items():
        cls = tasks.get(name)
        assert cls.types == (name, *older)
        assert all(tasks.get(old) is cls for old in older)


def test_the_schema_offers_the_new_name_first_and_calls_the_old_one_older() -> None:
    """What an editor completes: Kestra's plugin schema lists a task under its current name."""
    schema = flow_schema(default_plugins())
    found = [
        d["properties"]["type"]
        for d in schema["definitions"].values()
        if d.get("properties", {}).get("type", {}).get("enum", [None])[0]
        == ("io.kestra.plugin.email.MailSend")
    ]
    (kind,) = found
    assert kind["enum"] == ["io.kestra.plugin.email.MailSend", *NAMES[kind["enum"][0]]]
    assert kind["markdownEnumDescriptions"][1] == (
        "An older name of `io.kestra.plugin.email.MailSend`."
    )


FAILING = """\
id: unreliable_flow
namespace: company.team
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: disk full
errors:
"""


async def test_blueprint_error_alerts_with_the_1x_webhook_names_are_delivered(
    h: Harness, received: tuple[str, dict[str, list[Any]]]
) -> None:
    """plugin-slack, plugin-discord and plugin-microsoft365 examples: alert from `errors`."""
    url, posts = received
    errors = f"""\
  - id: slack
    type: io.kestra.plugin.slack.notifications.SlackIncomingWebhook
    url: {url}/slack
    messageText: "Failure alert for flow {{{{ flow.namespace }}}}.{{{{ flow.id }}}}"
  - id: slack_root_package
    type: io.kestra.plugin.slack.SlackIncomingWebhook
    url: {url}/slack
    payload: |
      {{"text": "execution {{{{ execution.id }}}} failed"}}
  - id: discord
    type: io.kestra.plugin.discord.DiscordIncomingWebhook
    url: {url}/discord
    payload: |
      {{"content": "Failure alert for flow {{{{ flow.id }}}}"}}
  - id: teams
    type: io.kestra.plugin.microsoft365.teams.TeamsIncomingWebhook
    url: {url}/teams
    payload: |
      {{
        "type": "message",
        "attachments": [{{
          "contentType": "application/vnd.microsoft.card.adaptive",
          "content": {{"type": "AdaptiveCard", "version": "1.4", "body": [
            {{"type": "TextBlock", "text": "Status: {{{{ execution.state }}}}"}}
          ]}}
        }}]
      }}
"""
    ex = await h.run(FAILING + errors)
    assert ex.state.current == State.FAILED
    states = task_states(ex)
    assert [states[t] for t in ("slack", "slack_root_package", "discord", "teams")] == [
        "SUCCESS"
    ] * 4, await h.logs(ex, "ERROR")
    assert posts["/slack"] == [
        {"text": "Failure alert for flow company.team.unreliable_flow"},
        {"text": f"execution {ex.id} failed"},
    ]
    assert posts["/discord"] == [{"content": "Failure alert for flow unreliable_flow"}]
    (card,) = posts["/teams"]
    assert card["attachments"][0]["content"]["body"][0]["text"] == "Status: RUNNING"


async def test_blueprint_execution_summaries_with_the_1x_names_are_delivered(
    h: Harness, received: tuple[str, dict[str, list[Any]]]
) -> None:
    """SlackExecution / DiscordExecution / TeamsExecution under their plug-ins' new names."""
    url, posts = received
    errors = f"""\
  - id: slack
    type: io.kestra.plugin.slack.notifications.SlackExecution
    url: {url}/slack
    channel: "#errors"
    username: Kestra TEST
    customMessage: look here
  - id: discord
    type: io.kestra.plugin.discord.DiscordExecution
    url: {url}/discord
    username: Kestra
  - id: teams
    type: io.kestra.plugin.microsoft365.teams.TeamsExecution
    url: {url}/teams
    activityTitle: Kestra Teams notification
"""
    ex = await h.run(FAILING + errors)
    states = task_states(ex)
    assert [states[t] for t in ("slack", "discord", "teams")] == ["SUCCESS"] * 3
    (slack,) = posts["/slack"]
    assert (slack["channel"], slack["username"]) == ("#errors", "Kestra TEST")
    assert "unreliable_flow" in json.dumps(slack) and "look here" in json.dumps(slack)
    (discord,) = posts["/discord"]
    assert discord["username"] == "Kestra" and "disk full" in json.dumps(discord)
    (teams,) = posts["/teams"]
    assert teams["sections"][0]["activityTitle"] == "Kestra Teams notification"


async def test_blueprint_mails_with_the_plugin_email_names_are_delivered(h: Harness) -> None:
    """plugin-email's MailSend example (`errors` alert) and MailExecution."""
    async with MailServer() as server:
        errors = f"""\
  - id: send_email
    type: io.kestra.plugin.email.MailSend
    from: hello@kestra.io
    to: hello@kestra.io
    host: 127.0.0.1
    port: {server.port}
    transportStrategy: SMTP
    subject: >-
      Kestra workflow failed for the flow {{{{flow.id}}}}
      in the namespace {{{{flow.namespace}}}}
    htmlTextContent: "Failure alert for flow {{{{ flow.namespace }}}}.{{{{ flow.id }}}}"
  - id: summary
    type: io.kestra.plugin.email.MailExecution
    from: hello@kestra.io
    to: [ops@example.com]
    host: 127.0.0.1
    port: {server.port}
    transportStrategy: SMTP
"""
        ex = await h.run(FAILING + errors)
    states = task_states(ex)
    assert (states["send_email"], states["summary"]) == ("SUCCESS", "SUCCESS")
    first, second = server.inbox
    assert first.message["Subject"] == (
        "Kestra workflow failed for the flow unreliable_flow in the namespace company.team"
    )
    assert parts(first.message)["text/html"] == (
        "Failure alert for flow company.team.unreliable_flow"
    )
    assert second.recipients == ["ops@example.com"]
    assert second.message["Subject"] == "[company.team] unreliable_flow ➛ FAILED"
