"""The cluster's task queue on the PostgreSQL store: attempts of task runs that any node's
workers take.

An executor stores an attempt as a READY job; a worker with a free slot takes it with
`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, so one worker runs it, and
writes its result only while it still holds it (state RUNNING, worker = itself): a worker
declared dead, whose job was handed back meanwhile, writes nothing. Every method here is
one statement.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

TASKS_CHANNEL = "podium_tasks"  # a job is READY (payload: its worker group or '')
TASK_DONE_CHANNEL = "podium_task_done"  # a job has its result (payload: the job id)
TASK_CANCEL_CHANNEL = "podium_task_cancel"  # the executor gave a job up (payload: job id)

# Nodes started without a group take jobs without one; nodes of groups take only theirs.
_TAKE = """
    UPDATE task_jobs SET state = 'RUNNING', worker = $1, taken = now()
    WHERE id IN (SELECT id FROM task_jobs
                 WHERE state = 'READY'
                   AND CASE WHEN cardinality($2::text[]) = 0 THEN worker_group IS NULL
                            ELSE worker_group = ANY($2::text[]) END
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING id, payload"""
_FINISH = """
    UPDATE task_jobs SET state = 'DONE', result = $3::json, ended = now()
    WHERE id = $1 AND worker = $2 AND state = 'RUNNING'
    RETURNING pg_notify($4, id)"""
# Jobs whose worker is no longer a member (declared dead, or left): handed back with a
# result saying so, which the executor treats as an interrupted attempt.
_LOST = """
    UPDATE task_jobs SET state = 'DONE', ended = now(),
        result = json_build_object('lost', 'its worker node ' || worker || ' stopped')
    WHERE state = 'RUNNING' AND worker IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = task_jobs.worker)
    RETURNING pg_notify($1, id)"""

# Jobs this worker holds but does not run: its take committed and the answer was lost (a
# database restart mid-statement). They never ran here, so they go back to READY.
_ORPHANS = """
    UPDATE task_jobs SET state = 'READY', worker = NULL, taken = NULL
    WHERE state = 'RUNNING' AND worker = $1 AND NOT (id = ANY($2::text[]))
      AND taken < now() - $3::interval
    RETURNING worker_group"""


class JobTables:
    """The task queue's statements, on the store's connection pool."""

    def __init__(self, pool: Any, node_id: str) -> None:
        self.pool = pool
        self.node_id = node_id

    async def announce(self, role: str, slots: int, groups: list[str]) -> None:
        """Say what this node's workers take (after it joined: its row exists)."""
        await self.pool.execute(
            "UPDATE nodes SET role = $2, worker_slots = $3, worker_groups = $4 WHERE id = $1",
            self.node_id,
            role,
            slots,
            groups,
        )

    # -- the executor's side ----------------------------------------------------------------

    async def enqueue(
        self,
        job_id: str,
        execution_id: str,
        task_run_id: str,
        task_id: str,
        group: str | None,
        payload: bytes,
    ) -> None:
        """Store the attempt as READY and wake the workers; an attempt stored already (an
        executor taking an execution over) is left as it is."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """INSERT INTO task_jobs
                       (id, execution_id, task_run_id, task_id, worker_group, state, payload)
                   VALUES ($1, $2, $3, $4, $5, 'READY', $6) ON CONFLICT (id) DO NOTHING""",
                job_id,
                execution_id,
                task_run_id,
                task_id,
                group,
                payload,
            )
            if status != "INSERT 0 0":
                await conn.execute("SELECT pg_notify($1, $2)", TASKS_CHANNEL, group or "")

    async def job(self, job_id: str) -> Any:
        """The job's state, worker and result (None when there is no such job)."""
        return await self.pool.fetchrow(
            "SELECT state, worker, result FROM task_jobs WHERE id = $1", job_id
        )

    async def cancel(self, job_id: str) -> None:
        """Give a job up (its execution was killed, or it waited too long for its group):
        a worker running it is told to stop, and a late result is not written."""
        await self.pool.execute(
            "UPDATE task_jobs SET state = 'CANCELLED', ended = now() "
            "WHERE id = $1 AND state IN ('READY', 'RUNNING') "
            "RETURNING pg_notify($2, id)",
            job_id,
            TASK_CANCEL_CHANNEL,
        )

    async def group_alive(self, group: str, timeout: timedelta) -> bool:
        """Some node that heartbeated within `timeout` takes jobs of `group`."""
        found: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM nodes WHERE $1 = ANY(worker_groups) "
            "AND worker_slots > 0 AND heartbeat > now() - $2::interval)",
            group,
            timeout,
        )
        return found

    async def waiting_for_groups(self, timeout: timedelta) -> list[Any]:
        """READY jobs of a worker group no live node takes, oldest first: what
        `podium status` and the API show as waiting (cluster-wide, from any node)."""
        rows: list[Any] = await self.pool.fetch(
            """SELECT j.execution_id, j.task_run_id, j.task_id, j.worker_group, j.created
               FROM task_jobs j
               WHERE j.state = 'READY' AND j.worker_group IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM nodes n WHERE j.worker_group = ANY(n.worker_groups)
                                 AND n.worker_slots > 0
                                 AND n.heartbeat > now() - $1::interval)
               ORDER BY j.seq""",
            timeout,
        )
        return rows

    async def hand_back_lost(self) -> int:
        """Jobs whose worker is gone end as lost; returns how many."""
        rows = await self.pool.fetch(_LOST, TASK_DONE_CHANNEL)
        return len(rows)

    async def sweep(self, age: timedelta) -> None:
        """Forget the jobs that ended more than `age` ago."""
        await self.pool.execute(
            "DELETE FROM task_jobs WHERE state IN ('DONE', 'CANCELLED') "
            "AND ended < now() - $1::interval",
            age,
        )

    # -- the worker's side ------------------------------------------------------------------

    async def take(self, groups: list[str], limit: int) -> list[Any]:
        """Up to `limit` READY jobs this node may run, oldest first, now RUNNING here."""
        rows: list[Any] = await self.pool.fetch(_TAKE, self.node_id, groups, limit)
        return rows

    async def release_orphans(self, running: list[str], age: timedelta) -> int:
        """Hand back the jobs held here that this node does not run (taken longer than
        `age` ago), waking the workers; returns how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_ORPHANS, self.node_id, running, age)
            for group in sorted({row["worker_group"] or "" for row in rows}):
                await conn.execute("SELECT pg_notify($1, $2)", TASKS_CHANNEL, group)
        return len(rows)

    async def finish(self, job_id: str, result: dict[str, Any]) -> bool:
        """Store the result if this node still holds the job; False when it does not."""
        row = await self.pool.fetchrow(
            _FINISH, job_id, self.node_id, orjson.dumps(result).decode(), TASK_DONE_CHANNEL
        )
        return row is not None

    async def still_member(self) -> bool:
        """This node's row is there: it was not declared dead."""
        found: bool = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM nodes WHERE id = $1)", self.node_id
        )
        return found
