"""The flow editor in Chromium: CodeMirror with completion and hover from the flow schema,
the server's validation while typing, Ctrl+S, the unsaved-changes warning, the file on
disk (which file, flagged when it no longer validates, asked before saving over a change
made there) and the Revisions tab's diff.

Kestra's editor (kestra-io/kestra ui/src/components/inputs/EditorView.vue) completes task
types and their properties from the same JSON schema and marks validation errors at their lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import Browser, Locator, Page, expect

from tests.blocking import watching
from tests.services import Chromium
from tests.ui_helpers import DESKTOP, PHONE, Console, Screens, UiServer, browser, new_page

FLOW = """\
id: edited
namespace: ui.editor
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "42"
"""


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui-editor")
    (root / "flows").mkdir()
    (root / "flows" / "edited.yaml").write_text(FLOW)
    with UiServer(root) as running:
        yield running


@pytest.fixture(scope="module")
def chrome(chromium: Chromium) -> Iterator[Browser]:
    with browser(chromium) as launched:
        yield launched


def content(page: Page) -> str:
    """The editor's text, line by line as drawn (a short flow is drawn whole)."""
    lines = page.locator(".cm-content .cm-line").evaluate_all("ls => ls.map(l => l.textContent)")
    return "\n".join(lines)


def set_text(page: Page, text: str) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def go_to_end_of_line(page: Page, line: int) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+Home")
    for _ in range(line - 1):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("End")


def completion_labels(page: Page) -> list[str]:
    labels: list[str] = page.locator(
        ".cm-tooltip-autocomplete li .cm-completionLabel"
    ).evaluate_all("items => items.map(i => i.textContent)")
    return labels


def point_at(page: Page, target: Locator) -> None:
    """The mouse over `target`, moving a little as a hand does (hover tips wait for moves)."""
    box = target.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 4, y)
    page.wait_for_timeout(100)
    page.mouse.move(x, y, steps=4)


def point_at_text(page: Page, text: str) -> None:
    """The mouse over the first occurrence of `text` in the editor (a text node's part)."""
    box = page.evaluate(
        """text => {
          const root = document.querySelector('.cm-content');
          const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const at = node.textContent.indexOf(text);
            if (at < 0) continue;
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + text.length);
            const r = range.getBoundingClientRect();
            return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
          }
          return null;
        }""",
        text,
    )
    assert box is not None, text
    page.mouse.move(box["x"] - 4, box["y"])
    page.wait_for_timeout(100)
    page.mouse.move(box["x"], box["y"], steps=4)


def accept(page: Page) -> None:
    """Enter on the open completion list: CodeMirror ignores it for 75 ms after the list
    opens (`interactionDelay`, so that a fast typist's Enter is a new line)."""
    page.wait_for_timeout(150)
    page.keyboard.press("Enter")


def open_editor(page: Page, server: UiServer) -> None:
    page.goto(f"{server.url}/ui/flows/ui.editor/edited#editor")
    expect(page.locator(".cm-content")).to_be_visible()
    expect(page.locator(".cm-content")).to_contain_text("io.kestra.plugin.core.log.Log")


def test_an_unknown_property_is_marked_at_its_line_within_a_second(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    open_editor(page, server)
    go_to_end_of_line(page, 6)
    page.keyboard.press("Enter")
    page.keyboard.type("mesage: typo")
    # line 7, as `podium validate` says it: debounced, then the server's own message
    marker = page.locator(".cm-lint-marker-error")
    expect(marker).to_have_count(1, timeout=1000)
    problem = page.locator('#problems li[data-line="7"]')
    expect(problem).to_contain_text(
        "unknown property 'mesage'; did you mean 'message'?", timeout=1000
    )
    expect(problem.locator(".path")).to_have_text("tasks[0].mesage")
    seventh = page.locator(".cm-content .cm-line").nth(6)
    expect(seventh.locator(".cm-lintRange-error")).to_have_count(1)
    expect(seventh).to_have_text("    mesage: typo")
    expect(page.locator("#editor-status")).to_have_text("Unsaved changes")
    screens.shoot(page, "editor-live-error")
    page.keyboard.press("Control+z")
    expect(marker).to_have_count(0, timeout=2000)
    assert console.unexpected() == []


def test_completion_offers_the_properties_of_the_task_under_the_cursor(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    open_editor(page, server)
    go_to_end_of_line(page, 6)  # in the Log task
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    options = page.locator(".cm-tooltip-autocomplete li")
    expect(options.locator(".cm-completionLabel", has_text="retry")).to_have_count(1)
    labels = completion_labels(page)
    assert "level" in labels and "timeout" in labels
    assert "format" not in labels  # a property of Return, not of Log
    assert "message" not in labels  # already written
    screens.shoot(page, "editor-completion")
    page.keyboard.press("Escape")

    go_to_end_of_line(page, 9)  # in the Return task
    page.keyboard.press("Enter")
    page.keyboard.press("Control+Space")
    expect(options.locator(".cm-completionLabel", has_text="retry")).to_have_count(1)
    labels = completion_labels(page)
    assert "level" not in labels and "format" not in labels and "allowFailure" in labels
    page.keyboard.press("Escape")

    # a new task: its type completed from every registered task type
    set_text(page, FLOW + "  - id: later\n    type: io.kestra.plugin.core.flow.S")
    page.keyboard.type("l")
    expect(options.filter(has_text="io.kestra.plugin.core.flow.Sleep")).to_have_count(1)
    accept(page)
    expect(page.locator(".cm-content")).to_contain_text("type: io.kestra.plugin.core.flow.Sleep")
    page.keyboard.press("Enter")  # the new line keeps the task's indentation
    page.keyboard.type("dur")
    expect(options.first).to_contain_text("duration")
    accept(page)
    assert content(page).rstrip().endswith("type: io.kestra.plugin.core.flow.Sleep\n    duration:")
    # an enum's values
    page.keyboard.press("Escape")
    set_text(page, FLOW.replace("    message: Hello\n", "    message: Hello\n    level: W\n"))
    go_to_end_of_line(page, 7)
    page.keyboard.press("Control+Space")
    expect(options.locator(".cm-completionLabel", has_text="WARN")).to_have_count(1)
    assert console.unexpected() == []


def test_hovering_a_property_shows_its_documentation(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console = Console()
    page = new_page(chrome, console, DESKTOP)
    open_editor(page, server)
    set_text(page, FLOW + "    timeout: PT1M\n")
    tip = page.locator(".cm-tooltip-hover .cm-doc")
    expect(page.locator("#editor")).to_have_attribute("data-validated", "true")
    point_at(page, page.locator(".cm-line", has_text="timeout: PT1M").locator("text=timeout"))
    expect(tip).to_contain_text("The longest one attempt may run")
    expect(tip.locator(".cm-doc-type")).to_have_text("string | expression")
    page.mouse.move(0, 0)
    expect(tip).to_have_count(0)
    point_at_text(page, "io.kestra.plugin.core.debug.Return")
    expect(tip).to_contain_text("Hand a rendered value to later tasks")
    assert console.unexpected() == []


def test_ctrl_s_saves_and_leaving_with_unsaved_changes_asks_first(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console = Console()
    page = new_page(chrome, console, DESKTOP)
    open_editor(page, server)
    go_to_end_of_line(page, 6)
    page.keyboard.type(" world")
    page.keyboard.press("Control+s")
    expect(page.locator("#editor-status")).to_have_text("Saved revision 2")
    assert "message: Hello world" in (server.flows_dir / "edited.yaml").read_text()
    page.keyboard.type("!")
    expect(page.locator("#editor-status")).to_have_text("Unsaved changes")
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
    page.close(run_before_unload=True)
    page.wait_for_timeout(300)  # the dialog is the event looked for, not an absence
    assert asked == ["beforeunload"]
    (server.flows_dir / "edited.yaml").write_text(FLOW)
    server.run(server.flows.reload(server.flows_dir / "edited.yaml"))
    assert console.unexpected() == []


def test_saving_over_a_file_changed_on_disk_asks_first(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console = Console()
    page = new_page(chrome, console, DESKTOP)
    open_editor(page, server)
    path = server.flows_dir / "edited.yaml"
    path.write_text(FLOW.replace("Hello", "Changed on disk"))
    server.run(server.flows.reload(path))
    go_to_end_of_line(page, 6)
    page.keyboard.type(" from the browser")
    page.get_by_role("button", name="Save").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("The file changed on disk")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#editor-status")).to_have_text("Not saved: the file changed on disk")
    assert "Changed on disk" in path.read_text()
    page.get_by_role("button", name="Save").click()
    dialog.get_by_role("button", name="Save over it").click()
    expect(page.locator("#editor-status")).to_contain_text("Saved revision")
    assert "Hello from the browser" in path.read_text()
    path.write_text(FLOW)
    server.run(server.flows.reload(path))
    assert console.unexpected() == []


def test_a_file_that_no_longer_validates_is_flagged_and_the_revisions_diff(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    path = server.flows_dir / "edited.yaml"
    path.write_text(FLOW.replace("Hello", "Second"))
    server.run(server.flows.reload(path))
    path.write_text(FLOW.replace("    message: Hello", "    mesage: Hello"))
    server.run(server.flows.reload(path))
    page.goto(f"{server.url}/ui/flows")
    flag = page.locator('tr[data-flow="ui.editor/edited"] .chip.invalid')
    expect(flag).to_have_text("edited.yaml does not validate")
    page.goto(f"{server.url}/ui/flows/ui.editor/edited")
    expect(page.locator("#flow-file")).to_have_text("Defined in edited.yaml")
    banner = page.locator("#file-invalid")
    expect(banner).to_contain_text("edited.yaml no longer validates")
    expect(banner).to_contain_text("still runs")
    expect(banner).to_contain_text("unknown property 'mesage'")
    page.get_by_role("tab", name="Editor").click()
    expect(page.locator(".cm-content")).to_contain_text("mesage: Hello")  # the file as it is
    page.get_by_role("tab", name="Revisions").click()
    diff = page.locator("#revision-diff")
    expect(diff.locator("tr.diff-del")).to_contain_text("message: Hello")
    expect(diff.locator("tr.diff-add")).to_contain_text("message: Second")
    page.locator("#revision-from").select_option("1")
    page.locator("#revision-to").select_option("1")
    expect(diff).to_contain_text("are the same")
    screens.shoot(page, "flow-revisions")
    path.write_text(FLOW)
    server.run(server.flows.reload(path))
    assert console.unexpected() == []


def test_the_editor_fits_a_phone(server: UiServer, chrome: Browser, tmp_path: Path) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, PHONE)
    open_editor(page, server)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screens.shoot(page, "phone-editor")
    assert console.unexpected() == []
