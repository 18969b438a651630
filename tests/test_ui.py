"""The web UI: the topology layout in Python, and the pages in Debian's headless Chromium.

The browser tests use the UI as a person would: write a flow in the editor (first with a
mistake, shown at its line), run it from the Run dialog (first with a refused input,
shown beside its field), watch the execution finish live, read its Gantt, logs and
outputs, and download the file it produced. Screenshots of each page go to the test's
directory; any console error of any page fails the test.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import Browser, FilePayload, Page, expect

from daemon.api.ui.topology import Graph, flow_graph
from daemon.flows.loader import load_flow
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
    editor_value,
    new_page,
    set_editor,
)


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """The browser driver runs an event loop of its own in the test's thread, and that loop
    reads files: the guard here watches podium's code (the server's loop) only."""
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


# -- topology layout ------------------------------------------------------------------------


def graph_of(source: str) -> Graph:
    return flow_graph(load_flow(textwrap.dedent(source)))


def boxes_overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def inside(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    return bool(
        outer["x"] <= inner["x"]
        and inner["x"] + inner["w"] <= outer["x"] + outer["w"]
        and outer["y"] <= inner["y"]
        and inner["y"] + inner["h"] <= outer["y"] + outer["h"]
    )


def segment_cuts_box(p: list[float], q: list[float], box: dict[str, Any]) -> bool:
    """Does the segment p-q pass through the inside of the box (its border excluded)?"""
    x0, y0, x1, y1 = (
        box["x"] + 0.5,
        box["y"] + 0.5,
        box["x"] + box["w"] - 0.5,
        box["y"] + box["h"] - 0.5,
    )
    low, high = 0.0, 1.0
    for delta, start, near, far in ((q[0] - p[0], p[0], x0, x1), (q[1] - p[1], p[1], y0, y1)):
        if delta == 0:
            if not near < start < far:
                return False
            continue
        t0, t1 = sorted(((near - start) / delta, (far - start) / delta))
        low, high = max(low, t0), min(high, t1)
    return low < high


BIG_FLOW_HEAD = """
id: big
namespace: ui.test
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 1 * * *"
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: abcdefghijklmnop
tasks:
"""


def log(task_id: str, indent: int, depends: list[str] | None = None) -> str:
    pad = " " * indent
    text = (
        f"{pad}- id: {task_id}\n{pad}  type: io.kestra.plugin.core.log.Log\n"
        f"{pad}  message: {task_id}\n"
    )
    if depends:
        text += f"{pad}  dependsOn: [{', '.join(depends)}]\n"
    return text


def big_flow() -> str:
    """Over 100 tasks: a DAG with long edges, Parallel, If, Switch, ForEach, nested groups,
    errors, finally, afterExecution, and two triggers."""
    ids = (f"t{i}" for i in itertools.count())
    out = [BIG_FLOW_HEAD]
    dag = [next(ids) for _ in range(40)]
    for i, task in enumerate(dag):
        deps = [dag[j] for j in (i - 1, i - 3, i - 11) if j >= 0 and (i % 4 or j == i - 1)]
        out.append(log(task, 2, deps))
    out.append(
        "  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n"
        f"    dependsOn: [{dag[-1]}]\n    tasks:\n"
    )
    out += [log(next(ids), 6) for _ in range(12)]
    out.append(
        "  - id: pick\n    type: io.kestra.plugin.core.flow.If\n    condition: 'true'\n"
        "    dependsOn: [fan]\n    then:\n"
    )
    out += [log(next(ids), 6) for _ in range(8)]
    out.append(
        "    else:\n      - id: inner\n        type: io.kestra.plugin.core.flow.Switch\n"
        "        value: a\n        cases:\n"
    )
    for case in "abc":
        out.append(f"          {case}:\n")
        out += [log(next(ids), 12) for _ in range(4)]
    out.append("    errors:\n")
    out += [log(next(ids), 6) for _ in range(3)]
    out.append(
        "  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n"
        "    values: [1, 2]\n    dependsOn: [pick]\n    tasks:\n"
    )
    out += [log(next(ids), 6) for _ in range(10)]
    out.append("errors:\n")
    out += [log(next(ids), 2) for _ in range(5)]
    out.append("finally:\n")
    out += [log(next(ids), 2) for _ in range(6)]
    out.append("afterExecution:\n")
    out += [log(next(ids), 2) for _ in range(2)]
    return "".join(out)


def test_topology_of_over_100_tasks_has_no_overlaps_and_no_edge_through_a_box() -> None:
    flow = load_flow(big_flow())
    graph = flow_graph(flow).to_json()
    tasks = [n for n in graph["nodes"] if n["kind"] != "trigger"]
    assert len(tasks) == sum(1 for _ in flow.all_tasks()) >= 100
    groups = {n["id"]: n for n in graph["nodes"] if n["kind"] == "group"}
    assert set(groups) == {"fan", "pick", "inner", "each"}
    assert {"errors", "finally", "afterExecution"} <= {lane["label"] for lane in graph["lanes"]}

    def ancestors(node: dict[str, Any]) -> set[str]:
        return {g for g, box in groups.items() if g != node["id"] and inside(node, box)}

    nested = {n["id"]: ancestors(n) for n in graph["nodes"]}
    assert nested["inner"] == {"pick"}
    assert nested["t60"] == {"pick", "inner"}
    for a, b in itertools.combinations(graph["nodes"], 2):
        if b["id"] in nested[a["id"]] or a["id"] in nested[b["id"]]:
            continue
        assert not boxes_overlap(a, b), (a["id"], b["id"])
    for node in graph["nodes"]:
        assert 0 <= node["x"] and node["x"] + node["w"] <= graph["width"]
        assert 0 <= node["y"] and node["y"] + node["h"] <= graph["height"]
    for edge in graph["edges"]:
        ends = {edge["from"], edge["to"]}
        allowed = ends | nested[edge["from"]] | nested[edge["to"]]
        for p, q in itertools.pairwise(edge["points"]):
            for node in graph["nodes"]:
                if node["id"] not in allowed:
                    assert not segment_cuts_box(p, q, node), (edge["from"], edge["to"], node["id"])


def test_topology_draws_depends_on_branches_handlers_and_triggers() -> None:
    graph = graph_of("""
        id: shape
        namespace: ui.test
        triggers:
          - id: daily
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 9 * * *"
        tasks:
          - id: extract
            type: io.kestra.plugin.core.log.Log
            message: e
          - id: check
            type: io.kestra.plugin.core.flow.If
            condition: "{{ true }}"
            dependsOn: [extract]
            then:
              - id: load
                type: io.kestra.plugin.core.log.Log
                message: l
            else:
              - id: skip
                type: io.kestra.plugin.core.log.Log
                message: s
          - id: side
            type: io.kestra.plugin.core.log.Log
            message: s
            dependsOn: [extract]
          - id: both
            type: io.kestra.plugin.core.flow.Parallel
            dependsOn: [check, side]
            tasks:
              - id: p1
                type: io.kestra.plugin.core.log.Log
                message: p
              - id: p2
                type: io.kestra.plugin.core.log.Log
                message: p
        errors:
          - id: alert
            type: io.kestra.plugin.core.log.Log
            message: a
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.log.Log
            message: c
        """).to_json()
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert edges == {
        ("trigger:daily", "extract", "trigger"),
        ("extract", "check", "dependsOn"),
        ("extract", "side", "dependsOn"),
        ("check", "both", "dependsOn"),
        ("side", "both", "dependsOn"),
        ("both", "alert", "errors"),
        ("both", "cleanup", "finally"),
    }
    assert [(lane["label"], lane["kind"]) for lane in graph["lanes"]] == [
        ("then", "branch"),
        ("else", "branch"),
        ("errors", "errors"),
        ("finally", "finally"),
    ]
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["p1"]["y"] == nodes["p2"]["y"]  # a Parallel's tasks side by side
    assert nodes["load"]["y"] == nodes["skip"]["y"]
    assert nodes["check"]["y"] == nodes["side"]["y"] > nodes["extract"]["y"]
    assert nodes["trigger:daily"]["kind"] == "trigger"
    assert nodes["check"]["kind"] == "group" and nodes["load"]["kind"] == "task"


def test_topology_of_a_sequence_is_one_centred_column() -> None:
    graph = graph_of("""
        id: seq
        namespace: ui.test
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: a
          - id: a_much_longer_task_identifier
            type: io.kestra.plugin.core.log.Log
            message: b
          - id: c
            type: io.kestra.plugin.core.log.Log
            message: c
        """).to_json()
    centres = {n["x"] + n["w"] / 2 for n in graph["nodes"]}
    assert len(centres) == 1
    assert [(e["from"], e["to"], e["kind"]) for e in graph["edges"]] == [
        ("a", "a_much_longer_task_identifier", "next"),
        ("a_much_longer_task_identifier", "c", "next"),
    ]


# -- the pages, in the browser -------------------------------------------------------------

FLOW = """\
id: greet
namespace: ui.test
description: Greets someone and keeps the file it was given
labels:
  team: data
inputs:
  - id: name
    type: STRING
    defaults: Ada
  - id: times
    type: INT
    defaults: 2
    min: 1
  - id: colour
    type: SELECT
    values: [yellow, green]
    defaults: green
  - id: loud
    type: BOOLEAN
    defaults: false
  - id: day
    type: DATE
    required: false
  - id: data
    type: FILE
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }} x{{ inputs.times }} ({{ inputs.colour }}, {{ inputs.day }})"
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount < 1 }}"
    errorMessage: "flaky on attempt {{ taskrun.attemptsCount }}"
    retry:
      type: constant
      interval: PT0.2S
      maxAttempts: 2
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: wait
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT2S
      - id: shout
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.name | upper }}-{{ inputs.times }}"
  - id: keep
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.data }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.shout.value }}"
"""
BROKEN = FLOW.replace('    message: "Hello', '    mesage: "Hello')
BROKEN_LINE = (
    BROKEN.splitlines().index(next(line for line in BROKEN.splitlines() if "mesage:" in line)) + 1
)
UPLOAD = b"id,city\n1,Lisbon\n2,Porto\n"

SCHEDULED = """\
id: nightly
namespace: ui.test
triggers:
  - id: at_one
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 1 * * *"
tasks:
  - id: only
    type: io.kestra.plugin.core.log.Log
    message: night
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui")
    (root / "flows").mkdir()
    (root / "flows" / "nightly.yaml").write_text(SCHEDULED)
    with UiServer(root) as running:
        yield running


@pytest.fixture(scope="module")
def chrome(chromium: Chromium) -> Iterator[Browser]:
    with browser(chromium) as launched:
        yield launched


def get(server: UiServer, path: str, auth: bool = True) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_kestras_execution_url_leads_to_the_execution_page(server: UiServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    connection.request(
        "GET", "/ui/executions/ui.test/nightly/abc123", headers={"Authorization": f"Basic {token}"}
    )
    response = connection.getresponse()
    assert (response.status, response.getheader("Location")) == (302, "/ui/executions/abc123")
    connection.close()


def test_ui_pages_ask_the_browser_for_basic_auth(server: UiServer) -> None:
    for path in ("/ui/flows", "/ui/static/podium.js", "/ui/api/flows/ui.test/nightly/graph"):
        status, headers, body = get(server, path, auth=False)
        assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="podium"'), path
        assert json.loads(body) == {"message": "Unauthorized"}


def test_topology_endpoint_refuses_unknown_flows_and_bad_revisions(server: UiServer) -> None:
    status, _, body = get(server, "/ui/api/flows/ui.test/missing/graph")
    assert (status, json.loads(body)) == (
        404,
        {"message": "Not Found: flow ui.test.missing not found"},
    )
    status, _, body = get(server, "/ui/api/flows/ui.test/nightly/graph?revision=abc")
    assert (status, json.loads(body)) == (
        400,
        {"message": "Bad Request: revision must be a positive number, not 'abc'"},
    )
    status, _, body = get(server, "/ui/api/flows/ui.test/nightly/graph?revision=9")
    assert (status, json.loads(body)) == (
        404,
        {"message": "Not Found: flow ui.test.nightly revision 9 not found"},
    )
    status, _, body = get(server, "/ui/api/flows/ui.test/nightly/graph?revision=1")
    assert status == 200
    assert [n["id"] for n in json.loads(body)["nodes"]] == ["trigger:at_one", "only"]


def test_static_files_are_served_with_their_type_and_unknown_ones_are_404(server: UiServer) -> None:
    status, headers, body = get(server, "/ui/static/podium.js")
    assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    assert b"export async function api" in body
    for name in ("nothing.js", "..%2F__init__.py", ".hidden.js"):
        status, _, body = get(server, f"/ui/static/{name}")
        assert (status, json.loads(body)) == (404, {"message": "Not Found"}), name


def editor_text(page: Page, text: str) -> None:
    set_editor(page, text)


def test_write_run_and_watch_a_flow_in_the_browser(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)

    page.goto(f"{server.url}/ui/flows")
    expect(page.locator('tr[data-flow="ui.test/nightly"]')).to_contain_text("at_one · Schedule")
    expect(page.locator('tr[data-flow="ui.test/nightly"]')).to_contain_text("never run")
    screens.shoot(page, "flows")

    # A new flow with a mistake: not saved, the problem shown at its line.
    page.get_by_role("link", name="Create flow").click()
    editor_text(page, BROKEN)
    page.get_by_role("button", name="Save").click()
    problem = page.locator(f'#problems li[data-line="{BROKEN_LINE}"]')
    expect(problem).to_contain_text("unknown property 'mesage'; did you mean 'message'?")
    expect(problem.locator(".where")).to_contain_text(f"Line {BROKEN_LINE}, column ")
    line = page.locator(".cm-content .cm-line").nth(BROKEN_LINE - 1)
    expect(line.locator(".cm-lintRange-error")).to_have_count(1)
    expect(page.locator(f'#problems li[data-line="{BROKEN_LINE - 2}"]')).to_contain_text(
        "tasks[0]missing required property 'message'"
    )  # the task, two lines up
    expect(page.locator(".cm-lint-marker-error")).to_have_count(2)
    expect(page.locator("#editor-status")).to_have_text("Not saved: 2 problems")
    screens.shoot(page, "editor-error")

    # Fixed and saved: the flow's page, where its id and namespace cannot change.
    editor_text(page, FLOW)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{server.url}/ui/flows/ui.test/greet#editor")
    expect(page.locator(".cm-content")).to_contain_text("Greets someone")
    assert editor_value(page).startswith("id: greet\nnamespace: ui.test\n")
    assert (server.flows_dir / "ui.test" / "greet.yaml").read_text() == FLOW
    editor_text(page, FLOW.replace("id: greet", "id: renamed", 1))
    page.get_by_role("button", name="Save").click()
    expect(page.locator('#problems li[data-line="1"]')).to_contain_text(
        "the id of a saved flow cannot change (it is 'greet')"
    )
    editor_text(page, FLOW)
    page.get_by_role("tab", name="Topology").click()
    expect(page.locator('svg.graph g.node[data-id="both"]')).to_have_class("node node-group")
    expect(page.locator("svg.graph path.edge")).to_have_count(3)
    screens.shoot(page, "flow-topology")
    page.get_by_role("tab", name="Overview").click()
    expect(page.locator('[data-panel="overview"]')).to_contain_text(
        "Greets someone and keeps the file it was given"
    )
    screens.shoot(page, "flow-overview")

    # Run: a refused input is shown beside its field; then a good run.
    page.get_by_role("button", name="Execute").click()
    dialog = page.locator("#run-dialog")
    expect(dialog.locator("#input-name")).to_have_value("Ada")
    expect(dialog.locator("#input-colour")).to_have_value("green")
    expect(dialog.locator("#input-loud")).not_to_be_checked()
    assert dialog.locator("#input-day").get_attribute("type") == "date"
    dialog.locator("#input-name").fill("Grace")
    dialog.locator("#input-times").fill("0")
    dialog.locator("#input-colour").select_option("yellow")
    dialog.locator("#input-day").fill("2024-03-01")
    dialog.locator("#input-data").set_input_files(
        files=[FilePayload(name="cities.csv", mimeType="text/csv", buffer=UPLOAD)]
    )
    console.allow("the server responded with a status of 422")
    dialog.get_by_role("button", name="Execute").click()
    expect(dialog.locator('.field[data-input="times"] .field-error')).to_have_text(
        "'0' is less than 1 (min)"
    )
    expect(dialog.locator(".field-error:visible")).to_have_count(1)
    screens.shoot(page, "run-dialog-refused")
    dialog.locator("#input-times").fill("3")
    dialog.get_by_role("button", name="Execute").click()

    # The execution, live: it ends SUCCESS on the page as it was first loaded.
    page.wait_for_url(f"{server.url}/ui/executions/*")
    page.evaluate("window.loadedOnce = true")
    expect(page.locator("#execution-state .badge")).not_to_have_text("SUCCESS", timeout=1000)
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS", timeout=30_000)
    assert page.evaluate("window.loadedOnce") is True
    gantt = page.locator("#gantt")
    for task in ("hello", "flaky", "both", "wait", "shout", "keep"):
        expect(gantt.locator(f'.gantt-row[data-task="{task}"] .seg').first).to_be_visible()
    expect(gantt.locator('.gantt-row[data-task="flaky"] .attempts')).to_have_text(
        " \u00d72 attempts"
    )
    expect(gantt.locator('.gantt-row[data-task="flaky"] .attempt')).to_have_count(2)
    screens.shoot(page, "execution-gantt")

    page.get_by_role("tab", name="Logs").click()
    expect(
        page.locator("#logs .log", has_text="Hello, Grace x3 (yellow, 2024-03-01)")
    ).to_be_visible()
    page.locator("#log-level").select_option("WARN")
    warnings = page.locator("#logs .log:visible")
    expect(warnings.first).to_contain_text("flaky on attempt 0; attempt 1 failed, retrying in")
    assert set(warnings.evaluate_all("lines => lines.map(l => l.dataset.level)")) <= {
        "WARN",
        "ERROR",
    }
    page.locator("#log-level").select_option("INFO")
    page.locator("#log-task").select_option("hello")
    expect(page.locator("#logs .log:visible")).to_have_count(1)
    screens.shoot(page, "execution-logs")

    page.get_by_role("tab", name="Outputs").click()
    outputs = page.locator("#outputs")
    expect(outputs.locator('details[data-task="shout"] li[data-key="value"]')).to_have_text(
        'value: "GRACE-3"'
    )
    expect(outputs.locator(".flow-outputs")).to_contain_text('greeting: "GRACE-3"')
    with page.expect_download() as download:
        outputs.locator('details[data-task="keep"] a.download').click()
    assert download.value.suggested_filename == "cities.csv"
    assert Path(download.value.path()).read_bytes() == UPLOAD
    screens.shoot(page, "execution-outputs")

    page.get_by_role("tab", name="Topology").click()
    expect(page.locator('svg.graph g.node[data-id="shout"]')).to_have_attribute(
        "data-state", "SUCCESS"
    )
    expect(page.locator("svg.graph g.node.state-success")).to_have_count(6)
    screens.shoot(page, "execution-topology")

    page.get_by_role("link", name="Executions").click()
    row = page.locator("table.executions tbody tr").first
    expect(row).to_contain_text("greet")
    expect(row.locator(".badge")).to_have_text("SUCCESS")
    expect(row).to_contain_text("team:data")
    screens.shoot(page, "executions")
    filters = page.locator("#execution-filters")
    filters.get_by_label("State").select_option("FAILED")
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator(".executions-table")).to_have_text("No execution matches these filters.")
    filters.get_by_label("State").select_option("SUCCESS")
    filters.get_by_label("Label").fill("team:data")
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator("table.executions tbody tr")).to_have_count(1)

    page.goto(f"{server.url}/ui/flows")
    expect(page.locator('tr[data-flow="ui.test/greet"] .badge')).to_have_text("SUCCESS")
    assert console.unexpected() == []


SLOW = """\
id: slow
namespace: ui.test
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: starting
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


def test_kill_restart_and_replay_buttons_act_on_the_live_execution(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, DESKTOP)
    (server.flows_dir / "slow.yaml").write_text(SLOW)
    assert server.harness is not None
    engine = server.harness.engine
    server.run(server.flows.reload(server.flows_dir / "slow.yaml"))
    execution = server.run(engine.submit_by_id("ui.test", "slow"))
    page.goto(f"{server.url}/ui/executions/{execution.id}")
    state = page.locator("#execution-state .badge")
    expect(page.locator('.gantt-row[data-task="nap"]')).to_have_attribute("data-state", "RUNNING")
    expect(page.locator("#restart-button")).to_be_hidden()

    # Each action asks first; a "Cancel" changes nothing.
    page.locator("#kill-button").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("Kill this execution?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(state).to_have_text("RUNNING")
    page.locator("#kill-button").click()
    dialog.get_by_role("button", name="Kill").click()
    expect(state).to_have_text("KILLED")
    expect(page.locator("#kill-button")).to_be_hidden()
    screens.shoot(page, "killed")

    page.locator("#restart-button").click()
    expect(dialog).to_contain_text("Restart this execution?")
    dialog.get_by_role("button", name="Restart").click()
    expect(page.locator('.gantt-row[data-task="nap"]')).to_have_attribute("data-state", "RUNNING")
    expect(state).to_have_text("RUNNING")
    assert page.url == f"{server.url}/ui/executions/{execution.id}"
    page.locator("#kill-button").click()
    dialog.get_by_role("button", name="Kill").click()
    expect(state).to_have_text("KILLED")

    stored = server.run(engine.store.get_execution(execution.id))
    assert stored is not None
    first_run = next(r for r in stored["taskRunList"] if r["taskId"] == "nap")
    page.locator("#replay-from").select_option(first_run["id"])
    page.locator("#replay-button").click()
    expect(dialog).to_contain_text("runs from nap")
    dialog.get_by_role("button", name="Replay").click()
    page.wait_for_url(lambda url: execution.id not in url)
    expect(page.locator('.gantt-row[data-task="nap"]')).to_have_attribute("data-state", "RUNNING")
    expect(page.locator('.gantt-row[data-task="first"]')).to_have_attribute("data-state", "SUCCESS")
    expect(page.locator("#replay-of")).to_have_text(execution.id)
    page.locator("#kill-button").click()
    dialog.get_by_role("button", name="Kill").click()
    expect(state).to_have_text("KILLED")
    assert console.unexpected() == []


def test_pages_fit_a_phone_screen(server: UiServer, chrome: Browser, tmp_path: Path) -> None:
    console, screens = Console(), Screens(tmp_path)
    page = new_page(chrome, console, PHONE)
    assert server.harness is not None
    engine = server.harness.engine
    execution = server.run(engine.submit_by_id("ui.test", "nightly"))
    server.run(engine.wait(execution.id))
    for name, path, ready in (
        ("phone-execution", f"/ui/executions/{execution.id}", ".gantt-row .seg"),
        ("phone-logs", f"/ui/executions/{execution.id}#logs", "#logs .log"),
        ("phone-flows", "/ui/flows", 'tr[data-flow="ui.test/nightly"]'),
        ("phone-flow", "/ui/flows/ui.test/nightly#topology", "svg.graph"),
        ("phone-editor", "/ui/flows/ui.test/nightly#editor", ".cm-content .cm-line"),
        ("phone-triggers", "/ui/flows/ui.test/nightly#triggers", 'tr[data-trigger="at_one"]'),
        ("phone-executions", "/ui/executions", ".executions-table"),
    ):
        page.goto(server.url + path)
        expect(page.locator(ready).first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, width)
        screens.shoot(page, name)
    assert console.unexpected() == []


RECORDS = """\
id: records
namespace: ui.test
inputs:
  - id: server
    type: OBJECT
    properties:
      - id: name
        type: STRING
      - id: cpus
        type: INT
        min: 1
  - id: disks
    type: TABLE
    columns:
      - id: size_gb
        type: INT
      - id: mountpoint
        type: STRING
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.server.name }} {{ inputs.disks | length }}"
"""


def test_run_dialog_takes_object_and_table_inputs_as_json(
    server: UiServer, chrome: Browser, tmp_path: Path
) -> None:
    """Kestra's OBJECT and TABLE inputs in the Run dialog: a JSON text field whose
    placeholder names the keys; a bad cell is shown beside its input with its place."""
    console = Console()
    page = new_page(chrome, console, DESKTOP)
    (server.flows_dir / "records.yaml").write_text(RECORDS)
    assert server.harness is not None
    server.run(server.flows.reload(server.flows_dir / "records.yaml"))
    page.goto(f"{server.url}/ui/flows/ui.test/records")
    page.get_by_role("button", name="Execute").click()
    dialog = page.locator("#run-dialog")
    expect(dialog.locator("#input-server")).to_have_attribute(
        "placeholder", '{"name": …, "cpus": …}'
    )
    expect(dialog.locator("#input-disks")).to_have_attribute(
        "placeholder", '[{"size_gb": …, "mountpoint": …}]'
    )
    dialog.locator("#input-server").fill('{"name": "web", "cpus": 0}')
    dialog.locator("#input-disks").fill('[{"size_gb": 1, "mountpoint": "/a"}, {"size_gb": "x"}]')
    console.allow("the server responded with a status of 422")
    dialog.get_by_role("button", name="Execute").click()
    expect(dialog.locator('.field[data-input="server"] .field-error')).to_have_text(
        "cpus: 0 is less than 1 (min)"
    )
    expect(dialog.locator('.field[data-input="disks"] .field-error')).to_have_text(
        "item [1].size_gb: 'x' is not an INT; item [1].mountpoint: a value is required"
    )
    dialog.locator("#input-server").fill('{"name": "web", "cpus": 2}')
    dialog.locator("#input-disks").fill('[{"size_gb": 1, "mountpoint": "/a"}]')
    dialog.get_by_role("button", name="Execute").click()
    page.wait_for_url(f"{server.url}/ui/executions/*")
    expect(page.locator("#execution-state .badge")).to_have_text("SUCCESS", timeout=30_000)
    execution_id = page.url.rsplit("/", 1)[-1]
    stored = server.run(server.harness.engine.store.get_execution(execution_id))
    assert stored is not None
    assert stored["inputs"] == {
        "server": {"name": "web", "cpus": 2},
        "disks": [{"size_gb": 1, "mountpoint": "/a"}],
    }
    assert console.unexpected() == []
