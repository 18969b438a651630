"""The task queue's statements on a real PostgreSQL: a job a worker holds but does not run
(its take committed, the answer lost to a database restart) goes back to READY, so another
worker runs it (issue #17 with #13 finding 5: a round of bench/pg_restarts.py left four
executions waiting on such jobs). Kestra's counterpart: a worker's task runs are resubmitted
when the worker is gone (core/src/test/java/io/kestra/core/runners/WorkerTest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest

from daemon.store.postgres import PostgresStore
from daemon.store.postgres_jobs import JobTables
from tests.cluster_helpers import fresh_database


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with fresh_database(postgres_dsn) as dsn:
        async with PostgresStore(dsn) as store:  # creates the tables
            yield store.pool


async def enqueue(tables: JobTables, job_id: str, group: str | None = None) -> None:
    await tables.enqueue(job_id, "ex1", f"tr-{job_id}", "task", group, b"payload")


async def state(pool: asyncpg.Pool, job_id: str) -> tuple[str, str | None]:
    row = await pool.fetchrow("SELECT state, worker FROM task_jobs WHERE id = $1", job_id)
    return row["state"], row["worker"]


async def test_a_job_held_but_not_running_here_goes_back_to_ready(pool: asyncpg.Pool) -> None:
    mine, other = JobTables(pool, "node-a"), JobTables(pool, "node-b")
    for job in ("lost-answer", "running", "young"):
        await enqueue(mine, job)
    taken = await mine.take([], 3)
    assert sorted(row["id"] for row in taken) == ["lost-answer", "running", "young"]
    await pool.execute(
        "UPDATE task_jobs SET taken = now() - interval '1 minute' WHERE id <> 'young'"
    )

    released = await mine.release_orphans(["running"], timedelta(seconds=2))

    assert released == 1
    assert await state(pool, "lost-answer") == ("READY", None)
    assert await state(pool, "running") == ("RUNNING", "node-a")  # it runs here
    assert await state(pool, "young") == ("RUNNING", "node-a")  # a take maybe on its way
    again = await other.take([], 5)
    assert [row["id"] for row in again] == ["lost-answer"]


async def test_another_nodes_jobs_and_ended_ones_are_left_alone(pool: asyncpg.Pool) -> None:
    mine, other = JobTables(pool, "node-a"), JobTables(pool, "node-b")
    await enqueue(other, "theirs")
    await enqueue(mine, "done")
    assert [row["id"] for row in await other.take([], 1)] == ["theirs"]
    assert [row["id"] for row in await mine.take([], 1)] == ["done"]
    assert await mine.finish("done", {"outputs": {}})
    await pool.execute("UPDATE task_jobs SET taken = now() - interval '1 minute'")

    assert await mine.release_orphans([], timedelta(seconds=2)) == 0
    assert await state(pool, "theirs") == ("RUNNING", "node-b")
    assert (await state(pool, "done"))[0] == "DONE"
