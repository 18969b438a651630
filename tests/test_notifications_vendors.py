"""Google Chat, Opsgenie, Squadcast, WhatsApp, Zenduty, Zulip and Twilio notifications
against a local stand-in for each vendor's API (tests/vendor_api.py): the exact request
each task sends (method, path, headers, body), its outputs, and the errors of malformed
properties. Kestra's classes are the specification: plugin-notifications'
`io.kestra.plugin.notifications.*` and the 1.x plug-ins that hold them now."""

from __future__ import annotations

import base64
import json

import pytest

from daemon.sdk.state import State
from tests.harness import Harness, problems, task_states
from tests.vendor_api import (
    Answer,
    VendorApi,
    errors_of,
    facts,
    failed_execution,
    flow,
    link,
    outputs,
    quick_retries,
    report,
    summary_text,
    took,
    vendor,
)

__all__ = ["quick_retries", "vendor"]  # fixtures, used by name

JSON = {"Content-Type": "application/json; charset=UTF-8"}


# -- Google Chat -------------------------------------------------------------------------


async def test_google_chat_webhook_posts_the_payload_to_the_space_url(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-googleworkspace GoogleChatIncomingWebhook (plugin-notifications' before): the
    rendered payload, POSTed as JSON to the webhook URL with its key and token; no outputs
    (VoidOutput)."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: chat
        type: io.kestra.plugin.googleworkspace.chat.GoogleChatIncomingWebhook
        url: "{vendor.url}/v1/spaces/AAAA/messages?key=K3Y&token=T0K"
        payload: |
          {{"text": "Google Chat Alert from {{{{ flow.id }}}}"}}
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.method, sent.path, sent.query) == (
        "POST",
        "/v1/spaces/AAAA/messages",
        {"key": "K3Y", "token": "T0K"},
    )
    assert sent.sent_headers == JSON
    assert sent.json() == {"text": "Google Chat Alert from alerting"}
    assert outputs(ex, "chat") == {}
    assert "T0K" not in " ".join(await h.logs(ex))


async def test_google_chat_execution_posts_the_summary_with_a_linked_title(
    h: Harness, vendor: VendorApi
) -> None:
    """GoogleChatExecution (google-chat-template.peb): `*<link|[ns] flow ➛ STATE>*`, how
    it ended, then the execution's facts and its error as code."""
    failed, ex = await report(
        h,
        f"""
        - id: chat
          type: io.kestra.plugin.notifications.google.GoogleChatExecution
          url: {vendor.url}/v1/spaces/AAAA/messages
        """,
    )
    (sent,) = vendor.at("/v1/spaces/AAAA/messages")
    assert sent.sent_headers == JSON
    assert sent.json() == {
        "text": (
            f"*<{link(failed)}|[company.team] alerting ➛ FAILED>*\n"
            f"Failed on task load after {took(failed)}\n\n"
            f"Namespace: company.team\nFlow: alerting\nExecution: {failed.id}\n"
            f"State: FAILED\nDuration: {took(failed)}\nFailed task: load\n\n"
            "```\ndisk full on /data\n```"
        )
    }
    assert outputs(ex, "chat") == {}


async def test_google_chat_execution_text_replaces_the_summary(
    h: Harness, vendor: VendorApi
) -> None:
    """GoogleChatTemplate puts `text` over the template's: plugin-googleworkspace's example
    sets `text: "Google Chat Notification"`."""
    await report(
        h,
        f"""
        - id: chat
          type: io.kestra.plugin.googleworkspace.chat.GoogleChatExecution
          url: {vendor.url}/chat
          text: "Google Chat Notification"
        """,
    )
    assert [r.json() for r in vendor.at("/chat")] == [{"text": "Google Chat Notification"}]


# -- Opsgenie ----------------------------------------------------------------------------


async def test_opsgenie_alert_posts_the_payload_with_the_genie_key(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-opsgenie OpsgenieAlert: the payload as written, `authorizationToken` as the
    Authorization header, `options.headers` sent too; Opsgenie's 202 is a success."""
    vendor.answers["/v2/alerts"] = [Answer(202, '{"result": "Request will be processed"}')]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: page
        type: io.kestra.plugin.opsgenie.OpsgenieAlert
        url: {vendor.url}/v2/alerts
        authorizationToken: GenieKey abc-123
        options:
          headers:
            X-Flow-Env: prod
        payload: |
          {{"message": "Kestra Opsgenie alert", "alias": "ExecutionError",
            "responders": [{{"id": "4513b7ea", "type": "team"}}], "priority": "P1"}}
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.method, sent.path) == ("POST", "/v2/alerts")
    assert sent.sent_headers == {**JSON, "X-Flow-Env": "prod", "Authorization": "GenieKey abc-123"}
    assert sent.json() == {
        "message": "Kestra Opsgenie alert",
        "alias": "ExecutionError",
        "responders": [{"id": "4513b7ea", "type": "team"}],
        "priority": "P1",
    }
    assert outputs(ex, "page") == {}


async def test_opsgenie_execution_builds_the_alert_from_its_properties(
    h: Harness, vendor: VendorApi
) -> None:
    """OpsgenieExecution (OpsgenieTemplate, opsgenie-template.peb): `responders` and
    `visibleTo` maps become Opsgenie's [{id, type}] lists, with the message, alias, tags
    and priority; the description is the summary, the details its facts and link."""
    failed, ex = await report(
        h,
        f"""
        - id: page
          type: io.kestra.plugin.opsgenie.OpsgenieExecution
          url: {vendor.url}/v2/alerts
          authorizationToken: GenieKey abc-123
          message: Kestra Opsgenie alert
          alias: ExecutionError
          responders:
            4513b7ea: team
            bb4d9938: escalation
          visibleTo:
            4513b7ea: team
          tags: [ExecutionError, Fail]
          priority: P1
          customFields:
            owner: data-team
        """,
    )
    (sent,) = vendor.received
    assert sent.sent_headers == {**JSON, "Authorization": "GenieKey abc-123"}
    description = summary_text(failed).replace(
        "Failed task: load\n", "Failed task: load\nowner: data-team\n"
    )
    assert sent.json() == {
        "message": "Kestra Opsgenie alert",
        "alias": "ExecutionError",
        "description": description,
        "details": {**facts(failed), "owner": "data-team", "Link": link(failed)},
        "responders": [
            {"id": "4513b7ea", "type": "team"},
            {"id": "bb4d9938", "type": "escalation"},
        ],
        "visibleTo": [{"id": "4513b7ea", "type": "team"}],
        "tags": ["ExecutionError", "Fail"],
        "priority": "P1",
    }
    assert outputs(ex, "page") == {}


async def test_opsgenie_execution_message_defaults_to_the_title_within_130_characters(
    h: Harness, vendor: VendorApi
) -> None:
    """Opsgenie refuses an alert without a message and cuts one past 130 characters."""
    await report(
        h,
        f"""
        - id: page
          type: io.kestra.plugin.notifications.opsgenie.OpsgenieExecution
          url: {vendor.url}/v2/alerts
        """,
    )
    await report(
        h,
        f"""
        - id: page
          type: io.kestra.plugin.opsgenie.OpsgenieExecution
          url: {vendor.url}/v2/alerts
          message: "{"x" * 200}"
        """,
    )
    first, second = vendor.received
    assert "Authorization" not in first.sent_headers  # no token: none sent
    assert first.json()["message"] == "[company.team] alerting ➛ FAILED"
    assert second.json()["message"] == "x" * 129 + "…"


# -- Squadcast ---------------------------------------------------------------------------


async def test_squadcast_webhook_and_execution_post_the_incident(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-squadcast SquadcastIncomingWebhook posts its payload; SquadcastExecution
    (SquadcastTemplate, squadcast-template.peb) the flow's message, the summary as the
    description, and its priority, event_id, status and tags."""
    failed = await failed_execution(h)
    ex = await h.run(
        flow(f"""
    inputs:
      - id: about
        type: STRING
    tasks:
      - id: hook
        type: io.kestra.plugin.squadcast.SquadcastIncomingWebhook
        url: {vendor.url}/v2/incidents/api/T0K3N
        payload: '{{"status": "resolve", "event_id": "1"}}'
      - id: incident
        type: io.kestra.plugin.notifications.squadcast.SquadcastExecution
        url: {vendor.url}/v2/incidents/api/T0K3N
        message: Kestra Squadcast alert
        priority: P1
        eventId: 6
        status: trigger
        tags:
          severity: high
          attempt: 2
        executionId: "{{{{ inputs.about }}}}"
    """),
        {"about": failed.id},
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    resolve, incident = vendor.at("/v2/incidents/api/T0K3N")
    assert resolve.sent_headers == incident.sent_headers == JSON
    assert resolve.json() == {"status": "resolve", "event_id": "1"}
    assert incident.json() == {
        "message": "Kestra Squadcast alert",
        "description": summary_text(failed),
        "priority": "P1",
        "event_id": "6",
        "status": "trigger",
        "tags": {"severity": "high", "attempt": "2"},
    }
    assert outputs(ex, "hook") == outputs(ex, "incident") == {}


# -- WhatsApp ----------------------------------------------------------------------------


async def test_whatsapp_execution_sends_contacts_and_one_text_message(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-meta WhatsAppExecution (WhatsAppTemplate, whatsapp-template.peb): contacts
    from `whatsAppIds` with the `profileName`, one text message `from` the sender (written
    as a YAML number in Kestra's example) with the execution's summary."""
    failed, ex = await report(
        h,
        f"""
        - id: tell
          type: io.kestra.plugin.meta.whatsapp.WhatsAppExecution
          url: {vendor.url}/whatsapp
          profileName: MyProfile
          from: 380999999999
          whatsAppIds: ["some waId", 42]
          messageId: wamid.1
          recipientId: "15551234567"
          customMessage: the nightly load broke
        """,
    )
    (sent,) = vendor.at("/whatsapp")
    assert sent.sent_headers == JSON
    assert sent.json() == {
        "contacts": [
            {"profile": {"name": "MyProfile"}, "wa_id": "some waId"},
            {"profile": {"name": "MyProfile"}, "wa_id": "42"},
        ],
        "messages": [
            {
                "from": "380999999999",
                "id": "wamid.1",
                "text": {"body": summary_text(failed, "the nightly load broke").rstrip()},
                "type": "text",
            }
        ],
        "recipient_id": "15551234567",
    }
    assert outputs(ex, "tell") == {}


async def test_whatsapp_webhook_posts_the_payload_and_text_body_replaces_the_summary(
    h: Harness, vendor: VendorApi
) -> None:
    """WhatsAppIncomingWebhook posts plugin-meta's example payload as written;
    WhatsAppExecution's `textBody` is the message instead of the summary."""
    failed = await failed_execution(h)
    ex = await h.run(
        flow(f"""
    inputs:
      - id: about
        type: STRING
    tasks:
      - id: hook
        type: io.kestra.plugin.notifications.whatsapp.WhatsAppIncomingWebhook
        url: {vendor.url}/hook
        payload: |
          {{"profileName": "MyName", "whatsAppIds": ["IdNo1, IdNo2"], "from": 380999999999}}
      - id: tell
        type: io.kestra.plugin.meta.whatsapp.WhatsAppExecution
        url: {vendor.url}/tell
        textBody: "load failed: {{{{ inputs.about }}}}"
        executionId: "{{{{ inputs.about }}}}"
    """),
        {"about": failed.id},
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    assert [r.json() for r in vendor.at("/hook")] == [
        {"profileName": "MyName", "whatsAppIds": ["IdNo1, IdNo2"], "from": 380999999999}
    ]
    assert [r.json() for r in vendor.at("/tell")] == [
        {
            "contacts": [],
            "messages": [{"text": {"body": f"load failed: {failed.id}"}, "type": "text"}],
        }
    ]


# -- Zenduty -----------------------------------------------------------------------------


async def test_zenduty_execution_event_follows_the_execution(h: Harness, vendor: VendorApi) -> None:
    """plugin-zenduty ZendutyExecution (zenduty-template.peb): alert_type `error` for a
    failed execution and `resolved` otherwise, entity_id the execution's id, the summary
    as the event's; Zenduty's urls as {link_url, link_text}, the execution's page last."""
    vendor.answers["/api/events/K3Y/"] = [Answer(201, '{"message": "created"}')]
    failed, _ = await report(
        h,
        f"""
        - id: event
          type: io.kestra.plugin.zenduty.ZendutyExecution
          url: {vendor.url}/api/events/K3Y/
          urls: ["https://runbooks.example/load"]
        """,
    )
    fine = await h.run(
        flow(f"""
    tasks:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: fine
      - id: event
        type: io.kestra.plugin.notifications.zenduty.ZendutyExecution
        url: {vendor.url}/api/events/K3Y/
        message: Execution failed
        summary: all good
        alertType: INFO
        entityId: 12345
    """)
    )
    assert fine.state.current == State.SUCCESS, await errors_of(h, fine)
    first, second = vendor.at("/api/events/K3Y/")
    assert first.sent_headers == second.sent_headers == JSON
    assert first.json() == {
        "message": "[company.team] alerting ➛ FAILED",
        "summary": summary_text(failed),
        "alert_type": "error",
        "entity_id": failed.id,
        "urls": [
            {
                "link_url": "https://runbooks.example/load",
                "link_text": "https://runbooks.example/load",
            },
            {"link_url": link(failed), "link_text": "Execution"},
        ],
    }
    assert second.json() == {
        "message": "Execution failed",
        "summary": "all good",
        "alert_type": "info",
        "entity_id": "12345",
        "urls": [{"link_url": link(fine), "link_text": "Execution"}],
    }


async def test_zenduty_execution_of_a_success_is_resolved(h: Harness, vendor: VendorApi) -> None:
    """zenduty-template.peb: `resolved` when nothing failed (`firstFailed == false`)."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: event
        type: io.kestra.plugin.zenduty.ZendutyExecution
        url: {vendor.url}/api/events/K3Y/
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert sent.json()["alert_type"] == "resolved"
    assert sent.json()["entity_id"] == ex.id


async def test_zenduty_alert_posts_kestras_example_payload(h: Harness, vendor: VendorApi) -> None:
    """plugin-zenduty ZendutyAlert's example: the Events API JSON, sent as written."""
    payload = {
        "alert_type": "info",
        "message": "This is info alert",
        "summary": "This is the incident summary",
        "suppressed": False,
        "entity_id": 12345,
        "payload": {"status": "ACME Payments are failing", "severity": "1"},
        "urls": [{"link_url": "https://www.example.com/alerts/12345/", "link_text": "Alert URL"}],
    }
    ex = await h.run(
        flow(f"""
    tasks:
      - id: event
        type: io.kestra.plugin.zenduty.ZendutyAlert
        url: {vendor.url}/api/events/K3Y/
        payload: '{json.dumps(payload)}'
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.method, sent.path, sent.sent_headers) == ("POST", "/api/events/K3Y/", JSON)
    assert sent.json() == payload


# -- Zulip -------------------------------------------------------------------------------


async def test_zulip_execution_sends_the_slack_shaped_summary(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-zulip ZulipExecution (ZulipTemplate, zulip-template.peb, Slack's format for
    Zulip's Slack-compatible webhook): text, blocks and a coloured attachment of facts,
    with the flow's channel, username and icons; the api_key stays out of the logs."""
    failed, ex = await report(
        h,
        f"""
        - id: tell
          type: io.kestra.plugin.zulip.ZulipExecution
          url: "{vendor.url}/api/v1/external/slack_incoming?api_key=S3CR3T"
          channel: "#general"
          username: podium
          iconEmoji: ":rotating_light:"
        """,
    )
    (sent,) = vendor.received
    assert (sent.path, sent.query) == ("/api/v1/external/slack_incoming", {"api_key": "S3CR3T"})
    assert sent.sent_headers == JSON
    message = sent.json()
    heading = f"*<{link(failed)}|[company.team] alerting ➛ FAILED>*"
    assert message["text"] == f"{heading}\n> Failed on task load after {took(failed)}"
    assert (message["channel"], message["username"], message["icon_emoji"]) == (
        "#general",
        "podium",
        ":rotating_light:",
    )
    assert "icon_url" not in message
    (attachment,) = message["attachments"]
    assert attachment["color"] == "danger"
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        **facts(failed),
        "Error": "disk full on /data",
    }
    assert "S3CR3T" not in " ".join(await h.logs(ex))


async def test_zulip_webhook_posts_the_payload(h: Harness, vendor: VendorApi) -> None:
    """plugin-zulip ZulipIncomingWebhook's example with a `text` argument."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: tell
        type: io.kestra.plugin.notifications.zulip.ZulipIncomingWebhook
        url: {vendor.url}/api/v1/external/slack_incoming
        payload: |
          {{"text": "Hello from the workflow {{{{ flow.id }}}}"}}
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert sent.json() == {"text": "Hello from the workflow alerting"}


# -- Twilio ------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}


async def test_twilio_alert_posts_the_payload_as_a_form_with_basic_auth(
    h: Harness, vendor: VendorApi
) -> None:
    """plugin-twilio TwilioAlert: the payload's JSON object sent as form fields
    (UrlEncodedRequestBody of JacksonMapper.toMap(payload)) with HTTP basic authentication
    by accountSID and authToken; a list repeats its field (Notify's Identity)."""
    vendor.answers["/v1/Services/IS00/Notifications"] = [Answer(201, '{"sid": "NT1"}')]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: notify
        type: io.kestra.plugin.twilio.notify.TwilioAlert
        url: {vendor.url}/v1/Services/IS00/Notifications
        accountSID: AC123
        authToken: s3cret
        payload: |
          {{"Identity": ["0000001", "0000002"], "Body": "flow {{{{ flow.id }}}} failed & stopped",
            "Priority": "high", "Sms": {{"from": "+15550001"}}}}
    """)
    )
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    (sent,) = vendor.received
    assert (sent.method, sent.path) == ("POST", "/v1/Services/IS00/Notifications")
    assert sent.sent_headers == {**FORM, "Authorization": basic("AC123", "s3cret")}
    assert sent.body == (
        b"Identity=0000001&Identity=0000002&Body=flow+alerting+failed+%26+stopped"
        b"&Priority=high&Sms=%7B%22from%22%3A+%22%2B15550001%22%7D"
    )
    assert outputs(ex, "notify") == {}


async def test_twilio_execution_sends_body_identity_and_tag(h: Harness, vendor: VendorApi) -> None:
    """TwilioExecution (TwilioTemplate): Notify's Body (a few lines on the execution, or
    `body`), Identity and Tag; `identity: 0000001` is a YAML number in Kestra's example."""
    failed, _ = await report(
        h,
        f"""
        - id: notify
          type: io.kestra.plugin.notifications.twilio.TwilioExecution
          url: {vendor.url}/v1/Services/IS00/Notifications
          accountSID: AC123
          authToken: s3cret
          identity: 1001
          tag: oncall
        """,
    )
    (sent,) = vendor.received
    assert sent.sent_headers == {**FORM, "Authorization": basic("AC123", "s3cret")}
    assert sent.form() == [
        (
            "Body",
            f"[company.team] alerting ➛ FAILED\nFailed on task load after {took(failed)}\n"
            + link(failed),
        ),
        ("Identity", "1001"),
        ("Tag", "oncall"),
    ]


async def test_twilio_payload_that_is_not_an_object_fails_without_sending(
    h: Harness, vendor: VendorApi
) -> None:
    """TwilioAlert sends JacksonMapper.toMap(payload) as the form: only a JSON object has
    fields."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: notify
        type: io.kestra.plugin.twilio.notify.TwilioAlert
        url: {vendor.url}/notify
        accountSID: AC123
        authToken: s3cret
        payload: '["0000001"]'
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        "the Twilio payload must be a JSON object: its keys are the form's fields"
    ]
    assert vendor.received == []


# -- what fails, and how ------------------------------------------------------------------


async def test_a_refused_alert_fails_once_with_the_vendors_answer(
    h: Harness, vendor: VendorApi
) -> None:
    """OpsgenieAlert fails on a refusal (Kestra's HttpClient throws on a 4xx/5xx answer): a
    4xx is final (Opsgenie's 422 on a bad priority); a 5xx is tried again."""
    vendor.answers["/bad"] = [Answer(422, '{"message": "Request body is not processable"}')]
    vendor.answers["/flaky"] = [Answer(503, "busy"), Answer(202, "{}")]
    ex = await h.run(
        flow(f"""
    tasks:
      - id: flaky
        type: io.kestra.plugin.opsgenie.OpsgenieAlert
        url: {vendor.url}/flaky
        payload: '{{"message": "m"}}'
      - id: bad
        type: io.kestra.plugin.opsgenie.OpsgenieAlert
        url: {vendor.url}/bad
        payload: '{{"message": "m"}}'
    """)
    )
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"flaky": "SUCCESS", "bad": "FAILED"}
    assert (len(vendor.at("/flaky")), len(vendor.at("/bad"))) == (2, 1)
    assert await errors_of(h, ex) == [
        "cannot send the Opsgenie alert: response code 422 and body: "
        '{"message": "Request body is not processable"}'
    ]


async def test_a_bad_url_or_a_payload_that_is_not_json_fails_before_sending(
    h: Harness, vendor: VendorApi
) -> None:
    """The webhook tasks' `url` is @NotBlank and a URI (URI.create), their payload the
    vendor's JSON: what is neither fails the task before anything is sent."""
    ex = await h.run(
        flow(f"""
    tasks:
      - id: relative
        type: io.kestra.plugin.squadcast.SquadcastIncomingWebhook
        url: /v2/incidents/api/T0K3N
        payload: '{{"status": "trigger"}}'
        allowFailure: true
      - id: not_json
        type: io.kestra.plugin.googleworkspace.chat.GoogleChatIncomingWebhook
        url: {vendor.url}/chat
        payload: "{{text: hi}}"
    """)
    )
    assert ex.state.current == State.FAILED
    assert await errors_of(h, ex) == [
        "cannot send the Squadcast event: the url must be an absolute http:// or https:// "
        "URL (got <invalid URL>)",
        "the Google Chat payload is not JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)",
    ]
    assert vendor.received == []


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "type: io.kestra.plugin.googleworkspace.chat.GoogleChatIncomingWebhook\n"
            "    payload: '{}'",
            ["f.yaml:4:5: tasks[0]: missing required property 'url'"],
        ),
        (
            "type: io.kestra.plugin.opsgenie.OpsgenieExecution\n    url: http://x\n"
            "    priority: P9\n    responders:\n      4513b7ea: boss",
            [
                "f.yaml:7:15: tasks[0].priority: Input should be 'P1', 'P2', 'P3', 'P4' or "
                "'P5' (got 'P9')",
                "f.yaml:9:17: tasks[0].responders.4513b7ea: Input should be 'team', 'user', "
                "'escalation' or 'schedule' (got 'boss')",
            ],
        ),
        (
            "type: io.kestra.plugin.squadcast.SquadcastExecution\n    url: http://x",
            ["f.yaml:4:5: tasks[0]: missing required property 'message'"],
        ),
        (
            "type: io.kestra.plugin.zenduty.ZendutyExecution\n    url: http://x\n"
            "    alertType: BAD",
            [
                "f.yaml:7:16: tasks[0].alertType: Input should be 'CRITICAL', 'ACKNOWLEDGED', "
                "'RESOLVED', 'ERROR', 'WARNING' or 'INFO' (got 'BAD')"
            ],
        ),
        (
            "type: io.kestra.plugin.twilio.notify.TwilioExecution\n    url: http://x\n"
            "    accountSid: AC1",
            [
                "f.yaml:4:5: tasks[0]: missing required property 'accountSID'",
                "f.yaml:4:5: tasks[0]: missing required property 'authToken'",
                "f.yaml:7:17: tasks[0].accountSid: unknown property 'accountSid'; did you "
                "mean 'accountSID'?",
            ],
        ),
        (
            "type: io.kestra.plugin.meta.whatsapp.WhatsAppExecution\n    url: http://x\n"
            "    whatsAppIds: some-id",
            ["f.yaml:7:18: tasks[0].whatsAppIds: Input should be a valid list"],
        ),
    ],
    ids=["google-chat-url", "opsgenie-enums", "squadcast-message", "zenduty-type", "twilio", "wa"],
)
def test_malformed_properties_are_load_errors(task: str, expected: list[str]) -> None:
    """Kestra's @NotBlank/@NotNull properties (url, SquadcastTemplate.message, TwilioAlert
    accountSID/authToken) and its enums (OpsgenieTemplate responders, ZendutyTemplate
    AlertType) are checked when the flow loads, each problem at its line."""
    assert problems(flow(f"tasks:\n  - id: tell\n    {task}\n")) == expected
