"""The example flows of WorkingDirectory and ForEachItem in flows/, run as a user runs
them: `podium run`, offline, with nothing but the flow files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"


def podium_run(flow: str, *args: str, data_dir: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "run",
            str(FLOWS / flow),
            *args,
            "--json",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_the_working_directory_example_runs(tmp_path: Path) -> None:
    """flows/working_directory.yaml (the WorkingDirectory doc's inputFiles/outputFiles
    example, offline): a script reads the input files, the next one what it wrote."""
    doc = podium_run("working_directory.yaml", "-i", "threshold=100", data_dir=tmp_path)
    assert doc["state"]["current"] == "SUCCESS"
    runs = {run["taskId"]: run for run in doc["taskRunList"]}
    assert sorted(runs["report"]["outputs"]["outputFiles"]) == ["big_orders.csv", "summary.json"]
    assert runs["summarize"]["outputs"]["vars"] == {"bigOrders": 3}
    message = next(line["message"] for line in doc["logs"] if line["taskId"] == "log_result")
    assert "3 orders of at least 100" in message and "3,alan,250" in message


def test_the_for_each_item_example_runs(tmp_path: Path) -> None:
    """flows/for_each_item.yaml (ForEachItem over a file of items, with its subflow
    flows/for_each_item_batch.yaml found beside it): 3 batches of 2, merged outputs."""
    doc = podium_run("for_each_item.yaml", "-i", "batch=2", data_dir=tmp_path)
    assert doc["state"]["current"] == "SUCCESS"
    runs = {run["taskId"]: run for run in doc["taskRunList"]}
    assert runs["each_items"]["outputs"]["numberOfBatches"] == 3
    message = next(line["message"] for line in doc["logs"] if line["taskId"] == "totals")
    lines = [json.loads(line) for line in message.splitlines()[1:] if line.strip()]
    assert [line["total"] for line in lines] == ["27.4", "23.0", "21.0"]
