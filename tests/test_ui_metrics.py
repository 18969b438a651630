"""The execution page's Metrics tab in Debian's headless Chromium: what a script reported
(name, type, value, tags) per task run, and a plain sentence when nothing was."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import Browser, expect

from daemon.sdk.state import State
from tests.blocking import watching
from tests.services import Chromium
from tests.ui_helpers import DESKTOP, PHONE, Console, Screens, UiServer, browser, new_page

REPORTING = textwrap.dedent("""
    id: counted
    namespace: ui.metrics
    tasks:
      - id: load
        type: io.kestra.plugin.scripts.shell.Commands
        taskRunner:
          type: io.kestra.plugin.core.runner.Process
        commands:
          - >-
            echo '::{"metrics":[{"name":"rows","type":"counter","value":1200,
            "tags":{"table":"trips","month":"2019-01"}},{"name":"took","type":"timer",
            "value":1.25}]}::'
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: ["a", "b"]
        tasks:
          - id: part
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - >-
                echo '::{"metrics":[{"name":"parts","type":"gauge",
                "value":0.333333333,"tags":{"part":"{{ taskrun.value }}"}}]}::'
    """)
QUIET = textwrap.dedent("""
    id: quiet
    namespace: ui.metrics
    tasks:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: nothing to count
    """)


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """The browser driver runs an event loop of its own in the test's thread, and that loop
    reads files: the guard here watches podium's code (the server's loop) only."""
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    with UiServer(tmp_path_factory.mktemp("ui-metrics")) as running:
        yield running


@pytest.fixture(scope="module")
def chrome(chromium: Chromium) -> Iterator[Browser]:
    with browser(chromium) as launched:
        yield launched


def test_metrics_tab_lists_each_task_runs_metrics_with_type_value_and_tags(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    assert server.harness is not None
    execution = server.run(server.harness.run(REPORTING))
    assert execution.state.current == State.SUCCESS
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    page.goto(f"{server.url}/ui/executions/{execution.id}")
    page.get_by_role("tab", name="Metrics").click()
    rows = page.locator("table.metrics tbody tr")
    expect(rows).to_have_count(4)
    cells = [
        (
            [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()[:4]],
            rows.nth(i).locator("td .chip").all_inner_texts(),
        )
        for i in range(4)
    ]
    assert cells == [
        (["load", "rows", "counter", "1200"], ["table: trips", "month: 2019-01"]),
        (["load", "took", "timer", "1.25 s"], []),
        (["part [a]", "parts", "gauge", "0.333333"], ["part: a"]),
        (["part [b]", "parts", "gauge", "0.333333"], ["part: b"]),
    ]
    expect(rows.nth(1).locator("td").last).to_have_text("none")
    assert page.url.endswith("#metrics")
    screens.shoot(page, "metrics")
    phone = new_page(chrome, console, PHONE)
    phone.goto(f"{server.url}/ui/executions/{execution.id}#metrics")
    expect(phone.locator("table.metrics tbody tr")).to_have_count(4)
    screens.shoot(phone, "metrics-phone")
    assert console.unexpected() == []


def test_metrics_tab_says_so_when_no_task_reported_any(server: UiServer, chrome: Browser) -> None:
    assert server.harness is not None
    execution = server.run(server.harness.run(QUIET))
    console = Console()
    page = new_page(chrome, console, DESKTOP)
    page.goto(f"{server.url}/ui/executions/{execution.id}#metrics")
    expect(page.locator("#metrics")).to_have_text(
        "No metrics. A script task reports them with Kestra.counter() or Kestra.timer() "
        '(a ::{"metrics": [...]}:: line).'
    )
    assert console.unexpected() == []
