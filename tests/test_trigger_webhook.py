"""Webhook trigger through the daemon's triggers and the HTTP API on a real port."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from daemon.config.settings import BasicAuth, Settings
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.plugin import Condition, ConditionContext
from tests.api_helpers import serving
from tests.harness import Harness, TriggerHarness, running_triggers, settle
from triggers.webhook import Webhook

KEY = "4wjtkzwVGBM9yKnjm3yv8r"
NOT_FOUND = {"message": "Not Found: webhook not found"}

HOOK = f"""
id: hook
namespace: ns
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{{{ trigger.body.user.name }}}}"
triggers:
  - id: webhook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
"""


@asynccontextmanager
async def webhook_server(
    h: Harness, source: str, settings: Settings | None = None
) -> AsyncIterator[tuple[TriggerHarness, str]]:
    """The flow's triggers running and the API serving; yields the flow's webhook base URL."""
    settings = settings or Settings(data_dir=h.engine.data_dir)
    async with (
        running_triggers(h, source, settings) as th,
        serving(h, settings, th.webhooks) as url,
    ):
        flow = th.flow
        await settle()  # the trigger attaches as soon as its task first runs
        assert any(
            th.webhooks.find(flow.namespace, flow.id, key) for key in (KEY, f"{flow.id}-key")
        )
        yield th, f"{url}/api/v1/executions/webhook/{flow.namespace}/{flow.id}"


async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp


async def messages(h: Harness, execution_id: str) -> list[str]:
    await h.engine.wait(execution_id)
    await h.store.flush()
    return [line["message"] for line in await h.store.logs(execution_id)]


async def test_curl_post_with_a_json_body_logs_a_field_of_it(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (_, base):
        proc = await asyncio.create_subprocess_exec(
            "curl",
            "-s",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"user": {"name": "Ada"}}',
            f"{base}/{KEY}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 0, err
    answer = json.loads(out)
    assert (answer["namespace"], answer["flowId"]) == ("ns", "hook")
    assert answer["state"]["current"] in ("CREATED", "RUNNING")
    assert await messages(h, answer["id"]) == ["Hello, Ada"]


async def test_response_has_kestras_webhook_shape_after_the_execution_is_stored(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (_, base):
        status, doc, _ = await call(
            "POST", f"{base}/{KEY}?source=ci", json={"user": {"name": "Ada"}}
        )
    assert status == 200, doc
    assert set(doc) == {
        "id",
        "namespace",
        "flowId",
        "flowRevision",
        "trigger",
        "outputs",
        "labels",
        "state",
        "url",
    }
    assert doc["trigger"]["id"] == "webhook"
    assert doc["trigger"]["type"] == "io.kestra.plugin.core.trigger.Webhook"
    assert doc["trigger"]["variables"]["body"] == {"user": {"name": "Ada"}}
    assert doc["trigger"]["variables"]["parameters"] == {"source": ["ci"]}
    assert doc["url"] == f"/ui/executions/ns/hook/{doc['id']}"
    stored = await h.store.get_execution(doc["id"])
    assert stored is not None
    assert stored["trigger"]["variables"]["body"] == {"user": {"name": "Ada"}}


async def test_wrong_key_and_wrong_flow_are_the_same_404(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (th, base):
        wrong_key = await call("POST", f"{base}/not-the-key", json={})
        wrong_flow = await call("POST", base.replace("/hook", "/other") + f"/{KEY}", json={})
        wrong_namespace = await call("GET", base.replace("/ns/", "/nx/") + f"/{KEY}")
        assert [(s, d) for s, d, _ in (wrong_key, wrong_flow, wrong_namespace)] == [
            (404, NOT_FOUND)
        ] * 3
        assert th.executions == []


async def test_body_over_the_limit_is_413(h: Harness) -> None:
    settings = Settings(data_dir=h.engine.data_dir, webhook_max_body=100)
    async with webhook_server(h, HOOK, settings) as (th, base):
        status, doc, _ = await call("POST", f"{base}/{KEY}", data=b"x" * 101)
        assert (status, doc) == (
            413,
            {"message": "Request Entity Too Large: the request body is larger than 100 bytes"},
        )

        async def streamed() -> AsyncIterator[bytes]:  # no Content-Length to refuse up front
            for _ in range(3):
                yield b"y" * 50

        status, _, _ = await call("POST", f"{base}/{KEY}", data=streamed())
        assert status == 413
        status, _, _ = await call("POST", f"{base}/{KEY}", data=b"x" * 100)
        assert status == 200
    assert len(th.executions) == 1


async def test_disabled_trigger_is_404(h: Harness) -> None:
    source = HOOK + "    disabled: true\n"
    async with running_triggers(h, source) as th, serving(h, webhooks=th.webhooks) as url:
        status, doc, _ = await call("POST", f"{url}/api/v1/executions/webhook/ns/hook/{KEY}")
        assert (status, doc) == (404, NOT_FOUND)


async def test_flow_disabled_while_attached_is_404(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (th, base):
        th.flow.disabled = True
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={})
        assert (status, doc) == (404, NOT_FOUND)


async def test_stopped_trigger_detaches_its_key(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (th, base):
        await th.triggers.stop(th.flow.uid)
        assert th.webhooks.find("ns", "hook", KEY) is None
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={})
        assert (status, doc) == (404, NOT_FOUND)


async def test_malformed_json_body_is_kept_as_raw_text(h: Harness) -> None:
    """Kestra parses the body as JSON when it can and keeps the text otherwise."""
    source = HOOK.replace("Hello, {{ trigger.body.user.name }}", "got {{ trigger.body }}")
    async with webhook_server(h, source) as (_, base):
        status, doc, _ = await call(
            "POST", f"{base}/{KEY}", data=b'{"user": ', headers={"Content-Type": "application/json"}
        )
    assert status == 200, doc
    assert doc["trigger"]["variables"]["body"] == '{"user": '
    assert await messages(h, doc["id"]) == ['got {"user": ']


async def test_expression_in_the_body_is_logged_literally(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (_, base):
        status, doc, _ = await call(
            "POST", f"{base}/{KEY}", json={"user": {"name": "{{ 7*7 }}{% if true %}x{% endif %}"}}
        )
    assert status == 200, doc
    assert await messages(h, doc["id"]) == ["Hello, {{ 7*7 }}{% if true %}x{% endif %}"]


async def test_get_and_put_trigger_too_with_text_and_binary_bodies(h: Harness) -> None:
    source = HOOK.replace("Hello, {{ trigger.body.user.name }}", "{{ trigger.body ?? 'nothing' }}")
    async with webhook_server(h, source) as (_, base):
        got = await call("GET", f"{base}/{KEY}?a=1&a=2")
        put = await call(
            "PUT", f"{base}/{KEY}", data=b"plain words", headers={"Content-Type": "text/plain"}
        )
        binary = await call(
            "POST",
            f"{base}/{KEY}",
            data=b"\x00\x01",
            headers={"Content-Type": "application/octet-stream"},
        )
    assert [status for status, _, _ in (got, put, binary)] == [200, 200, 200]
    variables = [doc["trigger"]["variables"] for _, doc, _ in (got, put, binary)]
    assert [v["body"] for v in variables] == [None, "plain words", "AAE="]
    assert variables[0]["parameters"] == {"a": ["1", "2"]}
    assert await messages(h, got[1]["id"]) == ["nothing"]


async def test_headers_are_lists_and_credentials_are_masked(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (_, base):
        status, doc, _ = await call(
            "POST",
            f"{base}/{KEY}",
            json={"user": {"name": "Ada"}},
            headers=[
                ("X-Event", "push"),
                ("X-Event", "tag"),
                ("Authorization", "Bearer abc"),
                ("Cookie", "session=xyz"),
            ],
        )
    assert status == 200, doc
    headers = doc["trigger"]["variables"]["headers"]
    assert headers["X-Event"] == ["push", "tag"]
    assert headers["Authorization"] == ["******"]
    assert headers["Cookie"] == ["******"]
    assert "abc" not in json.dumps(await h.store.get_execution(doc["id"]))


async def test_wait_and_return_outputs_answer_the_flow_outputs(h: Harness) -> None:
    source = f"""
    id: echo
    namespace: ns
    tasks:
      - id: shout
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ trigger.body.word | upper }}}}"
    outputs:
      - id: loud
        type: STRING
        value: "{{{{ outputs.shout.value }}}}"
    triggers:
      - id: webhook
        type: io.kestra.plugin.core.trigger.Webhook
        key: {KEY}
        wait: true
        returnOutputs: true
    """
    async with webhook_server(h, textwrap.dedent(source)) as (_, base):
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={"word": "hey"})
        plain = textwrap.dedent(source) + "    responseContentType: text/plain\n"
    assert (status, doc) == (200, {"loud": "HEY"})
    async with webhook_server(h, plain.replace("id: echo", "id: echo2")) as (_, base):
        status, text, resp = await call("POST", f"{base}/{KEY}", json={"word": "hey"})
    assert (status, resp.content_type, text) == (200, "text/plain", '{"loud":"HEY"}')


async def test_wait_answers_the_ended_execution_and_500_when_it_failed(h: Harness) -> None:
    source = f"""
    id: fails
    namespace: ns
    tasks:
      - id: boom
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: kaput
    triggers:
      - id: webhook
        type: io.kestra.plugin.core.trigger.Webhook
        key: {KEY}
        wait: true
    """
    async with webhook_server(h, textwrap.dedent(source)) as (_, base):
        status, doc, _ = await call("POST", f"{base}/{KEY}")
    assert status == 500
    assert doc["state"]["current"] == "FAILED"


async def test_webhook_inputs_are_rendered_from_the_request(h: Harness) -> None:
    source = f"""
    id: typed
    namespace: ns
    inputs:
      - id: count
        type: INT
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "count is {{{{ inputs.count + 1 }}}}"
    triggers:
      - id: webhook
        type: io.kestra.plugin.core.trigger.Webhook
        key: {KEY}
        inputs:
          count: "{{{{ trigger.body.n }}}}"
    """
    async with webhook_server(h, textwrap.dedent(source)) as (th, base):
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={"n": 41})
        assert status == 200, doc
        assert await messages(h, doc["id"]) == ["count is 42"]
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={"n": "many"})
        assert (status, doc) == (
            422,
            {
                "message": "Invalid entity: input 'count': 'many' is not an INT",
                "_embedded": {"errors": [{"message": "input 'count': 'many' is not an INT"}]},
            },
        )
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={"m": 1})
        assert status == 422
        assert doc["message"].startswith('Invalid entity: cannot render "{{ trigger.body.n }}"')
        assert len(th.executions) == 1


async def test_webhook_cannot_pass_a_server_path_to_a_file_input(h: Harness) -> None:
    source = f"""
    id: files
    namespace: ns
    inputs:
      - id: f
        type: FILE
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "{{{{ read(inputs.f) }}}}"
    triggers:
      - id: webhook
        type: io.kestra.plugin.core.trigger.Webhook
        key: {KEY}
        inputs:
          f: "{{{{ trigger.body.path }}}}"
    """
    async with webhook_server(h, textwrap.dedent(source)) as (_, base):
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={"path": "/etc/passwd"})
    assert (status, doc["message"]) == (
        422,
        "Invalid entity: input 'f': a webhook passes a FILE input as a kestra:// URI only",
    )


async def test_templated_key_is_rendered_when_the_trigger_starts(h: Harness) -> None:
    source = HOOK.replace(f"key: {KEY}", 'key: "{{ flow.id }}-key"')
    async with webhook_server(h, source) as (th, base):
        assert th.webhooks.find("ns", "hook", "hook-key") is not None
        status, _, _ = await call("POST", f"{base}/hook-key", json={"user": {"name": "Ada"}})
        assert status == 200


async def test_webhook_stays_open_when_the_api_needs_credentials(h: Harness) -> None:
    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username="ada", password="pw")
    )
    async with webhook_server(h, HOOK, settings) as (_, base):
        status, doc, _ = await call("POST", f"{base}/{KEY}", json={"user": {"name": "Ada"}})
    assert status == 200, doc


class Never(Condition):
    """A condition that never holds (no condition plug-in is needed to test the 204)."""

    types = ("test.Never",)

    def test(self, ctx: ConditionContext) -> bool:
        return False


async def test_conditions_not_met_answer_204_without_an_execution(h: Harness) -> None:
    flow = await h.flow(HOOK)
    trigger = Webhook(
        id="webhook", type=Webhook.types[0], key=KEY, conditions=[Never(type="test.Never")]
    )
    settings = Settings(data_dir=h.engine.data_dir)
    webhooks = WebhookRegistry()
    supervisor = h.engine.supervisor(webhooks, settings.allowed_paths)
    ctx = supervisor.context(flow, trigger)
    emit = supervisor.emitter(flow, trigger)
    running = asyncio.create_task(trigger.run(emit, ctx))
    try:
        async with serving(h, settings, webhooks) as url:
            await settle()
            status, body, _ = await call(
                "POST",
                f"{url}/api/v1/executions/webhook/ns/hook/{KEY}",
                json={"user": {"name": "Ada"}},
            )
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert (status, body) == (204, "")
    assert webhooks.find("ns", "hook", KEY) is None  # detached when cancelled
    assert (await h.store.search_executions())[1] == 0


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("a/b", "key must not contain '/': it is one segment of the webhook URL (got 'a/b')"),
        ('""', "key must not be empty (got '')"),
    ],
)
def test_invalid_key_is_a_load_error(key: str, message: str) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(HOOK.replace(f"key: {KEY}", f"key: {key}"), "hook.yaml")
    assert str(caught.value) == f"hook.yaml:11:10: triggers[0].key: {message}"


def test_key_longer_than_256_characters_is_a_load_error() -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(HOOK.replace(KEY, "k" * 257), "hook.yaml")
    assert str(caught.value).startswith(
        "hook.yaml:11:10: triggers[0].key: key is 257 characters long; at most 256 are allowed"
    )
    load_flow(HOOK.replace(KEY, "k" * 256), "hook.yaml")


def test_missing_key_and_unknown_property_are_load_errors() -> None:
    source = HOOK.replace(f"key: {KEY}", "returnOutput: true")
    with pytest.raises(FlowError) as caught:
        load_flow(source, "hook.yaml")
    assert str(caught.value).splitlines() == [
        "hook.yaml:9:5: triggers[0]: missing required property 'key'",
        "hook.yaml:11:19: triggers[0].returnOutput: unknown property 'returnOutput'; "
        "did you mean 'returnOutputs'?",
    ]


async def test_a_retried_post_with_the_same_idempotency_key_makes_one_execution(h: Harness) -> None:
    async with webhook_server(h, HOOK) as (_, base):
        answers = await asyncio.gather(
            *(
                call(
                    "POST",
                    f"{base}/{KEY}",
                    json={"user": {"name": "Ada"}},
                    headers={"Idempotency-Key": "order-42"},
                )
                for _ in range(3)
            )
        )
        later = await call(
            "POST",
            f"{base}/{KEY}",
            json={"user": {"name": "Bob"}},
            headers={"Idempotency-Key": "order-42"},
        )
        other = await call(
            "POST",
            f"{base}/{KEY}",
            json={"user": {"name": "Cy"}},
            headers={"Idempotency-Key": "order-43"},
        )
    ids = {doc["id"] for status, doc, _ in [*answers, later] if status == 200}
    assert len(ids) == 1 and all(status == 200 for status, _, _ in [*answers, later])
    (execution_id,) = ids
    assert other[0] == 200 and other[1]["id"] != execution_id
    assert await messages(h, execution_id) == ["Hello, Ada"], "the retry did not run again"
    _, total = await h.store.search_executions(flow_id="hook")
    assert total == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_a_malformed_idempotency_key_is_refused(h: Harness, key: str) -> None:
    async with webhook_server(h, HOOK) as (_, base):
        status, doc, _ = await call(
            "POST", f"{base}/{KEY}", json={}, headers={"Idempotency-Key": key}
        )
    assert status == 400
    assert doc == {"message": "Idempotency-Key must be 1 to 255 printable ASCII characters"}
    _, total = await h.store.search_executions(flow_id="hook")
    assert total == 0


async def test_a_condition_reads_the_flows_namespace_kv_store(h: Harness) -> None:
    """Kestra renders a trigger condition with the flow's run context, its functions
    included (ConditionService, Expression: `runContext.render(expression)`): `kv()`
    finds a key of the flow's namespace. The execution starts while the key says so,
    and the webhook answers 204 (no execution) once it no longer does."""
    source = HOOK + textwrap.indent(
        textwrap.dedent("""\
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ kv('accepting') == 'yes' }}"
        """),
        "    ",
    )
    await h.store.kv.set("ns", "accepting", "yes")
    async with webhook_server(h, source) as (_, base):
        status, body, _ = await call("POST", f"{base}/{KEY}", json={"user": {"name": "Ada"}})
        assert status == 200, body
        assert await messages(h, body["id"]) == ["Hello, Ada"]
        await h.store.kv.set("ns", "accepting", "no")
        status, body, _ = await call("POST", f"{base}/{KEY}", json={"user": {"name": "Bob"}})
        assert (status, body) == (204, "")
    assert (await h.store.search_executions())[1] == 1


# -- when (Kestra 2.0) -----------------------------------------------------------------------
# Kestra: docs migration-guide/v2.0.0/trigger-conditions-redesign ("Webhook: filter by body",
# "filter by header and body"; a Webhook's `when` sees `trigger.body` and `trigger.headers`)
# and the Webhook's documented 204 when conditions are not met.


def hook_with(extra: str) -> str:
    return HOOK + textwrap.indent(textwrap.dedent(extra), "    ")


async def test_when_on_the_body_starts_only_matching_requests(h: Harness) -> None:
    source = hook_with("""\
        when: "{{ trigger.body.hello == 'world' }}"
    """).replace("trigger.body.user.name", "trigger.body.hello")
    async with webhook_server(h, source) as (_, base):
        status, body, _ = await call("POST", f"{base}/{KEY}", json={"hello": "world"})
        assert status == 200, body
        assert await messages(h, body["id"]) == ["Hello, world"]
        status, body, _ = await call("POST", f"{base}/{KEY}", json={"hello": "there"})
        assert (status, body) == (204, "")
        status, body, _ = await call("POST", f"{base}/{KEY}")  # no body: `hello` undefined
        assert (status, body) == (204, "")
    assert (await h.store.search_executions())[1] == 1


async def test_when_reads_headers_and_parameters(h: Harness) -> None:
    """Headers and parameters are lists of values, as the execution sees them."""
    source = hook_with("""\
        when: >-
          {{ trigger.headers['X-Event-Type'][0] == 'deploy'
             and trigger.body.environment == 'production'
             and trigger.parameters.source[0] == 'ci' }}
    """)
    deploy = {"X-Event-Type": "deploy"}
    production = {"environment": "production", "user": {"name": "Ada"}}
    async with webhook_server(h, source) as (_, base):
        status, _, _ = await call("POST", f"{base}/{KEY}?source=ci", json=production)
        assert status == 204  # no header
        status, _, _ = await call(
            "POST", f"{base}/{KEY}?source=cron", json=production, headers=deploy
        )
        assert status == 204
        status, body, _ = await call(
            "POST", f"{base}/{KEY}?source=ci", json=production, headers=deploy
        )
        assert status == 200, body
        assert await messages(h, body["id"]) == ["Hello, Ada"]


async def test_a_1x_expression_condition_reads_the_request_too(h: Harness) -> None:
    """Kestra's Webhook example "condition_based_webhook_flow": an Expression condition sees
    `trigger.body` (and the flow loads, with `conditions` reported deprecated)."""
    source = hook_with("""\
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.body.user.name == 'Ada' }}"
    """)
    flow = load_flow(source, "hook.yaml")
    assert [w.message for w in flow.warnings] == ["'conditions' is deprecated; use 'when'"]
    async with webhook_server(h, source) as (_, base):
        status, body, _ = await call("POST", f"{base}/{KEY}", json={"user": {"name": "Bob"}})
        assert status == 204
        status, body, _ = await call("POST", f"{base}/{KEY}", json={"user": {"name": "Ada"}})
        assert status == 200, body


async def test_a_when_that_cannot_be_rendered_answers_204_and_is_logged(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """ConditionService: an error rendering `when` is logged and the event is skipped."""
    source = hook_with("""\
        when: "{{ trigger.body.user.name | nosuchfilter }}"
    """)
    async with webhook_server(h, source) as (_, base):
        with caplog.at_level(logging.ERROR, logger="daemon.engine.supervisor"):
            status, body, _ = await call("POST", f"{base}/{KEY}", json={"user": {"name": "Ada"}})
    assert (status, body) == (204, "")
    assert (await h.store.search_executions())[1] == 0
    assert any(
        r.getMessage().startswith("ns.hook trigger webhook when: ")
        and "cannot be rendered" in r.getMessage()
        for r in caplog.records
    )
