"""The HTTP API on a real port: executions, logs, health, basic auth, errors, Kestra's client."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from daemon.api.middleware import loggable_path
from daemon.config.settings import BasicAuth, Settings
from daemon.engine.webhooks import WebhookRegistry
from tests.api_helpers import basic, call, form, serving
from tests.harness import Harness

GREET = """
id: greet
namespace: ns
inputs:
  - id: name
    type: STRING
  - id: n
    type: INT
    defaults: 1
  - id: f
    type: FILE
    required: false
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }} x{{ inputs.n }}"
  - id: file
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.f is not null ? read(inputs.f) : 'no file' }}"
"""

USER, PASSWORD = "ada", "s3cret:with colon"


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    await h.flow(GREET)
    async with serving(h) as url:
        yield url


# -- creating executions --------------------------------------------------------------------


async def test_create_execution_with_multipart_inputs_reads_the_uploaded_file(
    h: Harness, api: str
) -> None:
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/greet?wait=true&labels=team:data&labels=env:dev",
        data=form(name="Ada", n=3, f=("notes.txt", b"uploaded contents")),
    )
    assert status == 200, doc
    assert (doc["namespace"], doc["flowId"], doc["state"]["current"]) == ("ns", "greet", "SUCCESS")
    assert [s["state"] for s in doc["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    assert doc["inputs"]["name"] == "Ada" and doc["inputs"]["n"] == 3
    assert re.fullmatch(
        r"kestra:///ns/greet/executions/\w+/inputs/f/notes\.txt", doc["inputs"]["f"]
    )
    assert {"key": "team", "value": "data"} in doc["labels"]
    assert {"key": "env", "value": "dev"} in doc["labels"]
    assert [t["taskId"] for t in doc["taskRunList"]] == ["hello", "file"]
    messages = [line["message"] for line in await h.store.logs(doc["id"])]
    assert messages == ["Hello, Ada x3", "uploaded contents"]


async def test_uploads_are_removed_once_the_execution_is_stored(h: Harness, api: str) -> None:
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/greet?wait=true",
        data=form(name="Ada", f=("a.txt", b"x")),
    )
    assert status == 200, doc
    uploads = h.engine.data_dir / "uploads"
    assert await asyncio.to_thread(lambda: list(uploads.iterdir())) == []


async def test_create_execution_without_wait_answers_the_stored_execution(
    h: Harness, api: str
) -> None:
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/greet", json={"name": "Bob"})
    assert status == 200, doc
    assert doc["state"]["current"] in ("CREATED", "RUNNING")
    assert await h.store.get_execution(doc["id"]) is not None
    ended = await h.engine.wait(doc["id"])
    assert ended.state.current == "SUCCESS"


async def test_urlencoded_inputs_are_accepted(h: Harness, api: str) -> None:
    status, doc, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet?wait=true", data={"name": "Cy", "n": "2"}
    )
    assert status == 200, doc
    assert (doc["inputs"]["name"], doc["inputs"]["n"]) == ("Cy", 2)


async def test_bad_inputs_are_422_with_every_message(api: str) -> None:
    status, doc, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet", data=form(n="abc", zzz="1")
    )
    assert status == 422
    messages = [  # an undeclared input is no error: Kestra logs it and drops it
        "input 'name' is required",
        "input 'n': 'abc' is not an INT",
    ]
    assert doc == {
        "message": "Invalid entity: " + "; ".join(messages),
        "_embedded": {"errors": [{"message": m} for m in messages]},
    }


async def test_file_input_given_as_a_server_path_is_refused(h: Harness, api: str) -> None:
    secret = h.engine.data_dir / "secret.txt"
    await asyncio.to_thread(secret.write_text, "do not leak")
    status, doc, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet", data=form(name="Eve", f=str(secret))
    )
    assert status == 422
    assert doc["message"] == (
        "Invalid entity: input 'f': a FILE input takes a file part or a "
        "kestra:// URI, not a path on the server"
    )


async def test_unknown_flow_is_404(api: str) -> None:
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/nope", json={})
    assert (status, doc) == (404, {"message": "Not Found: flow ns.nope not found"})


async def test_disabled_flow_is_409_as_kestra(h: Harness, api: str) -> None:
    await h.flow(GREET.replace("id: greet", "id: off") + "disabled: true\n")
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/off", json={"name": "x"})
    assert (status, doc) == (409, {"message": "Illegal state: flow ns.off is disabled"})


async def test_malformed_json_body_is_400_naming_the_problem(api: str) -> None:
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/greet",
        data=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    assert (status, doc) == (
        400,
        {
            "message": "Bad Request: the body is not valid JSON: "
            "Expecting value: line 1 column 10 (char 9)"
        },
    )


async def test_json_body_that_is_not_utf8_is_400(api: str) -> None:
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/greet",
        data=b'{"name": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert doc["message"].startswith("Bad Request: the body is not valid JSON: 'utf-8' codec")


async def test_json_body_that_is_not_an_object_is_400(api: str) -> None:
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/greet", json=["Ada"])
    assert (status, doc) == (
        400,
        {"message": "Bad Request: the JSON body must be an object of inputs, not an array"},
    )


async def test_malformed_label_is_400(api: str) -> None:
    status, doc, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet?labels=nocolon", json={"name": "x"}
    )
    assert (status, doc) == (400, {"message": "Bad Request: label 'nocolon' is not key:value"})


async def test_body_over_the_limit_is_413(h: Harness) -> None:
    await h.flow(GREET)
    async with serving(h, Settings(data_dir=h.engine.data_dir, webhook_max_body=64)) as url:
        status, doc, _ = await call(
            "POST", f"{url}/api/v1/executions/ns/greet", data=form(name="A" * 100)
        )
        assert (status, doc) == (
            413,
            {"message": "Request Entity Too Large: the request body is larger than 64 bytes"},
        )
        status, doc, _ = await call(
            "POST", f"{url}/api/v1/executions/ns/greet", json={"name": "Ada"}
        )
        assert status == 200, doc


async def test_streamed_upload_over_the_limit_is_413(h: Harness) -> None:
    """No Content-Length to refuse up front: the limit holds while the parts are read."""
    await h.flow(GREET)

    async def chunks() -> AsyncIterator[bytes]:
        yield (
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="big.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
        )
        for _ in range(8):
            yield b"x" * 100
        yield b"\r\n--b--\r\n"

    async with serving(h, Settings(data_dir=h.engine.data_dir, webhook_max_body=500)) as url:
        status, doc, _ = await call(
            "POST",
            f"{url}/api/v1/executions/ns/greet",
            data=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
    assert status == 413, doc


# -- reading executions and logs ------------------------------------------------------------


async def test_get_execution_answers_the_stored_document(h: Harness, api: str) -> None:
    _, created, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet?wait=true", json={"name": "Ada"}
    )
    status, doc, _ = await call("GET", f"{api}/api/v1/executions/{created['id']}")
    assert status == 200
    assert doc["id"] == created["id"]
    assert doc["state"]["current"] == "SUCCESS"
    assert [t["state"]["current"] for t in doc["taskRunList"]] == ["SUCCESS", "SUCCESS"]


async def test_unknown_execution_is_404(api: str) -> None:
    status, doc, _ = await call("GET", f"{api}/api/v1/executions/missing")
    assert (status, doc) == (404, {"message": "Not Found: execution missing not found"})
    status, doc, _ = await call("GET", f"{api}/api/v1/logs/missing/download")
    assert (status, doc) == (404, {"message": "Not Found: execution missing not found"})


async def test_logs_download_has_one_timestamp_level_message_line_per_log(
    h: Harness, api: str
) -> None:
    _, created, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet?wait=true", json={"name": "Ada"}
    )
    status, text, resp = await call("GET", f"{api}/api/v1/logs/{created['id']}/download")
    assert status == 200
    assert resp.content_type == "text/plain"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{created["id"]}.log"'
    stored = await h.store.logs(created["id"])
    assert text == "\n".join(f"{line['timestamp']} INFO {line['message']}" for line in stored)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z INFO Hello, Ada x1", text.splitlines()[0])


async def test_logs_list_is_json_and_filters_by_task(api: str) -> None:
    _, created, _ = await call(
        "POST", f"{api}/api/v1/executions/ns/greet?wait=true", json={"name": "Ada"}
    )
    status, lines, _ = await call("GET", f"{api}/api/v1/logs/{created['id']}?taskId=file")
    assert status == 200
    assert [(line["taskId"], line["message"]) for line in lines] == [("file", "no file")]
    status, doc, _ = await call("GET", f"{api}/api/v1/logs/{created['id']}?minLevel=LOUD")
    assert (status, doc) == (
        400,
        {"message": "Bad Request: minLevel 'LOUD' is not one of TRACE, DEBUG, INFO, WARN, ERROR"},
    )


# -- health, auth, errors -------------------------------------------------------------------


async def test_health_is_up_with_version_and_running_executions(api: str) -> None:
    status, doc, _ = await call("GET", f"{api}/health")
    assert status == 200
    assert doc["status"] == "UP" and doc["name"] == "podium"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", doc["version"])
    assert (doc["runningExecutions"], doc["flows"]) == (0, 1)


async def test_health_is_503_until_the_flows_are_loaded(h: Harness) -> None:
    loaded = False
    async with serving(h, ready=lambda: loaded) as url:
        status, doc, _ = await call("GET", f"{url}/health")
        assert (status, doc["status"]) == (503, "DOWN")
        loaded = True
        status, doc, _ = await call("GET", f"{url}/health")
        assert (status, doc["status"]) == (200, "UP")


async def test_basic_auth_guards_everything_but_health_and_webhooks(h: Harness) -> None:
    await h.flow(GREET)
    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username=USER, password=PASSWORD)
    )
    async with serving(h, settings) as url:
        create = f"{url}/api/v1/executions/ns/greet"
        status, doc, resp = await call("POST", create, json={"name": "x"})
        assert (status, doc) == (401, {"message": "Unauthorized"})
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="podium"'
        status, _, _ = await call("POST", create, json={"name": "x"}, headers=basic(USER, "wrong"))
        assert status == 401
        status, _, _ = await call(
            "POST", create, json={"name": "x"}, headers=basic("eve", PASSWORD)
        )
        assert status == 401
        status, _, _ = await call(
            "POST", create, json={"name": "x"}, headers={"Authorization": "Basic !!not base64"}
        )
        assert status == 401
        status, doc, _ = await call(
            "POST", create, json={"name": "x"}, headers=basic(USER, PASSWORD)
        )
        assert status == 200, doc
        status, _, _ = await call("GET", f"{url}/api/v1/nothing-here")
        assert status == 401  # unknown paths do not tell strangers what exists
        status, _, _ = await call("GET", f"{url}/health")
        assert status == 200
        status, doc, _ = await call("POST", f"{url}/api/v1/executions/webhook/ns/greet/k")
        assert (status, doc) == (404, {"message": "Not Found: webhook not found"})


async def test_unexpected_error_is_500_json_and_logged_with_traceback(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    webhooks = WebhookRegistry()

    async def broken(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("boom")

    webhooks.attach("ns", "f", "topsecret", broken)
    async with serving(h, webhooks=webhooks) as url:
        with caplog.at_level(logging.INFO, logger="daemon.api"):
            status, doc, _ = await call("POST", f"{url}/api/v1/executions/webhook/ns/f/topsecret")
    assert (status, doc) == (500, {"message": "Internal server error"})
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert failure.getMessage() == "POST /api/v1/executions/webhook/ns/f/*** failed"
    assert failure.exc_info is not None and "boom" in str(failure.exc_info[1])
    assert "topsecret" not in caplog.text


async def test_access_log_has_one_line_per_request_with_the_key_masked(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(h) as url:
        with caplog.at_level(logging.INFO, logger="daemon.api"):
            await call("PUT", f"{url}/api/v1/executions/webhook/ns/f/topsecret?x=1")
            await call("GET", f"{url}/api/v1/executions/nope")
    lines = [r.getMessage() for r in caplog.records if r.name == "daemon.api.access"]
    assert len(lines) == 2
    assert re.fullmatch(r"PUT /api/v1/executions/webhook/ns/f/\*\*\* 404 [\d.]+ms", lines[0])
    assert re.fullmatch(r"GET /api/v1/executions/nope 404 [\d.]+ms", lines[1])
    assert "topsecret" not in caplog.text


def test_loggable_path_masks_everything_after_the_flow_id() -> None:
    prefix = "/api/v1/executions/webhook"
    assert loggable_path(f"{prefix}/ns/f/key") == f"{prefix}/ns/f/***"
    assert loggable_path(f"{prefix}/ns/f/key/more") == f"{prefix}/ns/f/***"
    assert loggable_path(f"{prefix}/ns") == f"{prefix}/ns"
    assert loggable_path("/api/v1/executions/ns/f") == "/api/v1/executions/ns/f"


# -- Kestra's own Python client -------------------------------------------------------------


async def test_kestra_python_client_runs_a_flow_and_reads_its_logs(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `kestra` package's Flow client, as a Kestra user runs it, against podium."""
    from kestra import Flow  # type: ignore[import-untyped]

    await h.flow(GREET)
    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username=USER, password=PASSWORD)
    )
    async with serving(h, settings) as url:
        monkeypatch.setenv("KESTRA_HOSTNAME", url)
        monkeypatch.setenv("KESTRA_USER", USER)

        def run_client() -> Any:
            client = Flow(poll_interval=0.05)
            # kestra 2.0.0 documents KESTRA_PASSWORD but never reads it: set it as its docs show.
            client.password = PASSWORD
            return client.execute("ns", "greet", {"name": "Grace", "n": 7})

        result = await asyncio.to_thread(run_client)
    assert result.status == "SUCCESS"
    assert result.error is None
    lines = result.log.splitlines()
    assert [line.split(" ", 2)[1:] for line in lines] == [
        ["INFO", "Hello, Grace x7"],
        ["INFO", "no file"],
    ]
