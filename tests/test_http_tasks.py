"""HTTP Download and Request against a real aiohttp server on a free local port."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness

MIB = 1024 * 1024
BIG = 50 * MIB
BLOCK = bytes(range(256)) * 4096  # 1 MiB, allocated once, written 50 times
PRODUCTS = {"products": [{"id": 1, "brand": "Apple", "price": 10.5}]}


async def _products(request: web.Request) -> web.Response:
    return web.json_response(PRODUCTS, headers={"X-Total": "1"})


async def _named(request: web.Request) -> web.Response:
    return web.Response(
        body=b"a,b\n1,2\n",
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="../orders.csv"'},
    )


async def _big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Length": str(BIG), "Content-Type": "application/octet-stream"}
    )
    await response.prepare(request)
    for _ in range(BIG // MIB):
        await response.write(BLOCK)
    return response


async def _chunked(request: web.Request) -> web.StreamResponse:
    """50 MiB and one byte with no Content-Length: the size is unknown until the end."""
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(BIG // MIB):
        await response.write(BLOCK)
    await response.write(b"!")
    return response


async def _missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text="no such product")


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=200, body=b"")


async def _slow(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"first bytes")
    await asyncio.sleep(30)  # the client gives up long before; cancelled at cleanup
    return response


async def _echo(request: web.Request) -> web.Response:
    """What the server received, as JSON: method, headers, body or form fields."""
    seen: dict[str, Any] = {
        "method": request.method,
        "contentType": request.headers.get("Content-Type", ""),
        "authorization": request.headers.get("Authorization"),
        "custom": request.headers.get("X-Custom"),
    }
    if request.content_type == "multipart/form-data":
        fields = {}
        async for part in await request.multipart():
            data = await part.read()  # type: ignore[union-attr]
            fields[part.name] = {
                "filename": part.filename,  # type: ignore[union-attr]
                "content": data.decode(),
            }
        seen["multipart"] = fields
    elif request.content_type == "application/x-www-form-urlencoded":
        seen["form"] = dict(await request.post())
    else:
        seen["body"] = await request.text()
    return web.json_response(seen)


async def _latin1(request: web.Request) -> web.Response:
    return web.Response(body=b"caf\xe9", content_type="text/plain", charset="utf-8")


async def _large_text(request: web.Request) -> web.Response:
    return web.Response(text="x" * 2048)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/products", _products)
    app.router.add_get("/named", _named)
    app.router.add_get("/big", _big)
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/missing", _missing)
    app.router.add_post("/missing", _missing)
    app.router.add_get("/empty", _empty)
    app.router.add_get("/slow", _slow)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/latin1", _latin1)
    app.router.add_get("/large", _large_text)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def flow(*tasks: str) -> str:
    body = "\n".join(tasks)
    return f"id: f\nnamespace: ns\ntasks:\n{body}\n"


def task(task_id: str, kind: str, **props: Any) -> str:
    lines = [f"  - id: {task_id}", f"    type: io.kestra.plugin.core.http.{kind}"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in props.items()]
    return "\n".join(lines)


async def errors(h: Harness, ex: Execution) -> list[str]:
    return await h.logs(ex, "ERROR")


async def stored_bytes(h: Harness, uri: str) -> bytes:
    return await asyncio.to_thread((await h.engine.resources.storage.path(uri)).read_bytes)


# -- Download ----------------------------------------------------------------------------


async def test_download_stores_the_body_with_code_length_and_headers(
    h: Harness, server: str
) -> None:
    ex = await h.run(flow(task("dl", "Download", uri=f"{server}/products")))
    assert ex.state.current == State.SUCCESS
    out = ex.task_runs[0].outputs
    body = json.dumps(PRODUCTS).encode()
    assert out["code"] == 200
    assert out["length"] == len(body)
    assert out["headers"]["X-Total"] == ["1"]
    assert out["uri"].startswith("kestra:///ns/f/executions/")
    assert out["uri"].endswith("/products")
    assert await stored_bytes(h, out["uri"]) == body


async def test_download_names_the_file_from_content_disposition_without_its_path(
    h: Harness, server: str
) -> None:
    ex = await h.run(flow(task("dl", "Download", uri=f"{server}/named")))
    uri = ex.task_runs[0].outputs["uri"]
    assert uri.endswith("/orders.csv")
    assert await stored_bytes(h, uri) == b"a,b\n1,2\n"


async def test_download_of_50_mib_streams_to_storage_with_flat_memory(
    h: Harness, server: str
) -> None:
    """Python allocations while the task runs stay a few MiB for a 50 MiB body: it is never
    held in memory (the server side's 1 MiB writes are counted too)."""
    source = flow(task("dl", "Download", uri=f"{server}/big"))
    parsed = await h.flow(source)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        ex = await h.run(parsed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ex.state.current == State.SUCCESS
    assert peak - before < 8 * MIB
    out = ex.task_runs[0].outputs
    assert out["length"] == BIG
    path = await h.engine.resources.storage.path(out["uri"])
    digest = await asyncio.to_thread(lambda: hashlib.sha256(path.read_bytes()).hexdigest())
    assert digest == hashlib.sha256(BLOCK * (BIG // MIB)).hexdigest()
    progress = [m for m in await h.logs(ex) if m.startswith("downloaded ")]
    assert [m.split("(")[1].split("%")[0] for m in progress] == [str(p) for p in range(10, 101, 10)]
    assert progress[-1] == f"downloaded 50.0 MiB of 50.0 MiB (100%) from {server}/big"


async def test_download_of_unknown_length_logs_progress_every_50_mib(
    h: Harness, server: str
) -> None:
    ex = await h.run(flow(task("dl", "Download", uri=f"{server}/chunked")))
    assert ex.task_runs[0].outputs["length"] == BIG + 1
    assert [m for m in await h.logs(ex) if m.startswith("downloaded ")] == [
        f"downloaded 50.0 MiB from {server}/chunked"
    ]


async def test_download_save_as_names_the_stored_file(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(task("dl", "Download", uri=f"{server}/products", saveAs="../catalog.json"))
    )
    assert ex.task_runs[0].outputs["uri"].endswith("/catalog.json")


async def test_download_of_a_404_fails_with_the_status_and_the_body(
    h: Harness, server: str
) -> None:
    ex = await h.run(flow(task("dl", "Download", uri=f"{server}/missing")))
    assert ex.state.current == State.FAILED
    assert await errors(h, ex) == [
        f"GET {server}/missing failed with response code 404 and body:\nno such product"
    ]


async def test_download_with_allow_failed_stores_the_error_body(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(task("dl", "Download", uri=f"{server}/missing", options={"allowFailed": True}))
    )
    assert ex.state.current == State.SUCCESS
    out = ex.task_runs[0].outputs
    assert out["code"] == 404
    assert await stored_bytes(h, out["uri"]) == b"no such product"


async def test_download_refused_connection_names_the_url_without_credentials(h: Harness) -> None:
    port = closed_port()
    ex = await h.run(
        flow(task("dl", "Download", uri=f"http://scott:tiger@127.0.0.1:{port}/data.csv"))
    )
    assert ex.state.current == State.FAILED
    assert await errors(h, ex) == [
        f"cannot connect to http://127.0.0.1:{port}/data.csv: connection refused"
    ]
    assert "tiger" not in json.dumps(await h.stored(ex))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "ftp://example.com/file.csv",
            "invalid uri 'ftp://example.com/file.csv': expected an absolute http:// or "
            "https:// URL",
        ),
        (
            "products.json",
            "invalid uri 'products.json': expected an absolute http:// or https:// URL",
        ),
        ("http://[::1/x", "invalid uri 'http://[::1/x': Invalid IPv6 URL"),
    ],
)
async def test_download_of_a_malformed_uri_fails_before_connecting(
    h: Harness, uri: str, message: str
) -> None:
    ex = await h.run(flow(task("dl", "Download", uri=uri)))
    assert ex.state.current == State.FAILED
    assert await errors(h, ex) == [message]


async def test_download_of_an_empty_body_fails_unless_allowed(h: Harness, server: str) -> None:
    ex = await h.run(flow(task("dl", "Download", uri=f"{server}/empty")))
    assert await errors(h, ex) == [
        f"no content from {server}/empty: the response body is empty (failOnEmptyResponse is true)"
    ]
    ok = await h.run(flow(task("dl", "Download", uri=f"{server}/empty", failOnEmptyResponse=False)))
    assert ok.state.current == State.SUCCESS
    assert ok.task_runs[0].outputs["length"] == 0
    assert await h.logs(ok, "WARN") == [f"file '{server}/empty' is empty"]


async def test_download_gives_up_when_the_server_goes_quiet(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(
            task(
                "dl",
                "Download",
                uri=f"{server}/slow",
                options={"timeout": {"readIdleTimeout": "PT0.2S"}},
            )
        )
    )
    assert ex.state.current == State.FAILED
    assert await errors(h, ex) == [f"GET {server}/slow: no data received for PT0.2S"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"readTimout": "PT1S"}, "readTimout"),
        ({"defaultCharset": "klingon"}, "unknown charset 'klingon'"),
    ],
)
async def test_malformed_download_options_are_a_load_error(
    h: Harness, options: dict[str, str], message: str
) -> None:
    with pytest.raises(FlowError, match=message):
        await h.flow(flow(task("dl", "Download", uri="http://example.com/x", options=options)))


# -- Request -----------------------------------------------------------------------------


async def test_request_posts_a_json_body_and_returns_code_headers_and_text(
    h: Harness, server: str
) -> None:
    ex = await h.run(
        flow(
            task(
                "req",
                "Request",
                uri=f"{server}/echo",
                method="POST",
                body='{"title": "Kestra Pen"}',
                headers={"X-Custom": 7},
            )
        )
    )
    assert ex.state.current == State.SUCCESS
    out = ex.task_runs[0].outputs
    assert out["code"] == 200
    assert out["uri"] == f"{server}/echo"
    assert out["headers"]["Content-Type"] == ["application/json; charset=utf-8"]
    assert json.loads(out["body"]) == {
        "method": "POST",
        "contentType": "application/json",
        "authorization": None,
        "custom": "7",
        "body": '{"title": "Kestra Pen"}',
    }


async def test_request_sends_form_data_url_encoded(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(
            task(
                "req",
                "Request",
                uri=f"{server}/echo",
                method="POST",
                formData={"user": "Ada", "age": 36},
            )
        )
    )
    seen = json.loads(ex.task_runs[0].outputs["body"])
    assert seen["form"] == {"user": "Ada", "age": "36"}


async def test_request_uploads_a_stored_file_as_multipart(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(
            task("dl", "Download", uri=f"{server}/named"),
            task(
                "up",
                "Request",
                uri=f"{server}/echo",
                method="POST",
                contentType="multipart/form-data",
                formData={
                    "file": "{{ outputs.dl.uri }}",
                    "renamed": {"name": "mine.csv", "content": "{{ outputs.dl.uri }}"},
                    "note": "hello",
                },
            ),
        )
    )
    assert ex.state.current == State.SUCCESS
    seen = json.loads(ex.task_runs[1].outputs["body"])
    assert seen["multipart"] == {
        "file": {"filename": "orders.csv", "content": "a,b\n1,2\n"},
        "renamed": {"filename": "mine.csv", "content": "a,b\n1,2\n"},
        "note": {"filename": None, "content": "hello"},
    }


async def test_request_of_a_404_fails_unless_allow_failed(h: Harness, server: str) -> None:
    ex = await h.run(flow(task("req", "Request", uri=f"{server}/missing", method="POST")))
    assert await errors(h, ex) == [
        f"POST {server}/missing failed with response code 404 and body:\nno such product"
    ]
    ok = await h.run(flow(task("req", "Request", uri=f"{server}/missing", allowFailed=True)))
    assert ok.state.current == State.SUCCESS
    assert ok.task_runs[0].outputs["code"] == 404
    assert ok.task_runs[0].outputs["body"] == "no such product"


async def test_request_only_accepts_listed_response_codes_and_cuts_the_body(
    h: Harness, server: str
) -> None:
    ex = await h.run(
        flow(task("req", "Request", uri=f"{server}/large", options={"allowedResponseCodes": [201]}))
    )
    assert ex.state.current == State.FAILED
    assert await errors(h, ex) == [
        f"GET {server}/large failed with response code 200 and body:\n" + "x" * 1024 + "…"
    ]


async def test_request_sends_basic_bearer_and_url_credentials(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(
            task(
                "basic",
                "Request",
                uri=f"{server}/echo",
                options={"auth": {"type": "BASIC", "username": "ada", "password": "pw"}},
            ),
            task(
                "bearer",
                "Request",
                uri=f"{server}/echo",
                options={"auth": {"type": "BEARER", "token": "t0k"}},
            ),
            task("in_url", "Request", uri=server.replace("//", "//bob:pw2@") + "/echo"),
        )
    )
    basic, bearer, in_url = (json.loads(tr.outputs["body"]) for tr in ex.task_runs)
    assert basic["authorization"] == "Basic " + base64.b64encode(b"ada:pw").decode()
    assert bearer["authorization"] == "Bearer t0k"
    assert in_url["authorization"] == "Basic " + base64.b64encode(b"bob:pw2").decode()
    assert ex.task_runs[2].outputs["uri"] == f"{server}/echo"


async def test_request_body_over_max_content_length_fails(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(task("req", "Request", uri=f"{server}/large", options={"maxContentLength": 1024}))
    )
    assert await errors(h, ex) == [
        f"the response of {server}/large is larger than 1024 bytes (options.maxContentLength);"
        " use io.kestra.plugin.core.http.Download for large bodies"
    ]


async def test_request_of_a_body_that_is_not_its_charset_fails(h: Harness, server: str) -> None:
    ex = await h.run(flow(task("req", "Request", uri=f"{server}/latin1")))
    assert await errors(h, ex) == [
        f"the response body of {server}/latin1 is not utf-8 text; use "
        "io.kestra.plugin.core.http.Download for binary content"
    ]


async def test_request_refused_connection_is_one_clear_line(h: Harness) -> None:
    port = closed_port()
    ex = await h.run(flow(task("req", "Request", uri=f"http://127.0.0.1:{port}/api")))
    assert await errors(h, ex) == [
        f"cannot connect to http://127.0.0.1:{port}/api: connection refused"
    ]


async def test_secret_sent_by_request_is_masked_in_stored_logs(
    h: Harness, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(b"s3cr3t-t0k3n").decode())
    ex = await h.run(
        flow(
            task(
                "req",
                "Request",
                uri=f"{server}/echo",
                headers={"Authorization": "Bearer {{ secret('API_TOKEN') }}"},
            ),
            "  - id: show\n    type: io.kestra.plugin.core.log.Log\n"
            '    message: "{{ outputs.req.body }}"',
        )
    )
    assert ex.state.current == State.SUCCESS
    assert json.loads(ex.task_runs[0].outputs["body"])["authorization"] == "Bearer s3cr3t-t0k3n"
    [line] = await h.logs(ex)
    assert json.loads(line)["authorization"] == "Bearer ******"


async def test_secret_in_a_failing_url_is_masked_in_the_error(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_API_KEY", base64.b64encode(b"k3y-v4lue").decode())
    port = closed_port()
    ex = await h.run(
        flow(
            task("dl", "Download", uri=f"http://127.0.0.1:{port}/x?key={{{{ secret('API_KEY') }}}}")
        )
    )
    assert await errors(h, ex) == [
        f"cannot connect to http://127.0.0.1:{port}/x?key=******: connection refused"
    ]
    assert "k3y-v4lue" not in json.dumps(await h.stored(ex))


# -- Property<Boolean> flags given as expressions ------------------------------------------


async def test_allow_failed_and_fail_on_empty_response_may_be_expressions(
    h: Harness, server: str
) -> None:
    """Request's deprecated top-level `allowFailed` and Download's `failOnEmptyResponse` are
    Property<Boolean> in Kestra (AbstractHttp, Download.java): rendered when the task runs."""
    ok = await h.run(
        flow(task("req", "Request", uri=f"{server}/missing", allowFailed="{{ 1 == 1 }}"))
    )
    assert ok.state.current == State.SUCCESS, ok.error
    assert ok.task_runs[0].outputs["code"] == 404
    empty = await h.run(
        flow(task("dl", "Download", uri=f"{server}/empty", failOnEmptyResponse="{{ false }}"))
    )
    assert empty.state.current == State.SUCCESS, empty.error


async def test_a_flag_rendering_no_boolean_fails_the_task(h: Harness, server: str) -> None:
    ex = await h.run(
        flow(task("dl", "Download", uri=f"{server}/empty", failOnEmptyResponse="{{ 'perhaps' }}"))
    )
    assert ex.state.current == State.FAILED
    assert "invalid property after rendering: failOnEmptyResponse" in (ex.error or ""), ex.error
