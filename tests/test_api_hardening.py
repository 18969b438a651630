"""Small hostile requests of issue #13 (finding 10): each a clear 4xx, no key in any log.

Kestra answers a flow that breaks its constraints with 422 (ConstraintViolation, e.g.
FlowControllerTest's invalid flows) and a malformed request with 400; a webhook key is a
credential (WebhookController), so it must not reach a log line.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.engine import webhooks as webhooks_module
from daemon.engine.core import Engine
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.registry import default_plugins
from daemon.sdk.errors import FlowError
from daemon.store import open_store
from tests.api_helpers import call, flow_server, serving, yaml_body
from tests.cluster_helpers import fresh_database
from tests.daemon_process import ServeProcess
from tests.harness import Harness

KEY = "k3y-0f-th3-h00k"
HOOK_FLOW = f"""id: hook
namespace: test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: wh
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
"""
LOG_FLOW = """id: {id}
namespace: test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def _raw_request(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_webhook_key_stays_out_of_aiohttp_log_on_an_overlong_request_line(
    tmp_path: Path,
) -> None:
    """aiohttp's parser logs the start of the request line (key included) when it is over
    8190 bytes; that error never reaches a middleware, so the log itself masks keys."""
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "hook.yaml").write_text(HOOK_FLOW)
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        for prefix in ("/api/v1", "/api/v1/main"):  # Kestra's tenant form too
            path = f"{prefix}/executions/webhook/test/hook/{KEY}?pad=" + "a" * 9000
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            answer = _raw_request(daemon.port, request)
            assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
            daemon.wait_line(f"{prefix}/executions/webhook/test/hook/***")
        daemon.wait_line("Error handling request")
        status, _ = daemon.request("POST", f"/api/v1/executions/webhook/test/hook/{KEY}", b"{}")
        assert status == 200  # the daemon goes on serving
    finally:
        assert daemon.stop() == 0
    assert KEY not in daemon.output()


async def test_flow_id_and_namespace_beyond_kestras_limits_are_refused_not_500(
    h: Harness, tmp_path: Path
) -> None:
    """A 5,000-character id was a file name too long to write: a 500. Kestra caps a flow
    id at 100 characters and a namespace at 150; podium says so, as for any invalid flow."""
    async with flow_server(h, tmp_path / "flows") as server:
        for source, where in (
            (LOG_FLOW.format(id="f" * 5000), "id"),
            (LOG_FLOW.format(id="ok").replace("namespace: test", "namespace: " + "n" * 151), "ns"),
        ):
            status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(source))
            assert status == 422, doc
            assert "at most" in doc["message"], doc
            assert ("100" if where == "id" else "150") in doc["message"]
            status, doc, _ = await call(
                "POST", f"{server.url}/api/v1/flows/validate", **yaml_body(source)
            )
            assert status == 200 and doc[0]["constraints"], doc
        status, doc, _ = await call("POST", f"{server.url}/api/v1/executions/test/{'f' * 5000}")
        assert status == 404, doc
        status, doc, _ = await call(
            "POST", f"{server.url}/api/v1/flows", **yaml_body(LOG_FLOW.format(id="f" * 100))
        )
        assert status == 200, doc  # the limit itself is allowed


async def test_multipart_body_without_boundary_is_400_with_a_clear_message(h: Harness) -> None:
    await h.flow(LOG_FLOW.format(id="plain"))
    async with serving(h) as url:
        status, doc, _ = await call(
            "POST",
            f"{url}/api/v1/executions/test/plain",
            data=b"name=value",
            headers={"Content-Type": "multipart/form-data", "X-Requested-With": "test"},
        )
    assert status == 400, doc
    assert doc["message"] == (
        "Bad Request: a multipart/form-data body needs a boundary parameter in its "
        "Content-Type (multipart/form-data; boundary=...)"
    )


@pytest.fixture
async def pg_harness(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with fresh_database(postgres_dsn) as url:
        plugins = await asyncio.to_thread(default_plugins)
        store = open_store(url)
        await store.open()
        harness = Harness(Engine(tmp_path / "data", store, plugins=plugins), store)
        try:
            yield harness
        finally:
            await harness.close()


async def test_nul_in_a_label_is_400_on_postgresql(pg_harness: Harness) -> None:
    """PostgreSQL's jsonb cannot hold NUL: the API refuses such a label with a 400 naming
    it, instead of the store's 503 (ExecutionControllerTest's label checks)."""
    h = pg_harness
    await h.flow(LOG_FLOW.format(id="labelled"))
    async with serving(h) as url:
        create = f"{url}/api/v1/executions/test/labelled"
        status, doc, _ = await call("POST", create, params={"labels": "team:da\x00ta"})
        assert status == 400, doc
        assert doc["message"] == (
            "Bad Request: label 'team': labels cannot contain the NUL character (\\0)"
        )
        status, doc, _ = await call("POST", create, params={"labels": "te\x00am:data"})
        assert status == 400, doc
        status, doc, _ = await call(
            "GET", f"{url}/api/v1/executions/search", params={"labels": "team:da\x00ta"}
        )
        assert status == 400, doc
        status, created, _ = await call("POST", create, params={"labels": "team:data"})
        assert status == 200, created
        ended = await h.engine.wait(created["id"])
        assert ended.state.current.terminated
        status, doc, _ = await call(
            "POST",
            f"{url}/api/v1/executions/{created['id']}/labels",
            json=[{"key": "owner", "value": "a\x00b"}],
        )
        assert status == 400, doc
        assert "NUL" in doc["message"]
        status, doc, _ = await call("GET", f"{url}/api/v1/executions/{created['id']}")
        assert {"key": "team", "value": "data"} in doc["labels"]
        assert all(label["key"] != "owner" for label in doc["labels"])


async def _ok(request: Any) -> aiohttp.web.StreamResponse:
    return aiohttp.web.Response(text="ok")


async def _other(request: Any) -> aiohttp.web.StreamResponse:
    return aiohttp.web.Response(text="other")


def test_webhook_keys_are_compared_in_constant_time_with_every_key_of_the_flow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each candidate key is compared with hmac.compare_digest and no match stops the
    loop early, so timing tells nothing about which key, or how much of it, was right."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhooks_module.hmac, "compare_digest", spy)
    registry = WebhookRegistry()
    detach = registry.attach("ns", "flow", "first-key", _ok)
    registry.attach("ns", "flow", "second-key", _other)
    registry.attach("ns", "other", "first-key", _other)
    assert registry.find("ns", "flow", "first-key") is _ok
    assert sorted(a for a, _ in compared) == [b"first-key", b"second-key"]
    compared.clear()
    assert registry.find("ns", "flow", "second-key") is _other
    assert registry.find("ns", "flow", "first-ke") is None
    assert registry.find("ns", "flow", "first-key-longer") is None
    assert registry.find("ns", "flow", "ünïcode") is None
    assert len(compared) == 8  # two keys, four lookups
    with pytest.raises(ValueError, match="already attached"):
        registry.attach("ns", "flow", "second-key", _ok)
    detach()
    assert registry.find("ns", "flow", "first-key") is None
    assert registry.find("ns", "other", "first-key") is _other


async def test_nul_in_flow_labels_or_a_labels_task_is_a_clear_error_on_postgresql(
    pg_harness: Harness,
) -> None:
    """The other ways a label is made: a flow's `labels:` (refused at load, with its place)
    and the Labels task (its task run fails saying why; the execution is stored)."""
    h = pg_harness
    with pytest.raises(FlowError) as refused:
        await h.flow(
            LOG_FLOW.format(id="bad_labels").replace("tasks:", 'labels:\n  team: "a\\0b"\ntasks:')
        )
    assert "label 'team' contains the NUL character" in str(refused.value)
    ex = await h.run(
        """
        id: labels_task
        namespace: test
        inputs:
          - id: who
            type: STRING
        tasks:
          - id: tag
            type: io.kestra.plugin.core.execution.Labels
            labels:
              owner: "{{ inputs.who }}"
        """,
        {"who": "a\x00b"},
    )
    assert ex.state.current.value == "FAILED"
    stored = await h.stored(ex)
    assert "labels cannot contain the NUL character: 'owner'" in json.dumps(stored)
    assert all(label["key"] != "owner" for label in stored.get("labels") or [])


async def test_kv_namespace_and_key_beyond_their_limits_are_400_on_postgresql(
    pg_harness: Harness,
) -> None:
    """A 5,000-character KV namespace or key was taken as given (a namespace no flow can
    have; a key longer than any file name, or than an index entry PostgreSQL can keep for
    text that does not compress): both are a clear 400 (KVControllerTest's key checks)."""
    async with serving(pg_harness) as url:
        for path, message in (
            (f"/{'n' * 5000}/kv/key", "namespace is 5000 characters long; at most 150"),
            (f"/test/kv/{'k' * 5000}", "key is 5000 characters long; at most 255"),
        ):
            status, doc, _ = await call("PUT", f"{url}/api/v1/namespaces{path}", json="value")
            assert status == 400, doc
            assert message in doc["message"]
        status, _, _ = await call("PUT", f"{url}/api/v1/namespaces/test/kv/{'k' * 255}", json=1)
        assert status == 204
