"""Secrets never leave in clear (issue #13, finding 7): not in the `?wait=true` answer, the
webhook's `wait`/`returnOutputs` answer, the follow stream the UI reads, `podium run`'s
output; and script processes never see the daemon's own credentials or SECRET_*.

Kestra masks secret values it renders (its `secret()` docs); its script tasks get the
task's `env` and WORKING_DIR / OUTPUT_DIR (Process task runner docs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tasks.scripts.environment import script_environment
from tests.api_helpers import call, events, flow_server, serving
from tests.daemon_process import ROOT
from tests.harness import Harness

CLEAR = "s3cr3t-t0k3n-value"
LEAKY = """id: leaky
namespace: ns
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "token={{ secret('TOKEN') }}"
  - id: pause
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.5S
outputs:
  - id: token
    type: STRING
    value: "{{ outputs.echo.value }}"
triggers:
  - id: outputs_only
    type: io.kestra.plugin.core.trigger.Webhook
    key: outputs-key
    wait: true
    returnOutputs: true
  - id: outputs_as_text
    type: io.kestra.plugin.core.trigger.Webhook
    key: text-key
    wait: true
    returnOutputs: true
    responseContentType: text/plain
  - id: whole_answer
    type: io.kestra.plugin.core.trigger.Webhook
    key: answer-key
    wait: true
"""


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECRET_TOKEN", base64.b64encode(CLEAR.encode()).decode())
    return CLEAR


async def test_wait_true_answer_masks_secrets(h: Harness, token: str) -> None:
    await h.flow(LEAKY)
    async with serving(h) as url:
        status, doc, _ = await call("POST", f"{url}/api/v1/executions/ns/leaky?wait=true")
    assert status == 200, doc
    assert doc["state"]["current"] == "SUCCESS"
    assert token not in json.dumps(doc)
    runs = {run["taskId"]: run for run in doc["taskRunList"]}
    assert runs["echo"]["outputs"] == {"value": "token=******"}
    assert doc["outputs"] == {"token": "token=******"}


async def test_webhook_wait_and_return_outputs_answers_mask_secrets(
    h: Harness, tmp_path: Path, token: str
) -> None:
    await asyncio.to_thread((tmp_path / "flows").mkdir)
    await asyncio.to_thread((tmp_path / "flows" / "leaky.yaml").write_text, LEAKY)
    async with flow_server(h, tmp_path / "flows") as server:
        hook = f"{server.url}/api/v1/executions/webhook/ns/leaky"
        status, outputs, _ = await call("POST", f"{hook}/outputs-key", json={})
        assert (status, outputs) == (200, {"token": "token=******"})
        status, text, _ = await call("POST", f"{hook}/text-key", json={})
        assert (status, text) == (200, '{"token":"token=******"}')
        status, answer, _ = await call("POST", f"{hook}/answer-key", json={})
        assert status == 200 and answer["state"]["current"] == "SUCCESS"
        assert answer["outputs"] == {"token": "token=******"}
        assert token not in json.dumps(answer)


async def test_follow_stream_masks_secrets_in_every_event(h: Harness, token: str) -> None:
    """The UI's live execution page reads this stream: events built from the execution
    in memory (clear values) are masked as the store masks them."""
    await h.flow(LEAKY)
    async with serving(h) as url:
        status, created, _ = await call("POST", f"{url}/api/v1/executions/ns/leaky")
        assert status == 200, created
        seen = []
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/api/v1/executions/{created['id']}/follow") as response,
        ):
            async for event in events(response):
                seen.append(event)
    assert seen[-1].id == "end" and len(seen) >= 2
    shown = json.dumps([event.data for event in seen])
    assert token not in shown
    assert "token=******" in json.dumps(seen[-1].data)


def test_podium_run_json_and_summary_mask_secrets(tmp_path: Path) -> None:
    flow = tmp_path / "leaky.yaml"
    flow.write_text(LEAKY.split("triggers:")[0])
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SECRET_TOKEN": base64.b64encode(CLEAR.encode()).decode(),
    }
    for args in ((), ("--json",)):
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "--data-dir", str(tmp_path / "data")]
            + ["run", str(flow), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert CLEAR not in done.stdout + done.stderr
        assert "token=******" in done.stdout


SCRIPT_ENV = """
id: env
namespace: ns
tasks:
  - id: show
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    env:
      DECLARED: by-the-task
    commands:
      - env | sort
"""


async def test_scripts_get_a_clean_environment_without_the_daemons_secrets(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_BASIC_AUTH_PASSWORD", "daemon-password-123")
    monkeypatch.setenv("SECRET_DB_PASSWORD", base64.b64encode(b"db-pass-456").decode())
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    ex = await h.run(SCRIPT_ENV)
    assert ex.state.current.value == "SUCCESS"
    lines = await h.logs(ex)
    names = {line.split("=", 1)[0] for line in lines if "=" in line}
    assert "DECLARED=by-the-task" in lines
    assert {"PATH", "WORKING_DIR", "LC_TIME", "HTTPS_PROXY"} <= names
    assert not {n for n in names if n.startswith(("PODIUM_", "SECRET_"))}, names
    assert "NOTIFY_SOCKET" not in names
    text = "\n".join(lines)
    assert "daemon-password-123" not in text
    assert base64.b64encode(b"db-pass-456").decode() not in text


def test_script_environment_keeps_only_what_a_process_needs() -> None:
    host = {
        "PATH": "/usr/bin",
        "HOME": "/var/lib/podium",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PIP_INDEX_URL": "http://mirror/simple",
        "https_proxy": "http://proxy:3128",
        "PODIUM_BASIC_AUTH_PASSWORD": "x",
        "SECRET_A": "eA==",
        "AWS_SECRET_ACCESS_KEY": "y",
        "INVOCATION_ID": "z",
        "VIRTUAL_ENV": "/opt/podium/.venv",
    }
    assert script_environment({"WORKING_DIR": "/w", "PATH": "/task/bin"}, host) == {
        "PATH": "/task/bin",
        "HOME": "/var/lib/podium",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PIP_INDEX_URL": "http://mirror/simple",
        "https_proxy": "http://proxy:3128",
        "WORKING_DIR": "/w",
    }
    assert script_environment({}, {})["PATH"]  # a PATH, even when the daemon has none
