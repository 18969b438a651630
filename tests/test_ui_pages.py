"""The pages a Kestra user expects beside flows and executions, in Chromium at desktop and
phone widths, with no console error: the dashboard (Kestra's Dashboard: executions over
time by state, success ratio, durations, failures), Logs, Triggers, KV Store, Namespaces,
plug-in documentation, and the HTML 404."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import Browser, expect

from tests.blocking import watching
from tests.services import Chromium
from tests.ui_helpers import (
    DESKTOP,
    PASSWORD,
    PHONE,
    USER,
    Console,
    Screens,
    UiServer,
    browser,
    new_page,
)

GOOD = """\
id: good
namespace: shop.sales
labels:
  team: sales
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 1 * * *"
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3tkey12345
tasks:
  - id: load
    type: io.kestra.plugin.core.log.Log
    message: "Loading orders for {{ execution.id }}"
  - id: store
    type: io.kestra.plugin.core.kv.Set
    key: last_run
    value: "{{ execution.id }}"
"""

BAD = """\
id: bad
namespace: shop.ops
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: the warehouse is closed
"""


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui-pages")
    (root / "flows").mkdir()
    (root / "flows" / "good.yaml").write_text(GOOD)
    (root / "flows" / "bad.yaml").write_text(BAD)
    with UiServer(root) as running:
        assert running.harness is not None
        engine = running.harness.engine
        for flow_id in ("good", "good", "bad"):
            namespace = "shop.sales" if flow_id == "good" else "shop.ops"
            done = running.run(engine.submit_by_id(namespace, flow_id))
            running.run(engine.wait(done.id))
        yield running


@pytest.fixture(scope="module")
def chrome(chromium: Chromium) -> Iterator[Browser]:
    with browser(chromium) as launched:
        yield launched


def test_dashboard_charts_executions_by_state_and_lists_the_failures(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.goto(server.url + "/")
    page.wait_for_url(f"{server.url}/ui/dashboard")
    expect(page.locator('[data-card="total"] .value')).to_have_text("3")
    expect(page.locator('[data-card="ratio"] .value')).to_have_text("67%")
    expect(page.locator('[data-card="failed"] .value')).to_have_text("1")
    expect(page.locator('[data-card="running"] .value')).to_have_text("0")
    expect(page.locator("#failures tr")).to_have_count(1)
    expect(page.locator("#failures")).to_contain_text("shop.ops.bad")
    # Chart.js drew on its canvases (a blank canvas has no pixel set)
    for chart in ("chart-states", "chart-ratio", "chart-durations"):
        drawn = page.evaluate(
            """id => { const c = document.getElementById(id);
                 const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 return data.some(v => v !== 0); }""",
            chart,
        )
        assert drawn, chart
    screens.shoot(page, "dashboard")
    page.get_by_role("button", name="Last 24 hours").click()
    expect(page.get_by_role("button", name="Last 24 hours")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert page.url.endswith("/ui/dashboard?range=24h")
    expect(page.locator('[data-card="total"] .value')).to_have_text("3")
    page.reload()
    expect(page.get_by_role("button", name="Last 24 hours")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert console.unexpected() == []


def test_logs_page_searches_every_execution_by_text_level_and_flow(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.goto(server.url + "/ui/logs")
    form = page.locator("#log-filters")
    form.get_by_label("Text").fill("orders")
    form.get_by_role("button", name="Search").click()
    results = page.locator("#log-results .log")
    expect(results).to_have_count(2)
    expect(results.first.locator("mark")).to_have_text("orders")
    expect(results.first.locator(".ts")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
    )
    assert "q=orders" in page.url
    screens.shoot(page, "logs-page")
    form.get_by_label("Text").fill("")
    form.get_by_label("Level").select_option("ERROR")
    form.get_by_role("button", name="Search").click()
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("the warehouse is closed")
    form.get_by_label("Level").select_option("INFO")
    form.get_by_label("Flow").fill("good")
    form.get_by_role("button", name="Search").click()
    expect(page.locator("#log-total")).to_contain_text("2 lines")
    # the URL brings the same search back
    page.reload()
    expect(form.get_by_label("Flow")).to_have_value("good")
    expect(page.locator("#log-total")).to_contain_text("2 lines")
    results.first.locator("a.task").click()
    page.wait_for_url("**/ui/executions/*#logs")
    assert console.unexpected() == []


def test_triggers_page_lists_every_trigger_and_copies_the_webhook_url(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(server.url + "/ui/triggers")
    nightly = page.locator('tr[data-trigger="nightly"]')
    expect(nightly).to_contain_text("shop.sales.good")
    expect(nightly).to_contain_text("Schedule")
    hook = page.locator('tr[data-trigger="hook"]')
    hook.get_by_role("button", name="Copy URL").click()
    expect(page.locator("#toast")).to_have_text("Webhook URL copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{server.url}/api/v1/executions/webhook/shop.sales/good/s3cr3tkey12345"
    screens.shoot(page, "triggers-page")
    nightly.get_by_role("button", name="Disable").click()
    expect(nightly).to_contain_text("disabled")
    nightly.get_by_role("button", name="Enable").click()
    expect(nightly.get_by_role("button", name="Disable")).to_be_visible()
    page.locator("#trigger-filter").fill("hook")
    expect(page.locator("table.triggers tbody tr")).to_have_count(1)
    assert console.unexpected() == []


def test_kv_page_adds_edits_and_deletes_a_value_with_an_expiry(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.goto(server.url + "/ui/kv?namespace=shop.sales")
    expect(page.locator('tr[data-key="last_run"]')).to_be_visible()  # set by the flow
    page.get_by_role("button", name="Add a key").click()
    dialog = page.locator("#kv-dialog")
    dialog.get_by_label("Key").fill("limits")
    dialog.get_by_label("Value").fill('{"max": 3}')
    dialog.get_by_label("Expires after").fill("PT1H")
    dialog.get_by_role("button", name="Save").click()
    row = page.locator('tr[data-key="limits"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(2)).not_to_have_text("never")
    stored = server.run(server.harness.store.kv.get("shop.sales", "limits"))  # type: ignore[union-attr]
    assert stored == (True, {"max": 3})
    row.get_by_role("button", name="View / edit").click()
    expect(dialog.get_by_label("Value")).to_have_value('{\n  "max": 3\n}')
    expect(dialog).to_contain_text("Stored as JSON")
    dialog.get_by_label("Value").fill('{"max": 5}')
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    stored = server.run(server.harness.store.kv.get("shop.sales", "limits"))  # type: ignore[union-attr]
    assert stored == (True, {"max": 5})
    screens.shoot(page, "kv-page")
    # a bad key is refused in the dialog
    page.get_by_role("button", name="Add a key").click()
    dialog.get_by_label("Key").fill("no spaces")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".error-text")).to_contain_text("A key is letters, digits")
    dialog.get_by_role("button", name="Cancel").click()
    row.get_by_role("button", name="Delete").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert console.unexpected() == []


def test_namespaces_page_and_a_namespace_with_its_flows_kv_and_files(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.goto(server.url + "/ui/namespaces")
    expect(page.locator('tr[data-namespace="shop"]')).to_contain_text("0 (+2 below)")
    page.locator('tr[data-namespace="shop.sales"] a').click()
    page.wait_for_url(f"{server.url}/ui/namespaces/shop.sales")
    expect(page.locator('tr[data-flow="shop.sales/good"]')).to_be_visible()
    page.get_by_role("tab", name="KV Store").click()
    expect(page.locator('tr[data-key="last_run"]')).to_be_visible()
    # Namespace files: the tab lists the namespace's tree from the files API and opens a
    # file in the editor.
    running = server.harness
    assert running is not None

    async def chunks() -> AsyncIterator[bytes]:
        yield b"select 1;\n"

    store = running.engine.store.namespace_files
    server.run(store.write("shop.sales", "/queries/daily.sql", chunks()))
    page.get_by_role("tab", name="Files").click()
    files = page.locator('[data-panel="files"]')
    folder = files.locator('li[data-path="/queries"]')
    expect(folder).to_be_visible()
    folder.locator("span").click()
    files.locator('li[data-path="/queries/daily.sql"]').click()
    expect(page.locator("#file-name")).to_have_text("/queries/daily.sql")
    expect(page.locator("#file-editor")).to_contain_text("select 1;")
    screens.shoot(page, "namespace-page")
    assert console.unexpected() == []


def test_plugin_documentation_is_searchable_and_shows_properties_and_an_example(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.goto(server.url + "/ui/plugins")
    index = page.locator("#plugin-index")
    expect(index.locator('li[data-type="io.kestra.plugin.core.log.Log"]')).to_be_visible()
    page.locator("#plugin-filter").fill("cron")
    expect(index.locator('li[data-type="io.kestra.plugin.core.trigger.Schedule"]')).to_be_visible()
    expect(index.locator('li[data-type="io.kestra.plugin.core.log.Log"]')).to_have_count(0)
    assert page.url.endswith("?q=cron")
    index.locator('li[data-type="io.kestra.plugin.core.trigger.Schedule"] a').click()
    page.wait_for_url("**/ui/plugins/io.kestra.plugin.core.trigger.Schedule")
    doc = page.locator("#plugin-doc")
    expect(page.locator("#plugin-title")).to_have_text("Schedule")
    expect(doc.locator('tr[data-property="cron"]')).to_be_visible()
    expect(doc.locator("pre.example")).to_contain_text(
        "type: io.kestra.plugin.core.trigger.Schedule"
    )
    screens.shoot(page, "plugin-doc")
    page.goto(server.url + "/ui/plugins/io.kestra.plugin.core.log.Log")
    expect(doc.locator('tr[data-property="level"]')).to_contain_text("INFO")
    expect(doc.locator('tr[data-property="message"] .req')).to_have_count(1)
    assert console.unexpected() == []


def test_unknown_pages_flows_and_executions_are_an_html_404(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    for path, what in (
        ("/ui/nowhere", "There is no page at /ui/nowhere."),
        ("/ui/flows/shop.sales/missing", "There is no flow shop.sales.missing."),
        ("/ui/executions/nope123", "There is no execution nope123."),
    ):
        console.allow("the server responded with a status of 404")
        response = page.goto(server.url + path)
        assert response is not None and response.status == 404, path
        assert response.headers["content-type"].startswith("text/html")
        expect(page.locator("h2")).to_have_text("Not found")
        expect(page.locator("#not-found-what")).to_have_text(what)
    screens.shoot(page, "not-found")
    assert console.unexpected() == []


@pytest.mark.parametrize(
    ("name", "path", "ready"),
    [
        ("dashboard", "/ui/dashboard", '[data-card="total"]'),
        ("logs", "/ui/logs", "#log-results .log"),
        ("triggers", "/ui/triggers", 'tr[data-trigger="nightly"]'),
        ("kv", "/ui/kv?namespace=shop.sales", 'tr[data-key="last_run"]'),
        ("namespaces", "/ui/namespaces", 'tr[data-namespace="shop.sales"]'),
        ("namespace", "/ui/namespaces/shop.sales", 'tr[data-flow="shop.sales/good"]'),
        ("plugins", "/ui/plugins/io.kestra.plugin.core.log.Log", 'tr[data-property="level"]'),
        ("not-found", "/ui/nowhere", "#not-found-what"),
    ],
)
def test_every_page_fits_a_phone(
    server: UiServer, chrome: Browser, tmp_path: Path, name: str, path: str, ready: str
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, PHONE)
    if name == "not-found":
        console.allow("the server responded with a status of 404")
    page.goto(server.url + path)
    expect(page.locator(ready).first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (name, width)
    screens.shoot(page, f"phone-{name}")
    assert console.unexpected() == []


def test_the_pages_api_answers_are_json_for_scripts(server: UiServer) -> None:
    """The 404 page is for browsers; /ui/api answers stay JSON."""
    request = urllib.request.Request(server.url + "/ui/api/flows/files")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert {"namespace": "shop.sales", "id": "good", "file": "good.yaml"} in body["flows"]
    assert body["invalid"] == []
