"""Alerts without editing the failing flows: a namespace-wide alerts flow (Flow trigger)
and the daemon-wide `alerts:` setting, against a local webhook server and aiosmtpd."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.test_notifications as notifications
from daemon.app.alerts import Alerts, build_rules, install
from daemon.config.settings import ConfigError, Settings, load_settings
from daemon.flows.loader import load_flow_file
from daemon.flows.registry import default_plugins
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.daemon_process import ROOT, ServeProcess
from tests.harness import Harness, running_triggers, settle
from tests.test_notifications import Hook, MailServer

# test_notifications' webhook stand-in and its quick retries, used here by name.
hook = notifications.hook
quick_retries = notifications.quick_retries

FLOWS = ROOT / "flows"


def upstream(namespace: str, flow_id: str) -> str:
    return textwrap.dedent(f"""
        id: {flow_id}
        namespace: {namespace}
        inputs:
          - id: fail
            type: BOOLEAN
            defaults: false
        tasks:
          - id: step
            type: io.kestra.plugin.core.log.Log
            message: working
          - id: load
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{{{ inputs.fail }}}}"
            errorMessage: "{flow_id} could not load"
    """)


async def run(h: Harness, namespace: str, flow_id: str, *, fail: bool) -> Execution:
    ex = await h.run(upstream(namespace, flow_id), {"fail": fail})
    assert ex.state.current == (State.FAILED if fail else State.SUCCESS)
    return ex


# -- a namespace-wide alerts flow ----------------------------------------------------------


def watcher(url: str) -> str:
    """An alerts flow inside the namespace it watches, which itself ends FAILED every time:
    were its own runs not excluded, each would trigger the next."""
    return textwrap.dedent(f"""
        id: watcher
        namespace: company.monitoring
        tasks:
          - id: tell
            type: io.kestra.plugin.notifications.slack.SlackExecution
            url: {url}
            executionId: "{{{{ trigger.executionId }}}}"
          - id: then_fail
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: the watcher fails too
        triggers:
          - id: failures
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [FAILED, WARNING]
              - type: io.kestra.plugin.core.condition.ExecutionNamespace
                namespace: company
                prefix: true
    """)


async def test_alerts_flow_fires_once_per_failed_execution_and_never_for_its_own_runs(
    h: Harness, hook: Hook
) -> None:
    async with running_triggers(h, watcher(f"{hook.url}/alerts")) as th:
        await settle()
        failures = [
            await run(h, "company.team", "a", fail=True),
            await run(h, "company", "b", fail=True),
        ]
        await run(h, "company", "b", fail=False)
        await run(h, "other", "c", fail=True)
        failures.append(await run(h, "company.team", "a", fail=True))
        await th.wait_for(3)
        ended = await th.finished()
        await h.engine.drain()
        await settle()
        assert len(th.executions) == 3
    assert [e.state.current for e in ended] == [State.FAILED] * 3
    assert [e.trigger["variables"]["executionId"] for e in ended if e.trigger] == [
        f.id for f in failures
    ]
    posts = hook.posts("/alerts")
    assert len(posts) == 3
    fields = [{f["title"]: f["value"] for f in p["attachments"][0]["fields"]} for p in posts]
    # One post per failure; the watcher's executions run at once, so in any order.
    assert sorted(
        (f["Namespace"], f["Flow"], f["Execution"], f["Failed task"], f["Error"]) for f in fields
    ) == sorted(
        [
            ("company.team", "a", failures[0].id, "load", "a could not load"),
            ("company", "b", failures[1].id, "load", "b could not load"),
            ("company.team", "a", failures[2].id, "load", "a could not load"),
        ]
    )


async def test_example_flows_alert_through_errors_and_the_namespace_watcher(
    h: Harness, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{hook.url}/services/T0/B0/example"
    monkeypatch.setenv("SECRET_SLACK_WEBHOOK", base64.b64encode(url.encode()).decode())
    h.engine.resources.envs["slack_alerts"] = "true"  # ENV_SLACK_ALERTS=true turns the watcher on
    failing = await asyncio.to_thread(load_flow_file, FLOWS / "alert_on_failure.yaml")
    after = await asyncio.to_thread(load_flow_file, FLOWS / "after_execution_notify.yaml")
    for flow in (failing, after):
        h.engine.catalog.add(flow)
    source = await asyncio.to_thread((FLOWS / "failure_alerts.yaml").read_text)
    async with running_triggers(h, source) as th:
        await settle()
        ex = await h.run(failing)
        fine = await h.run(after)
        await th.wait_for(1)
        (alerted,) = await th.finished()
        await h.engine.drain()
        await settle()
    assert ex.state.current == State.FAILED
    assert fine.state.current == State.SUCCESS
    assert alerted.state.current == State.SUCCESS, await h.logs(alerted, "ERROR")
    posts = hook.posts("/services/T0/B0/example")  # the watcher's may come at any point
    assert len(posts) == 3
    plain = [p for p in posts if "attachments" not in p]
    assert plain == [{"text": "podium.examples.after_execution_notify finished successfully"}]
    from_errors, from_watcher = [p for p in posts if "attachments" in p]
    for message in (from_errors, from_watcher):
        fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
        assert (fields["Flow"], fields["Execution"], fields["Failed task"], fields["Error"]) == (
            "alert_on_failure",
            ex.id,
            "load",
            "the warehouse refused the load",
        )


async def test_the_namespace_watcher_says_slack_is_not_configured_instead_of_failing(
    h: Harness, hook: Hook
) -> None:
    """Without ENV_SLACK_ALERTS (and its secret) the example watcher logs a warning and ends
    SUCCESS: a fresh `make run` must not fill the executions list with its failures."""
    failing = await asyncio.to_thread(load_flow_file, FLOWS / "alert_on_failure.yaml")
    h.engine.catalog.add(failing)
    source = await asyncio.to_thread((FLOWS / "failure_alerts.yaml").read_text)
    async with running_triggers(h, source) as th:
        await settle()
        ex = await h.run(failing)
        await th.wait_for(1)
        (watcher,) = await th.finished()
        await h.engine.drain()
    assert ex.state.current == State.FAILED
    assert watcher.state.current == State.SUCCESS
    [warning] = await h.logs(watcher, "WARN")
    assert warning.startswith("Slack alerts are not configured: podium.examples.alert_on_failure")
    assert hook.posts("/services/T0/B0/example") == []


# -- the daemon-wide `alerts:` setting -----------------------------------------------------


@pytest.fixture
async def alerts(h: Harness, hook: Hook) -> AsyncIterator[Alerts]:
    settings = Settings(
        data_dir=h.engine.data_dir,
        url="http://podium.example",
        alerts=[
            {
                "channel": "slack",
                "url": f"{hook.url}/prod",
                "states": ["FAILED"],
                "namespaces": ["prod"],
                "customFields": {"runbook": "https://wiki/prod"},
            },
            {
                "channel": "teams",
                "url": f"{hook.url}/teams",
                "states": ["WARNING", "FAILED"],
                "namespaces": ["dev.etl"],
            },
        ],
    )
    installed = install(h.engine, settings)
    yield installed
    await installed.close()


async def test_setting_sends_on_failed_of_a_matching_namespace_and_not_others(
    h: Harness, hook: Hook, alerts: Alerts
) -> None:
    failed = await run(h, "prod.sales", "nightly", fail=True)
    await run(h, "prod", "ok", fail=False)
    await run(h, "production", "lookalike", fail=True)
    await run(h, "dev", "other", fail=True)
    etl = await run(h, "dev.etl", "extract", fail=True)
    await alerts.idle()
    (message,) = hook.posts("/prod")
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert (
        fields["Namespace"],
        fields["Flow"],
        fields["Execution"],
        fields["Failed task"],
        fields["Error"],
        fields["runbook"],
    ) == ("prod.sales", "nightly", failed.id, "load", "nightly could not load", "https://wiki/prod")
    link = f"http://podium.example/ui/executions/prod.sales/nightly/{failed.id}"
    assert message["attachments"][0]["title_link"] == link
    (card,) = hook.posts("/teams")
    facts = {f["name"]: f["value"] for f in card["sections"][0]["facts"]}
    assert facts["Execution"] == etl.id


async def test_an_execution_restarted_and_failing_again_is_alerted_again(
    h: Harness, hook: Hook, alerts: Alerts
) -> None:
    first = await run(h, "prod", "flaky", fail=True)
    await alerts.idle()
    await h.engine.restart(first.id)
    again = await h.engine.wait(first.id)
    assert again.state.current == State.FAILED
    await h.engine.drain()
    await alerts.idle()
    assert [m["attachments"][0]["fields"][2]["value"] for m in hook.posts("/prod")] == [
        first.id,
        first.id,
    ]


async def test_a_slow_endpoint_never_holds_the_execution(h: Harness, hook: Hook) -> None:
    settings = Settings(
        data_dir=h.engine.data_dir, alerts=[{"channel": "discord", "url": f"{hook.url}/held"}]
    )
    alerts = install(h.engine, settings)
    try:
        ex = await run(h, "any", "f", fail=True)  # ended and returned: the send is held
        await asyncio.wait_for(hook.arrived.wait(), 20)
        assert alerts._sending, "the send is still under way"
        hook.hold.set()
        await alerts.idle()
    finally:
        await alerts.close()
    (message,) = hook.posts("/held")
    assert message["embeds"][0]["title"] == "[any] f ➛ FAILED"
    assert ex.state.current == State.FAILED


async def test_an_alert_that_cannot_be_sent_is_logged_with_the_reason_and_no_secret(
    h: Harness, hook: Hook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = f"{hook.url}/services/TT/BB/do-not-log-me"
    monkeypatch.setenv("SECRET_ALERT_HOOK", base64.b64encode(secret_url.encode()).decode())
    hook.answers["/services/TT/BB/do-not-log-me"] = [500]
    settings = Settings(
        data_dir=h.engine.data_dir,
        alerts=[{"channel": "slack", "url": "{{ secret('ALERT_HOOK') }}"}],
    )
    alerts = install(h.engine, settings)
    caplog.set_level(logging.INFO, logger="daemon.app.alerts")
    try:
        ex = await run(h, "any", "f", fail=True)
        await alerts.idle()
    finally:
        await alerts.close()
    assert len(hook.posts("/services/TT/BB/do-not-log-me")) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"alerts[0] (slack): no alert about execution {ex.id} of any.f (FAILED): cannot send "
        "the Slack message after 3 attempts: response code 500 and body: "
        "refused with 500: invalid_payload"
    ]
    assert "do-not-log-me" not in caplog.text


async def test_mail_alert_reaches_the_smtp_server(h: Harness) -> None:
    async with MailServer() as server:
        settings = Settings(
            data_dir=h.engine.data_dir,
            alerts=[
                {
                    "channel": "mail",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "transportStrategy": "SMTP",
                    "from": "podium@example.com",
                    "to": "oncall@example.com",
                    "states": ["FAILED"],
                }
            ],
        )
        alerts = install(h.engine, settings)
        try:
            ex = await run(h, "billing", "invoices", fail=True)
            await alerts.idle()
        finally:
            await alerts.close()
    (got,) = server.inbox
    assert got.recipients == ["oncall@example.com"]
    assert got.message["Subject"] == "[billing] invoices ➛ FAILED"
    text = got.message.get_body(("plain",))
    assert text is not None
    body = str(text.get_content())
    assert f"Execution: {ex.id}" in body
    assert "Error: invoices could not load" in body


def bad(alerts: Any) -> str:
    with pytest.raises(ConfigError) as info:
        settings = load_settings(None, {"alerts": alerts}, environ={})
        build_rules(settings.alerts, default_plugins())
    return str(info.value)


def test_malformed_alert_rules_are_clear_errors() -> None:
    # The channels are those the installed plug-ins declare: the settings name none.
    assert bad([{"channel": "sms", "url": "x"}]) == (
        "invalid alerts: alerts[0] (sms): no task sends on channel 'sms' "
        "(channels: discord, googlechat, line, mail, opsgenie, pagerduty, sendgrid, sentry, "
        "slack, squadcast, teams, telegram, twilio, whatsapp, zenduty, zulip)"
    )
    assert bad([{"channel": "slack", "url": "x", "states": ["RUNNING"]}]) == (
        "invalid settings: alerts.0.states: Value error, RUNNING is not a final state; alerts "
        "are sent when an execution ends (FAILED, WARNING, SUCCESS, KILLED, CANCELLED)"
    )
    assert bad([{"channel": "slack", "ur": "http://x"}]) == (
        "invalid alerts: alerts[0] (slack): unknown property 'ur'; did you mean 'url'?"
    )
    assert bad(
        [
            {"channel": "slack"},
            {"channel": "mail", "host": "h", "to": "nobody", "from": "a@b.c", "executionId": "x"},
        ]
    ) == (
        "invalid alerts: alerts[0] (slack): missing required property 'url'; "
        "alerts[1] (mail): unknown property 'executionId'"
    )
    assert bad([{"channel": "mail", "host": "h", "to": "nobody", "from": "a@b.c"}]) == (
        "invalid alerts: alerts[0] (mail): to: 'nobody' is not an email address"
    )


def test_alerts_setting_from_the_environment_is_yaml() -> None:
    settings = load_settings(
        None,
        {},
        environ={"PODIUM_ALERTS": '[{channel: slack, url: "http://x/y", namespaces: [prod]}]'},
    )
    (rule,) = settings.alerts
    assert (rule.channel, rule.states, rule.namespaces, rule.model_extra) == (
        "slack",
        [State.FAILED],
        ["prod"],
        {"url": "http://x/y"},
    )


# -- podium serve --------------------------------------------------------------------------


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[Any] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_podium_serve_sends_the_alerts_of_its_config_file(
    tmp_path: Path, collector: tuple[str, list[Any]]
) -> None:
    url, received = collector
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "job.yaml").write_text(upstream("prod.jobs", "job"))
    config = tmp_path / "podium.yaml"
    config.write_text(
        textwrap.dedent(f"""
        url: http://podium.example:8080
        alerts:
          - channel: slack
            url: {url}/hook
            namespaces: [prod]
    """)
    )
    daemon = ServeProcess(
        tmp_path, flows, tmp_path / "data", args=("--config", str(config))
    ).start()
    try:
        boundary = "b"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="fail"\r\n\r\ntrue\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        status, doc = daemon.request(
            "POST",
            "/api/v1/executions/prod.jobs/job",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert status == 200, doc
        daemon.wait_execution(doc["id"], {"FAILED"})
        daemon.wait_line(f"alerts[0] (slack): alert sent about execution {doc['id']}")
    finally:
        assert daemon.stop() == 0
    (message,) = received
    assert (
        message["attachments"][0]["title_link"]
        == f"http://podium.example:8080/ui/executions/prod.jobs/job/{doc['id']}"
    )


def test_podium_serve_refuses_to_start_with_a_malformed_alert(tmp_path: Path) -> None:
    config = tmp_path / "podium.yaml"
    config.write_text("alerts:\n  - channel: slack\n    urll: http://x\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "serve",
            "--config",
            str(config),
            "--flows",
            str(tmp_path / "flows"),
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "podium: invalid alerts: alerts[0] (slack): unknown property 'urll'; did you mean 'url'?"
    )


async def test_an_alert_about_an_execution_shows_its_secrets_masked(
    h: Harness, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert is built from the execution as it ended in memory, secrets in clear: it
    leaves the process, so it is masked as the store masks it (issue #13, finding 7)."""
    monkeypatch.setenv("SECRET_DB_TOKEN", base64.b64encode(b"tok-in-clear-789").decode())
    settings = Settings(
        data_dir=h.engine.data_dir, alerts=[{"channel": "slack", "url": f"{hook.url}/masked"}]
    )
    alerts = install(h.engine, settings)
    try:
        ex = await h.run("""
            id: leaky
            namespace: any
            tasks:
              - id: load
                type: io.kestra.plugin.core.execution.Fail
                errorMessage: "cannot log in with {{ secret('DB_TOKEN') }}"
            """)
        await alerts.idle()
    finally:
        await alerts.close()
    assert ex.state.current == State.FAILED
    (message,) = hook.posts("/masked")
    assert "tok-in-clear-789" not in json.dumps(message)
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert "cannot log in with ******" in fields["Error"]
