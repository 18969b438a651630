"""`podium serve` runs on uvloop unless the `event-loop` setting says asyncio (issue #18: the
loop's own work, done in C, is a part of every short webhook execution)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import pytest

from daemon.app import eventloop
from daemon.config.settings import ConfigError, load_settings
from tests.daemon_process import ServeProcess

HOOK = """id: hook
namespace: test
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.n }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-enough-key
"""


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_loop_asked_for() -> None:
    assert eventloop.run(_loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_is_the_standard_library_loop() -> None:
    assert eventloop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_without_uvloop_installed_the_daemon_runs_on_asyncio_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    with caplog.at_level(logging.WARNING, logger="daemon.app.eventloop"):
        assert eventloop.run(_loop_module(), "uvloop").startswith("asyncio")
    assert "uvloop is not installed" in caplog.text


def test_the_setting_defaults_to_uvloop_and_is_read_from_the_environment() -> None:
    assert load_settings(None, {}, environ={}).event_loop == "uvloop"
    settings = load_settings(None, {}, environ={"PODIUM_EVENT_LOOP": "asyncio"})
    assert settings.event_loop == "asyncio"


def test_the_setting_is_read_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "podium.yaml"
    config.write_text("event-loop: asyncio\n")
    assert load_settings(config, {}, environ={}).event_loop == "asyncio"


@pytest.mark.parametrize("bad", ["tokio", "", "UVLOOP "])
def test_an_unknown_loop_is_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"event-loop: .*'uvloop' or 'asyncio'"):
        load_settings(None, {}, environ={"PODIUM_EVENT_LOOP": bad})


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_answers_webhooks_and_stops_cleanly_on_either_loop(tmp_path: Path, loop: str) -> None:
    """A webhook's execution runs, and SIGTERM stops the daemon with exit 0, on both."""
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "hook.yaml").write_text(HOOK)
    daemon = ServeProcess(tmp_path, flows, data, env={"PODIUM_EVENT_LOOP": loop}).start()
    try:
        status, body = daemon.request(
            "POST",
            "/api/v1/executions/webhook/test/hook/a-long-enough-key",
            b'{"n": 7}',
            {"Content-Type": "application/json"},
        )
        assert status == 200, body
        done = daemon.wait_execution(body["id"], {"SUCCESS"})
        assert done["taskRunList"][0]["outputs"] == {"value": "7"}
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.stop() == 0
