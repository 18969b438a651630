"""Cross-site request forgery (issue #13, finding 6), with a real Chromium.

A page served by another local HTTP server (another origin) auto-submits forms and sends
a no-cors text/plain fetch at podium while the browser holds the operator's Basic
credentials: nothing is created. Webhooks stay callable from anywhere (Kestra's
WebhookController), podium's own UI still runs flows, and API clients (curl, as in
Kestra's API docs; the `kestra` package's Flow client in test_api.py) keep working.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import Browser, Page, Response, expect

from tests.blocking import watching
from tests.services import Chromium
from tests.ui_helpers import DESKTOP, PASSWORD, USER, Console, UiServer, browser, new_page

TARGET = """\
id: target
namespace: csrf
inputs:
  - id: x
    type: STRING
    defaults: none
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "ran with {{ inputs.x }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: public-hook-key
"""
CREATE = "/api/v1/executions/csrf/target"
HOOK = "/api/v1/executions/webhook/csrf/target/public-hook-key"


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("csrf")
    (root / "flows").mkdir()
    (root / "flows" / "target.yaml").write_text(TARGET)
    with UiServer(root) as running:
        yield running


@pytest.fixture(scope="module")
def chrome(chromium: Chromium) -> Iterator[Browser]:
    with browser(chromium) as launched:
        yield launched


def _form(action: str, enctype: str) -> str:
    return (
        f'<form id="f" method="POST" action="{action}" enctype="{enctype}">'
        '<input name="x" value="forged"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )


def _fetches(podium: str) -> str:
    """Requests a page may send to another origin without a preflight: text/plain and
    untyped bodies, empty or not, credentials included."""
    calls = [
        '{method: "POST", headers: {"Content-Type": "text/plain"}, body: ""}',
        '{method: "POST", headers: {"Content-Type": "text/plain"}, body: "x=forged"}',
        '{method: "POST"}',
        '{method: "POST", body: new Blob(["x=forged"])}',
    ]
    sends = ", ".join(
        f'fetch("{podium}{CREATE}", Object.assign({c}, {{mode: "no-cors", '
        'credentials: "include"}))'
        for c in calls
    )
    return (
        f'<script>Promise.allSettled([{sends}]).then(() => {{ document.title = "sent"; }})</script>'
    )


class Attacker:
    """Another site: a plain HTTP server on its own port, serving the forging pages."""

    def __init__(self, pages: dict[str, str]) -> None:
        body_of = {
            path: f"<!doctype html><html><body>{html}</body></html>".encode()
            for path, html in pages.items()
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = body_of.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Attacker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _executions(server: UiServer) -> list[dict[str, Any]]:
    assert server.harness is not None
    found, _ = server.run(
        server.harness.engine.store.search_executions(namespace="csrf", flow_id="target")
    )
    return found


def _answers_from_podium(page: Page, server: UiServer) -> list[Response]:
    seen: list[Response] = []
    page.on("response", lambda r: seen.append(r) if r.url.startswith(server.url) else None)
    return seen


def test_pages_on_another_origin_cannot_start_executions_with_cached_credentials(
    server: UiServer, chrome: Browser
) -> None:
    before = len(_executions(server))
    pages = {
        "/multipart": _form(server.url + CREATE, "multipart/form-data"),
        "/text": _form(server.url + CREATE, "text/plain"),
        "/urlencoded": _form(server.url + CREATE, "application/x-www-form-urlencoded"),
        "/fetch": _fetches(server.url),
        "/hook": _form(server.url + HOOK, "multipart/form-data"),
    }
    with Attacker(pages) as evil:
        page = new_page(chrome, Console(), DESKTOP)
        page.goto(f"{server.url}/ui/flows")  # the operator signed in: credentials cached
        expect(page.locator('tr[data-flow="csrf/target"]')).to_be_visible()
        seen = _answers_from_podium(page, server)
        for path in ("/multipart", "/text", "/urlencoded"):
            with page.expect_response(server.url + CREATE) as answer:
                page.goto(evil.url + path)
            assert answer.value.status == 403, path
            assert "Forbidden: a same-site request (Sec-Fetch-Site)" in answer.value.text()
        page.goto(evil.url + "/fetch")
        expect(page).to_have_title("sent")
        forged = [r for r in seen if r.url == server.url + CREATE]
        assert len(forged) == 7 and {r.status for r in forged} == {403}
        assert _executions(server)[before:] == [] and len(_executions(server)) == before
        # The same page may call a webhook: it is public by design, its key its credential.
        with page.expect_response(server.url + HOOK) as answer:
            page.goto(evil.url + "/hook")
        assert answer.value.status == 200
    executions = _executions(server)
    assert len(executions) == before + 1
    assert executions[0]["trigger"]["type"] == "io.kestra.plugin.core.trigger.Webhook"


def test_podiums_own_ui_still_runs_the_flow(server: UiServer, chrome: Browser) -> None:
    before = len(_executions(server))
    page = new_page(chrome, Console(), DESKTOP)
    page.goto(f"{server.url}/ui/flows/csrf/target")
    page.get_by_role("button", name="Execute").click()
    dialog = page.locator("#run-dialog")
    dialog.locator("#input-x").fill("from the ui")
    dialog.get_by_role("button", name="Execute").click()
    page.wait_for_url(f"{server.url}/ui/executions/*")
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS", timeout=30_000)
    executions = _executions(server)
    assert len(executions) == before + 1
    assert executions[0]["inputs"] == {"x": "from the ui"}


def _curl(server: UiServer, method: str, path: str, *args: str) -> int:
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", f"{USER}:{PASSWORD}"]
        + ["-X", method, *args, server.url + path],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


def test_api_clients_keep_working_and_forged_headers_are_refused(server: UiServer) -> None:
    """curl as Kestra's API docs use it (multipart inputs, an empty POST, a text/plain KV
    value as kestrapy sends it); what only a browser sends is checked."""
    kv = "/api/v1/namespaces/csrf/kv/greeting"
    text = ("-H", "Content-Type: text/plain", "--data-binary", "hello")
    assert _curl(server, "POST", CREATE, "-F", "x=curl") == 200
    assert _curl(server, "POST", CREATE) == 200
    assert _curl(server, "PUT", kv, *text) == 204
    assert _curl(server, "POST", CREATE, "-H", f"Origin: {server.url}", "-F", "x=same") == 200
    assert _curl(server, "POST", CREATE, "-H", "Origin: http://evil.example", "-F", "x=1") == 403
    assert _curl(server, "POST", CREATE, "-H", "Origin: null") == 403
    assert (
        _curl(
            server,
            "POST",
            CREATE,
            "-H",
            "Sec-Fetch-Site: cross-site",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "{}",
        )
        == 403
    )
    browser_ua = ("-A", "Mozilla/5.0 (X11; Linux x86_64) an old browser")
    assert _curl(server, "PUT", kv, *browser_ua, *text) == 403
    assert _curl(server, "PUT", kv, *browser_ua, *text, "-H", "X-Requested-With: x") == 204
    assert _curl(server, "DELETE", kv, "-H", "Origin: http://evil.example") == 403
    assert _curl(server, "POST", HOOK, "-H", "Origin: http://evil.example") == 200
    tenant = "/api/v1/main/" + CREATE.removeprefix("/api/v1/")  # Kestra 1.x's tenant paths
    assert _curl(server, "POST", tenant, "-H", "Origin: http://evil.example") == 403
    assert _curl(server, "POST", tenant, "-F", "x=tenant") == 200
    tenant_hook = "/api/v1/main/" + HOOK.removeprefix("/api/v1/")
    assert _curl(server, "POST", tenant_hook, "-H", "Origin: http://evil.example") == 200
