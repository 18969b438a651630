"""Durable task-run saves per second, alone and in a crowd, to show group commit at work,
on SQLite and on PostgreSQL side by side.

Run: .venv/bin/python bench/store.py [N concurrent, default 2000]

PostgreSQL is a private server started for the run (tests/services.py: fsync and
synchronous_commit off, so its figures are the protocol's cost, not the disk's), or the
database named by PODIUM_BENCH_POSTGRES (a postgresql:// URL; its tables get the rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.store import SqliteStore  # noqa: E402
from daemon.store.postgres import PostgresStore  # noqa: E402
from tests import services  # noqa: E402  (the tests' private PostgreSQL)

SEQUENTIAL = 100

Figures = tuple[int, float, int]  # saves, seconds, commits


def task_run(n: int) -> dict[str, Any]:
    return {
        "id": f"run-{n:06}",
        "executionId": f"exec-{n // 10}",
        "namespace": "bench",
        "flowId": "bench",
        "taskId": f"task{n % 10}",
        "parentTaskRunId": None,
        "value": None,
        "iteration": None,
        "attempts": [{"state": {"current": "SUCCESS"}}],
        "outputs": {"rows": n, "uri": f"kestra:///bench/bench/exec/{n}/out.csv"},
        "state": {
            "current": "SUCCESS",
            "histories": [
                {"state": "CREATED", "date": "2026-01-01T00:00:00.000001Z"},
                {"state": "RUNNING", "date": "2026-01-01T00:00:00.000002Z"},
                {"state": "SUCCESS", "date": "2026-01-01T00:00:00.000003Z"},
            ],
            "startDate": "2026-01-01T00:00:00.000001Z",
            "endDate": "2026-01-01T00:00:00.000003Z",
        },
    }


async def measure(store: SqliteStore | PostgresStore, concurrent: int) -> list[Figures]:
    async with store:
        await store.save_task_run(task_run(999_999))  # warm up connections and caches

        before = store.commits
        start = time.perf_counter()
        for n in range(SEQUENTIAL):
            await store.save_task_run(task_run(n))
        sequential = (SEQUENTIAL, time.perf_counter() - start, store.commits - before)

        runs = [task_run(SEQUENTIAL + n) for n in range(concurrent)]
        before = store.commits
        start = time.perf_counter()
        await asyncio.gather(*(store.save_task_run(run) for run in runs))
        crowd = (concurrent, time.perf_counter() - start, store.commits - before)
        return [sequential, crowd]


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    given = os.environ.get("PODIUM_BENCH_POSTGRES")
    if given:
        yield given
        return
    with services.postgres() as dsn:
        yield dsn


def cell(figures: Figures) -> str:
    count, seconds, commits = figures
    return (f"{seconds * 1000:8.1f} ms {count / seconds:8.0f}/s"
            f" {count / max(commits, 1):6.1f}/commit")  # fmt: skip


def main(concurrent: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = asyncio.run(measure(SqliteStore(Path(tmp) / "podium.db"), concurrent))
    with postgres() as dsn:
        pg = asyncio.run(measure(PostgresStore(dsn), concurrent))
    labels = [f"(a) sequential, each awaited: {SEQUENTIAL}",
              f"(b) concurrent, all awaited: {concurrent}"]  # fmt: skip
    print(f"{'task-run saves':<36} {'SQLite':^36} {'PostgreSQL':^36}")
    for label, one, two in zip(labels, sqlite, pg, strict=True):
        print(f"{label:<36} {cell(one)}  {cell(two)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
