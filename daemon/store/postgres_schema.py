"""The PostgreSQL store's tables, and the one way they change: numbered migrations.

The tables mirror the SQLite ones (`daemon.store.sqlite_schema.MIGRATIONS`) with native
types where PostgreSQL has them, plus what a cluster of daemons sharing the database
needs: an `owner` per execution and a `nodes` table (both used by `daemon.cluster`).
"""

from __future__ import annotations

import logging
from typing import Any

from daemon.sdk.clock import Clock
from daemon.store.base import StoreError

logger = logging.getLogger(__name__)

FLOWS_CHANNEL = "podium_flows"
"""NOTIFY channel of flow changes; the payload is {"namespace","id","revision","deleted"}."""

MIGRATION_LOCK = 0x706F6469756D0001
"""Advisory-lock key the migrating transaction holds, so that rival first opens queue up."""

FLOW_LOCK_CLASS = 0x706F6469
"""First key of the two-key advisory locks that serialise saves of one flow."""

UNOWNED_UNFINISHED = (
    "owner IS NULL AND state NOT IN"
    " ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED')"
)
"""The predicate of the `executions_unowned` partial index. A query must contain it as
written (not as a parameter) for the planner to prove it may use that index."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: initial schema
        """CREATE TABLE flows (namespace text NOT NULL, id text NOT NULL,
            revision integer NOT NULL, source text NOT NULL,
            deleted boolean NOT NULL DEFAULT false, updated timestamptz NOT NULL,
            PRIMARY KEY (namespace, id, revision))""",
        # doc is json, not jsonb: it comes back byte for byte, keys in the order written
        """CREATE TABLE executions (seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE,
            namespace text NOT NULL, flow_id text NOT NULL, state text NOT NULL,
            start_date timestamptz, end_date timestamptz, labels jsonb NOT NULL,
            doc json NOT NULL, owner text)""",
        "CREATE INDEX executions_flow_start ON executions (namespace, flow_id, start_date)",
        "CREATE INDEX executions_flow_state ON executions (namespace, flow_id, state)",
        "CREATE INDEX executions_start ON executions (start_date)",
        "CREATE INDEX executions_labels ON executions USING gin (labels jsonb_path_ops)",
        "CREATE INDEX executions_owner ON executions (owner)",
        f"CREATE INDEX executions_unowned ON executions (seq) WHERE {UNOWNED_UNFINISHED}",
        """CREATE TABLE task_runs (seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE,
            execution_id text NOT NULL, state text NOT NULL, doc json NOT NULL)""",
        "CREATE INDEX task_runs_execution ON task_runs (execution_id, seq)",
        """CREATE TABLE logs (id bigserial PRIMARY KEY, execution_id text NOT NULL,
            task_run_id text, level smallint NOT NULL, timestamp text, message text,
            doc json NOT NULL)""",
        "CREATE INDEX logs_execution ON logs (execution_id, id)",
        """CREATE TABLE metrics (id bigserial PRIMARY KEY, execution_id text NOT NULL,
            task_run_id text, name text, timestamp text, doc json NOT NULL)""",
        "CREATE INDEX metrics_execution ON metrics (execution_id, id)",
        """CREATE TABLE kv (namespace text NOT NULL, key text NOT NULL, value json NOT NULL,
            expires_at timestamptz, updated timestamptz NOT NULL,
            PRIMARY KEY (namespace, key))""",
        """CREATE TABLE state (key text PRIMARY KEY, value json NOT NULL,
            updated timestamptz NOT NULL)""",
        "CREATE TABLE claims (key text PRIMARY KEY, claimed_at timestamptz NOT NULL)",
        """CREATE TABLE nodes (id text PRIMARY KEY, host text, pid integer,
            started timestamptz, heartbeat timestamptz)""",
    ),
    (  # 2: task runs taken by any node's workers (daemon/cluster/task_queue.py, task_worker.py)
        "ALTER TABLE nodes ADD COLUMN role text NOT NULL DEFAULT 'all'",
        "ALTER TABLE nodes ADD COLUMN worker_slots integer NOT NULL DEFAULT 0",
        "ALTER TABLE nodes ADD COLUMN worker_groups text[] NOT NULL DEFAULT '{}'",
        # one row per attempt sent to the workers; payload is pickled (task model and
        # variables), result JSON; rows of ended attempts are swept after a while
        """CREATE TABLE task_jobs (seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE,
            execution_id text NOT NULL, task_run_id text NOT NULL, task_id text NOT NULL,
            worker_group text, state text NOT NULL, worker text, payload bytea NOT NULL,
            result json, created timestamptz NOT NULL DEFAULT now(), taken timestamptz,
            ended timestamptz)""",
        "CREATE INDEX task_jobs_ready ON task_jobs (seq) WHERE state = 'READY'",
        "CREATE INDEX task_jobs_running ON task_jobs (worker) WHERE state = 'RUNNING'",
        "CREATE INDEX task_jobs_execution ON task_jobs (execution_id)",
    ),
    (  # 3: namespace files (daemon/store/namespace_files.py): entries, their chunks, pending blobs
        # byte order ("C"): the paths below a directory are one range, '/' < '0'
        """CREATE TABLE namespace_files (namespace text NOT NULL,
            path text COLLATE "C" NOT NULL, parent text COLLATE "C" NOT NULL,
            is_dir boolean NOT NULL, size bigint NOT NULL, blob text,
            created timestamptz NOT NULL, updated timestamptz NOT NULL,
            PRIMARY KEY (namespace, path))""",
        "CREATE INDEX namespace_files_parent ON namespace_files (namespace, parent)",
        """CREATE TABLE namespace_file_chunks (blob text NOT NULL, seq integer NOT NULL,
            data bytea NOT NULL, PRIMARY KEY (blob, seq))""",
        """CREATE TABLE namespace_file_blobs (blob text PRIMARY KEY,
            started timestamptz NOT NULL)""",
    ),
)
"""Append only: a released step never changes, a new one goes at the end."""


async def schema_version(conn: Any) -> int:
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


def _too_new(where: str, current: int) -> StoreError:
    return StoreError(
        f"PostgreSQL at {where}: database schema version {current} is newer than this podium"
        f" knows ({len(MIGRATIONS)}); upgrade podium or use another database"
    )


async def migrate(conn: Any, clock: Clock, where: str) -> None:
    """Apply missing steps in one transaction, under a lock that rival openers wait for.

    The version is read again once the lock is held: a process that waited finds the
    work done by the one before it. Without the lock two first opens would both try
    CREATE TABLE and one would fail on the catalog's unique index.
    """
    latest = len(MIGRATIONS)
    current = await schema_version(conn)
    if current == latest:
        return
    if current > latest:
        raise _too_new(where, current)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
        )
        current = await schema_version(conn)
        if current > latest:
            raise _too_new(where, current)
        for version in range(current + 1, latest + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version VALUES ($1, $2)", version, clock.now())
            logger.info("store: %s migrated to schema version %d", where, version)
