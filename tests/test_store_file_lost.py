"""The SQLite file deleted, replaced or corrupted under a running daemon (issue #13,
finding 8). SQLite keeps writing into an unlinked file without a word, so before the fix
webhooks kept answering 200 for events that nothing would ever read back, /health said
UP and nothing was logged. Now the file's identity is checked before every group commit
and every few seconds: writes fail (503), /health answers 503 with the store DOWN,
`podium_store_up` is 0, and one CRITICAL line says what happened.

Kestra's counterpart is the /health of its management port (docs: Administrator Guide,
"Monitoring"), which reports DOWN when a backend it depends on is."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from daemon.store import SqliteStore, StoreError, sqlite_checkpoint
from tests.daemon_process import ServeProcess

HOOK = textwrap.dedent("""\
    id: hook
    namespace: store.lost
    tasks:
      - id: echo
        type: io.kestra.plugin.core.debug.Return
        format: "{{ trigger.body.n }}"
    triggers:
      - id: in
        type: io.kestra.plugin.core.trigger.Webhook
        key: lost-key
    """)
HOOK_PATH = "/api/v1/executions/webhook/store.lost/hook/lost-key"
JSON = {"Content-Type": "application/json"}


def serve(tmp_path: Path) -> ServeProcess:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hook.yaml").write_text(HOOK)
    return ServeProcess(tmp_path, flows, tmp_path / "data").start()


def store_up(daemon: ServeProcess) -> float:
    status, text = daemon.request("GET", "/metrics")
    assert status == 200
    (line,) = [ln for ln in str(text).splitlines() if ln.startswith("podium_store_up ")]
    return float(line.split()[1])


def wait_health(daemon: ServeProcess, status: int, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        got, doc = daemon.request("GET", "/health")
        if got == status:
            assert isinstance(doc, dict)
            return doc
        assert time.monotonic() < deadline, f"/health stayed {got}: {doc}"
        time.sleep(0.1)


def test_deleting_the_database_file_while_serving_is_loud_and_refuses_webhooks(
    tmp_path: Path,
) -> None:
    daemon = serve(tmp_path)
    try:
        status, doc = daemon.request("POST", HOOK_PATH, b'{"n": 1}', JSON)
        assert status == 200, doc
        health = wait_health(daemon, 200)
        assert health["store"] == {"status": "UP"}
        assert store_up(daemon) == 1
        (tmp_path / "data" / "podium.db").unlink()
        # Noticed without any request: the writer checks the file every few seconds.
        line = daemon.wait_line("was deleted while podium was running", timeout=30)
        assert line.startswith("CRITICAL daemon.store.sqlite_io: store: the database file ")
        status, doc = daemon.request("POST", HOOK_PATH, b'{"n": 2}', JSON)
        assert (status, doc) == (503, {"message": "Service Unavailable: the store is unavailable"})
        health = wait_health(daemon, 503)
        assert health["status"] == "DOWN" and health["store"] == {"status": "DOWN"}
        assert str(tmp_path) not in str(health), "no path on the unauthenticated page"
        assert store_up(daemon) == 0
        assert not (tmp_path / "data" / "podium.db").exists(), "no empty database made up"
    finally:
        daemon.stop()


def test_a_webhook_right_after_the_file_is_deleted_is_refused_not_acknowledged(
    tmp_path: Path,
) -> None:
    """No wait for the periodic check: the commit itself checks the file first. The first
    execution, usually still running then, cannot store its end: it says so once and gives
    up, rather than retrying until a stop's grace period runs out (nothing can succeed
    before a restart)."""
    daemon = serve(tmp_path)
    try:
        status, _ = daemon.request("POST", HOOK_PATH, b'{"n": 1}', JSON)
        assert status == 200
        (tmp_path / "data" / "podium.db").unlink()
        status, doc = daemon.request("POST", HOOK_PATH, b'{"n": 2}', JSON)
        assert status == 503, doc
    finally:
        daemon.stop()
    assert "grace period over" not in daemon.output()
    assert "trying again" not in daemon.output()


def test_replacing_the_database_file_while_serving_is_noticed(tmp_path: Path) -> None:
    daemon = serve(tmp_path)
    try:
        db = tmp_path / "data" / "podium.db"
        other = tmp_path / "other.db"
        sqlite3.connect(other).close()
        os.replace(other, db)  # a restore from a backup under a running daemon, say
        daemon.wait_line("was replaced by another file while podium was running")
        status, _ = daemon.request("POST", HOOK_PATH, b'{"n": 1}', JSON)
        assert status == 503
        wait_health(daemon, 503)
    finally:
        daemon.stop()


def test_a_corrupted_database_file_is_noticed(tmp_path: Path) -> None:
    daemon = serve(tmp_path)
    try:
        db = tmp_path / "data" / "podium.db"
        # Once start-up's writes are checkpointed: a checkpoint under way copies page 1 back
        # from the WAL, which would mend this overwrite rather than leave it to be noticed.
        time.sleep(3 * sqlite_checkpoint.INTERVAL)
        with open(db, "r+b") as f:  # same file, its first page overwritten
            f.write(b"\0" * 4096)
        health = wait_health(daemon, 503)
        assert health["store"] == {"status": "DOWN"}
        assert "is corrupted" in daemon.wait_line("CRITICAL daemon.store.sqlite_io")
        status, _ = daemon.request("POST", HOOK_PATH, b'{"n": 1}', JSON)
        assert status == 503
        assert store_up(daemon) == 0
    finally:
        daemon.stop()


async def test_writes_and_reads_of_a_deleted_file_fail_saying_why(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podium.db")
    async with store:
        await store.state.set("k", {"v": 1})
        assert await store.problem() is None
        await asyncio.to_thread((tmp_path / "podium.db").unlink)
        problem = await store.problem()
        assert problem is not None and "podium.db was deleted while podium was running" in problem
        with pytest.raises(StoreError, match="was deleted while podium was running"):
            await store.state.set("k", {"v": 2})
        with pytest.raises(StoreError, match="was deleted"):
            await store.state.get("k")
    assert not await asyncio.to_thread((tmp_path / "podium.db").exists)
