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
    assert lines[0] == "started   say"
    assert lines[1] == "  INFO  say: hi there"
    assert lines[2].startswith("SUCCESS   say ")
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
    header, line = listing.stdout.splitlines()
    assert header.split() == ["ID", "NAMESPACE", "FLOW", "STATE", "STARTED", "DURATION"]
    assert line.split()[:4] == [execution_id, "ns", "f", "SUCCESS"]
    assert header.index("STATE") == line.index("SUCCESS")  # aligned columns
    shown = json.loads(podium("executions", "show", execution_id, data_dir=data).stdout)
    assert shown["taskRunList"][0]["taskId"] == "say"
    logs = podium("executions", "logs", execution_id, data_dir=data)
    assert logs.stdout.rstrip().endswith("INFO  say: hello log")
    missing = podium("executions", "show", "nope", data_dir=data)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "podium: no execution id starts with 'nope'"


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
    _, line = listing.stdout.splitlines()
    assert line.split()[:4] == [execution.id, "ns", "f", "SUCCESS"]
    bad = podium(
        "executions", "list", "--store", "postgresql://db:port/x", data_dir=tmp_path / "data"
    )
    assert bad.returncode != 0
    assert bad.stderr.startswith("podium: ") and "Traceback" not in bad.stderr


# -- the command line's rough edges, smoothed (issue #15) -----------------------------------


def test_executions_show_and_logs_take_a_unique_prefix_of_an_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: say\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hello prefix\n",
    )
    ids = [json.loads(podium("run", str(flow), "--json", data_dir=data).stdout)["id"]
           for _ in range(2)]  # fmt: skip
    for execution_id in ids:
        others = [i for i in ids if i != execution_id]
        length = next(
            n for n in range(1, 30) if not any(o.startswith(execution_id[:n]) for o in others)
        )
        shown = podium("executions", "show", execution_id[:length], data_dir=data)
        assert json.loads(shown.stdout)["id"] == execution_id
        logs = podium("executions", "logs", execution_id[:length], data_dir=data)
        assert logs.stdout.rstrip().endswith("say: hello prefix")
    common = os.path.commonprefix(ids)  # noqa: RUF071 - ids, not paths
    if common:  # two ids share a first character or more: the prefix is ambiguous
        ambiguous = podium("executions", "show", common, data_dir=data)
        assert ambiguous.returncode == 1
        assert f"{common!r} starts 2 execution ids" in ambiguous.stderr


def test_executions_list_refuses_an_unknown_state_naming_the_valid_ones(tmp_path: Path) -> None:
    result = podium("executions", "list", "--state", "DONE", data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert (
        "unknown state 'DONE'; valid states: CREATED, SUBMITTED, QUEUED, RUNNING" in result.stderr
    )
    lower = podium("executions", "list", "--state", "success", data_dir=tmp_path / "data")
    assert lower.returncode == 0, lower.stderr


def test_run_whose_reader_goes_away_ends_quietly(tmp_path: Path) -> None:
    """`podium run flow.yaml | head -1`: no BrokenPipe traceback, and no waiting for a
    long flow nobody reads any more (the run is killed, as a closed pipe ends any tool)."""
    flow = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n"
        + "".join(
            f"  - id: say{i}\n    type: io.kestra.plugin.core.log.Log\n    message: line {i}\n"
            for i in range(50)
        )
        + "  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT60S\n",
    )
    command = (
        f"{sys.executable} -m daemon run {flow} --data-dir {tmp_path / 'data'} | head -n 2; "
        'echo "status=${PIPESTATUS[0]}"'
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.stdout.splitlines()[:2] == ["started   say0", "  INFO  say0: line 0"]
    assert result.stdout.splitlines()[-1] == "status=141"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_validate_says_what_is_wrong_with_yaml_in_plain_words(tmp_path: Path) -> None:
    cases = {
        "list.yaml": ("id: y\nnamespace: t\ntasks:\n  - id: a\n    type: [x\n",
                      "6:1: invalid YAML: a list opened with '[' at line 5, column 11 "
                      "is not closed with ']'"),
        "tab.yaml": ("id: y\nnamespace: t\n\tx: 1\n",
                     "3:1: invalid YAML: a tab: YAML indents with spaces only"),
        "colon.yaml": ("id: y\nnamespace: t\ndescription: a: b\n",
                       "3:15: invalid YAML: a ':' where a value was expected: quote a value "
                       "that contains ': '"),
        "quote.yaml": ('id: y\nnamespace: t\ndescription: "open\n',
                       "4:1: invalid YAML: a quoted string that starts at line 3, column 14 "
                       "is not closed"),
    }  # fmt: skip
    for name, (text, expected) in cases.items():
        path = write(tmp_path, name, text)
        result = podium("validate", str(path), data_dir=tmp_path / "data")
        assert result.returncode == 2
        assert result.stderr.strip() == f"{path}:{expected}"


def test_validate_names_no_dependency_that_a_broken_task_hides(tmp_path: Path) -> None:
    """A task with a typo is still a task: its siblings' `dependsOn` on it is no error."""
    path = write(
        tmp_path,
        "f.yaml",
        "id: f\nnamespace: ns\ntasks:\n  - id: first\n"
        "    type: io.kestra.plugin.core.log.Log\n    mesage: typo\n"
        "  - id: second\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
        "    dependsOn: [first]\n",
    )
    result = podium("validate", str(path), data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert "dependsOn" not in result.stderr
    assert "unknown property 'mesage'; did you mean 'message'?" in result.stderr


def test_schema_is_printed_or_written_to_a_file(tmp_path: Path) -> None:
    printed = podium("schema", data_dir=tmp_path / "data")
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    assert schema["$ref"] == "#/definitions/Flow"
    target = tmp_path / "flow.schema.json"
    written = podium("schema", "--output", str(target), data_dir=tmp_path / "data")
    assert written.returncode == 0 and json.loads(target.read_text()) == schema


def test_serve_on_a_port_in_use_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "daemon", "serve", "--port", str(port), "--flows",
             str(tmp_path / "flows"), "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"podium: cannot listen: port {port} is already in use (another podium?); "
        "choose another with --port, PODIUM_PORT or `port:` in podium.yaml"
    )
    assert "Traceback" not in result.stdout


def test_http_requests_are_not_logged_at_the_default_level() -> None:
    import logging

    from daemon.app import logsetup

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logsetup.setup("INFO")
        assert not logging.getLogger("daemon.api.access").isEnabledFor(logging.INFO)
        assert logging.getLogger("daemon.api").isEnabledFor(logging.INFO)
        logsetup.setup("DEBUG")
        assert logging.getLogger("daemon.api.access").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], root.level = handlers, level
        logging.getLogger("daemon.api.access").setLevel(logging.NOTSET)
