"""`podium serve` as a real child process, the way systemd or a person starts it."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ServeProcess:
    """Starts `podium serve`, collects its stdout lines and systemd notifications."""

    def __init__(
        self,
        workdir: Path,
        flows: Path,
        data: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.wrapper = wrapper  # a command to run it under, e.g. setpriv with fewer capabilities
        self.flows = flows
        self.data = data
        self.env = env or {}
        self.args = args
        self.lines: list[str] = []
        self.port = 0
        self.host = "127.0.0.1"  # where the test reaches its API (another address in a netns)
        # unix socket paths are limited to 107 bytes: pytest's tmp paths can be longer
        self.notify_path = Path(tempfile.mkdtemp(prefix="podium-notify-")) / "notify.sock"
        self.notifications: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None
        self._line_seen = threading.Condition()

    def start(self, wait_ready: bool = True) -> ServeProcess:
        self.notify_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.notify_path))
        threading.Thread(target=self._read_notifications, args=(sock,), daemon=True).start()
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **self.env}
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "daemon",
                "serve",
                "--flows",
                str(self.flows),
                "--data-dir",
                str(self.data),
                "--port",
                "0",
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.workdir,
            env=env,
        )
        threading.Thread(target=self._read_lines, daemon=True).start()
        if wait_ready:
            self.wait_notification("READY=1")
            line = self.wait_line("podium serving")
            self.port = int(line.split("http://", 1)[1].split(":", 1)[1].split(" ", 1)[0])
        return self

    def _read_notifications(self, sock: socket.socket) -> None:
        with sock:
            while True:
                data = sock.recv(4096)
                if not data:
                    return
                self.notifications.put(data.decode())

    def _read_lines(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._line_seen:
                self.lines.append(line.rstrip("\n"))
                self._line_seen.notify_all()

    def wait_notification(self, expected: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.notifications.get(timeout=0.2)
            except queue.Empty:
                self._check_alive()
                continue
            if expected in message.split("\n"):
                return
        raise AssertionError(f"no {expected} from podium serve; output:\n" + self.output())

    def wait_line(self, fragment: str, timeout: float = 30, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._line_seen:
            while True:
                for line in self.lines[after:]:
                    if fragment in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {fragment!r}; output:\n{self.output()}")
                self._line_seen.wait(min(left, 0.2))

    def output(self) -> str:
        return "\n".join(self.lines)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"podium serve exited with {self.proc.returncode}:\n" + self.output()
            )

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url(path), data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()

    def create_execution(self, namespace: str, flow_id: str) -> dict[str, Any]:
        boundary = "podiumtest"
        body = f"--{boundary}--\r\n".encode()
        status, doc = self.request(
            "POST",
            f"/api/v1/executions/{namespace}/{flow_id}",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert status == 200, (status, doc)
        assert isinstance(doc, dict)
        return doc

    def execution(self, execution_id: str) -> dict[str, Any]:
        status, doc = self.request("GET", f"/api/v1/executions/{execution_id}")
        assert status == 200, (status, doc)
        assert isinstance(doc, dict)
        return doc

    def wait_execution(
        self, execution_id: str, states: set[str], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.execution(execution_id)
            if doc["state"]["current"] in states:
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"execution stayed {doc['state']['current']}")
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.notify_path.unlink(missing_ok=True)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
