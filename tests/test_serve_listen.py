"""Where `podium serve` listens without credentials (issue #13, finding 4).

Kestra's own server has no such guard (its basic auth is off by default and it listens on
every interface); a systemd admin expects an API with no password never to be open beyond
the machine by accident, and the start line to say where it really listens.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_process import ROOT, ServeProcess

FLOW = """id: hello
namespace: test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "hello.yaml").write_text(FLOW)
    return flows, data


def _serve(
    dirs: tuple[Path, Path], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    flows, data = dirs
    return subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--flows", str(flows), "--data-dir", str(data)]
        + ["--port", "0", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "host"),
    [
        (("--host", "0.0.0.0"), {}, "0.0.0.0"),
        ((), {"PODIUM_HOST": "0.0.0.0"}, "0.0.0.0"),
        (("--host", "::"), {}, "::"),
    ],
)
def test_serve_beyond_loopback_without_credentials_is_refused(
    dirs: tuple[Path, Path], args: tuple[str, ...], env: dict[str, str], host: str
) -> None:
    """The open API is never served on every interface by accident: exit 1, one line
    saying why and what to do, and nothing opened (no store created)."""
    result = _serve(dirs, *args, env=env)
    assert result.returncode == 1, result
    message = result.stderr.strip()
    assert message.startswith(f"podium: refusing to listen on {host} "), message
    assert "without basic-auth credentials" in message
    assert "--insecure-no-auth" in message and "PODIUM_BASIC_AUTH_USERNAME" in message
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (dirs[1] / "podium.db").exists()


def test_insecure_no_auth_serves_on_all_interfaces_and_warns_at_every_start(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """--insecure-no-auth (or PODIUM_INSECURE_NO_AUTH) is the explicit way to an open API:
    it serves, the start line names 0.0.0.0 (not "127.0.0.1 only"), and every start warns."""
    flows, data = dirs
    for args, env in (
        (("--host", "0.0.0.0", "--insecure-no-auth"), {}),
        ((), {"PODIUM_HOST": "0.0.0.0", "PODIUM_INSECURE_NO_AUTH": "true"}),
    ):
        daemon = ServeProcess(tmp_path, flows, data, env=env, args=args).start()
        try:
            warning = daemon.wait_line("insecure-no-auth")
            assert warning.startswith("WARNING podium: ")
            assert "NO credentials" in warning and "0.0.0.0" in warning
            line = daemon.wait_line("podium serving")
            assert f"on http://0.0.0.0:{daemon.port} (all IPv4 interfaces)" in line
            assert "127.0.0.1" not in line
            status, health = daemon.request("GET", "/health")
            assert status == 200 and health["status"] == "UP"
            status, _ = daemon.request("GET", "/api/v1/flows/test/hello")
            assert status == 200  # open, as asked
        finally:
            assert daemon.stop() == 0


def test_default_listens_on_loopback_and_says_the_real_address(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    daemon = ServeProcess(tmp_path, flows, data).start()
    try:
        line = daemon.wait_line("podium serving")
        assert f"on http://127.0.0.1:{daemon.port} (data in" in line
        assert "no basic-auth credentials" in line
        assert "insecure" not in daemon.output()
    finally:
        assert daemon.stop() == 0


def test_localhost_is_loopback_and_allowed_without_credentials(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    """A host name is resolved: `localhost` stands for loopback addresses only."""
    flows, data = dirs
    daemon = ServeProcess(tmp_path, flows, data, args=("--host", "localhost")).start()
    try:
        line = daemon.wait_line("podium serving")
        assert f"http://127.0.0.1:{daemon.port}" in line
        assert "0.0.0.0" not in line
    finally:
        assert daemon.stop() == 0


def test_credentials_allow_all_interfaces_without_warning(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    flows, data = dirs
    env = {"PODIUM_BASIC_AUTH_USERNAME": "ada", "PODIUM_BASIC_AUTH_PASSWORD": "pw-123"}
    daemon = ServeProcess(tmp_path, flows, data, env=env, args=("--host", "0.0.0.0")).start()
    try:
        line = daemon.wait_line("podium serving")
        assert f"on http://0.0.0.0:{daemon.port} (all IPv4 interfaces)" in line
        assert "WARNING" not in daemon.output()
        status, _ = daemon.request("GET", "/api/v1/flows/test/hello")
        assert status == 401
    finally:
        assert daemon.stop() == 0
