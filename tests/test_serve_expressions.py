"""Issue #13 finding 3 against a real `podium serve`: a hostile expression fails its task with
a clear message while /health keeps answering, and a kill -9 in the middle of one leaves a
daemon that starts, answers and fails the resumed task the same way.

Kestra's Log task (core/src/test/resources/flows/valids/logs.yaml) renders its message; the
expressions are those the issue found taking the daemon down.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_process import ServeProcess

HOSTILE = {
    "jq_forever": "{{ {} | jq('def f: f; f') }}",
    "jq_range": "{{ {} | jq('[range(1e8)]') | length }}",
    "sum_lists": ("{% set l = range(100000) | list %}{{ ([l] * 200) | sum(start=[]) | length }}"),
    "join_10gb": "{% set s = 'x' * 9999999 %}{{ ([s] * 1000) | join | length }}",
    "wordwrap": "{% set s = 'x ' * 5000000 %}{{ s | wordwrap(1) | length }}",
    "loops": (
        "{% set s = 'x' * 9999999 %}{% for i in range(1000) %}{% for j in range(1000) %}"
        "{% set t = s ~ 'y' %}{% endfor %}{% endfor %}done"
    ),
}
EXPECTED = {
    "jq_forever": "jq: the program ran for more than 10 s",
    "jq_range": "jq: the program r",  # ran for more than 10 s, or ran out of memory
    "sum_lists": "sum makes 10100000 items, over the limit of 10000000",
    "join_10gb": "join of texts makes 9999999000 characters, over the limit of 10000000",
    "wordwrap": "wordwrap of a text of 10000000 characters is over the limit of 1000000",
    "loops": "the expression ran for more than 10 s, the limit for one render",
}


def flow(flow_id: str, message: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: test\ntasks:\n  - id: say\n"
        f"    type: io.kestra.plugin.core.log.Log\n    message: {json.dumps(message)}\n"
    )


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    for flow_id, message in HOSTILE.items():
        (flows / f"{flow_id}.yaml").write_text(flow(flow_id, message))
    return flows, data


def health(daemon: ServeProcess) -> int:
    """/health's status, asked with a short timeout: a frozen loop fails this."""
    with urllib.request.urlopen(daemon.url("/health"), timeout=3) as resp:
        return int(resp.status)


def error_lines(daemon: ServeProcess, execution_id: str) -> str:
    status, lines = daemon.request("GET", f"/api/v1/logs/{execution_id}")
    assert status == 200, lines
    return "\n".join(line["message"] for line in lines if line["level"] == "ERROR")


def jq_workers(parent: int) -> set[int]:
    """Processes running daemon/expr/jq_worker.py whose parent is `parent`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"jq_worker.py" in cmdline:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it has already stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_hostile_expressions_fail_their_tasks_while_health_answers(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """Issue #13 finding 3: each expression used to freeze, abort or exhaust the daemon."""
    flows, data = dirs
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        ids = {name: daemon.create_execution("test", name)["id"] for name in HOSTILE}
        ended: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 120
        while len(ended) < len(ids) and time.monotonic() < deadline:
            assert health(daemon) == 200
            for name, execution_id in ids.items():
                doc = daemon.execution(execution_id)
                if name not in ended and doc["state"]["current"] not in ("CREATED", "RUNNING"):
                    ended[name] = doc
            time.sleep(0.2)
        assert {name: doc["state"]["current"] for name, doc in ended.items()} == dict.fromkeys(
            HOSTILE, "FAILED"
        )
        for name, execution_id in ids.items():
            assert EXPECTED[name] in error_lines(daemon, execution_id), name
        assert health(daemon) == 200
    finally:
        assert daemon.stop() == 0


def test_kill_9_during_a_hostile_expression_then_restart_serves(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """Issue #13 finding 3: the resumed execution used to freeze the loop before the port
    opened, so the restarted daemon never answered. Now it starts, answers, and the resumed
    task fails as the first attempt would have; the killed daemon's jq worker dies with it."""
    flows, data = dirs
    daemon = ServeProcess(tmp_path, flows, data).start()
    execution_id = daemon.create_execution("test", "jq_forever")["id"]
    assert daemon.proc is not None
    deadline = time.monotonic() + 30
    while not (workers := jq_workers(daemon.proc.pid)):
        assert time.monotonic() < deadline, "the jq worker never started"
        time.sleep(0.05)
    daemon.kill()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "the jq worker outlived the daemon"
        time.sleep(0.05)
    again = ServeProcess(tmp_path, flows, data).start()
    try:
        assert health(again) == 200
        deadline = time.monotonic() + 60
        while (doc := again.execution(execution_id))["state"]["current"] == "RUNNING":
            assert health(again) == 200
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert doc["state"]["current"] == "FAILED"
        assert EXPECTED["jq_forever"] in error_lines(again, execution_id)
    finally:
        assert again.stop() == 0
