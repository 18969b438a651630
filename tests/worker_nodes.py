"""Real `podium serve` nodes with workers, for the tests and the bench of issue #17: start
them by role and name, submit flows, and read who ran which task run (`task_jobs`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from tests.daemon_process import ServeProcess

NODE_ENV = {
    "PODIUM_HEARTBEAT_INTERVAL": "PT0.5S",
    "PODIUM_NODE_TIMEOUT": "PT4S",
    "PODIUM_LOG_LEVEL": "INFO",
}
FINAL = {"SUCCESS", "FAILED", "WARNING", "KILLED", "CANCELLED"}


def query(dsn: str, sql: str, *args: Any) -> list[Any]:
    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def start_node(
    workdir: Path,
    dsn: str,
    flows: Path,
    name: str,
    *extra: str,
    env: dict[str, str] | None = None,
    wrapper: tuple[str, ...] = (),
) -> ServeProcess:
    """A node named `name` (its node id) with its own data directory."""
    node = ServeProcess(
        workdir,
        flows,
        workdir / f"data-{name}",
        env={**NODE_ENV, "PODIUM_NODE_ID": name, **(env or {})},
        args=("--store", dsn, *extra),
        wrapper=wrapper,
    )
    node.start()
    node.wait_line("joined the cluster")
    return node


def stop_all(nodes: list[ServeProcess]) -> None:
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


def runs_per_node(dsn: str, execution_id: str) -> dict[str, int]:
    """How many attempts each node's workers ran (or run) of the execution."""
    rows = query(
        dsn,
        "SELECT worker, count(*) AS n FROM task_jobs WHERE execution_id = $1 GROUP BY worker",
        execution_id,
    )
    return {row["worker"]: row["n"] for row in rows}


def wait_job(dsn: str, execution_id: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job of a task run once a worker took it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = query(
            dsn,
            "SELECT id, worker, state FROM task_jobs WHERE execution_id = $1 AND task_id = $2 "
            "AND state = 'RUNNING'",
            execution_id,
            task_id,
        )
        if rows:
            return dict(rows[0])
        assert time.monotonic() < deadline, f"no worker took {task_id}"
        time.sleep(0.05)


def parallel_flow(namespace: str, flow_id: str, count: int, duration: str) -> str:
    """One execution with `count` tasks sleeping `duration` side by side."""
    naps = "".join(
        f"      - id: nap{i}\n"
        "        type: io.kestra.plugin.core.flow.Sleep\n"
        f"        duration: {duration}\n"
        for i in range(count)
    )
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n"
        "  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n" + naps
    )
