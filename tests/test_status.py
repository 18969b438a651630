"""`podium status` against a real `podium serve`: flows, triggers with their next fire time or
last event, what is running, the last failures; `--json` for scripts; one clear line when
there is no daemon to ask (or it is not podium, or it wants credentials)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_process import ServeProcess

USER, PASSWORD = "ada", "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
CREDENTIALS = {"PODIUM_BASIC_AUTH_USERNAME": USER, "PODIUM_BASIC_AUTH_PASSWORD": PASSWORD}
KEY = "st4tusK3y"

FLOWS = {
    "nightly": """
id: nightly
namespace: status.test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: night
triggers:
  - id: at_three
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
""",
    "hook": f"""
id: hook
namespace: status.test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hooked
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
""",
    "slow": """
id: slow
namespace: status.test
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10M
""",
    "broken": """
id: broken
namespace: status.test
tasks:
  - id: prepare
    type: io.kestra.plugin.core.log.Log
    message: ready
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: disk full
""",
    "off": """
id: off
namespace: status.test
disabled: true
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: never
""",
}


def call(daemon: ServeProcess, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    status, doc = daemon.request(method, path, data, {**AUTH, "Content-Type": "application/json"})
    assert status == 200, (status, doc)
    return doc


def wait_state(daemon: ServeProcess, execution_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        doc = call(daemon, "GET", f"/api/v1/executions/{execution_id}")
        if doc["state"]["current"] == state:
            return dict(doc)
        assert time.monotonic() < deadline, f"execution stayed {doc['state']['current']}"
        time.sleep(0.05)


class Served:
    def __init__(
        self,
        daemon: ServeProcess,
        slow: dict[str, Any],
        broken: dict[str, Any],
        hooked: dict[str, Any],
    ) -> None:
        self.daemon = daemon
        self.url = f"http://127.0.0.1:{daemon.port}"
        self.slow = slow
        self.broken = broken
        self.hooked = hooked


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("status")
    flows, data = root / "flows", root / "data"
    flows.mkdir()
    for name, source in FLOWS.items():
        (flows / f"{name}.yaml").write_text(source)
    daemon = ServeProcess(
        root, flows, data, env={**CREDENTIALS, "PODIUM_SHUTDOWN_GRACE": "PT0S"}
    ).start()
    try:
        broken = call(daemon, "POST", "/api/v1/executions/status.test/broken", {})
        broken = wait_state(daemon, broken["id"], "FAILED")
        slow = call(daemon, "POST", "/api/v1/executions/status.test/slow", {})
        slow = wait_state(daemon, slow["id"], "RUNNING")
        status, hooked = daemon.request(
            "POST", f"/api/v1/executions/webhook/status.test/hook/{KEY}", b"{}"
        )
        assert status == 200, hooked
        wait_state(daemon, hooked["id"], "SUCCESS")
        yield Served(daemon, slow, broken, hooked)
    finally:
        daemon.stop()


def podium_status(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_BASIC_AUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "daemon", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_json_names_flows_triggers_running_executions_and_last_failures(served: Served) -> None:
    done = podium_status("--url", served.url, "--json", env=CREDENTIALS)
    assert (done.returncode, done.stderr) == (0, "")
    status = json.loads(done.stdout)
    assert set(status) == {
        "url",
        "status",
        "version",
        "flows",
        "triggers",
        "running",
        "failures",
        "waiting",
    }
    assert status["waiting"] == []  # one daemon: no task run waits for a worker group
    assert (status["url"], status["status"]) == (served.url, "UP")
    assert status["flows"] == {"count": 5, "disabled": ["status.test.off"]}
    triggers = {t["triggerId"]: t for t in status["triggers"]}
    assert set(triggers) == {"at_three", "web"}
    nightly, web = triggers["at_three"], triggers["web"]
    assert (nightly["flowId"], nightly["type"], nightly["disabled"]) == (
        "nightly",
        "io.kestra.plugin.core.trigger.Schedule",
        False,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT03:00:00(\.0+)?Z", nightly["nextExecutionDate"])
    assert (nightly["lastEventDate"], nightly["lastExecutionId"]) == (None, None)
    assert (web["flowId"], web["nextExecutionDate"], web["lastExecutionId"]) == (
        "hook",
        None,
        served.hooked["id"],
    )
    assert web["lastEventDate"] is not None
    assert status["running"] == {
        "count": 1,
        "executions": [
            {
                "id": served.slow["id"],
                "namespace": "status.test",
                "flowId": "slow",
                "state": "RUNNING",
                "startDate": served.slow["state"]["startDate"],
            }
        ],
    }
    assert status["failures"] == [
        {
            "id": served.broken["id"],
            "namespace": "status.test",
            "flowId": "broken",
            "taskId": "boom",
            "error": "disk full",
            "date": served.broken["state"]["endDate"],
        }
    ]


def test_text_is_one_screen_with_the_same_facts(served: Served) -> None:
    done = podium_status("--url", served.url, "--user", USER, "--password", PASSWORD)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert len(lines) <= 24
    assert re.fullmatch(rf"podium \S+ at {re.escape(served.url)}: UP", lines[0])
    assert lines[1] == "Flows: 5 (1 disabled: status.test.off)"
    assert lines[2] == "Triggers: 2"
    at = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
    assert re.fullmatch(
        rf"  status\.test\.hook web \(Webhook\): last event {at} \(\d+[smh] ago\)", lines[3]
    ), lines[3]
    assert re.fullmatch(
        r"  status\.test\.nightly at_three \(Schedule\): next "
        r"\d{4}-\d\d-\d\d 03:00:00Z \(in \d+[smh]\)",
        lines[4],
    ), lines[4]
    assert lines[5] == "Running executions: 1"
    assert re.fullmatch(
        rf"  {served.slow['id']}  status\.test\.slow  RUNNING since {at} "
        r"\(\d+[smh] ago\)",
        lines[6],
    ), lines[6]
    assert lines[7] == "Last failures:"
    assert re.fullmatch(
        rf"  {at} \(\d+[smh] ago\)  status\.test\.broken  task boom: disk full  "
        rf"\({served.broken['id']}\)",
        lines[8],
    ), lines[8]
    assert len(lines) == 9


def test_without_credentials_one_line_says_what_to_set(served: Served) -> None:
    done = podium_status("--url", served.url)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"podium: the daemon at {served.url} wants credentials: set "
        "PODIUM_BASIC_AUTH_USERNAME and PODIUM_BASIC_AUTH_PASSWORD, or pass "
        "--user and --password\n"
    )
    wrong = podium_status("--url", served.url, "--user", USER, "--password", "nope")
    assert (wrong.returncode, wrong.stderr) == (1, done.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_daemon_is_one_line_and_exit_1() -> None:
    port = free_port()
    done = podium_status("--url", f"http://127.0.0.1:{port}")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"podium: cannot reach the daemon at http://127.0.0.1:{port} "
        "([Errno 111] Connection refused)\n"
    )


class _NotPodium(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_server_that_is_not_podium_is_named_as_such() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotPodium)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = podium_status("--url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"podium: {url} does not look like podium: GET /health did not answer JSON\n"
    )
