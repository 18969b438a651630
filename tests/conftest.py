"""Session fixtures for the real services, and the blocking-call guard.

Each service fixture is session-scoped and starts its private instance only
when the first test asks for it (see services.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from tests import services
from tests.blocking import watching
from tests.cluster_helpers import fresh_database
from tests.harness import Harness

# Fixtures that start a real service (a private PostgreSQL, Mosquitto, Redis, RabbitMQ,
# NATS, MariaDB, podman, Chromium).
SERVICE_FIXTURES = frozenset(
    {
        "postgres_dsn",
        "mosquitto",
        "docker_host",
        "python_image",
        "chromium",
        "redis_server",
        "rabbitmq",
        "nats_server",
        "mariadb",
        "moto_s3",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    """`podium run` keeps an index of plug-in types in the user's cache directory: tests
    (and the daemons they start) keep theirs in a directory of the session's own."""
    if "PODIUM_CACHE_DIR" not in os.environ:
        os.environ["PODIUM_CACHE_DIR"] = tempfile.mkdtemp(prefix="podium-test-cache-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop("PODIUM_CACHE_DIR"), True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a real service `services`, from the fixtures it uses
    (directly or through others): `pytest -m "not services"` runs the rest, which need
    nothing but Python."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the cached python image's root filesystem before any test runs
    when a selected test needs it: a first build takes a minute or two, which
    must not count against that test's timeout."""
    if not any("python_image" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def announce(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    # A failure is remembered and reported by each test that uses the image.
    with contextlib.suppress(pytest.fail.Exception):
        services.python_image_tarball(announce)


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test whose event loop blocks (file I/O, time.sleep, blocking
    sockets...). Calls outside a running loop (sync tests, sync fixtures,
    pytest itself) are not checked."""
    with watching() as bb:  # tests/blocking.py: what is allowed to block, and why
        yield bb


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a private PostgreSQL 15+ (trust auth, user and database postgres)."""
    with services.postgres() as dsn:
        yield dsn


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL (dropped afterwards), for tests
    whose `podium serve` nodes share it; a module may define its own `database`."""
    runner = asyncio.Runner()
    manager = fresh_database(postgres_dsn)
    try:
        yield runner.run(manager.__aenter__())
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[services.Mosquitto]:
    """A private Mosquitto broker with persistence; `.stop()`/`.restart()` it."""
    with services.mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.Redis]:
    """A private redis-server (append-only file on); `.restart()` keeps its lists."""
    with services.server_process(services.Redis) as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[services.RabbitMQ]:
    """A private RabbitMQ (guest/guest); `.restart()` keeps durable queues."""
    with services.server_process(services.RabbitMQ) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[services.Nats]:
    """A private nats-server with JetStream; `.restart()` keeps its streams."""
    with services.server_process(services.Nats) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[services.MariaDB]:
    """A private MariaDB: user `podium`, no password, database `podium`."""
    with services.server_process(services.MariaDB) as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[services.MotoS3]:
    """moto's S3 server on a free port, with an empty bucket."""
    with services.server_process(services.MotoS3) as server:
        yield server


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """unix:// URL of a private podman API service (Docker-compatible)."""
    with services.podman() as host:
        yield host


@pytest.fixture(scope="session")
def python_image(docker_host: str) -> str:
    """Name of an image with python3, pip and venv on the `docker_host` podman."""
    return services.ensure_python_image(docker_host)


@pytest.fixture(scope="session")
def chromium() -> Iterator[services.Chromium]:
    """Headless Chromium: `chromium.argv(*extra)` is a ready command line."""
    with services.chromium() as browser:
        yield browser


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """An in-process podium (engine + SQLite store) with its data under tmp_path/data."""
    harness = await Harness.open(tmp_path / "data")
    yield harness
    await harness.close()
