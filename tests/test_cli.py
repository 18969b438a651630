"""`podium run`, `podium validate` and `podium executions` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"


def podium(*args: str, data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_hello_world_json_has_state_logs_and_outputs(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "hello.yaml",
        (FLOWS / "01_hello_world.yaml").read_text().replace("duration: PT15S", "duration: PT0.1S"),
    )
    result = podium("run", str(flow), "-i", "name=Ada", "--json", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"]["current"] == "SUCCESS"
    assert (doc["namespace"], doc["flowId"]) == ("zoomcamp", "01_hello_world")
    assert [h["state"] for h in doc["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    assert "Hello, Ada!" in [line["message"] for line in doc["logs"]]
    runs = {run["taskId"]: run for run in doc["taskRunList"]}
    assert runs["generate_output"]["outputs"] == {"value": "I was generated during this workflow."}
    assert runs["generate_output"]["state"]["current"] == "SUCCESS"
    assert "SUCCESS" in result.stderr  # progress goes to stderr with --json


def test_run_prints_progress_lines_when_not_a_tty(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: say\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi there\n",
    )
    result = podium("run", str(flow), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "  INFO  say: hi there"
    assert lines[1].startswith("SUCCESS   say ")
    assert lines[-1].startswith("SUCCESS   execution ")
    assert "\x1b[" not in result.stdout


def test_run_exit_code_is_1_when_the_execution_fails(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: boom\n"
        "    type: io.kestra.plugin.core.execution.Fail\n    errorMessage: kaput\n",
    )
    result = podium("run", str(flow), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "task 'boom': kaput" in result.stdout


def test_run_invalid_flow_exits_2_with_positions(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "bad.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: a\n"
        "    type: io.kestra.plugin.core.log.Lg\n    message: hi\n",
    )
    result = podium("run", str(flow), data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"{flow}:5:11: tasks[0].type: unknown task type 'io.kestra.plugin.core.log.Lg'; "
        "did you mean io.kestra.plugin.core.log.Log?"
    )


def test_run_bad_input_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ninputs:\n  - id: year\n"
        "    type: INT\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\n",
    )
    result = podium("run", str(flow), "-i", "year=abc", data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.strip() == "podium: input 'year': 'abc' is not an INT"
    listing = podium("executions", "list", data_dir=tmp_path / "data")
    assert listing.stdout == ""
    malformed = podium("run", str(flow), "-i", "year", data_dir=tmp_path / "data")
    assert malformed.returncode == 2
    assert malformed.stderr.strip() == "podium: -i 'year': expected NAME=VALUE"


def test_ctrl_c_kills_the_execution_and_exits_130(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: nap\n"
        "    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT60S\n",
    )
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", str(flow), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the task is running, as a person would
        listing = podium("executions", "list", data_dir=data)
        if "RUNNING" in listing.stdout:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    listing = podium("executions", "list", data_dir=data)
    assert " KILLED " in listing.stdout


def test_validate_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        "good.yaml",
        "id: g\nnamespace: ns\ntasks:\n  - id: a\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
    )
    bad = write(
        tmp_path,
        "bad.yaml",
        "id: b\nnamespace: ns\ntasks:\n  - id: a\n"
        "    type: io.kestra.plugin.core.log.Log\n  - id: a\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
    )
    result = podium("validate", str(tmp_path), data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:4:5: tasks[0]: missing required property 'message'",
        f"{bad}:6:9: tasks[1].id: duplicate task id 'a'",
    ]
    assert result.stdout.strip() == f"{good}: ok (ns.g, 1 tasks)"
    assert podium("validate", str(good), data_dir=tmp_path / "data").returncode == 0


def test_validate_all_example_flows(tmp_path: Path) -> None:
    result = podium("validate", str(FLOWS), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr


def test_executions_list_show_and_logs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: say\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hello log\n",
    )
    run = podium("run", str(flow), "--json", data_dir=data)
    execution_id = json.loads(run.stdout)["id"]
    listing = podium("executions", "list", data_dir=data)
    [line] = listing.stdout.splitlines()
    assert line.startswith(f"{execution_id}  ns  f  SUCCESS")
    shown = json.loads(podium("executions", "show", execution_id, data_dir=data).stdout)
    assert shown["taskRunList"][0]["taskId"] == "say"
    logs = podium("executions", "logs", execution_id, data_dir=data)
    assert logs.stdout.rstrip().endswith("INFO  say: hello log")
    missing = podium("executions", "show", "nope", data_dir=data)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "podium: execution nope not found"


def test_default_data_dir_is_stated_in_help(tmp_path: Path) -> None:
    env = {**os.environ, "PODIUM_DATA_DIR": str(tmp_path / "from-env"), "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert f"now {tmp_path / 'from-env'})" in " ".join(result.stdout.split())


def test_executions_list_reads_a_postgresql_store(tmp_path: Path, postgres_dsn: str) -> None:
    from daemon.sdk.execution import Execution, new_id
    from daemon.sdk.state import State, StateHistory
    from daemon.store import open_store
    from tests.cluster_helpers import fresh_database

    execution = Execution(
        id=new_id(),
        namespace="ns",
        flow_id="f",
        flow_revision=1,
        state=StateHistory(State.CREATED, datetime.now(UTC)),
    )
    execution.state.set(State.SUCCESS, datetime.now(UTC))

    async def scenario() -> subprocess.CompletedProcess[str]:
        async with fresh_database(postgres_dsn) as dsn:
            store = open_store(dsn)
            async with store:
                await store.save_execution(execution.to_json(task_runs=False))
            return await asyncio.to_thread(
                podium, "executions", "list", "--store", dsn, data_dir=tmp_path / "data"
            )

    listing = asyncio.run(scenario())
    assert listing.returncode == 0, listing.stderr
    [line] = listing.stdout.splitlines()
    assert line.startswith(f"{execution.id}  ns  f  SUCCESS")
    bad = podium(
        "executions", "list", "--store", "postgresql://db:port/x", data_dir=tmp_path / "data"
    )
    assert bad.returncode != 0
    assert bad.stderr.startswith("podium: ") and "Traceback" not in bad.stderr
