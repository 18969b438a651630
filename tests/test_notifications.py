"""Notification tasks against real peers: a local aiohttp server standing in for Slack,
Discord and Teams, and a local aiosmtpd server for mail (plain, STARTTLS, SMTPS)."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import shutil
import socket
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web

import tasks.notifications.delivery as delivery
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, problems, task_states

PUBLIC_URL = "http://podium.example:8080"


# -- a stand-in for Slack / Discord / Teams ---------------------------------------------------


@dataclass
class Hook:
    """What the webhook server received, per path, and how each path answers."""

    url: str
    received: dict[str, list[Any]] = field(default_factory=dict)
    # path -> statuses to answer in turn (the last one repeats); 200 when not listed
    answers: dict[str, list[int]] = field(default_factory=dict)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by every request

    def posts(self, path: str) -> list[Any]:
        return self.received.get(path, [])


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "RETRY_DELAY", 0.01)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    state = Hook("")

    async def receive(request: web.Request) -> web.StreamResponse:
        path = request.path
        text = await request.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        state.received.setdefault(path, []).append(body)
        state.arrived.set()
        if path.startswith("/slow"):
            await asyncio.sleep(30)  # far past the client's timeout; cancelled at cleanup
        if path.startswith("/held"):
            await state.hold.wait()
        statuses = state.answers.get(path, [200])
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == 429:
            return web.Response(status=429, text="slow down", headers={"Retry-After": "0"})
        if status >= 300:
            return web.Response(status=status, text=f"refused with {status}: invalid_payload")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    state.hold.set()
    await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def flow(body: str) -> str:
    return "id: alerting\nnamespace: company.team\n" + textwrap.dedent(body)


FAILING = """
    tasks:
      - id: extract
        type: io.kestra.plugin.core.log.Log
        message: extracting
      - id: load
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: disk full on /data
"""


async def errors_of(h: Harness, execution: Execution) -> list[str]:
    return await h.logs(execution, "ERROR")


# -- the ExecutionAlert forms ----------------------------------------------------------------


async def test_slack_execution_in_errors_names_the_flow_the_failed_task_and_its_error(
    h: Harness, hook: Hook
) -> None:
    h.engine.options.public_url = PUBLIC_URL  # type: ignore[attr-defined]  # set by podium serve
    ex = await h.run(
        flow(
            FAILING
            + f"""
    errors:
      - id: tell_slack
        type: io.kestra.plugin.notifications.slack.SlackExecution
        url: {hook.url}/services/T0/B0/secret
        channel: "#alerts"
        customMessage: "the nightly load broke"
        customFields:
          owner: data-team
    """
        )
    )
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"extract": "SUCCESS", "load": "FAILED", "tell_slack": "SUCCESS"}
    (message,) = hook.posts("/services/T0/B0/secret")
    link = f"{PUBLIC_URL}/ui/executions/company.team/alerting/{ex.id}"
    assert message["channel"] == "#alerts"
    assert message["text"] == (
        f"*<{link}|[company.team] alerting ➛ FAILED>*\n"
        "> Failed on task load after " + message["text"].rsplit(" ", 1)[1]
    )
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert fields["Flow"] == "alerting"
    assert fields["Namespace"] == "company.team"
    assert fields["Execution"] == ex.id
    assert fields["State"] == "FAILED"
    assert fields["Failed task"] == "load"
    assert fields["Error"] == "disk full on /data"
    assert fields["owner"] == "data-team"
    assert message["attachments"][0]["color"] == "danger"
    assert message["attachments"][0]["title_link"] == link
    assert message["blocks"][0]["text"]["text"] == "the nightly load broke"
    assert "```disk full on /data```" in json.dumps(message["blocks"])


async def test_execution_alert_about_another_execution_reads_it_from_the_store(
    h: Harness, hook: Hook
) -> None:
    failed = await h.run(flow(FAILING))
    report = await h.run(
        f"""
        id: reporter
        namespace: company.ops
        inputs:
          - id: about
            type: STRING
        tasks:
          - id: discord
            type: io.kestra.plugin.notifications.discord.DiscordExecution
            url: {hook.url}/discord
            executionId: "{{{{ inputs.about }}}}"
            username: podium
          - id: teams
            type: io.kestra.plugin.notifications.teams.TeamsExecution
            url: {hook.url}/teams
            executionId: "{{{{ inputs.about }}}}"
        """,
        {"about": failed.id},
    )
    assert report.state.current == State.SUCCESS, await errors_of(h, report)
    (discord,) = hook.posts("/discord")
    assert discord["username"] == "podium"
    (embed,) = discord["embeds"]
    assert embed["title"] == "[company.team] alerting ➛ FAILED"
    assert "disk full on /data" in embed["description"]
    assert {f["name"]: f["value"] for f in embed["fields"]}["Failed task"] == "load"
    assert embed["color"] == 0xC62828
    (teams,) = hook.posts("/teams")
    assert teams["@type"] == "MessageCard"
    (section,) = teams["sections"]
    assert section["activityTitle"] == "[company.team] alerting ➛ FAILED"
    assert {f["name"]: f["value"] for f in section["facts"]}["Execution"] == failed.id
    assert section["text"] == "Error: disk full on /data"
    assert "potentialAction" not in teams  # no public URL: no link rather than a wrong one


async def test_pagerduty_execution_triggers_an_event_about_the_failed_execution(
    h: Harness, hook: Hook
) -> None:
    """Kestra's PagerDutyExecution (plugin-notifications, pagerduty-template.peb): an Events
    API v2 event with the keys the task sets, `source` naming the execution, severity
    `error` once a task failed, the flow id and state in custom_details, and a link to the
    execution; PagerDutyAlert posts the flow's own event as written."""
    h.engine.options.public_url = PUBLIC_URL  # type: ignore[attr-defined]  # set by podium serve
    ex = await h.run(
        flow(
            FAILING
            + f"""
    errors:
      - id: page
        type: io.kestra.plugin.notifications.pagerduty.PagerDutyExecution
        url: {hook.url}/v2/enqueue
        routingKey: "R0UT1NG"
        deduplicationKey: "{{{{ flow.id }}}}-nightly"
        payloadSummary: "nightly load failed"
        customFields:
          owner: data-team
      - id: resolve
        type: io.kestra.plugin.notifications.pagerduty.PagerDutyAlert
        url: {hook.url}/v2/enqueue
        payload: |
          {{"routing_key": "R0UT1NG", "dedup_key": "{{{{ flow.id }}}}-nightly",
           "event_action": "resolve"}}
    """
        )
    )
    assert ex.state.current == State.FAILED
    assert task_states(ex)["page"] == "SUCCESS", await errors_of(h, ex)
    event, resolve = hook.posts("/v2/enqueue")
    assert {k: event[k] for k in ("routing_key", "dedup_key", "event_action")} == {
        "routing_key": "R0UT1NG",
        "dedup_key": "alerting-nightly",
        "event_action": "trigger",
    }
    payload = event["payload"]
    assert payload["summary"] == "nightly load failed"
    assert payload["source"] == f"company.team {ex.id}"
    assert payload["severity"] == "error"
    details = {d["title"]: d["value"] for d in payload["custom_details"]}
    assert details["Flow ID"] == "alerting" and details["Execution Status"] == "FAILED"
    assert details["Failed task"] == "load" and details["owner"] == "data-team"
    assert details["Error"] == "disk full on /data"
    assert payload["timestamp"].endswith("Z")
    link = f"{PUBLIC_URL}/ui/executions/company.team/alerting/{ex.id}"
    assert event["links"] == [{"href": link, "text": event["links"][0]["text"]}]
    assert event["links"][0]["text"].startswith("Failed on task load after ")
    assert resolve == {
        "routing_key": "R0UT1NG",
        "dedup_key": "alerting-nightly",
        "event_action": "resolve",
    }


async def test_pagerduty_execution_without_a_summary_uses_the_executions_title(
    h: Harness, hook: Hook
) -> None:
    """PagerDuty refuses an event without payload.summary: podium gives it the execution's
    title when the flow sets none (Kestra's template would leave it out)."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: fine
      - id: page
        type: io.kestra.plugin.notifications.pagerduty.PagerDutyExecution
        url: {hook.url}/v2/enqueue
        eventAction: acknowledge
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (event,) = hook.posts("/v2/enqueue")
    assert event["event_action"] == "acknowledge"
    assert "routing_key" not in event and "dedup_key" not in event
    assert event["payload"]["summary"] == "[company.team] alerting ➛ RUNNING"
    assert event["payload"]["severity"] == "info"
    assert "links" not in event  # no public URL: no link rather than a wrong one


async def test_execution_alert_about_an_unknown_execution_fails_the_task(
    h: Harness, hook: Hook
) -> None:
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackExecution
        url: {hook.url}/hook
        executionId: nope
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == ["execution 'nope' not found"]
    assert hook.posts("/hook") == []


async def test_succeeded_execution_is_reported_as_such(h: Harness, hook: Hook) -> None:
    ex = await h.run(
        flow(f"""
    tasks:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: fine
    afterExecution:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackExecution
        url: {hook.url}/hook
    """)
    )
    assert ex.state.current == State.SUCCESS
    (message,) = hook.posts("/hook")
    assert message["text"].startswith("*[company.team] alerting ➛ SUCCESS*\n> Succeeded after ")
    assert message["attachments"][0]["color"] == "good"
    assert "Failed task" not in {f["title"] for f in message["attachments"][0]["fields"]}


# -- webhooks written by the flow ----------------------------------------------------------


async def test_incoming_webhooks_post_the_rendered_payload(h: Harness, hook: Hook) -> None:
    ex = await h.run(
        flow(f"""
    tasks:
      - id: slack_json
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/slack
        payload: |
          {{"text": "Failure alert for flow {{{{ flow.namespace }}}}.{{{{ flow.id }}}}"}}
      - id: slack_text
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/slack
        messageText: "hello from {{{{ flow.id }}}}"
      - id: discord
        type: io.kestra.plugin.notifications.discord.DiscordIncomingWebhook
        url: {hook.url}/discord
        payload:
          content: "run {{{{ execution.id }}}}"
      - id: teams
        type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
        url: {hook.url}/teams
        payload: '{{"text": "done"}}'
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    assert hook.posts("/slack") == [
        {"text": "Failure alert for flow company.team.alerting"},
        {"text": "hello from alerting"},
    ]
    assert hook.posts("/discord") == [{"content": f"run {ex.id}"}]
    assert hook.posts("/teams") == [{"text": "done"}]


async def test_5xx_and_429_are_retried_until_delivered(h: Harness, hook: Hook) -> None:
    hook.answers["/flaky"] = [502, 429, 200]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/flaky
        messageText: hi
    """)
    )
    assert ex.state.current == State.SUCCESS
    assert len(hook.posts("/flaky")) == 3
    warnings = [m for m in await h.logs(ex, "WARN") if m.startswith("sending")]
    assert warnings == [
        "sending the Slack message failed (attempt 1 of 3): response code 502 and body: "
        "refused with 502: invalid_payload; retrying in 0.01s",
        "sending the Slack message failed (attempt 2 of 3): response code 429 and body: "
        "slow down; retrying in 0.02s",
    ]


async def test_endpoint_answering_500_fails_the_task_after_the_retries(
    h: Harness, hook: Hook
) -> None:
    hook.answers["/down"] = [500]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/down
        messageText: hi
    """)
    )
    assert ex.state.current == State.FAILED
    assert len(hook.posts("/down")) == delivery.SEND_ATTEMPTS == 3
    assert await errors_of(h, ex) == [
        "cannot send the Slack message after 3 attempts: response code 500 and body: "
        "refused with 500: invalid_payload"
    ]


async def test_a_4xx_answer_is_not_retried(h: Harness, hook: Hook) -> None:
    hook.answers["/bad"] = [400]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
        url: {hook.url}/bad
        payload: '{{"text": "x"}}'
    """)
    )
    assert ex.state.current == State.FAILED
    assert len(hook.posts("/bad")) == 1
    assert await errors_of(h, ex) == [
        "cannot send the Teams message: response code 400 and body: "
        "refused with 400: invalid_payload"
    ]


async def test_unreachable_endpoint_fails_with_the_reason_and_no_url_path(h: Harness) -> None:
    port = closed_port()
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.discord.DiscordIncomingWebhook
        url: http://127.0.0.1:{port}/api/webhooks/123/very-secret-token
        payload: '{{"content": "x"}}'
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        f"cannot send the Discord message after 3 attempts: cannot connect to "
        f"http://127.0.0.1:{port}/…: connection refused"
    ]
    logs = " ".join(await h.logs(ex))
    assert "very-secret-token" not in logs


async def test_endpoint_that_does_not_answer_times_out(h: Harness, hook: Hook) -> None:
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/slow
        messageText: hi
        options:
          readTimeout: PT0.2S
    """)
    )
    assert ex.state.current == State.FAILED
    assert len(hook.posts("/slow")) == 3
    assert await errors_of(h, ex) == [
        f"cannot send the Slack message after 3 attempts: no answer from {hook.url}/… within PT0.2S"
    ]


async def test_webhook_url_from_a_secret_never_reaches_the_logs(
    h: Harness, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_url = f"{hook.url}/services/T1/B1/xoxsecret"
    monkeypatch.setenv("SECRET_SLACK_WEBHOOK", base64.b64encode(secret_url.encode()).decode())
    hook.answers["/services/T1/B1/xoxsecret"] = [503]
    ex = await h.run(
        flow("""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: "{{ secret('SLACK_WEBHOOK') }}"
        messageText: "hello"
    """)
    )
    assert ex.state.current == State.FAILED
    assert len(hook.posts("/services/T1/B1/xoxsecret")) == 3
    assert await errors_of(h, ex) == [
        "cannot send the Slack message after 3 attempts: response code 503 and body: "
        "refused with 503: invalid_payload"
    ]
    everything = " ".join(await h.logs(ex)) + json.dumps(await h.stored(ex))
    assert "xoxsecret" not in everything


async def test_payload_that_is_not_json_fails_without_sending(h: Harness, hook: Hook) -> None:
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/hook
        payload: "{{not json"
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        "the Slack payload is not JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    ]
    assert hook.posts("/hook") == []


# -- malformed properties: load errors -----------------------------------------------------


def test_webhook_without_url_or_message_is_a_load_error() -> None:
    assert problems(
        flow("""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        messageTxt: hi
    """)
    ) == [
        "f.yaml:5:5: tasks[0]: missing required property 'url'",
        "f.yaml:7:17: tasks[0].messageTxt: unknown property 'messageTxt'; "
        "did you mean 'messageText'?",
    ]
    assert problems(
        flow("""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: http://x
    """)
    ) == ["f.yaml:5:5: tasks[0]: give 'payload' (Slack's JSON message) or 'messageText'"]
    assert problems(
        flow("""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.discord.DiscordIncomingWebhook
        url: ""
        payload: "{}"
    """)
    ) == ["f.yaml:7:10: tasks[0].url: String should have at least 1 character (got '')"]


def test_mail_properties_are_checked_at_load() -> None:
    assert problems(
        flow("""
    tasks:
      - id: mail
        type: io.kestra.plugin.notifications.mail.MailSend
        host: smtp.example.com
        from: not-an-address
        to: ops@example.com; nobody
        transportStrategy: SMTP_OAUTH2
        port: 70000
    """)
    ) == [
        "f.yaml:8:11: tasks[0].from: 'not-an-address' is not an email address "
        "(got 'not-an-address')",
        "f.yaml:9:9: tasks[0].to: 'nobody' is not an email address (got 'ops@example.com; nobody')",
        "f.yaml:10:24: tasks[0].transportStrategy: Input should be 'SMTP', 'SMTPS' or "
        "'SMTP_TLS' (got 'SMTP_OAUTH2')",
        "f.yaml:11:11: tasks[0].port: Input should be less than or equal to 65535 (got 70000)",
    ]
    assert problems(
        flow("""
    tasks:
      - id: mail
        type: io.kestra.plugin.notifications.mail.MailExecution
        to: ops@example.com
    """)
    ) == [
        "f.yaml:5:5: tasks[0]: missing required property 'from'",
        "f.yaml:5:5: tasks[0]: missing required property 'host'",
    ]


# -- afterExecution ------------------------------------------------------------------------


async def test_after_execution_sees_the_final_state_and_finally_does_not(
    h: Harness, hook: Hook
) -> None:
    ex = await h.run(
        flow(
            FAILING
            + f"""
    finally:
      - id: during
        type: io.kestra.plugin.core.log.Log
        message: "finally sees {{{{ execution.state }}}}"
    afterExecution:
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: "afterExecution sees {{{{ execution.state }}}}"
      - id: on_success
        runIf: "{{{{ execution.state == 'SUCCESS' }}}}"
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/ok
        messageText: "{{{{ flow.id }}}} succeeded"
      - id: on_failure
        runIf: "{{{{ execution.state == 'FAILED' }}}}"
        type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
        url: {hook.url}/failed
        messageText: "{{{{ flow.id }}}} failed"
    """
        )
    )
    assert ex.state.current == State.FAILED
    logs = await h.logs(ex, "INFO")
    assert "finally sees RUNNING" in logs
    assert "afterExecution sees FAILED" in logs
    assert task_states(ex)["on_success"] == "SKIPPED"
    assert hook.posts("/ok") == []
    assert hook.posts("/failed") == [{"text": "alerting failed"}]
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "FAILED"
    assert [t["taskId"] for t in stored["taskRunList"]][-3:] == [
        "after",
        "on_success",
        "on_failure",
    ]


async def test_a_failing_after_execution_task_never_changes_the_final_state(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    ex = await h.run(
        flow("""
    tasks:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: fine
    afterExecution:
      - id: broken
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: cannot notify
      - id: never
        type: io.kestra.plugin.core.log.Log
        message: not reached
    """)
    )
    assert ex.state.current == State.SUCCESS
    assert task_states(ex) == {"work": "SUCCESS", "broken": "FAILED"}
    assert ex.error is None
    assert (await h.stored(ex))["state"]["current"] == "SUCCESS"
    assert await errors_of(h, ex) == ["cannot notify"]
    assert (
        f"execution {ex.id} of company.team.alerting: an afterExecution task failed; "
        "the execution stays SUCCESS"
    ) in caplog.text


def test_after_execution_task_ids_are_checked_with_the_others() -> None:
    assert problems(
        flow("""
    tasks:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: x
    afterExecution:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: y
    """)
    ) == ["f.yaml:9:9: afterExecution[0].id: duplicate task id 'work'"]


# -- mail ----------------------------------------------------------------------------------

Tls = Literal["none", "starttls", "smtps"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail(
            "the openssl command is needed to make a test certificate: apt-get install openssl"
        )
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    yield cert, key


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


class MailServer:
    """aiosmtpd on a free local port, in its own thread, keeping what it receives."""

    def __init__(
        self,
        tls: Tls = "none",
        certificate: tuple[Path, Path] | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.tls = tls
        self.certificate = certificate
        self.login = login
        self.inbox: list[Received] = []
        self.port = 0
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.inbox.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls, session.auth_data)
        )
        return "250 OK"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and self.login is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        )
        return AuthResult(
            success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None
        )

    async def __aenter__(self) -> MailServer:
        import ssl

        from aiosmtpd.controller import Controller

        self.port = closed_port()
        kwargs: dict[str, Any] = {"server_hostname": "mail.test", "ready_timeout": 10}
        if self.tls != "none":
            assert self.certificate is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert, key = self.certificate
            await asyncio.to_thread(context.load_cert_chain, str(cert), str(key))
            kwargs["ssl_context" if self.tls == "smtps" else "tls_context"] = context
            kwargs["require_starttls"] = self.tls == "starttls"
        if self.login is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = self.tls != "none"
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._controller.stop)


def mail_flow(port: int, strategy: str, extra: str = "") -> str:
    return flow(
        f"""
    tasks:
      - id: mail
        type: io.kestra.plugin.notifications.mail.MailSend
        host: 127.0.0.1
        port: {port}
        transportStrategy: {strategy}
        from: podium@example.com
        to: "ops@example.com; Data Team <data@example.com>"
        cc: boss@example.com
        subject: "Report for {{{{ flow.id }}}}"
        htmlTextContent: "<p>All <b>good</b> in {{{{ flow.namespace }}}}</p>"
        plainTextContent: "All good in {{{{ flow.namespace }}}}"
    """
        + textwrap.indent(textwrap.dedent(extra), "        ")
    )


def parts(message: EmailMessage) -> dict[str, str]:
    out = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            text = str(part.get_content()).replace("\r\n", "\n")
            out[part.get_content_type()] = text.strip()
    return out


async def test_mail_send_with_starttls_and_login_is_delivered_and_read_back(
    h: Harness, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test's own CA
    async with MailServer("starttls", certificate, ("mailer", "s3cret-pw")) as server:
        ex = await h.run(
            mail_flow(
                server.port,
                "SMTP_TLS",
                """
            username: mailer
            password: "{{ 's3cret' ~ '-pw' }}"
        """,
            )
        )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (got,) = server.inbox
    assert got.tls and got.login == "mailer"
    assert got.sender == "podium@example.com"
    assert sorted(got.recipients) == ["boss@example.com", "data@example.com", "ops@example.com"]
    message = got.message
    assert message["Subject"] == "Report for alerting"
    assert message["To"] == "ops@example.com, Data Team <data@example.com>"
    assert message["Cc"] == "boss@example.com"
    assert message["From"] == "podium@example.com"
    assert parts(message) == {
        "text/plain": "All good in company.team",
        "text/html": "<p>All <b>good</b> in company.team</p>",
    }
    assert "s3cret-pw" not in " ".join(await h.logs(ex))


async def test_mail_send_over_smtps(
    h: Harness, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with MailServer("smtps", certificate) as server:
        ex = await h.run(mail_flow(server.port, "SMTPS"))
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (got,) = server.inbox
    assert got.tls
    assert got.message["Subject"] == "Report for alerting"


async def test_smtps_against_an_untrusted_certificate_fails_once_with_the_reason(
    h: Harness, certificate: tuple[Path, Path]
) -> None:
    async with MailServer("smtps", certificate) as server:
        ex = await h.run(mail_flow(server.port, "SMTPS"))
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        "cannot send the mail to ops@example.com, Data Team <data@example.com>: TLS with "
        f"127.0.0.1:{server.port} failed: certificate verify failed: self-signed certificate"
    ]
    assert server.inbox == []


async def test_wrong_password_fails_with_the_smtp_reply_and_is_not_retried(
    h: Harness, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with MailServer("starttls", certificate, ("mailer", "right")) as server:
        ex = await h.run(
            mail_flow(
                server.port,
                "SMTP",
                """
            username: mailer
            password: wrong-password
        """,
            )
        )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        f"cannot send the mail to ops@example.com, Data Team <data@example.com>: "
        f"127.0.0.1:{server.port} refused the login: 535 5.7.8 Authentication credentials "
        "invalid"
    ]
    assert server.inbox == []


async def test_unreachable_smtp_server_fails_after_the_retries(h: Harness) -> None:
    port = closed_port()
    ex = await h.run(mail_flow(port, "SMTP"))
    assert ex.state.current == State.FAILED
    (error,) = await errors_of(h, ex)
    assert error == (
        "cannot send the mail to ops@example.com, Data Team <data@example.com> "
        f"after 3 attempts: cannot connect to 127.0.0.1:{port}: connection refused"
    )


async def test_mail_execution_in_errors_sends_the_summary(h: Harness) -> None:
    h.engine.options.public_url = PUBLIC_URL  # type: ignore[attr-defined]
    async with MailServer() as server:
        ex = await h.run(
            flow(
                FAILING
                + f"""
    errors:
      - id: mail
        type: io.kestra.plugin.notifications.mail.MailExecution
        host: 127.0.0.1
        port: {server.port}
        transportStrategy: SMTP
        from: podium@example.com
        to: ops@example.com
        customMessage: "look at <this>"
    """
            )
        )
    assert ex.state.current == State.FAILED
    assert task_states(ex)["mail"] == "SUCCESS", await errors_of(h, ex)
    (got,) = server.inbox
    message = got.message
    assert message["Subject"] == "[company.team] alerting ➛ FAILED"
    body = parts(message)
    link = f"{PUBLIC_URL}/ui/executions/company.team/alerting/{ex.id}"
    assert body["text/plain"].startswith(
        "[company.team] alerting ➛ FAILED\nFailed on task load after "
    )
    assert "Error: disk full on /data" in body["text/plain"]
    assert body["text/plain"].endswith(link)
    html = body["text/html"]
    assert "<td>load</td>" in html
    assert "<pre>disk full on /data</pre>" in html
    assert "look at &lt;this&gt;" in html
    assert f'<a href="{link}">' in html


async def test_mail_attachment_from_storage(h: Harness) -> None:
    async with MailServer() as server:
        ex = await h.run(
            flow(f"""
        tasks:
          - id: file
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - printf 'a,b\\n1,2\\n' > report.csv
            outputFiles: ["report.csv"]
          - id: mail
            type: io.kestra.plugin.notifications.mail.MailSend
            host: 127.0.0.1
            port: {server.port}
            transportStrategy: SMTP
            from: podium@example.com
            to: ops@example.com
            plainTextContent: see attached
            attachments:
              - name: report.csv
                uri: "{{{{ outputs.file.outputFiles['report.csv'] }}}}"
                contentType: text/csv
        """)
        )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (got,) = server.inbox
    (attachment,) = list(got.message.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content() == "a,b\n1,2\n"
