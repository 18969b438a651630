"""`podium serve` as systemd runs it: readiness, live flows, signals, crash recovery."""

from __future__ import annotations

import configparser
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.app.serve import shutdown_budget
from tests.daemon_process import ROOT, ServeProcess

LOG_FLOW = """id: {id}
namespace: test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{message}"
"""

THREE_TASKS = """id: three
namespace: test
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: second
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT3S
  - id: third
    type: io.kestra.plugin.core.log.Log
    message: "after {{ outputs.first.value }}"
"""


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    return flows, data


def test_serve_notifies_ready_and_stopping_and_exits_0(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    (flows / "hello.yaml").write_text(LOG_FLOW.format(id="hello", message="hi"))
    daemon = ServeProcess(tmp_path, flows, data).start()
    status, health = daemon.request("GET", "/health")
    assert status == 200 and health["status"] == "UP"
    assert "loaded flow test.hello revision 1" in daemon.output()
    daemon.signal(signal.SIGTERM)
    daemon.wait_notification("STOPPING=1")
    assert daemon.stop() == 0
    assert daemon.lines[-1] == "INFO podium: stopped: 0 executions done, 0 failed, 0 cancelled"


def test_flow_files_added_changed_and_removed_while_serving(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    (flows / "a.yaml").write_text(LOG_FLOW.format(id="a", message="v1"))
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        mark = len(daemon.lines)
        (flows / "a.yaml").write_text(LOG_FLOW.format(id="a", message="v2"))
        daemon.wait_line("loaded flow test.a revision 2", after=mark)
        sub = flows / "team"
        sub.mkdir()
        (sub / "b.yaml").write_text(LOG_FLOW.format(id="b", message="b"))
        daemon.wait_line("loaded flow test.b revision 1", after=mark)
        execution = daemon.create_execution("test", "a")
        done = daemon.wait_execution(execution["id"], {"SUCCESS"})
        assert done["flowRevision"] == 2
        (sub / "b.yaml").unlink()
        daemon.wait_line("unloaded flow test.b", after=mark)
        status, _ = daemon.request(
            "POST", "/api/v1/executions/test/b", b"", {"Content-Type": "application/json"}
        )
        assert status == 404
    finally:
        assert daemon.stop() == 0


def test_invalid_flow_file_is_logged_and_previous_revision_keeps_running(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    path = flows / "a.yaml"
    path.write_text(LOG_FLOW.format(id="a", message="good"))
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        mark = len(daemon.lines)
        path.write_text(LOG_FLOW.format(id="a", message="bad").replace("log.Log", "log.Lgo"))
        daemon.wait_line("does not validate", after=mark)
        detail = daemon.wait_line("unknown task type", after=mark)
        assert detail.strip() == (
            f"{path}:5:11: tasks[0].type: unknown task type "
            "'io.kestra.plugin.core.log.Lgo'; did you mean "
            "io.kestra.plugin.core.log.Log?"
        )
        assert "test.a keeps its previous revision" in daemon.output()
        execution = daemon.create_execution("test", "a")
        assert daemon.wait_execution(execution["id"], {"SUCCESS"})["flowRevision"] == 1
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0


def test_invalid_flow_file_is_logged_once_per_change_not_again_and_again(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """Issue #13 finding 10: podium reading an invalid file must not count as a change of
    it (it was read and logged about five times a second). podium's own: Kestra keeps
    flows in its database, with no directory to watch."""
    flows, data = dirs
    bad = flows / "bad.yaml"
    bad.write_text(LOG_FLOW.format(id="bad", message="one").replace("log.Log", "log.Lgo"))
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        daemon.wait_line("does not validate")
        mark = len(daemon.lines)
        bad.write_text(LOG_FLOW.format(id="bad", message="two").replace("log.Log", "log.Lgo"))
        daemon.wait_line("does not validate", after=mark)
        # Two more changes, of another file, each waited for: time enough for a repeat.
        (flows / "good.yaml").write_text(LOG_FLOW.format(id="good", message="v1"))
        daemon.wait_line("loaded flow test.good revision 1", after=mark)
        (flows / "good.yaml").write_text(LOG_FLOW.format(id="good", message="v2"))
        daemon.wait_line("loaded flow test.good revision 2", after=mark)
    finally:
        assert daemon.stop() == 0
    said = [line for line in daemon.lines if "does not validate" in line]
    assert len(said) == 2, said


def test_flow_over_the_size_limit_is_refused_with_a_clear_error_and_health_answers(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """Issue #13 finding 10: a 46 MB flow file stalled /health for seconds. A flow file or
    API body over `max-flow-size` is refused unread, naming the setting (podium's own:
    Kestra bounds only the HTTP request size, micronaut's max-request-size)."""
    flows, data = dirs
    padding = "# " + "x" * 2000 + "\n"
    (flows / "big.yaml").write_text(LOG_FLOW.format(id="big", message="big") + padding)
    (flows / "small.yaml").write_text(LOG_FLOW.format(id="small", message="small"))
    env = {"PODIUM_MAX_FLOW_SIZE": "1000"}
    daemon = ServeProcess(tmp_path, flows, data, env).start()
    try:
        daemon.wait_line("does not validate")
        line = daemon.wait_line("over the limit of 1,000")
        assert "max-flow-size in podium.yaml or PODIUM_MAX_FLOW_SIZE" in line
        status, health = daemon.request("GET", "/health")
        assert status == 200, health
        body = (LOG_FLOW.format(id="posted", message="big") + padding).encode()
        status, doc = daemon.request(
            "POST", "/api/v1/flows", body, {"Content-Type": "application/x-yaml"}
        )
        assert status == 413, doc
        assert "over the limit of 1,000" in doc["message"]
        status, _ = daemon.request("GET", "/api/v1/flows/test/small")
        assert status == 200
    finally:
        assert daemon.stop() == 0


def test_sighup_reloads_flows(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    flows, data = dirs
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        mark = len(daemon.lines)
        daemon.signal(signal.SIGHUP)
        daemon.wait_line("SIGHUP: reloading configuration and flows", after=mark)
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0


def test_kill_9_during_a_flow_resumes_without_rerunning_finished_tasks(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    (flows / "three.yaml").write_text(THREE_TASKS)
    daemon = ServeProcess(tmp_path, flows, data).start()
    execution_id = daemon.create_execution("test", "three")["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = {r["taskId"]: r for r in daemon.execution(execution_id)["taskRunList"]}
        if runs.get("second", {}).get("state", {}).get("current") == "RUNNING":
            break
        time.sleep(0.05)
    daemon.kill()
    again = ServeProcess(tmp_path, flows, data).start()
    try:
        done = again.wait_execution(execution_id, {"SUCCESS", "FAILED", "KILLED"})
        assert done["state"]["current"] == "SUCCESS"
        runs = done["taskRunList"]
        assert [r["taskId"] for r in runs] == ["first", "second", "third"]
        first, second, _ = runs
        assert len(first["attempts"]) == 1  # finished before the crash: ran once
        assert [a["state"]["current"] for a in second["attempts"]] == ["FAILED", "SUCCESS"]
        assert "resumed execution" in again.output()
    finally:
        assert again.stop() == 0


def test_sigterm_kills_executions_still_running_after_the_grace_period(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    (flows / "long.yaml").write_text(
        "id: long\nnamespace: test\ntasks:\n  - id: nap\n"
        "    type: io.kestra.plugin.core.flow.Sleep\n"
        "    duration: PT120S\n"
    )
    daemon = ServeProcess(tmp_path, flows, data, env={"PODIUM_SHUTDOWN_GRACE": "PT0.5S"}).start()
    execution_id = daemon.create_execution("test", "long")["id"]
    daemon.wait_execution(execution_id, {"RUNNING"})
    assert daemon.stop() == 0
    assert "grace period over: killing 1 running executions" in daemon.output()
    assert daemon.lines[-1] == "INFO podium: stopped: 0 executions done, 0 failed, 1 cancelled"
    shown = subprocess.run(
        [sys.executable, "-m", "daemon", "executions", "list", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    [row] = [line.split() for line in shown.stdout.splitlines() if line.startswith(execution_id)]
    assert row[:4] == [execution_id, "test", "long", "KILLED"]


def test_bad_settings_file_is_a_clear_error(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    flows, data = dirs
    config = tmp_path / "podium.yaml"
    config.write_text("port: lots\nmax-concurrent-tasks: -1\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "serve",
            "--config",
            str(config),
            "--flows",
            str(flows),
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"podium: invalid settings ({config}): port: Input should be a valid integer, unable "
        "to parse string as an integer; max-concurrent-tasks: Input should be greater than "
        "or equal to 0"
    )


def test_shutdown_stages_fit_in_timeout_stop_sec() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "systemd" / "podium.service")
    stop = unit["Service"]["TimeoutStopSec"]
    seconds = float(re.fullmatch(r"(\d+)s", stop).group(1))  # type: ignore[union-attr]
    assert shutdown_budget(timedelta(seconds=30)) < seconds


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    unit = (ROOT / "systemd" / "podium.service").read_text()
    local = tmp_path / "podium.service"
    local.write_text(
        unit.replace("/opt/podium/.venv/bin/podium", str(ROOT / ".venv" / "bin" / "podium"))
    )
    result = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
