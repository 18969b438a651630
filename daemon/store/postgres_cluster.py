"""The cluster's SQL on the PostgreSQL store: nodes, ownership of executions, claims.

Executions are stored without an owner; a node claims them with
`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, so each is taken by one
node. Nodes heartbeat into `nodes`; one whose heartbeat is too old is removed and what it
owned loses its owner. Every method here is one statement or one transaction.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from daemon.sdk.state import State
from daemon.store.base import StoreError
from daemon.store.postgres_schema import UNOWNED_UNFINISHED

UNFINISHED = [s.value for s in State if not s.terminated]
WORK_CHANNEL = "podium_work"
ENDED_CHANNEL = "podium_ended"
CONTROL_CHANNEL = "podium_control"

# $4: flows with a concurrency limit whose lease another node holds (namespace US flow id)
_CLAIM = f"""
    UPDATE executions e SET owner = $1
    WHERE id IN (SELECT id FROM executions
                 WHERE {UNOWNED_UNFINISHED} AND state = ANY($2::text[])
                   AND NOT (namespace || chr(31) || flow_id = ANY($4::text[]))
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING id, doc, seq,
        EXISTS (SELECT 1 FROM task_runs t WHERE t.execution_id = e.id) AS has_runs"""
_CLAIM_ONE = """
    UPDATE executions SET owner = $1
    WHERE id = (SELECT id FROM executions
                WHERE id = $2 AND owner IS NULL AND state = ANY($3::text[])
                FOR UPDATE SKIP LOCKED)
    RETURNING id"""
_OWNED = "SELECT id FROM executions WHERE owner = $1 AND state = ANY($2::text[])"
_DEAD_NODES = "DELETE FROM nodes WHERE heartbeat < now() - $1::interval RETURNING id"
_RELEASE_OWNED = (
    "UPDATE executions SET owner = NULL WHERE owner = $1 AND state = ANY($2::text[]) RETURNING id"
)


class ClusterTables:
    """The cluster's statements, on the store's connection pool.

    A lost connection (PostgreSQL restarting, a broken socket) raises `StoreError`, the
    connection cut rather than handed back for reuse; the callers' loops retry.
    """

    def __init__(self, pool: Any, node_id: str) -> None:
        self.pool = pool
        self.node_id = node_id

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        # imported here: `podium serve` on SQLite never loads asyncpg
        from daemon.store.postgres_errors import connection_lost, pooled, reason

        try:
            async with pooled(self.pool) as conn:
                yield conn
        except Exception as exc:
            if connection_lost(exc):
                raise StoreError(f"PostgreSQL connection lost: {reason(exc)}") from exc
            raise

    async def join(self) -> int:
        """Register this node (again) and release what it left unfinished: it is claimed
        afresh. Returns how many executions that was."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO nodes (id, host, pid, started, heartbeat)
                   VALUES ($1, $2, $3, now(), now())
                   ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                       started = excluded.started, heartbeat = excluded.heartbeat""",
                self.node_id,
                socket.gethostname(),
                os.getpid(),
            )
            released = await conn.fetch(_RELEASE_OWNED, self.node_id, UNFINISHED)
        return len(released)

    async def leave(self) -> int:
        """Release what is still queued here and remove this node's row; returns how many
        executions went back up for claiming."""
        async with self._conn() as conn, conn.transaction():
            released = await conn.fetch(_RELEASE_OWNED, self.node_id, UNFINISHED)
            await conn.execute("DELETE FROM nodes WHERE id = $1", self.node_id)
            if released:
                await conn.execute("SELECT pg_notify($1, '')", WORK_CHANNEL)
        return len(released)

    async def heartbeat(self) -> bool:
        """False when this node's row is gone: the others declared it dead."""
        async with self._conn() as conn:
            status: str = await conn.execute(
                "UPDATE nodes SET heartbeat = now() WHERE id = $1", self.node_id
            )
        return status != "UPDATE 0"

    async def reap(self, timeout: timedelta) -> tuple[list[str], int]:
        """Remove the nodes silent for `timeout` and release what they owned: (their ids,
        how many executions)."""
        async with self._conn() as conn, conn.transaction():
            dead = await conn.fetch(_DEAD_NODES, timeout)
            if not dead:
                return [], 0
            names = [row["id"] for row in dead]
            taken = await conn.fetch(
                "UPDATE executions SET owner = NULL WHERE owner = ANY($1::text[]) "
                "AND state = ANY($2::text[]) RETURNING id",
                names,
                UNFINISHED,
            )
            await conn.execute("SELECT pg_notify($1, '')", WORK_CHANNEL)
        return names, len(taken)

    async def claim(self, limit: int, leased_elsewhere: Sequence[str]) -> list[Any]:
        """Take up to `limit` unowned unfinished executions, oldest first, except those of
        flows whose concurrency lease another node holds (`namespace US flow id` keys).

        If the answer is lost the claim may still have committed: `owned` finds those."""
        async with self._conn() as conn:
            rows: list[Any] = await conn.fetch(
                _CLAIM, self.node_id, UNFINISHED, limit, list(leased_elsewhere)
            )
        return sorted(rows, key=lambda row: row["seq"])  # RETURNING keeps no order

    async def owned(self) -> list[str]:
        """The ids of this node's unfinished executions, as the database has them."""
        async with self._conn() as conn:
            rows = await conn.fetch(_OWNED, self.node_id, UNFINISHED)
        return [row["id"] for row in rows]

    async def claim_one(self, execution_id: str) -> bool:
        """Take one unowned execution (to kill it before anyone started it)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(_CLAIM_ONE, self.node_id, execution_id, UNFINISHED)
        return row is not None

    async def release(self, execution_id: str) -> None:
        """Give an execution up for claiming (a restart of an ended one)."""
        async with self._conn() as conn:
            await conn.execute("UPDATE executions SET owner = NULL WHERE id = $1", execution_id)

    async def owner(self, execution_id: str) -> str | None:
        async with self._conn() as conn:
            value: str | None = await conn.fetchval(
                "SELECT owner FROM executions WHERE id = $1", execution_id
            )
        return value

    async def notify(self, channel: str, payload: str = "") -> None:
        async with self._conn() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
