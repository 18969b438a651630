"""An execution's page in Chromium says which task waits for a worker group that no live
node serves, and stops saying it once a node of the group is up (issue #17: "a task whose
group has no live node waits, visible in the UI"). Real `podium serve` nodes on a private
PostgreSQL; Kestra EE's counterpart is the worker-group docs
(https://kestra.io/docs/enterprise/scalability/worker-group)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from playwright.sync_api import expect

from tests.blocking import watching
from tests.services import Chromium
from tests.ui_helpers import DESKTOP, Console, browser, new_page
from tests.worker_nodes import FINAL, start_node, stop_all

TRAIN = """\
id: train
namespace: ui.groups
tasks:
  - id: fit
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.1S
    workerGroup:
      key: gpu
"""


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Playwright's sync API blocks by design: only podium's own code is watched."""
    with watching(["daemon", "tasks", "triggers"]) as bb:
        yield bb


@pytest.mark.timeout(180)
def test_the_execution_page_shows_a_task_waiting_for_its_worker_group(
    tmp_path: Path, database: str, chromium: Chromium
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "train.yaml").write_text(TRAIN)
    plain = start_node(tmp_path, database, flows, "plain")
    nodes = [plain]
    try:
        execution_id = plain.create_execution("ui.groups", "train")["id"]
        with browser(chromium) as chrome:
            console = Console()
            page = new_page(chrome, console, DESKTOP, auth=False)
            page.goto(plain.url(f"/ui/executions/{execution_id}"))
            notice = page.locator("#execution-waiting")
            expect(notice).to_be_visible(timeout=30_000)
            expect(notice).to_have_text(
                re.compile(r"Task fit waits for a node of worker group gpu since \d{4}-\d\d-\d\d ")
            )
            nodes.append(
                start_node(
                    tmp_path, database, flows, "gpu", "--role", "worker", "--worker-group", "gpu"
                )
            )
            final = plain.wait_execution(execution_id, FINAL)
            assert final["state"]["current"] == "SUCCESS", final
            expect(notice).to_be_hidden(timeout=15_000)
            assert console.unexpected() == []
    finally:
        stop_all(nodes)
