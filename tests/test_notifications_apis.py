"""LINE, SendGrid and Sentry notifications against a local stand-in for each API
(tests/vendor_api.py), the new vendors as daemon-wide alert channels, and Kestra's own
`@Example` flows of every notification task added with them, which `podium validate`
must accept unchanged (tests/data/kestra_notification_examples)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from daemon.app.alerts import build_rules, install
from daemon.config.settings import ConfigError, Settings
from daemon.flows.loader import load_flow_file
from daemon.flows.registry import default_plugins
from daemon.sdk.state import State
from tests.harness import Harness, problems
from tests.vendor_api import (
    FAILING,
    Answer,
    Received,
    VendorApi,
    errors_of,
    facts,
    failed_execution,
    flow,
    link,
    outputs,
    quick_retries,
    report,
    reporter,
    summary_text,
    vendor,
)

__all__ = ["quick_retries", "vendor"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).parent / "data" / "kestra_notification_examples"
JSON = {"Content-Type": "application/json; charset=UTF-8"}
TOKEN = "L1NE-channel-access-token"


def retry_key(sent: Received) -> str:
    """LINE's X-Line-Retry-Key: a UUID."""
    key = sent.sent_headers["X-Line-Retry-Key"]
    assert str(uuid.UUID(key)) == key
    return key


# -- LINE --------------------------------------------------------------------------------


async def test_line_execution_broadcasts_the_summary_with_the_bearer_token(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-line LineExecution (LineTemplate, line-template.peb): without recipients, a
    broadcast (POST {url}/v2/bot/message/broadcast) of one text message, the channel access
    token as a Bearer token; `url` is the API's root. No outputs (VoidOutput)."""
    failed, ex = await report(
        h,
        f"""
        - id: line
          type: io.kestra.plugin.line.LineExecution
          url: {vendor.url}/
          channelAccessToken: {TOKEN}
        """,
    )
    (sent,) = vendor.received
    assert (sent.method, sent.path) == ("POST", "/v2/bot/message/broadcast")
    assert sent.sent_headers == {
        **JSON,
        "Authorization": f"Bearer {TOKEN}",
        "X-Line-Retry-Key": retry_key(sent),
    }
    assert sent.json() == {"messages": [{"type": "text", "text": summary_text(failed).rstrip()}]}
    assert outputs(ex, "line") == {}
    assert TOKEN not in " ".join(await h.logs(ex))


async def test_line_execution_pushes_to_each_recipient_and_retries_with_the_same_key(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-notifications' LineExecution pushed to each of `recipientIds` (POST
    /v2/bot/message/push, {"to": id, "messages": [...]}) at its default url, the push URL
    itself: podium trims it back to the root. A 500 is tried again with the same
    X-Line-Retry-Key, so that LINE delivers it once; `textBody` replaces the summary."""
    vendor.answers["/v2/bot/message/push"] = [Answer(500, "oops"), Answer(200, "{}")]
    failed, _ = await report(
        h,
        f"""
        - id: line
          type: io.kestra.plugin.notifications.line.LineExecution
          url: {vendor.url}/v2/bot/message/push
          channelAccessToken: {TOKEN}
          recipientIds: [U1, U2]
          textBody: "load failed: {{{{ inputs.about }}}}"
        """,
    )
    first, again, second = vendor.at("/v2/bot/message/push")
    text = [{"type": "text", "text": f"load failed: {failed.id}"}]
    assert [r.json() for r in (first, again, second)] == [
        {"to": "U1", "messages": text},
        {"to": "U1", "messages": text},
        {"to": "U2", "messages": text},
    ]
    assert retry_key(first) == retry_key(again) != retry_key(second)


async def test_line_refusal_names_the_recipient_and_line_s_reason(
    h: Harness, vendor: VendorApi
) -> None:
    """LineTemplate.asFailure: "LINE broadcast failed with HTTP <code>: <LINE's error>";
    a 4xx is not tried again."""
    vendor.answers["/v2/bot/message/push"] = [
        Answer(400, '{"message": "The property, \'to\', in the request body is invalid"}')
    ]
    failed = await failed_execution(h)
    ex = await h.run(
        reporter(f"""
        - id: line
          type: io.kestra.plugin.line.LineExecution
          url: {vendor.url}
          channelAccessToken: {TOKEN}
          recipientIds: [nobody]
        """),
        {"about": failed.id},
    )
    assert ex.state.current == State.FAILED
    assert len(vendor.received) == 1  # a 400 is final
    assert await errors_of(h, ex) == [
        "cannot send the LINE message to nobody: response code 400 and body: "
        '{"message": "The property, \'to\', in the request body is invalid"}'
    ]


def test_line_without_token_or_with_no_recipient_is_a_load_error() -> None:
    """LineTemplate: channelAccessToken is @NotNull; plugin-notifications' LineTemplate
    refused an empty recipientIds ("At least one recipient ID is required")."""
    assert problems(
        flow("""
    tasks:
      - id: line
        type: io.kestra.plugin.line.LineExecution
        recipientIds: []
    """)
    ) == [
        "f.yaml:5:5: tasks[0]: missing required property 'channelAccessToken'",
        "f.yaml:7:19: tasks[0].recipientIds: List should have at least 1 item after "
        "validation, not 0 (got [])",
    ]


# -- SendGrid ----------------------------------------------------------------------------


async def test_sendgrid_mail_send_posts_a_v3_mail_and_returns_sendgrids_answer(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-twilio SendGridMailSend (SendGrid's Java SDK: Mail.build()): POST
    /v3/mail/send with the API key as Bearer token; one personalization with the
    recipients and subject, the text part before the HTML one, attachments and embedded
    images base64-encoded from storage. Its outputs are SendGrid's answer (Output: body,
    headers, statusCode)."""
    vendor.answers["/v3/mail/send"] = [Answer(202, "", {"X-Message-Id": "msg-1"})]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: report
        type: io.kestra.plugin.core.storage.Write
        content: "a,b\\n1,2\\n"
        extension: .csv
      - id: mail
        type: io.kestra.plugin.twilio.sendgrid.SendGridMailSend
        endpointOverride: {vendor.url}
        sendgridApiKey: SG.key
        from: Podium <podium@example.com>
        to:
          - ops@example.com
          - Data Team <data@example.com>
        cc: boss@example.com
        subject: "{{{{ flow.id }}}} loaded"
        textContent: see attached
        htmlContent: <p>see <img src="cid:logo.png"></p>
        attachments:
          - name: report.csv
            uri: "{{{{ outputs.report.uri }}}}"
            contentType: text/csv
        embeddedImages:
          - name: logo.png
            uri: "{{{{ outputs.report.uri }}}}"
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.method, sent.path) == ("POST", "/v3/mail/send")
    assert sent.sent_headers == {**JSON, "Authorization": "Bearer SG.key"}
    csv = "YSxiCjEsMgo="  # base64 of "a,b\n1,2\n"
    assert sent.json() == {
        "personalizations": [
            {
                "to": [
                    {"email": "ops@example.com"},
                    {"email": "data@example.com", "name": "Data Team"},
                ],
                "cc": [{"email": "boss@example.com"}],
                "subject": "alerting loaded",
            }
        ],
        "from": {"email": "podium@example.com", "name": "Podium"},
        "content": [
            {"type": "text/plain", "value": "see attached"},
            {"type": "text/html", "value": '<p>see <img src="cid:logo.png"></p>'},
        ],
        "attachments": [
            {
                "content": csv,
                "type": "text/csv",
                "filename": "report.csv",
                "disposition": "attachment",
            },
            {
                "content": csv,
                "type": "application/octet-stream",
                "filename": "logo.png",
                "disposition": "inline",
                "content_id": "logo.png",
            },
        ],
    }
    got = outputs(ex, "mail")
    assert (got["statusCode"], got["body"], got["headers"]["X-Message-Id"]) == (202, "", "msg-1")


async def test_sendgrid_refusal_fails_once_with_sendgrids_errors(
    h: Harness, vendor: VendorApi
) -> None:
    """SendGridMailSend fails on a non-2xx answer ("SendGrid API failed with status code")."""
    refusal = '{"errors":[{"message":"The provided authorization grant is invalid"}]}'
    vendor.answers["/v3/mail/send"] = [Answer(401, refusal)]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: mail
        type: io.kestra.plugin.notifications.sendgrid.SendGridMailSend
        endpointOverride: {vendor.url}
        sendgridApiKey: SG.wrong
        from: podium@example.com
        to: ops@example.com
        htmlTextContent: <b>hi</b>
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        f"cannot send the mail to ops@example.com: response code 401 and body: {refusal}"
    ]
    (sent,) = vendor.received  # not retried
    assert sent.json()["content"] == [{"type": "text/html", "value": "<b>hi</b>"}]
    assert "SG.wrong" not in " ".join(await h.logs(ex))


async def test_sendgrid_mail_execution_sends_the_summary_as_html_and_text(
    h: Harness, vendor: VendorApi
) -> None:
    """SendGridMailExecution (sendgrid-mail-template.hbs.peb): the summary as both parts;
    the subject defaults to the execution's title."""
    vendor.answers["/v3/mail/send"] = [Answer(202, "")]
    failed, ex = await report(
        h,
        f"""
        - id: mail
          type: io.kestra.plugin.twilio.sendgrid.SendGridMailExecution
          endpointOverride: {vendor.url}
          sendgridApiKey: SG.key
          from: podium@example.com
          to: [ops@example.com]
        """,
    )
    (sent,) = vendor.received
    mail = sent.json()
    assert mail["personalizations"] == [
        {"to": [{"email": "ops@example.com"}], "subject": "[company.team] alerting ➛ FAILED"}
    ]
    text, html = mail["content"]
    assert text == {"type": "text/plain", "value": summary_text(failed)}
    assert html["type"] == "text/html"
    assert "<td>load</td>" in html["value"]
    assert "<pre>disk full on /data</pre>" in html["value"]
    assert f'<a href="{link(failed)}">' in html["value"]
    assert outputs(ex, "mail")["statusCode"] == 202


def test_sendgrid_properties_are_checked_at_load() -> None:
    """SendGridMailSend: sendgridApiKey @NotBlank, addresses in RFC 2822 form; a mail with
    no content is refused by SendGrid's API (400), so podium says so when it loads."""
    assert problems(
        flow("""
    tasks:
      - id: mail
        type: io.kestra.plugin.twilio.sendgrid.SendGridMailSend
        from: not-an-address
        to: ops@example.com
    """)
    ) == [
        "f.yaml:5:5: tasks[0]: missing required property 'sendgridApiKey'",
        "f.yaml:7:11: tasks[0].from: 'not-an-address' is not an email address "
        "(got 'not-an-address')",
    ]
    assert problems(
        flow("""
    tasks:
      - id: mail
        type: io.kestra.plugin.twilio.sendgrid.SendGridMailSend
        sendgridApiKey: SG.key
        from: podium@example.com
        to: ops@example.com
        subject: nothing to say
    """)
    ) == ["f.yaml:5:5: tasks[0]: give 'htmlContent' or 'textContent' (SendGrid needs a body)"]


# -- Sentry ------------------------------------------------------------------------------

PUBLIC = "0123456789abcdef0123456789abcdef"
SECRET = "fedcba9876543210fedcba9876543210"


def envelope(sent: Received) -> tuple[dict[str, object], dict[str, object], bytes]:
    """(envelope header, item header, event) of an envelope with one item."""
    header, item_header, item, end = sent.body.split(b"\n")
    assert end == b""
    return json.loads(header), json.loads(item_header), item


async def test_sentry_alert_posts_an_envelope_to_the_dsns_ingest_endpoint(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-sentry SentryAlert (EndpointType, SentryDsnTest): a self-hosted DSN with a
    path prefix and a secret key becomes {prefix}/api/{project}/envelope/ with the public
    key as sentry_key; the envelope's header carries the event id and the DSN without its
    secret, the item header the event's length. The default payload is Kestra's."""
    host = vendor.url.removeprefix("http://")
    ex = await h.run(
        flow(f"""
    tasks:
      - id: sentry
        type: io.kestra.plugin.sentry.SentryAlert
        dsn: "  http://{PUBLIC}:{SECRET}@{host}/self-hosted//42/  "
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.method, sent.path) == ("POST", "/self-hosted/api/42/envelope/")
    assert sent.query == {"sentry_version": "7", "sentry_client": "podium", "sentry_key": PUBLIC}
    assert sent.sent_headers == {"Content-Type": "application/x-sentry-envelope"}
    header, item_header, item = envelope(sent)
    event = json.loads(item)
    assert header == {
        "event_id": event["event_id"],
        "sent_at": header["sent_at"],
        "dsn": f"http://{PUBLIC}@{host}/self-hosted/42",
    }
    assert datetime.fromisoformat(str(header["sent_at"])).tzinfo is not None
    assert item_header == {"type": "event", "length": len(item), "content_type": "application/json"}
    assert len(str(event["event_id"])) == 32
    assert event == {
        "timestamp": ex.state.start_iso,
        "platform": "java",
        "level": "error",
        "message": {"message": f"Execution {ex.id} failed"},
        "extra": {"Namespace": "company.team", "Flow ID": "alerting", "Execution ID": ex.id},
        "event_id": event["event_id"],
    }
    assert SECRET.encode() not in sent.body
    assert SECRET not in " ".join(await h.logs(ex)) + json.dumps(await h.stored(ex))


async def test_sentry_store_endpoint_takes_the_event_alone(h: Harness, vendor: VendorApi) -> None:
    """endpointType: STORE posts the event as JSON to /api/{project}/store/; an event_id of
    the payload (a UUID, dashes allowed) is kept, lowercased and without dashes."""
    host = vendor.url.removeprefix("http://")
    ex = await h.run(
        flow(f"""
    tasks:
      - id: sentry
        type: io.kestra.plugin.notifications.sentry.SentryAlert
        dsn: http://{PUBLIC}@{host}/42
        endpointType: STORE
        payload: |
          {{"event_id": "FC6D8C0C-43FC-4630-AD85-0EE518F1B9D0", "level": "warning",
            "message": {{"message": "{{{{ flow.id }}}} is late"}}}}
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.path, sent.query["sentry_key"]) == ("/api/42/store/", PUBLIC)
    assert sent.sent_headers == JSON
    assert sent.json() == {
        "event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0",
        "level": "warning",
        "message": {"message": "alerting is late"},
    }


async def test_sentry_dsn_without_a_key_is_the_ingest_url_and_404_says_what_to_try(
    h: Harness, vendor: VendorApi
) -> None:
    """A `dsn` with no key before '@' is posted to as written (Kestra's fallback); Sentry
    answering 404 or 401 on an envelope means the project wants STORE (SentryAlert logs
    "Envelope endpoint not supported")."""
    vendor.answers["/relay/envelope/"] = [Answer(404, "not found")]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: sentry
        type: io.kestra.plugin.sentry.SentryAlert
        dsn: {vendor.url}/relay/envelope/
    """)
    )
    assert ex.state.current == State.FAILED
    assert len(vendor.at("/relay/envelope/")) == 1
    assert await errors_of(h, ex) == [
        "cannot send the Sentry event: response code 404 and body: not found (the project "
        "may not take envelopes: try endpointType: STORE)"
    ]


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        (f"http://:{SECRET}@sentry.example/42", "no public key before '@'"),
        (
            f"http://{PUBLIC}:{SECRET}@sentry.example/",
            "the path must end with the numeric project id",
        ),
        (
            f"http://{PUBLIC}:{SECRET}@sentry.example/api/42/envelope/",
            "the path must end with the numeric project id",
        ),
        (f"http://{PUBLIC}:{SECRET}@x@sentry.example/42", "the host after '@' cannot be read"),
        (f"http://{PUBLIC}:{SECRET}@sentry_web/42", "the host after '@' cannot be read"),
        (f"ftp://{PUBLIC}:{SECRET}@sentry.example/42", "it must start with http:// or https://"),
        ("https://abc%26sentry_version%3D1@sentry.example/42", "no public key before '@'"),
    ],
)
async def test_a_dsn_that_cannot_be_read_fails_without_showing_it(
    h: Harness, dsn: str, reason: str
) -> None:
    """SentryDsnTest.invalidDsnFailsWithoutLeakingTheSecret and
    keyThatWouldInjectQueryParameters: "Invalid Sentry DSN", never the secret key."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: sentry
        type: io.kestra.plugin.sentry.SentryAlert
        dsn: "{dsn}"
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [f"invalid Sentry DSN: {reason}"]
    assert SECRET not in " ".join(await h.logs(ex))


async def test_sentry_execution_reports_the_execution_as_an_event(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-sentry SentryExecution (SentryTemplate, sentry-template.peb): the event id,
    platform and level set (lowercased), the transaction and server name, the execution's
    facts and link in `extra` with the flow's own, and `errors`; its message names the flow,
    state and failed task (not the duration: Sentry groups events by message)."""
    host = vendor.url.removeprefix("http://")
    failed, _ = await report(
        h,
        f"""
        - id: sentry
          type: io.kestra.plugin.sentry.SentryExecution
          dsn: http://{PUBLIC}@{host}/7
          eventId: fc6d8c0c43fc4630ad850ee518f1b9d0
          platform: PYTHON
          level: WARNING
          transaction: "/execution/id/{{{{ inputs.about }}}}"
          serverName: podium-1
          extra:
            owner: data-team
          errors:
            load: disk full
        """,
    )
    (sent,) = vendor.at("/api/7/envelope/")
    header, _, item = envelope(sent)
    assert header["event_id"] == "fc6d8c0c43fc4630ad850ee518f1b9d0"
    event = json.loads(item)
    assert datetime.fromisoformat(event.pop("timestamp")).tzinfo is not None
    assert event == {
        "event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0",
        "platform": "python",
        "level": "warning",
        "message": {"message": "[company.team] alerting ➛ FAILED: failed on task load"},
        "extra": {
            **facts(failed),
            "Link": link(failed),
            "Error": "disk full on /data",
            "owner": "data-team",
        },
        "transaction": f"/execution/id/{failed.id}",
        "server_name": "podium-1",
        "errors": {"load": "disk full"},
    }


def test_sentry_properties_are_checked_at_load() -> None:
    """SentryAlert.dsn is @NotBlank, endpointType the EndpointType enum; SentryTemplate's
    eventId matches @Pattern [0-9a-f]{32} and level is ErrorLevel."""
    assert problems(
        flow("""
    tasks:
      - id: sentry
        type: io.kestra.plugin.sentry.SentryExecution
        eventId: not-hex
        level: LOUD
        endpointType: BATCH
    """)
    ) == [
        "f.yaml:5:5: tasks[0]: missing required property 'dsn'",
        "f.yaml:7:14: tasks[0].eventId: String should match pattern '[0-9a-f]{32}' (got 'not-hex')",
        "f.yaml:8:12: tasks[0].level: Input should be 'FATAL', 'ERROR', 'WARNING', 'INFO' or "
        "'DEBUG' (got 'LOUD')",
        "f.yaml:9:19: tasks[0].endpointType: Input should be 'ENVELOPE' or 'STORE' (got 'BATCH')",
    ]


# -- daemon-wide alerts ------------------------------------------------------------------


async def test_the_new_vendors_are_alert_channels(h: Harness, vendor: VendorApi) -> None:
    """The `alerts:` setting finds a channel by the AlertChannel capability of its
    *Execution task: an Opsgenie and a LINE rule send about a failed execution."""
    settings = Settings(
        data_dir=h.engine.data_dir,
        url="http://podium.example",
        alerts=[
            {
                "channel": "opsgenie",
                "url": f"{vendor.url}/v2/alerts",
                "authorizationToken": "GenieKey k",
                "priority": "P2",
            },
            {"channel": "line", "url": vendor.url, "channelAccessToken": TOKEN},
        ],
    )
    alerts = install(h.engine, settings)
    try:
        failed = await h.run(FAILING)
        await alerts.idle()
    finally:
        await alerts.close()
    (opsgenie,) = vendor.at("/v2/alerts")
    assert opsgenie.sent_headers["Authorization"] == "GenieKey k"
    alert = opsgenie.json()
    assert (alert["message"], alert["priority"]) == ("[company.team] alerting ➛ FAILED", "P2")
    assert alert["details"]["Link"] == (
        f"http://podium.example/ui/executions/company.team/alerting/{failed.id}"
    )
    (line,) = vendor.at("/v2/bot/message/broadcast")
    assert line.json()["messages"][0]["text"].startswith("[company.team] alerting ➛ FAILED\n")


def test_an_alert_rule_of_a_new_channel_is_checked_at_start() -> None:
    """SquadcastTemplate.message is @NotNull: a `squadcast` rule without it is refused when
    the daemon starts, as any channel's malformed rule."""
    with pytest.raises(ConfigError) as info:
        build_rules(
            Settings(alerts=[{"channel": "squadcast", "url": "http://x"}]).alerts,
            default_plugins(),
        )
    assert str(info.value) == (
        "invalid alerts: alerts[0] (squadcast): missing required property 'message'"
    )


# -- Kestra's examples -------------------------------------------------------------------


def test_podium_validate_accepts_kestras_example_flows(tmp_path: Path) -> None:
    """Every @Example flow of the classes (plugin-notifications and its 1.x successors),
    unchanged: each loads, with no warning about a notification task but the deprecated
    `htmlTextContent` of plugin-notifications' SendGridMailSend example."""
    files = sorted(EXAMPLES.glob("*.yaml"))
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "validate", str(EXAMPLES), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert [line.split(": ok (")[0] for line in result.stdout.splitlines()] == [
        str(f) for f in files
    ]
    warnings = [line.split(": warning: ") for line in result.stderr.splitlines()]
    assert all(len(w) == 2 for w in warnings), result.stderr
    # Kestra's examples use deprecated forms of other tasks and triggers: not ours to judge
    elsewhere = ("'runner' is deprecated", "'conditions' is deprecated", "type 'io.kestra.core.")
    ours = [(where, what) for where, what in warnings if not what.startswith(elsewhere)]
    assert ours == [
        (
            f"{EXAMPLES / 'sendgrid_errors.yaml'}:19:22: errors[0].htmlTextContent",
            "'htmlTextContent' is deprecated; use 'htmlContent'",
        )
    ]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_example_names_a_task_of_the_notifications_package(path: Path) -> None:
    """The example's task is built as podium's class, with Kestra's property values."""
    loaded = load_flow_file(path, default_plugins())
    notifying = [
        t for t in [*loaded.tasks, *loaded.errors] if "notifications" in type(t).__module__
    ]
    assert len(notifying) == 1
    task = notifying[0]
    assert type(task).__module__.startswith("tasks.notifications.")
    assert task.type in type(task).types


# (Kestra 1.x name, the older names it still accepts): each class's @Plugin(aliases = ...)
NAMES = {
    "io.kestra.plugin.googleworkspace.chat.GoogleChatIncomingWebhook": [
        "io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook"
    ],
    "io.kestra.plugin.googleworkspace.chat.GoogleChatExecution": [
        "io.kestra.plugin.notifications.google.GoogleChatExecution"
    ],
    "io.kestra.plugin.line.LineExecution": ["io.kestra.plugin.notifications.line.LineExecution"],
    # kestra-io/plugin-pagerduty: PagerDutyAlert/PagerDutyExecution, aliases the older names
    "io.kestra.plugin.pagerduty.PagerDutyAlert": [
        "io.kestra.plugin.notifications.pagerduty.PagerDutyAlert"
    ],
    "io.kestra.plugin.pagerduty.PagerDutyExecution": [
        "io.kestra.plugin.notifications.pagerduty.PagerDutyExecution"
    ],
    "io.kestra.plugin.opsgenie.OpsgenieAlert": [
        "io.kestra.plugin.notifications.opsgenie.OpsgenieAlert"
    ],
    "io.kestra.plugin.opsgenie.OpsgenieExecution": [
        "io.kestra.plugin.notifications.opsgenie.OpsgenieExecution"
    ],
    "io.kestra.plugin.twilio.sendgrid.SendGridMailSend": [
        "io.kestra.plugin.notifications.sendgrid.SendGridMailSend"
    ],
    "io.kestra.plugin.twilio.sendgrid.SendGridMailExecution": [
        "io.kestra.plugin.notifications.sendgrid.SendGridMailExecution"
    ],
    "io.kestra.plugin.sentry.SentryAlert": ["io.kestra.plugin.notifications.sentry.SentryAlert"],
    "io.kestra.plugin.sentry.SentryExecution": [
        "io.kestra.plugin.notifications.sentry.SentryExecution"
    ],
    "io.kestra.plugin.squadcast.SquadcastIncomingWebhook": [
        "io.kestra.plugin.notifications.squadcast.SquadcastIncomingWebhook"
    ],
    "io.kestra.plugin.squadcast.SquadcastExecution": [
        "io.kestra.plugin.notifications.squadcast.SquadcastExecution"
    ],
    "io.kestra.plugin.twilio.notify.TwilioAlert": [
        "io.kestra.plugin.twilio.core.TwilioAlert",
        "io.kestra.plugin.notifications.twilio.TwilioAlert",
    ],
    "io.kestra.plugin.twilio.notify.TwilioExecution": [
        "io.kestra.plugin.twilio.core.TwilioExecution",
        "io.kestra.plugin.notifications.twilio.TwilioExecution",
    ],
    "io.kestra.plugin.meta.whatsapp.WhatsAppIncomingWebhook": [
        "io.kestra.plugin.notifications.whatsapp.WhatsAppIncomingWebhook"
    ],
    "io.kestra.plugin.meta.whatsapp.WhatsAppExecution": [
        "io.kestra.plugin.notifications.whatsapp.WhatsAppExecution"
    ],
    "io.kestra.plugin.zenduty.ZendutyAlert": [
        "io.kestra.plugin.notifications.zenduty.ZendutyAlert"
    ],
    "io.kestra.plugin.zenduty.ZendutyExecution": [
        "io.kestra.plugin.notifications.zenduty.ZendutyExecution"
    ],
    "io.kestra.plugin.zulip.ZulipIncomingWebhook": [
        "io.kestra.plugin.notifications.zulip.ZulipIncomingWebhook"
    ],
    "io.kestra.plugin.zulip.ZulipExecution": [
        "io.kestra.plugin.notifications.zulip.ZulipExecution"
    ],
}


def test_the_1x_names_are_canonical_and_the_plugin_notifications_ones_aliases() -> None:
    """Kestra 1.x moved these classes out of plugin-notifications, each declaring its old
    name in @Plugin(aliases = ...) (plugin-twilio's `core` package came in between)."""
    tasks = default_plugins().tasks
    for name, older in NAMES.items():
        cls = tasks.get(name)
        assert cls.types == (name, *older)
        assert all(tasks.get(old) is cls for old in older)
