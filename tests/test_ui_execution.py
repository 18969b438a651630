"""An execution's page and the executions list in Chromium, as a Kestra user works them:
Resume with the Pause task's onResume form (Kestra's Pause docs), Review of an Approval
(Kestra's ReviewDialog), the Gantt of a replayed
execution and of a restarted one, the logs tab (search, download, milliseconds, grouping
by task run), output previews and the expression box, the executions list's text search,
filters kept in the URL, bulk actions and labels."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import Browser, Page, expect

from daemon.sdk.state import State
from tests.blocking import watching
from tests.services import Chromium
from tests.ui_helpers import DESKTOP, PHONE, Console, Screens, UiServer, browser, new_page

APPROVAL = """\
id: approval
namespace: ui.exec
tasks:
  - id: before
    type: io.kestra.plugin.core.log.Log
    message: waiting for a person
  - id: wait_for_approval
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
        defaults: true
        description: Go ahead?
      - id: reason
        type: STRING
        description: Why
      - id: count
        type: INT
        defaults: 1
        min: 1
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: >-
      approved={{ outputs.wait_for_approval.onResume.approved }}
      reason={{ outputs.wait_for_approval.onResume.reason }}
"""

REVIEW = """\
id: review
namespace: ui.exec
tasks:
  - id: deploy_gate
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    decisions:
      approve: Ship it
      deny: Hold
    inputs:
      - id: replicas
        type: INT
        defaults: 2
        min: 1
    denyBehavior: CONTINUE
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: >-
      {{ outputs.deploy_gate.decision }} x{{ outputs.deploy_gate.inputs.replicas }}
      {{ outputs.deploy_gate.comment ?? 'no comment' }}
"""

FILES = r"""id: files
namespace: ui.exec
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*.csv", "*.json", "*.txt", "*.svg"]
    commands:
      - |
        printf 'city,people\nLisbon,545000\nPorto,232000\n' > cities.csv
        printf '{"ok": true, "n": 2}' > summary.json
        printf 'plain words\n' > note.txt
        printf '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">' > dot.svg
        printf '<rect width="20" height="20" fill="red"/></svg>' >> dot.svg
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "item {{ taskrun.value }} says hello"
      - id: echo
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}!"
"""

FLAKY = """\
id: flaky
namespace: ui.exec
tasks:
  - id: quick
    type: io.kestra.plugin.core.log.Log
    message: quick
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ kv('broken', errorOnMissing=false) ?? true }}"
    errorMessage: still broken
  - id: last
    type: io.kestra.plugin.core.log.Log
    message: done
"""


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui-exec")
    (root / "flows").mkdir()
    for name, text in (
        ("approval", APPROVAL),
        ("review", REVIEW),
        ("files", FILES),
        ("flaky", FLAKY),
    ):
        (root / "flows" / f"{name}.yaml").write_text(text)
    with UiServer(root) as running:
        yield running


@pytest.fixture(scope="module")
def chrome(chromium: Chromium) -> Iterator[Browser]:
    with browser(chromium) as launched:
        yield launched


def run(server: UiServer, flow_id: str, wait: bool = True) -> str:
    assert server.harness is not None
    engine = server.harness.engine
    execution = server.run(engine.submit_by_id("ui.exec", flow_id))
    if wait:
        server.run(engine.wait(execution.id))
    return execution.id


def state_of(server: UiServer, execution_id: str) -> str:
    assert server.harness is not None
    doc = server.run(server.harness.engine.store.get_execution(execution_id))
    assert doc is not None
    return str(doc["state"]["current"])


def test_resume_dialog_asks_for_the_pause_tasks_onresume_inputs(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    execution_id = run(server, "approval", wait=False)
    page.goto(f"{server.url}/ui/executions/{execution_id}")
    expect(page.locator("#execution-state .badge")).to_have_text("PAUSED")
    page.get_by_role("button", name="Resume").click()
    dialog = page.locator("#resume-dialog")
    expect(dialog.locator("h2")).to_have_text("Resume wait_for_approval")
    expect(dialog.locator("#input-approved")).to_be_checked()
    expect(dialog.locator('.field[data-input="reason"]')).to_contain_text("Why")
    expect(dialog.locator("#input-count")).to_have_value("1")
    screens.shoot(page, "resume-dialog")
    dialog.locator("#input-reason").fill("looks right")
    dialog.locator("#input-count").fill("0")
    console.allow("the server responded with a status of 422")
    dialog.get_by_role("button", name="Resume").click()
    expect(dialog.locator('.field[data-input="count"] .field-error')).to_contain_text("less than 1")
    dialog.locator("#input-count").fill("2")
    dialog.get_by_role("button", name="Resume").click()
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS")
    page.get_by_role("tab", name="Logs").click()
    expect(page.locator("#logs")).to_contain_text("approved=true reason=looks right")
    assert console.unexpected() == []


def test_review_dialog_approves_or_denies_an_approval(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    """Kestra's ReviewDialog: the Approval's inputs, a comment, and its two decisions under
    the names it gives them; a refused review (a comment required to deny, an input out of
    range) is shown and decides nothing."""
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    for decision in ("Hold", "Ship it"):
        execution_id = run(server, "review", wait=False)
        page.goto(f"{server.url}/ui/executions/{execution_id}")
        expect(page.locator("#execution-state .badge")).to_have_text("PAUSED")
        page.get_by_role("button", name="Review").click()
        dialog = page.locator("#review-dialog")
        expect(dialog.locator("h2")).to_have_text("Review deploy_gate")
        expect(dialog.locator("#input-replicas")).to_have_value("2")
        expect(dialog).to_contain_text("(required to deny)")
        console.allow("the server responded with a status of 422")
        if decision == "Hold":
            screens.shoot(page, "review-dialog")
            dialog.get_by_role("button", name="Hold").click()
            expect(dialog.locator("#review-error")).to_contain_text("a comment is required to deny")
            dialog.locator("#review-comment").fill("not today")
        else:
            dialog.locator("#input-replicas").fill("0")
            dialog.get_by_role("button", name="Ship it").click()
            expect(dialog.locator('.field[data-input="replicas"] .field-error')).to_contain_text(
                "less than 1"
            )
            dialog.locator("#input-replicas").fill("3")
        assert state_of(server, execution_id) == "PAUSED"
        dialog.get_by_role("button", name=decision).click()
        expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS")
        page.get_by_role("tab", name="Logs").click()
        expected = "DENIED x2 not today" if decision == "Hold" else "APPROVED x3 no comment"
        expect(page.locator("#logs")).to_contain_text(expected)
    assert console.unexpected() == []


def test_gantt_of_a_replayed_execution_draws_every_run_inside_the_chart(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    original = run(server, "files")
    assert server.harness is not None
    doc = server.run(server.harness.engine.store.get_execution(original))
    each = next(r for r in doc["taskRunList"] if r["taskId"] == "each")
    replay = server.run(server.harness.engine.replay(original, each["id"]))
    server.run(server.harness.engine.wait(replay.id))
    page.goto(f"{server.url}/ui/executions/{replay.id}")
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS")
    expect(page.locator("#replay-of")).to_have_text(original)
    rows = page.locator(".gantt-row[data-run]")
    expect(rows.first).to_be_visible()
    track = page.locator(".gantt-row:not(.gantt-axis) .gantt-track").first.bounding_box()
    assert track is not None
    for seg in page.locator(".gantt .seg").all():  # the kept run of `make` started earlier
        box = seg.bounding_box()
        assert box is not None
        assert (
            track["x"] - 1 <= box["x"]
            and box["x"] + box["width"] <= track["x"] + track["width"] + 1
        )
    # an axis that reads for short runs, and a legend of the states drawn
    ticks = page.locator(".gantt-axis .tick").all_text_contents()
    assert (
        len(ticks) >= 2
        and ticks[0] == "0ms"
        and all(re.fullmatch(r"\d+(ms|\.\d+s|s)", t) for t in ticks)
    ), ticks
    expect(page.locator('#gantt-legend [data-state="SUCCESS"]')).to_be_visible()
    screens.shoot(page, "gantt-replay")
    # a row's click shows its task run's logs
    page.locator('.gantt-row[data-task="say"]').first.click()
    logs = page.locator(".gantt-logs")
    expect(logs).to_contain_text("says hello")
    page.locator('.gantt-row[data-task="say"]').first.click()
    expect(logs).to_have_count(0)
    assert console.unexpected() == []


def test_gantt_draws_the_wait_before_a_restart_as_a_wait(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console = Console()
    page = new_page(chrome, console, DESKTOP)
    assert server.harness is not None
    engine = server.harness.engine
    execution_id = run(server, "flaky")
    assert state_of(server, execution_id) == State.FAILED
    server.run(server.harness.store.kv.set("ui.exec", "broken", False))
    server.run(engine.restart(execution_id))
    server.run(engine.wait(execution_id))
    page.goto(f"{server.url}/ui/executions/{execution_id}")
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS")
    check = page.locator('.gantt-row[data-task="check"]')
    expect(check.locator(".seg.wait")).to_have_count(1)
    expect(check.locator(".seg.state-failed:not(.wait)")).to_have_count(0)
    expect(check.locator(".seg.wait")).to_have_attribute(
        "title", re.compile("^waiting .+ for a restart$")
    )
    expect(page.locator('#gantt-legend [data-state="wait"]')).to_have_text("waiting for a restart")
    server.run(server.harness.store.kv.delete("ui.exec", "broken"))
    assert console.unexpected() == []


def test_logs_tab_searches_groups_by_task_run_and_downloads(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    execution_id = run(server, "files")
    page.goto(f"{server.url}/ui/executions/{execution_id}#logs")
    logs = page.locator("#logs")
    groups = logs.locator("details.log-group")
    expect(groups.filter(has_text="say [a]")).to_have_count(1)
    expect(groups.filter(has_text="say [b]")).to_have_count(1)
    stamp = logs.locator(".log .ts").first
    expect(stamp).to_have_text(re.compile(r"\d\d:\d\d:\d\d\.\d{3}$"))
    page.locator("#log-search").fill("item b")
    expect(logs.locator(".log")).to_have_count(1)
    expect(logs.locator(".log mark")).to_have_text("item b")
    page.locator("#log-group").uncheck()
    expect(logs.locator("details")).to_have_count(0)
    expect(logs.locator(".log .task")).to_have_text("say")
    screens.shoot(page, "logs-tab")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    text = Path(download.value.path()).read_text()
    assert "item a says hello" in text and "item b says hello" in text
    assert console.unexpected() == []


def test_outputs_preview_files_and_render_an_expression(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    execution_id = run(server, "files")
    page.goto(f"{server.url}/ui/executions/{execution_id}#outputs")
    make = page.locator('details[data-task="make"]')

    def preview(name: str) -> None:
        make.locator(f'li[data-key="{name}"]').get_by_role("button", name="Preview").click()

    box = page.locator("#preview")
    preview("cities.csv")
    expect(box.locator("table.preview-rows thead")).to_contain_text("city")
    expect(box.locator("table.preview-rows tbody tr")).to_have_count(2)
    expect(box.locator("table.preview-rows tbody tr").first).to_contain_text("Lisbon")
    screens.shoot(page, "preview-csv")
    preview("summary.json")
    expect(box.locator("pre.preview-json")).to_contain_text('"ok": true')
    preview("note.txt")
    expect(box.locator("pre.preview-text")).to_have_text("plain words\n")
    preview("dot.svg")
    image = box.locator("img")
    expect(image).to_have_attribute("alt", "dot.svg")
    assert page.evaluate("document.querySelector('#preview img').naturalWidth") == 20

    page.locator("#expression").fill("{{ outputs.echo.b.value }} of {{ flow.id }}")
    page.get_by_role("button", name="Render").click()
    expect(page.locator("#expression-result")).to_have_text("b! of files")
    page.locator("#expression").fill("{{ nothing.here }}")
    page.get_by_role("button", name="Render").click()
    expect(page.locator("#expression-result")).to_have_class(re.compile("error-text"))
    page.locator("#expression-task").select_option(label="task run say [a]")
    page.locator("#expression").fill("{{ taskrun.value }}")
    page.get_by_role("button", name="Render").click()
    expect(page.locator("#expression-result")).to_have_text("a")
    assert console.unexpected() == []


def tick(page: Page, execution_id: str) -> None:
    page.get_by_label(f"Select {execution_id}").check()


def test_executions_list_search_url_filters_bulk_actions_and_labels(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    first, second = run(server, "flaky"), run(server, "flaky")
    page.goto(f"{server.url}/ui/executions")
    filters = page.locator("#execution-filters")
    filters.get_by_label("Search").fill("FLAK")  # part of the flow id, any case
    filters.get_by_label("State").select_option("FAILED")
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator(f'tr[data-id="{first}"]')).to_be_visible()
    assert "q=FLAK" in page.url and "state=FAILED" in page.url
    page.reload()
    expect(filters.get_by_label("Search")).to_have_value("FLAK")
    expect(page.locator(f'tr[data-id="{second}"]')).to_be_visible()

    # bulk: add labels to both, then replay both
    tick(page, first)
    tick(page, second)
    expect(page.locator("#bulk-actions")).to_contain_text("2 selected")
    screens.shoot(page, "executions-bulk")
    page.locator('[data-bulk="labels"]').click()
    page.locator("#bulk-labels-text").fill("reviewed:yes")
    page.locator("#bulk-labels-dialog").get_by_role("button", name="Add labels").click()
    expect(page.locator(f'tr[data-id="{first}"]')).to_contain_text("reviewed:yes")
    expect(page.locator(f'tr[data-id="{second}"]')).to_contain_text("reviewed:yes")
    tick(page, first)
    tick(page, second)
    page.locator('[data-bulk="replay"]').click()
    page.locator("#confirm-dialog").get_by_role("button", name="Replay").click()
    expect(page.locator("#toast")).to_have_text("Replay: 2 executions done")
    filters.get_by_label("State").select_option("")
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator(".replay-of")).to_have_count(2)
    # bulk delete of the replays
    replays = page.locator("tr", has=page.locator(".replay-of"))
    for row_id in replays.evaluate_all("rows => rows.map(r => r.dataset.id)"):
        server.run(server.harness.engine.wait(row_id))  # type: ignore[union-attr]
        tick(page, row_id)
    page.locator('[data-bulk="delete"]').click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(page.locator(".replay-of")).to_have_count(0)

    # labels of one ended execution, edited on its page
    page.goto(f"{server.url}/ui/executions/{first}")
    page.get_by_role("button", name="Edit labels").click()
    expect(page.locator("#labels-text")).to_have_value("reviewed:yes")
    page.locator("#labels-text").fill("reviewed:yes\nowner:ada")
    page.locator("#labels-dialog").get_by_role("button", name="Save labels").click()
    expect(page.locator("#execution-labels")).to_contain_text("owner:ada")
    assert console.unexpected() == []


@pytest.mark.parametrize("tab", ["gantt", "logs", "outputs"])
def test_the_execution_page_fits_a_phone(
    server: UiServer, chrome: Browser, tmp_path: Path, tab: str
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, PHONE)
    execution_id = run(server, "files")
    page.goto(f"{server.url}/ui/executions/{execution_id}#{tab}")
    expect(page.locator(f'[data-panel="{tab}"]')).to_be_visible()
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (tab, width)
    screens.shoot(page, f"phone-execution-{tab}")
    page.goto(f"{server.url}/ui/executions")
    expect(page.locator("table.executions")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert console.unexpected() == []
