"""Durable task-run saves per second, alone and in a crowd, to show group commit at work.

Run: .venv/bin/python bench/store.py [N concurrent, default 2000]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon.store import SqliteStore

SEQUENTIAL = 100


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


def report(label: str, count: int, seconds: float, commits: int) -> None:
    print(
        f"{label:<34} {count:>6} saves  {seconds * 1000:8.1f} ms  "
        f"{count / seconds:9.0f} saves/s  {commits:>5} commits  "
        f"{count / max(commits, 1):6.1f} saves/commit"
    )


async def main(concurrent: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(Path(tmp) / "podium.db") as store:
            await store.save_task_run(task_run(999_999))  # warm up connections and caches

            before = store.commits
            start = time.perf_counter()
            for n in range(SEQUENTIAL):
                await store.save_task_run(task_run(n))
            report("(a) sequential, each awaited", SEQUENTIAL, time.perf_counter() - start,
                   store.commits - before)  # fmt: skip

            runs = [task_run(SEQUENTIAL + n) for n in range(concurrent)]
            before = store.commits
            start = time.perf_counter()
            await asyncio.gather(*(store.save_task_run(run) for run in runs))
            report("(b) concurrent, all awaited", concurrent, time.perf_counter() - start,
                   store.commits - before)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
