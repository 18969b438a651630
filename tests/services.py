"""Private instances of the real services that podium's tests talk to.

Each helper starts its own PostgreSQL, Mosquitto, podman, Redis, RabbitMQ, NATS or
MariaDB on a free port (or socket) in a fresh temporary directory, so tests never touch the system
services that the machine may already run on the default ports, and several
test sessions can run side by side. A missing binary fails the test with the
Debian package to install: a skipped service test would hide a broken CI.

These helpers are synchronous: conftest.py calls them from session fixtures,
outside any event loop.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import glob
import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LOG_TAIL = 4000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return text[-LOG_TAIL:]


def _require(binary: str, package: str) -> str:
    found = shutil.which(binary)
    if found is None:
        pytest.fail(
            f"`{binary}` not found: install the Debian package `{package}` "
            f"(apt-get install -y --no-install-recommends {package}, "
            f"or run .ci/ensure-packages as root)",
            pytrace=False,
        )
    return found


def _wait_until(
    ready: Callable[[], bool],
    what: str,
    log: Path,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll `ready` until it is true; fail with the service's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"{what} exited with code {proc.returncode} while starting; log:\n{_tail(log)}",
                pytrace=False,
            )
        if ready():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {timeout:.0f}s; log:\n{_tail(log)}", pytrace=False)
        time.sleep(0.1)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def _run_checked(
    argv: list[str], what: str, cwd: Path | None = None, timeout: float | None = None
) -> None:
    result = subprocess.run(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace")[-LOG_TAIL:]
        pytest.fail(f"{what} failed (exit {result.returncode}):\n{output}", pytrace=False)


# --- PostgreSQL ---------------------------------------------------------------

MIN_POSTGRES_MAJOR = 15  # MERGE


def _postgres_bindir() -> Path:
    """The newest server bin dir: initdb/pg_ctl are not on PATH on Debian."""
    found: list[tuple[int, Path]] = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        major = bindir.parent.name
        if major.isdigit() and (bindir / "pg_ctl").exists():
            found.append((int(major), bindir))
    if not found or max(found)[0] < MIN_POSTGRES_MAJOR:
        versions = ", ".join(str(m) for m, _ in sorted(found)) or "none"
        pytest.fail(
            f"PostgreSQL server >= {MIN_POSTGRES_MAJOR} not found under /usr/lib/postgresql "
            f"(found: {versions}): install the Debian package `postgresql`",
            pytrace=False,
        )
    return max(found)[1]


@dataclass
class PostgresServer:
    """A private PostgreSQL 15+ cluster (trust auth, user and database postgres).

    `stop()`, `start()` and `restart()` keep its data and port, as a real server
    restart would. They block: from a test's event loop, call them via
    `asyncio.to_thread`. `hba` lines go before the trust rules of pg_hba.conf, to
    make some roles log in with a password.
    """

    root: Path
    hba: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    bindir: Path = field(default_factory=_postgres_bindir)
    listen: str = "127.0.0.1"  # listen_addresses: more for clients in network namespaces
    _as_postgres: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def init(self) -> None:
        if os.geteuid() == 0:
            # initdb refuses to run as root; the cluster belongs to `postgres`, who
            # must own the (0700) temp dir to create the data dir, log and socket.
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(
                    "no `postgres` user: install the Debian package `postgresql`",
                    pytrace=False,
                )
            _require("runuser", "util-linux")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        _run_checked(
            [
                *self._as_postgres,
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
            cwd=self.root,
        )
        if self.hba:
            hba = self.data / "pg_hba.conf"
            hba.write_text("\n".join(self.hba) + "\n" + hba.read_text())

    def start(self) -> None:
        options = (
            f"-c listen_addresses={self.listen} -c port={self.port} "
            f"-c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = subprocess.run(
            [
                *self._as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if start.returncode != 0:
            pytest.fail(
                f"pg_ctl start failed (exit {start.returncode}):\n"
                f"{start.stdout.decode(errors='replace')}\nlog:\n{_tail(self.log)}",
                pytrace=False,
            )

        def accepting() -> bool:
            ready = subprocess.run(
                [
                    str(self.bindir / "pg_isready"),
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ],
                check=False,
            )
            return ready.returncode == 0

        _wait_until(accepting, "PostgreSQL", self.log)

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended, as on a service restart."""
        if self.running:
            subprocess.run(
                [*self._as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                 "-m", "fast", "-w", "stop"],
                cwd=self.root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )  # fmt: skip

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def postgres_server(
    hba: tuple[str, ...] = (), configure: Callable[[PostgresServer], None] | None = None
) -> Iterator[PostgresServer]:
    """A started `PostgresServer` in a fresh temp dir, removed afterwards; `configure`
    runs between initdb and the start (to add settings, certificates...)."""
    bindir = _postgres_bindir()
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="podium-pg-")), hba, bindir=bindir)
    try:
        server.init()
        if configure is not None:
            configure(server)
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A private PostgreSQL 15+ cluster; yields its DSN (trust auth, user postgres)."""
    with postgres_server() as server:
        yield server.dsn


# --- Mosquitto ----------------------------------------------------------------


@dataclass
class Mosquitto:
    """A private broker. Persistence is on, so `restart()` keeps sessions and
    retained/queued messages, as a real broker restart would. `stop()`,
    `start()` and `restart()` block: from a test's event loop, call them via
    `asyncio.to_thread`."""

    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        binary = _require("mosquitto", "mosquitto")
        conf = self.root / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.root}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root mosquitto would drop to the `mosquitto` user, who cannot
            # write the persistence file into our 0700 temp dir.
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_until(lambda: _tcp_open(self.port), "mosquitto", self.log, self._proc)

    def stop(self) -> None:
        """Stop cleanly (SIGTERM), which writes the persistence file."""
        if self._proc is not None:
            _stop_process(self._proc)
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port, keeping persisted state."""
        self.stop()
        self.start()


@contextlib.contextmanager
def mosquitto() -> Iterator[Mosquitto]:
    _require("mosquitto", "mosquitto")
    root = Path(tempfile.mkdtemp(prefix="podium-mqtt-"))
    broker = Mosquitto(root)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- podman -------------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _socket_path(docker_host: str) -> str:
    if not docker_host.startswith("unix://"):
        raise ValueError(f"expected a unix:// DOCKER_HOST, got {docker_host!r}")
    return docker_host.removeprefix("unix://")


def _api_get(docker_host: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(_socket_path(docker_host), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _unmount_under(root: Path) -> None:
    """Unmount what podman/containers-storage left mounted below `root` (deepest
    first), so that the directory can be removed."""
    prefix = str(root) + "/"
    points: list[str] = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def podman() -> Iterator[str]:
    """A private `podman system service`; yields its unix:// DOCKER_HOST URL.

    Storage, runtime state, network config and events all live in a temp dir,
    so this never sees (or disturbs) the machine's own podman state.
    """
    binary = _require("podman", "podman")
    _require("runc", "runc")
    _require("conmon", "conmon")
    root = Path(tempfile.mkdtemp(prefix="podium-podman-"))
    log = root / "podman.log"
    sock = root / "podman.sock"
    docker_host = f"unix://{sock}"
    (root / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        "\n[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{root}/events.log"\n'
        f'tmp_dir = "{root}/tmp"\n'
        f'volume_path = "{root}/volumes"\n'
        "\n[network]\n"
        f'network_config_dir = "{root}/net"\n'
    )
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }
    env.pop("DOCKER_HOST", None)
    env.pop("CONTAINER_HOST", None)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [binary, "--log-level=info", "system", "service", "--time=0", docker_host],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def pinging() -> bool:
            try:
                return _api_get(docker_host, "/_ping", timeout=2)[0] == 200
            except OSError:
                return False

        _wait_until(pinging, "podman system service", log, proc)
        yield docker_host
    finally:
        if proc is not None:
            _remove_all_containers(docker_host)
            _stop_process(proc)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def _remove_all_containers(docker_host: str) -> None:
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        status, body = _api_get(docker_host, "/containers/json?all=true")
        if status != 200:
            return
        for container in json.loads(body):
            conn = _UnixHTTPConnection(_socket_path(docker_host), timeout=30)
            try:
                conn.request("DELETE", f"/containers/{container['Id']}?force=true&v=true")
                conn.getresponse().read()
            finally:
                conn.close()


# --- the python image -----------------------------------------------------------

PYTHON_IMAGE = "localhost/python:test"
IMAGE_CACHE = Path(os.environ.get("PODIUM_TEST_IMAGE_CACHE", "/var/tmp/podium-test-images"))
DEBOOTSTRAP_SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = "python3-minimal,python3-pip,python3-venv"
BUILD_TIMEOUT = 1200


def _debian_mirror() -> str:
    """The Debian mirror apt uses here (Docker Hub is unreachable; apt's mirror is)."""
    sources: list[Path] = [Path("/etc/apt/sources.list")]
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and DEBOOTSTRAP_SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == DEBOOTSTRAP_SUITE:
                return m.group(1)
    return "http://deb.debian.org/debian"


# Left out of the image: a quarter of its size that no test reads, and every
# session imports the image anew into its private storage.
PRUNED = "var/cache/apt/archives var/lib/apt/lists usr/share/doc usr/share/man usr/share/info"


def _prune_rootfs(rootfs: Path) -> None:
    for junk in PRUNED.split():
        for entry in (rootfs / junk).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.is_file():
                entry.unlink()
    for entry in (rootfs / "usr/share/locale").glob("*"):
        if entry.is_dir():  # translations; locale.alias stays
            shutil.rmtree(entry)


_build_failure: str | None = None


def python_image_tarball(announce: Callable[[str], None] = lambda _: None) -> Path:
    """The root filesystem tarball for PYTHON_IMAGE, built once a month (keyed by
    the month and the recipe) and shared by every test session on this machine.

    conftest.py calls this once before the tests run, so that the minute or two
    of a first build counts against no test's timeout; a failed build is
    remembered and reported by each test that needs the image, not retried.
    """
    global _build_failure
    if _build_failure is not None:
        pytest.fail(_build_failure, pytrace=False)
    try:
        return _build_tarball(announce)
    except pytest.fail.Exception as exc:
        _build_failure = str(exc.msg)
        raise


def _build_tarball(announce: Callable[[str], None]) -> Path:
    recipe = f"{DEBOOTSTRAP_SUITE} minbase {DEBOOTSTRAP_INCLUDE} {PRUNED}"
    key = f"{datetime.date.today():%Y-%m}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    tarball = IMAGE_CACHE / f"python-{DEBOOTSTRAP_SUITE}-{key}.tar"
    with (IMAGE_CACHE / "build.lock").open("w") as lock:
        # Concurrent sessions wait for one build instead of racing.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        debootstrap = _require("debootstrap", "debootstrap")
        for stale in [*IMAGE_CACHE.glob("python-*.tar"), *IMAGE_CACHE.glob("*.partial")]:
            stale.unlink()
        for stale_dir in IMAGE_CACHE.glob("rootfs-*"):  # left by an interrupted build
            _unmount_under(stale_dir)
            shutil.rmtree(stale_dir, ignore_errors=True)
        mirror = _debian_mirror()
        announce(f"building {tarball} with debootstrap from {mirror} (once a month)")
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=IMAGE_CACHE))
        log = IMAGE_CACHE / "build.log"
        try:
            with log.open("wb") as out:
                built = subprocess.run(
                    [
                        debootstrap,
                        "--variant=minbase",
                        f"--include={DEBOOTSTRAP_INCLUDE}",
                        DEBOOTSTRAP_SUITE,
                        str(rootfs),
                        mirror,
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT,
                    check=False,
                )
            if built.returncode != 0:
                pytest.fail(
                    f"debootstrap failed (exit {built.returncode}); log:\n{_tail(log)}",
                    pytrace=False,
                )
            _prune_rootfs(rootfs)
            partial = tarball.with_suffix(".partial")
            _run_checked(["tar", "-C", str(rootfs), "-cf", str(partial), "."], "tar rootfs")
            partial.rename(tarball)
        finally:
            _unmount_under(rootfs)
            shutil.rmtree(rootfs, ignore_errors=True)
        return tarball


def ensure_python_image(docker_host: str) -> str:
    """Make PYTHON_IMAGE (Debian bookworm with python3, pip and venv) exist on
    the podman at `docker_host`, building the root filesystem with debootstrap
    if this machine has no cached one yet. Returns the image name."""
    status, _ = _api_get(docker_host, f"/images/{PYTHON_IMAGE}/json")
    if status == 200:
        return PYTHON_IMAGE
    tarball = python_image_tarball()
    podman_bin = _require("podman", "podman")
    _run_checked(
        [podman_bin, "--url", docker_host, "import", str(tarball), PYTHON_IMAGE],
        f"podman import {PYTHON_IMAGE}",
        timeout=BUILD_TIMEOUT,
    )
    return PYTHON_IMAGE


# --- Chromium -------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
# As the machine doc says: without the background-networking flags Chromium keeps
# trying to reach Google's hosts, which this closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass
class Chromium:
    """Headless Chromium; `argv()` gives each launch its own fresh profile
    (two running instances must never share a --user-data-dir)."""

    path: str
    root: Path
    flags: tuple[str, ...] = CHROMIUM_FLAGS

    def argv(self, *extra: str) -> list[str]:
        # Chromium creates the profile dir itself: no file I/O here, so this is
        # safe to call inside the event loop.
        profile = self.root / f"profile-{uuid.uuid4().hex}"
        return [self.path, *self.flags, f"--user-data-dir={profile}", *extra]


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found: install the Debian packages `chromium` and "
            "`chromium-driver` (and `fonts-liberation` so text renders)",
            pytrace=False,
        )
    root = Path(tempfile.mkdtemp(prefix="podium-chromium-"))
    try:
        yield Chromium(CHROMIUM, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- Redis, RabbitMQ, NATS, MariaDB: one server process each ------------------------------


@dataclass
class ServerProcess:
    """A broker or database run as one foreground process in its own temp dir, on a free
    port of 127.0.0.1. Its data stays in `root`, so `restart()` keeps what a real restart
    keeps (Redis's append-only file, RabbitMQ's durable queues, JetStream's streams,
    MariaDB's tables). `stop()`, `start()`, `restart()` and `kill()` block: from a test's
    event loop, call them via `asyncio.to_thread`."""

    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    name: ClassVar[str] = "server"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> bool:
        return _tcp_open(self.port)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv(),
                cwd=self.root,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_until(self.ready, self.name, self.log, self._proc)

    def stop(self) -> None:
        """A clean stop (SIGTERM to its process group), as `systemctl stop` does."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT * 3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Redis(ServerProcess):
    """redis-server with an append-only file flushed on every write."""

    name: ClassVar[str] = "redis"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            _require("redis-server", "redis-server"),
            "--port", str(self.port), "--bind", self.host, "--dir", str(self.root),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--protected-mode", "no",
        ]  # fmt: skip


@dataclass
class Nats(ServerProcess):
    """nats-server with JetStream, its file store under `root`."""

    name: ClassVar[str] = "nats"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def argv(self) -> list[str]:
        return [
            _require("nats-server", "nats-server"),
            "-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.root / "js"),
        ]  # fmt: skip


@dataclass
class RabbitMQ(ServerProcess):
    """rabbitmq-server with every RABBITMQ_* path in `root`, its own Erlang port mapper
    (epmd) on a free port and its own node name, so that it shares nothing with a system
    RabbitMQ. Logins: guest/guest from anywhere (loopback_users = none)."""

    name: ClassVar[str] = "rabbitmq"
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    _epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    @property
    def node(self) -> str:
        return f"podium{self.port}@localhost"

    def env(self) -> dict[str, str]:
        root = self.root
        return {
            **os.environ,
            "HOME": str(root),  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(root / "rabbitmq.pid"),
        }

    def argv(self) -> list[str]:
        server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        if not server.exists():  # /usr/sbin's wrapper would switch to the rabbitmq user
            _require("rabbitmq-server", "rabbitmq-server")
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.host}:{self.port}\nloopback_users = none\n"
        )
        if self._epmd is None or self._epmd.poll() is not None:
            epmd = shutil.which("epmd") or _require("epmd", "erlang-base")
            with self.log.open("ab") as log:
                self._epmd = subprocess.Popen(
                    [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _wait_until(lambda: _tcp_open(self.epmd_port), "epmd", self.log, self._epmd)
        return [str(server)]

    def close(self) -> None:
        self.stop()
        if self._epmd is not None:
            _stop_process(self._epmd)


@dataclass
class MariaDB(ServerProcess):
    """mariadbd with its data dir in `root`; user `podium` without a password, database
    `podium`."""

    name: ClassVar[str] = "mariadb"

    @property
    def socket(self) -> Path:
        return self.root / "mariadb.sock"

    @property
    def url(self) -> str:
        return f"jdbc:mariadb://{self.host}:{self.port}/podium"

    def init(self) -> None:
        install = _require("mariadb-install-db", "mariadb-server")
        _run_checked(
            [install, "--no-defaults", f"--datadir={self.root / 'data'}", "--user=root",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            "mariadb-install-db",
            cwd=self.root,
        )  # fmt: skip

    def argv(self) -> list[str]:
        return [
            _require("mariadbd", "mariadb-server"),
            "--no-defaults", f"--datadir={self.root / 'data'}", "--user=root",
            f"--port={self.port}", f"--bind-address={self.host}", f"--socket={self.socket}",
            f"--pid-file={self.root / 'mariadb.pid'}", "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=2", "--log-error=" + str(self.log),
        ]  # fmt: skip

    def setup_user(self) -> None:
        client = _require("mariadb", "mariadb-client")
        sql = (
            "CREATE DATABASE IF NOT EXISTS podium; "
            "CREATE USER IF NOT EXISTS 'podium'@'%'; "
            "GRANT ALL ON *.* TO 'podium'@'%'; FLUSH PRIVILEGES;"
        )
        _run_checked([client, f"--socket={self.socket}", "-u", "root", "-e", sql], "mariadb setup")


@dataclass
class MotoS3(ServerProcess):
    """moto's standalone server (`moto[server]` from PyPI): a real S3 API over HTTP, its
    objects in this process. Any access key is accepted; `bucket` is created at start."""

    name: ClassVar[str] = "moto"
    bucket: str = "podium-test"
    access_key: str = "podium-test-key"
    secret_key: str = "podium-test-secret"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def argv(self) -> list[str]:
        try:
            import moto.server  # noqa: F401
        except ImportError:
            pytest.fail("moto's S3 server is missing: pip install 'moto[server]'")
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]

    def env(self) -> dict[str, str]:
        # no AWS settings of the machine leak into the server
        return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def create_bucket(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("PUT", f"/{self.bucket}", headers=_s3_auth(self.access_key))
            reply = connection.getresponse()
            body = reply.read()
            if reply.status != 200:
                raise RuntimeError(f"moto refused bucket {self.bucket}: {reply.status} {body!r}")
        finally:
            connection.close()


def _s3_auth(access_key: str) -> dict[str, str]:
    """moto checks no signature, but routes a request as S3's only when it is signed."""
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/s3/"
        "aws4_request, SignedHeaders=host, Signature=0",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    }


S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def server_process(kind: type[S]) -> Iterator[S]:
    root = Path(tempfile.mkdtemp(prefix=f"podium-{kind.__name__.lower()}-"))
    server = kind(root=root)
    try:
        if isinstance(server, MariaDB):
            server.init()
        server.start()
        if isinstance(server, MariaDB):
            server.setup_user()
        if isinstance(server, MotoS3):
            server.create_bucket()
        yield server
    finally:
        if isinstance(server, RabbitMQ):
            server.close()
        else:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
