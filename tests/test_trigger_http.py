"""The polling HTTP Trigger against a real aiohttp server the test starts on a free port.

Kestra sources: core/src/main/java/io/kestra/plugin/core/http/Trigger.java (properties,
defaults, `evaluate`), its TriggerTest with flows/valids/http-listen.yaml and
http-listen-encrypted.yaml, the Request task's Output (what `trigger.*` holds) and the
scheduler's polling loop (AbstractScheduler: `isExecutionNotRunning`, TriggerState's
`stopAfter`, Worker.handleTriggerError: a failed evaluation is logged, nothing starts).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import itertools
import logging
import socket
import ssl
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon.config.settings import Settings
from daemon.engine.supervisor import DISABLED_STATE
from daemon.flows.loader import load_flow
from daemon.flows.schema import flow_schema
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.api_helpers import serving
from tests.daemon_process import ServeProcess
from tests.harness import Harness, TriggerHarness, eventually, problems, running_triggers

EXAMPLES = Path(__file__).resolve().parent.parent / "flows"
SUPERVISOR = "daemon.engine.supervisor"  # the logger a trigger's context writes to


@dataclass
class Answer:
    status: int = 200
    body: str = '{"price": 150}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Backend:
    """The endpoint a trigger polls: answers `answer`, records every request it got."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.seen: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    async def poll(self, request: web.Request) -> web.Response:
        seen: dict[str, Any] = {
            "path": request.path,
            "method": request.method,
            "headers": dict(request.headers),
        }
        if request.content_type == "application/x-www-form-urlencoded":
            seen["form"] = dict(await request.post())
        else:
            seen["body"] = await request.text()
        self.seen.append(seen)
        self._arrived.set()
        answer = self.answer
        return web.Response(
            status=answer.status,
            body=answer.body.encode(),
            content_type=answer.content_type,
            headers=answer.headers,
        )

    async def stall(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"path": request.path})
        self._arrived.set()
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first bytes")
        await asyncio.sleep(30)  # the client gives up long before; cancelled at cleanup
        return response

    async def polls(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """Wait (bounded, not a timing assertion) until `count` requests came in."""
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.seen


async def serve(
    backend: Backend, port: int = 0, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/poll", backend.poll)
    app.router.add_get("/stall", backend.stall)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    return runner


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    yield Backend()


@pytest.fixture
async def server(backend: Backend) -> AsyncIterator[str]:
    runner = await serve(backend)
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


TASKS = """\
tasks:
  - id: body
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body }}"
"""


def http_flow(trigger: str, tasks: str = TASKS, flow_id: str = "poller") -> str:
    """A flow whose one trigger (`http`) is the YAML given, at the trigger's indent."""
    body = textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
    return (
        f"id: {flow_id}\nnamespace: test\n{tasks}triggers:\n"
        f"  - id: http\n    type: io.kestra.plugin.core.http.Trigger\n{body}\n"
    )


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SUPERVISOR and r.levelno >= level]


def failed_polls(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in messages(caplog) if ": poll failed" in m]


async def still_polling(th: TriggerHarness, backend: Backend, after: int) -> None:
    """The trigger still runs and polled twice more: a failed poll crashed nothing."""
    await backend.polls(after + 2)
    assert th.triggers.running(th.flow.uid) == 1


# -- the response ------------------------------------------------------------------------


async def test_a_response_under_400_starts_an_execution_with_the_response_as_trigger(
    h: Harness, server: str
) -> None:
    """Trigger.java: the default responseCondition `{{ response.statusCode < 400 }}`; the
    execution gets the Request task's Output (uri, code, headers, body) as `trigger.*`, and
    its tasks read `{{ trigger.body }}` (Trigger.java's examples, http-listen.yaml)."""
    tasks = TASKS + (
        "  - id: price\n    type: io.kestra.plugin.core.debug.Return\n"
        '    format: "{{ json(trigger.body).price }}"\n'
    )
    source = http_flow(f"uri: {server}/poll\ninterval: PT0.05S\nstopAfter: [SUCCESS]", tasks)
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        [execution] = await th.finished()
    assert execution.state.current == State.SUCCESS
    variables = execution.trigger["variables"]
    assert variables["uri"] == f"{server}/poll"
    assert variables["code"] == 200
    assert variables["body"] == '{"price": 150}'
    assert variables["headers"]["Content-Type"] == ["application/json"]
    assert execution.trigger["type"] == "io.kestra.plugin.core.http.Trigger"
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs == {"body": {"value": '{"price": 150}'}, "price": {"value": "150"}}


async def test_nothing_starts_while_the_condition_is_false_then_it_holds(
    h: Harness, server: str, backend: Backend
) -> None:
    """Trigger.java: the condition sees `response.statusCode`, `response.body` and
    `response.headers`; a response it refuses starts nothing (its price-alert example)."""
    condition = (
        "{{ json(response.body).price <= 110 and response.headers['X-Stock'][0] == 'yes' "
        "and response.statusCode == 200 }}"
    )
    source = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        responseCondition: "{condition}"
        stopAfter: [SUCCESS]
        """
    )
    async with running_triggers(h, source) as th:
        await backend.polls(3)
        assert th.executions == []  # a poll waits for the execution it started
        backend.answer = Answer(body='{"price": 100}', headers={"X-Stock": "yes"})
        [execution] = await th.wait_for(1)
        await th.finished()
    assert execution.trigger["variables"]["body"] == '{"price": 100}'
    assert execution.trigger["variables"]["headers"]["X-Stock"] == ["yes"]


async def test_a_text_body_and_an_empty_one_reach_the_condition_and_the_execution(
    h: Harness, server: str, backend: Backend
) -> None:
    """Trigger.java: `response.body` is the body as a string, null when there is none."""
    backend.answer = Answer(body="ready", content_type="text/plain")
    source = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        responseCondition: "{{{{ response.body == 'ready' }}}}"
        stopAfter: [SUCCESS]
        """
    )
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        [text] = await th.finished()
    assert text.trigger["variables"]["body"] == "ready"
    assert text.trigger["variables"]["headers"]["Content-Type"] == ["text/plain"]
    assert text.task_runs[0].outputs == {"value": "ready"}

    backend.answer = Answer(status=204, body="", content_type="text/plain")
    source = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        responseCondition: "{{{{ response.body is null and response.statusCode == 204 }}}}"
        stopAfter: [SUCCESS]
        """,
        flow_id="empty",
    )
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        [empty] = await th.finished()
    assert empty.trigger["variables"]["code"] == 204
    assert empty.trigger["variables"]["body"] is None


async def test_post_sends_the_body_its_content_type_headers_and_basic_auth(
    h: Harness, server: str, backend: Backend
) -> None:
    """Trigger.java builds a Request from method, body, contentType, headers and options
    (AbstractHttp.request; HttpConfiguration's auth)."""
    source = http_flow(
        f"""
        uri: {server}/poll
        method: POST
        body: '{{"query": "{{{{ flow.id }}}}"}}'
        contentType: application/vnd.api+json
        headers:
          X-Custom: 7
        options:
          auth: {{type: BASIC, username: ada, password: pw}}
        interval: PT0.05S
        stopAfter: [SUCCESS]
        """
    )
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        await th.finished()
    request = backend.seen[0]
    assert request["method"] == "POST"
    assert request["body"] == '{"query": "poller"}'
    assert request["headers"]["Content-Type"] == "application/vnd.api+json"
    assert request["headers"]["X-Custom"] == "7"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ada:pw").decode()


async def test_form_data_is_sent_url_encoded(h: Harness, server: str, backend: Backend) -> None:
    """Trigger.java passes formData to the Request (AbstractHttp: URL-encoded by default)."""
    source = http_flow(
        f"""
        uri: {server}/poll
        method: PUT
        formData: {{user: Ada, age: 36}}
        interval: PT0.05S
        stopAfter: [SUCCESS]
        """
    )
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        await th.finished()
    assert backend.seen[0]["method"] == "PUT"
    assert backend.seen[0]["form"] == {"user": "Ada", "age": "36"}


async def test_a_500_reaches_the_condition_and_the_default_condition_refuses_it(
    h: Harness, server: str, backend: Backend
) -> None:
    """Trigger.java forces options.allowFailed: a failed status code is no error, the
    condition decides; the default one (`statusCode < 400`) refuses a 500."""
    backend.answer = Answer(status=500, body="boom", content_type="text/plain")
    refusing = http_flow(f"uri: {server}/poll\ninterval: PT0.05S")
    async with running_triggers(h, refusing) as th:
        await backend.polls(3)
        assert th.executions == []
        assert th.triggers.running(th.flow.uid) == 1
    accepting = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        responseCondition: "{{{{ response.statusCode == 500 }}}}"
        stopAfter: [SUCCESS]
        """,
        flow_id="on_error",
    )
    async with running_triggers(h, accepting) as th:
        await th.wait_for(1)
        [execution] = await th.finished()
    assert execution.trigger["variables"]["code"] == 500
    assert execution.trigger["variables"]["body"] == "boom"


@pytest.mark.parametrize(
    ("body", "starts"),
    [("no", True), ("False", True), ("false", False), ("0", False), ("-0", False), (" ", False)],
)
async def test_a_condition_is_true_unless_it_renders_false_0_or_blank(
    h: Harness, server: str, backend: Backend, body: str, starts: bool
) -> None:
    """Trigger.java's responseCondition doc and TruthUtils.isTruthy: 0, -0, null and ''
    are false (and "false"), every other text is true: a condition that renders "no" holds."""
    backend.answer = Answer(body=body, content_type="text/plain")
    source = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        responseCondition: "{{{{ response.body }}}}"
        stopAfter: [SUCCESS]
        """
    )
    async with running_triggers(h, source) as th:
        if starts:
            await th.wait_for(1)
            await th.finished()
        else:
            # the second request comes after the first one was evaluated (one loop)
            await backend.polls(2)
        assert len(th.executions) == (1 if starts else 0)


async def test_when_is_tested_after_the_response_condition_with_the_trigger_variables(
    h: Harness, server: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Trigger.java: the response condition comes before the generic trigger conditions,
    which see what the execution would read as `trigger.*`."""
    caplog.set_level(logging.INFO, logger=SUPERVISOR)
    source = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        when: "{{{{ trigger.code == 201 }}}}"
        stopAfter: [SUCCESS]
        """
    )
    async with running_triggers(h, source) as th:
        await backend.polls(2)
        assert th.executions == []
        backend.answer = Answer(status=201)
        await th.wait_for(1)
        [execution] = await th.finished()
    assert execution.trigger["variables"]["code"] == 201
    assert "test.poller trigger http: the trigger's conditions do not hold; no execution" in (
        messages(caplog)
    )


async def test_encrypt_body_gives_the_body_as_encrypted_body(
    h: Harness, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Trigger.java with encryptBody (http-listen-encrypted.yaml): the condition reads the
    body in clear; the execution gets `encryptedBody` (Kestra's EncryptedString), not
    `body`; without an encryption key Kestra keeps the text as it is, and so does podium,
    which says so."""
    caplog.set_level(logging.WARNING, logger=SUPERVISOR)
    tasks = (
        "tasks:\n  - id: value\n    type: io.kestra.plugin.core.debug.Return\n"
        '    format: "{{ trigger.encryptedBody.value }}"\n'
    )
    source = http_flow(
        f"""
        encryptBody: true
        uri: {server}/poll
        responseCondition: "{{{{ fromJson(response.body).price is not null }}}}"
        interval: PT0.05S
        stopAfter: [SUCCESS]
        """,
        tasks,
    )
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        [execution] = await th.finished()
    variables = execution.trigger["variables"]
    assert "body" not in variables
    assert variables["encryptedBody"] == {
        "type": "io.kestra.datatype:aes_encrypted",
        "value": '{"price": 150}',
    }
    assert execution.task_runs[0].outputs == {"value": '{"price": 150}'}
    assert (
        "test.poller trigger http: encryptBody: podium has no encryption key, so "
        "trigger.encryptedBody holds the body in clear (as Kestra without one)"
    ) in messages(caplog)


# -- failures: logged, and polling goes on ------------------------------------------------


async def test_a_server_that_is_down_is_logged_once_and_polling_goes_on_until_it_answers(
    h: Harness, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker.handleTriggerError: a failed evaluation is logged and starts nothing (without
    failOnTriggerError); the trigger is evaluated again at the next interval. podium logs
    an outage once when it starts and once when it ends."""
    caplog.set_level(logging.DEBUG, logger=SUPERVISOR)
    port = closed_port()
    source = http_flow(
        f"uri: http://scott:tiger@127.0.0.1:{port}/poll\ninterval: PT0.05S\nstopAfter: [SUCCESS]"
    )
    async with running_triggers(h, source) as th:
        await eventually(
            lambda: _at_least(failed_polls(caplog), 3), "three failed polls", timeout=20
        )
        assert th.executions == []
        runner = await serve(backend, port)
        try:
            await th.wait_for(1)
            [execution] = await th.finished()
        finally:
            await runner.cleanup()
    assert execution.trigger["variables"]["uri"] == f"http://127.0.0.1:{port}/poll"
    warnings = messages(caplog, logging.WARNING)
    assert warnings == [
        f"test.poller trigger http: poll failed: cannot connect to http://127.0.0.1:{port}/poll:"
        " connection refused; polling goes on"
    ]
    failed = len(failed_polls(caplog))
    assert f"test.poller trigger http: poll succeeded again after {failed} failed polls" in (
        messages(caplog, logging.INFO)
    )
    assert not any("tiger" in m for m in messages(caplog))


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def test_a_server_that_goes_quiet_times_out_and_polling_goes_on(
    h: Harness, server: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Trigger.java passes `options` (HttpConfiguration's timeout.readIdleTimeout) to the
    Request; a timeout fails that evaluation only."""
    caplog.set_level(logging.WARNING, logger=SUPERVISOR)
    source = http_flow(
        f"""
        uri: {server}/stall
        interval: PT0.05S
        options:
          timeout: {{readIdleTimeout: PT0.2S}}
        """
    )
    async with running_triggers(h, source) as th:
        await still_polling(th, backend, 1)
        assert th.executions == []
    assert messages(caplog) == [
        f"test.poller trigger http: poll failed: GET {server}/stall: no data received for "
        "PT0.2S; polling goes on"
    ]


async def test_a_condition_that_cannot_be_rendered_is_logged_and_polling_goes_on(
    h: Harness, server: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Trigger.java renders the condition in `evaluate`: an expression that fails is that
    evaluation's error (logged; Worker.handleTriggerError), not the trigger's end."""
    caplog.set_level(logging.WARNING, logger=SUPERVISOR)
    backend.answer = Answer(body="not json", content_type="text/plain")
    source = http_flow(
        f"""
        uri: {server}/poll
        interval: PT0.05S
        responseCondition: "{{{{ fromJson(response.body).price > 1 }}}}"
        """
    )
    async with running_triggers(h, source) as th:
        await still_polling(th, backend, 1)
        assert th.executions == []
    [warning] = messages(caplog)
    assert warning.startswith("test.poller trigger http: poll failed: ")
    assert "fromJson(response.body).price > 1" in warning


async def test_a_templated_uri_that_renders_invalid_is_logged_and_polling_goes_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """AbstractHttp.request renders `uri` at each evaluation; one that is no http(s) URL
    fails that evaluation."""
    caplog.set_level(logging.DEBUG, logger=SUPERVISOR)
    source = http_flow("uri: '{{ flow.namespace }}/items'\ninterval: PT0.05S")
    async with running_triggers(h, source) as th:
        await eventually(lambda: _at_least(failed_polls(caplog), 3), "three failed polls")
        assert th.triggers.running(th.flow.uid) == 1
    assert messages(caplog, logging.WARNING) == [
        "test.poller trigger http: poll failed: invalid property after rendering: uri: "
        "expected an absolute http:// or https:// URL (got 'test/items'); polling goes on"
    ]


async def test_a_failed_poll_never_logs_a_secret_in_clear(
    h: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kestra masks the secrets it renders (its `secret()` docs); a failed poll's line
    names what was rendered, so it is masked too."""
    caplog.set_level(logging.WARNING, logger=SUPERVISOR)
    clear = "internal-host/s3cr3t-path"
    monkeypatch.setenv("SECRET_API_URL", base64.b64encode(clear.encode()).decode())
    source = http_flow("uri: \"{{ secret('API_URL') }}\"\ninterval: PT0.05S")
    async with running_triggers(h, source):
        await eventually(lambda: _at_least(failed_polls(caplog), 1), "a failed poll")
    [warning] = messages(caplog)
    assert "(got '******')" in warning
    assert clear not in warning


@pytest.fixture(scope="module")
def tls() -> Iterator[ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory = Path(__import__("tempfile").mkdtemp(prefix="podium-tls-"))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    yield context
    for path in (cert_file, key_file):
        path.unlink()
    directory.rmdir()


async def test_a_self_signed_certificate_needs_insecure_trust(
    h: Harness, backend: Backend, tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Trigger.java: `options.ssl` (HttpConfiguration's SslOptions), or the deprecated
    top-level `sslOptions` it copies there; without it the certificate is verified."""
    caplog.set_level(logging.WARNING, logger=SUPERVISOR)
    runner = await serve(backend, tls=tls)
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/poll"
    try:
        async with running_triggers(h, http_flow(f"uri: {url}\ninterval: PT0.05S")) as th:
            await eventually(lambda: _at_least(failed_polls(caplog), 1), "a failed poll")
            assert th.executions == []
        [warning] = messages(caplog)
        assert warning.startswith(f"test.poller trigger http: poll failed: cannot connect to {url}")
        assert "certificate verify failed" in warning
        for flow_id, ssl_yaml in (
            ("trusting", "options:\n  ssl: {insecureTrustAllCertificates: true}"),
            ("older", "sslOptions: {insecureTrustAllCertificates: true}"),
        ):
            source = http_flow(
                f"uri: {url}\ninterval: PT0.05S\nstopAfter: [SUCCESS]\n{ssl_yaml}", flow_id=flow_id
            )
            async with running_triggers(h, source) as th:
                await th.wait_for(1)
                [execution] = await th.finished()
            assert execution.trigger["variables"]["code"] == 200
    finally:
        await runner.cleanup()


# -- one execution at a time, stopAfter ---------------------------------------------------


async def test_no_poll_is_made_while_the_execution_it_started_runs(
    h: Harness, server: str, backend: Backend
) -> None:
    """AbstractScheduler.isExecutionNotRunning: a polling trigger is not evaluated while
    the execution it started last is still running, however short its interval; each
    execution is created after the one before ended."""
    tasks = (
        "tasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT0.3S\n"
    )
    source = http_flow(f"uri: {server}/poll\ninterval: PT0.01S", tasks)
    async with running_triggers(h, source) as th:
        await th.wait_for(3)
        await th.finished()
    executions = [await stored(h, e) for e in th.executions]
    for before, after in itertools.pairwise(executions):
        assert after.state.histories[0][1] >= before.state.histories[-1][1]
    assert len(backend.seen) <= len(executions) + 1  # the poll under way when stopped


async def test_allow_concurrent_polls_while_the_execution_it_started_runs(
    h: Harness, server: str, backend: Backend
) -> None:
    """AbstractTrigger.allowConcurrent: the trigger is evaluated again while its execution
    still runs, so executions overlap (without it, each starts after the one before ended)."""
    tasks = "tasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT2S\n"
    source = http_flow(f"uri: {server}/poll\ninterval: PT0.05S\nallowConcurrent: true", tasks)
    async with running_triggers(h, source) as th:
        await th.wait_for(3)
        first = await stored(h, th.executions[0])
        assert not first.state.current.terminated  # three started while the first sleeps
        await th.finished()


async def test_fail_on_trigger_error_starts_a_failed_execution_saying_why(
    h: Harness, backend: Backend
) -> None:
    """Worker.handleTriggerError with failOnTriggerError: a failed evaluation starts a FAILED
    execution (the error in its log) and the trigger is evaluated again; without it, none
    (test_a_server_that_is_down_...)."""
    port = closed_port()
    source = http_flow(
        f"uri: http://127.0.0.1:{port}/poll\ninterval: PT0.05S\nfailOnTriggerError: true"
    )
    async with running_triggers(h, source) as th:
        await th.wait_for(2)
        failed = await th.finished()
    for execution in failed[:2]:
        done = await stored(h, execution)
        assert done.state.current == State.FAILED
        assert done.task_runs == []
        logs = " ".join(await h.logs(done))
        assert "the trigger's evaluation failed: cannot connect to" in logs
        assert f"127.0.0.1:{port}/poll: connection refused" in logs


async def test_log_level_keeps_only_the_trigger_s_lines_at_that_level_and_above(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """AbstractTrigger.logLevel (minLogLevel, its older name): ERROR drops the trigger's
    warning that polls fail; another trigger's lines are untouched."""
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    quiet = http_flow(
        f"uri: http://127.0.0.1:{port}/poll\ninterval: PT0.05S\nminLogLevel: ERROR", flow_id="quiet"
    )
    async with running_triggers(h, quiet):
        loud = http_flow(f"uri: http://127.0.0.1:{port}/poll\ninterval: PT0.05S", flow_id="loud")
        async with running_triggers(h, loud):
            await eventually(
                lambda: _at_least(
                    [r.getMessage() for r in caplog.records if "test.loud" in r.getMessage()], 2
                ),
                "the other trigger's failed polls",
                timeout=20,
            )
    lines = [r.getMessage() for r in caplog.records]
    assert any("test.loud trigger http: poll failed" in m for m in lines)
    assert not any("test.quiet" in m for m in lines)


async def stored(h: Harness, execution: Execution) -> Execution:
    return Execution.from_json(await h.stored(execution))


@pytest.mark.parametrize(
    ("stop_after", "fails", "stops"),
    [("[SUCCESS]", False, True), ("[FAILED, KILLED]", True, True), ("[FAILED]", False, False)],
)
async def test_stop_after_disables_the_trigger_once_its_execution_ends_in_such_a_state(
    h: Harness,
    server: str,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
    stop_after: str,
    fails: bool,
    stops: bool,
) -> None:
    """TriggerState.updateForExecutionState: the trigger is disabled when the execution it
    started ends in one of its `stopAfter` states (Trigger.java's price-alert example),
    and keeps polling when it ends in another one."""
    caplog.set_level(logging.INFO, logger=SUPERVISOR)
    tasks = TASKS + (
        "  - id: maybe\n    type: io.kestra.plugin.core.execution.Fail\n"
        f'    condition: "{{{{ {str(fails).lower()} }}}}"\n'
    )
    source = http_flow(f"uri: {server}/poll\ninterval: PT0.05S\nstopAfter: {stop_after}", tasks)
    async with running_triggers(h, source) as th:
        [first] = await th.wait_for(1)
        ended = await h.engine.wait(first.id)
        assert ended.state.current == (State.FAILED if fails else State.SUCCESS)
        if stops:
            await eventually(lambda: _stopped(th), "the trigger disabled", timeout=20)
            assert len(th.executions) == 1 and len(backend.seen) == 1
        else:
            await th.wait_for(2)
            assert th.triggers.enabled(th.flow, "http")
        await th.finished()
    disabled = (await h.store.state.get(DISABLED_STATE) or {}).get("triggers", [])
    assert disabled == ([["test", "poller", "http"]] if stops else [])
    if stops:
        state = ended.state.current.value
        assert (
            f"test.poller trigger http: execution {first.id} ended {state} (stopAfter); "
            "trigger disabled"
        ) in messages(caplog)


async def _stopped(th: TriggerHarness) -> bool:
    return not th.triggers.enabled(th.flow, "http") and th.triggers.running(th.flow.uid) == 0


async def test_stop_after_applies_to_other_triggers_too_a_webhook(h: Harness) -> None:
    """AbstractTrigger's `stopAfter` is every trigger's: a Webhook whose execution ended
    SUCCESS is disabled, and its URL answers 404 from then on."""
    source = """\
id: hook
namespace: test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body.who }}"
triggers:
  - id: webhook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-key-of-sixteen-chars
    stopAfter: [SUCCESS]
"""
    settings = Settings(data_dir=h.engine.data_dir)
    async with (
        running_triggers(h, source, settings) as th,
        serving(h, settings, th.webhooks, supervisor=th.triggers) as url,
        aiohttp.ClientSession() as session,
    ):
        hook = f"{url}/api/v1/executions/webhook/test/hook/a-key-of-sixteen-chars"
        await eventually(lambda: _attached(th), "the webhook attached")
        async with session.post(hook, json={"who": "Ada"}) as response:
            assert response.status == 200
            fired = await response.json()
        ended = await h.engine.wait(fired["id"])
        assert ended.state.current == State.SUCCESS
        await eventually(lambda: _disabled(th, "webhook"), "the webhook disabled")
        async with session.post(hook, json={"who": "Bob"}) as response:
            assert response.status == 404
    assert len(th.executions) == 1


async def _attached(th: TriggerHarness) -> bool:
    return th.webhooks.find("test", "hook", "a-key-of-sixteen-chars") is not None


async def _disabled(th: TriggerHarness, trigger_id: str) -> bool:
    return not th.triggers.enabled(th.flow, trigger_id)


async def test_the_example_flow_alerts_once_when_the_price_drops(
    h: Harness, server: str, backend: Backend
) -> None:
    """flows/http_price_alert.yaml, Trigger.java's first example, enabled and pointed at
    the local server: nothing while the price is 150, one alert at 100, then stopped."""
    example = await asyncio.to_thread((EXAMPLES / "http_price_alert.yaml").read_text)
    source = (
        example.replace("https://fakestoreapi.com/products/1", f"{server}/poll")
        .replace("interval: PT30S", "interval: PT0.05S")
        .replace("    disabled: true\n", "")
    )
    async with running_triggers(h, source) as th:
        await backend.polls(2)
        assert th.executions == []
        backend.answer = Answer(body='{"id": 1, "price": 100}')
        [execution] = await th.wait_for(1)
        await eventually(lambda: _disabled(th, "http"), "the trigger disabled")
        await th.finished()
    assert await h.logs(execution, "WARN") == ["The price is now: 100"]


# -- the flow as written ------------------------------------------------------------------


def loaded_trigger(trigger: str) -> Any:
    flow = load_flow(http_flow(trigger), "f.yaml")
    return flow.triggers[0]


def test_defaults_and_the_older_type_name() -> None:
    """Trigger.java: interval 60 s, responseCondition `{{ response.statusCode < 400 }}`,
    method GET, encryptBody false; alias io.kestra.plugin.fs.http.Trigger."""
    trigger = loaded_trigger("uri: https://example.com/api")
    assert trigger.interval == datetime.timedelta(seconds=60)
    assert trigger.response_condition == "{{ response.statusCode < 400 }}"
    assert (trigger.method, trigger.encrypt_body, trigger.stop_after) == ("GET", False, None)
    older = load_flow(
        http_flow("uri: https://example.com/api").replace(
            "io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"
        ),
        "f.yaml",
    )
    assert type(older.triggers[0]) is type(trigger)
    assert older.triggers[0].exclusive()  # one node of a cluster polls


def test_a_yaml_boolean_condition_is_its_text_and_params_load_with_a_warning() -> None:
    """Property<String> read by Jackson: `true` is "true". Trigger.java declares `params`
    but never sends them: accepted, with a warning saying so."""
    trigger = loaded_trigger("uri: https://example.com/api\nresponseCondition: true")
    assert trigger.response_condition == "true"
    flow = load_flow(http_flow("uri: https://example.com/api\nparams: {page: 1}"), "f.yaml")
    warnings = [str(w) for w in flow.warnings]
    assert any("params" in w and "Kestra never sends it" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("interval: PT1M", "uri"),
        ("uri: ftp://example.com/x", "uri: expected an absolute http:// or https:// URL"),
        ("uri: products.json", "uri: expected an absolute http:// or https:// URL"),
        ("uri: 'http://[::1/x'", "uri: invalid uri"),
        ("uri: http://example.com\ninterval: PT0S", "interval: must be positive"),
        ("uri: http://example.com\ninterval: soon", "is not an ISO-8601 duration"),
        ("uri: http://example.com\nresponseCondition: [a, b]", "must be an expression (text)"),
        ("uri: http://example.com\nresponseCondition: '{{ response.statusCode < }}'", "unexpected"),
        ("uri: http://example.com\nmethod: FETCH", "method"),
        ("uri: http://example.com\nurii: http://example.com", "urii"),
        ("uri: http://example.com\nstopAfter: [DONE]", "stopAfter"),
        ("uri: http://example.com\noptions: {timeout: {connectTimeout: soon}}", "ISO-8601"),
        ("uri: http://example.com\nheaders: [a, b]", "headers"),
        ("uri: http://example.com\nencryptBody: maybe", "encryptBody"),
    ],
)
def test_malformed_properties_are_load_errors(trigger: str, expected: str) -> None:
    found = problems(http_flow(trigger))
    assert any(expected in p for p in found), found


def test_the_schema_describes_the_trigger_for_editors() -> None:
    """The JSON schema (VS Code, the editor's completion, the Plugins page) lists the
    trigger under both type names, with its defaults."""
    schema = flow_schema()
    definitions = schema["definitions"]
    assert {"$ref": "#/definitions/io.kestra.plugin.core.http.Trigger"} in (
        definitions["triggers"]["anyOf"]
    )
    trigger = definitions["io.kestra.plugin.core.http.Trigger"]
    properties = trigger["properties"]
    assert properties["type"]["enum"] == [
        "io.kestra.plugin.core.http.Trigger",
        "io.kestra.plugin.fs.http.Trigger",
    ]
    assert properties["responseCondition"]["default"] == "{{ response.statusCode < 400 }}"
    assert properties["interval"]["default"] == "PT1M"
    assert {"uri", "method", "body", "formData", "headers", "options", "stopAfter"} <= set(
        properties
    )
    assert properties["uri"]["$required"] is True


# -- end to end, in `podium serve` ---------------------------------------------------------


async def test_serve_runs_a_flow_from_its_http_trigger_and_keeps_it_stopped_after_restart(
    tmp_path: Path, server: str, backend: Backend
) -> None:
    """A flow file as Kestra's examples write it (Trigger.java: `{{ trigger.body }}` in a
    task, stopAfter SUCCESS), run by `podium serve`: the execution reads the body, and the
    trigger stays disabled after the daemon restarts (Kestra keeps it in its trigger
    state)."""
    backend.answer = Answer(body="Chuck Norris can poll a closed port.", content_type="text/plain")
    flows, data = tmp_path / "flows", tmp_path / "data"
    await asyncio.to_thread(flows.mkdir)
    tasks = (
        "tasks:\n  - id: log_response\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: '{{ trigger.body }}'\n"
        "  - id: body\n    type: io.kestra.plugin.core.debug.Return\n"
        '    format: "{{ trigger.body }}"\n'
    )
    source = http_flow(
        f"""
        uri: {server}/poll
        responseCondition: "{{{{ response.statusCode == 200 }}}}"
        interval: PT0.1S
        stopAfter:
          - SUCCESS
        """,
        tasks,
        flow_id="http_trigger",
    )
    await asyncio.to_thread((flows / "http.yaml").write_text, source)

    daemon = await asyncio.to_thread(lambda: ServeProcess(tmp_path, flows, data).start())
    try:
        line = await asyncio.to_thread(daemon.wait_line, "(stopAfter); trigger disabled")
        execution_id = line.split("execution ", 1)[1].split(" ", 1)[0]
        done = await asyncio.to_thread(daemon.execution, execution_id)
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0
    assert done["state"]["current"] == "SUCCESS"
    assert done["trigger"]["variables"]["body"] == "Chuck Norris can poll a closed port."
    outputs = {t["taskId"]: t.get("outputs") for t in done["taskRunList"]}
    assert outputs["body"] == {"value": "Chuck Norris can poll a closed port."}
    polls = len(backend.seen)
    assert polls == 1

    again = await asyncio.to_thread(lambda: ServeProcess(tmp_path, flows, data).start())
    try:
        status, triggers = await asyncio.to_thread(
            again.request, "GET", "/api/v1/triggers/test/http_trigger"
        )
    finally:
        assert await asyncio.to_thread(again.stop) == 0
    assert status == 200, triggers
    [context] = [c for c in triggers["results"] if c["triggerId"] == "http"]
    assert context["disabled"] is True and context["stopAfter"] == ["SUCCESS"], context
    assert len(backend.seen) == polls


def test_kestra_s_common_trigger_properties_load_on_every_trigger() -> None:
    """AbstractTrigger's allowConcurrent, failOnTriggerError and logLevel (minLogLevel) are
    properties of every trigger (the Webhook's doc lists allowConcurrent); a level Kestra
    does not know is a load error."""
    common = "    allowConcurrent: true\n    failOnTriggerError: true\n    logLevel: WARN\n"
    source = (
        "id: common\nnamespace: test\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\ntriggers:\n"
        "  - id: hook\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n" + common
        + "  - id: daily\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '0 9 * * *'\n"
        "    minLogLevel: ERROR\n"
    )  # fmt: skip
    hook, daily = load_flow(source, "common.yaml").triggers
    assert (hook.allow_concurrent, hook.fail_on_trigger_error, hook.log_level) == (
        True,
        True,
        "WARN",
    )
    assert (daily.allow_concurrent, daily.fail_on_trigger_error, daily.log_level) == (
        False,
        False,
        "ERROR",
    )
    with pytest.raises(FlowError) as caught:
        load_flow(source.replace("logLevel: WARN", "logLevel: VERBOSE"), "common.yaml")
    assert "triggers[0].logLevel: Input should be 'TRACE', 'DEBUG', 'INFO', 'WARN' or 'ERROR'" in (
        str(caught.value)
    )
