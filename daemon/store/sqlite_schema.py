"""The embedded store's schema: numbered migration steps, applied in order at open."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from daemon.sdk.clock import Clock
from daemon.sdk.state import iso
from daemon.store.base import StoreError

logger = logging.getLogger(__name__)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: initial schema. seq columns are rowid aliases: creation order survives VACUUM.
        """CREATE TABLE flows (namespace TEXT NOT NULL, id TEXT NOT NULL,
            revision INTEGER NOT NULL, source TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0, updated TEXT NOT NULL,
            PRIMARY KEY (namespace, id, revision))""",
        """CREATE TABLE executions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            namespace TEXT NOT NULL, flow_id TEXT NOT NULL, state TEXT NOT NULL,
            start_date TEXT, end_date TEXT, labels TEXT NOT NULL, doc TEXT NOT NULL)""",
        "CREATE INDEX executions_flow_start ON executions (namespace, flow_id, start_date)",
        "CREATE INDEX executions_flow_state ON executions (namespace, flow_id, state)",
        "CREATE INDEX executions_start ON executions (start_date)",
        """CREATE TABLE task_runs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            execution_id TEXT NOT NULL, state TEXT NOT NULL, doc TEXT NOT NULL)""",
        "CREATE INDEX task_runs_execution ON task_runs (execution_id)",
        """CREATE TABLE logs (id INTEGER PRIMARY KEY, execution_id TEXT NOT NULL,
            task_run_id TEXT, level INTEGER NOT NULL, timestamp TEXT, message TEXT,
            doc TEXT NOT NULL)""",
        "CREATE INDEX logs_execution ON logs (execution_id)",
        """CREATE TABLE metrics (id INTEGER PRIMARY KEY, execution_id TEXT NOT NULL,
            task_run_id TEXT, name TEXT, timestamp TEXT, doc TEXT NOT NULL)""",
        "CREATE INDEX metrics_execution ON metrics (execution_id)",
        """CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            expires_at TEXT, updated TEXT NOT NULL, PRIMARY KEY (namespace, key))""",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL)",
        "CREATE TABLE claims (key TEXT PRIMARY KEY, claimed_at TEXT NOT NULL)",
    ),
    (  # 2: namespace files (daemon/store/namespace_files.py): entries, their chunks, pending blobs
        """CREATE TABLE namespace_files (namespace TEXT NOT NULL, path TEXT NOT NULL,
            parent TEXT NOT NULL, is_dir INTEGER NOT NULL, size INTEGER NOT NULL, blob TEXT,
            created TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY (namespace, path))""",
        "CREATE INDEX namespace_files_parent ON namespace_files (namespace, parent)",
        """CREATE TABLE namespace_file_chunks (blob TEXT NOT NULL, seq INTEGER NOT NULL,
            data BLOB NOT NULL, PRIMARY KEY (blob, seq))""",
        "CREATE TABLE namespace_file_blobs (blob TEXT PRIMARY KEY, started TEXT NOT NULL)",
    ),
)
"""Append only: a released step never changes, a new one goes at the end."""


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
    """Apply missing steps in one transaction; re-checked under the lock for rival openers."""
    latest = len(MIGRATIONS)
    if schema_version(conn) == latest:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = schema_version(conn)
        if current > latest:
            raise StoreError(
                f"{path}: database schema version {current} is newer than this"
                f" podium knows ({latest}); upgrade podium or use another data directory"
            )
        for version in range(current + 1, latest + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, iso(clock.now())))
            logger.info("store: %s migrated to schema version %d", path, version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
