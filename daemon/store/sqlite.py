"""The embedded store's queries: `Store` as SQL over one SQLite file.

How the file is reached (the group-commit writer thread, pooled readers) is in
`daemon.store.sqlite_io`, its schema in `daemon.store.sqlite_schema`; this module only
says what to write and read.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import sqlite3
from collections.abc import Awaitable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from daemon.sdk.clock import Clock
from daemon.sdk.state import iso
from daemon.store.base import (
    QUEUED,
    ExecutionQuery,
    Store,
    execution_row,
    level_number,
    log_doc,
    log_row,
    metric_row,
    sortable_time,
    task_run_row,
    to_json,
)
from daemon.store.purge import KvPurge, LogPurge, Purges
from daemon.store.sqlite_batch import APPEND_ONLY, RowKey, Write
from daemon.store.sqlite_insights import SqliteInsights
from daemon.store.sqlite_io import SqliteIO
from daemon.store.sqlite_nsfiles import SqliteNamespaceFiles
from daemon.store.tables import KeyValueTable, RevisionTable, StateTable

_UPSERT_EXECUTION = """
    INSERT INTO executions (id, namespace, flow_id, state, start_date, end_date, labels, doc)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace,
        flow_id = excluded.flow_id, state = excluded.state, start_date = excluded.start_date,
        end_date = excluded.end_date, labels = excluded.labels, doc = excluded.doc"""
_CREATE_EXECUTION = """
    INSERT INTO executions (id, namespace, flow_id, state, start_date, end_date, labels, doc)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"""
_UPSERT_TASK_RUN = """
    INSERT INTO task_runs (id, execution_id, state, doc) VALUES (?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET execution_id = excluded.execution_id,
        state = excluded.state, doc = excluded.doc"""
_INSERT_LOG = """INSERT INTO logs (execution_id, task_run_id, level, timestamp, message, doc)
    VALUES (?, ?, ?, ?, ?, ?)"""
_INSERT_METRIC = """INSERT INTO metrics (execution_id, task_run_id, name, timestamp, doc)
    VALUES (?, ?, ?, ?, ?)"""
_LABEL_MATCH = """EXISTS (SELECT 1 FROM json_each(executions.labels) AS l
    WHERE json_extract(l.value, '$.key') = ? AND json_extract(l.value, '$.value') = ?)"""
_LIVE_KV = "(expires_at IS NULL OR expires_at > ?)"
_LATEST_FLOW = """SELECT revision, source, deleted FROM flows WHERE namespace = ? AND id = ?
    ORDER BY revision DESC LIMIT 1"""


def _execute(sql: str, params: Sequence[Any], conn: sqlite3.Connection) -> None:
    conn.execute(sql, params)


def _execute_many(sql: str, rows: Sequence[Sequence[Any]], conn: sqlite3.Connection) -> None:
    conn.executemany(sql, rows)


def _noop(conn: sqlite3.Connection) -> None:
    return None


class SqliteStore(Store):
    """`Store` on one SQLite file; see `daemon.store.sqlite_io` for the threading model."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Clock | None = None, timeout: float = 30.0
    ) -> None:
        self.path = Path(path)
        self._clock = clock or Clock()
        self._io = SqliteIO(self.path, self._clock, timeout, self._committed)
        self.revisions = _SqliteRevisions(self)
        self.kv = _SqliteKeyValue(self)
        self.state = _SqliteState(self)
        self.insights = SqliteInsights(self._io)
        self.namespace_files = SqliteNamespaceFiles(self._io, self._clock)
        self.purges = _SqlitePurges(self._io)

    @property
    def commits(self) -> int:
        """Transactions committed by the writer; bench/store.py shows the grouping with it."""
        return self._io.commits

    def _committed(self, seconds: float) -> None:
        observe = self.observe_write
        if observe is not None:
            observe("commit", seconds)

    # lifecycle

    async def open(self) -> None:
        await self._io.open()

    async def close(self) -> None:
        await self._io.close()

    async def problem(self) -> str | None:
        return await self._io.problem()

    def _now(self) -> str | None:
        """Now in the same text form as `expires_at`, for the comparison in SQL."""
        return sortable_time(iso(self._clock.now()))

    async def _fetch_one(self, sql: str, *params: Any) -> Any:
        return await self._io.read(lambda conn: conn.execute(sql, params).fetchone())

    async def _fetch_all(self, sql: str, *params: Any) -> list[Any]:
        return await self._io.read(lambda conn: conn.execute(sql, params).fetchall())

    # flows

    async def save_flow(self, namespace: str, flow_id: str, source: str) -> int:
        updated = iso(self._clock.now())

        def save(conn: sqlite3.Connection) -> int:
            row = conn.execute(_LATEST_FLOW, (namespace, flow_id)).fetchone()
            if row is not None and not row[2] and row[1] == source:
                return int(row[0])
            revision = (row[0] if row else 0) + 1
            conn.execute(
                "INSERT INTO flows VALUES (?, ?, ?, ?, 0, ?)",
                (namespace, flow_id, revision, source, updated),
            )
            return int(revision)

        return int(await self._io.write(save, f"flow {namespace}.{flow_id}"))

    async def get_flow(
        self, namespace: str, flow_id: str, revision: int | None = None
    ) -> tuple[int, str] | None:
        if revision is None:
            row = await self._fetch_one(_LATEST_FLOW, namespace, flow_id)
            return None if row is None or row[2] else (row[0], row[1])
        sql = "SELECT revision, source FROM flows WHERE namespace = ? AND id = ? AND revision = ?"
        row = await self._fetch_one(sql, namespace, flow_id, revision)
        return None if row is None else (row[0], row[1])

    async def list_flows(self) -> list[dict[str, Any]]:
        rows = await self._fetch_all(
            "SELECT namespace, id, revision, source, updated FROM flows AS f"
            " WHERE deleted = 0 AND revision = (SELECT MAX(revision) FROM flows AS g"
            " WHERE g.namespace = f.namespace AND g.id = f.id) ORDER BY namespace, id"
        )
        keys = ("namespace", "id", "revision", "source", "updated")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        sql = (
            "UPDATE flows SET deleted = 1 WHERE namespace = ? AND id = ? AND revision ="
            " (SELECT MAX(revision) FROM flows WHERE namespace = ? AND id = ?)"
        )
        params = (namespace, flow_id, namespace, flow_id)
        await self._io.write(partial(_execute, sql, params), f"flow {flow_id}")

    # executions, task runs, logs, metrics

    async def save_execution(self, doc: dict[str, Any], *, wait: bool = True) -> None:
        row = execution_row(doc)
        committed = self._replace(_UPSERT_EXECUTION, row, ("executions", row.id), "execution", wait)
        if committed is not None:
            await committed

    async def create_execution(self, doc: dict[str, Any]) -> bool:
        row = execution_row(doc)
        # rowcount is 0 when the id was already there
        create: Write = lambda conn: conn.execute(_CREATE_EXECUTION, row).rowcount == 1  # noqa: E731
        return bool(await self._io.write(create, f"execution {row.id}", key=("executions", row.id)))

    def save_task_run(
        self, doc: dict[str, Any], *, wait: bool = True, soon: bool = True
    ) -> Awaitable[Any]:
        row = task_run_row(doc)
        key = ("task_runs", row.id)
        committed = self._replace(_UPSERT_TASK_RUN, row, key, "task run", wait, soon)
        return QUEUED if committed is None else committed

    def _replace(
        self, upsert: str, row: Sequence[Any], key: RowKey, kind: str, wait: bool, soon: bool = True
    ) -> asyncio.Future[Any] | None:
        """Queue a whole row's write (merged with other writes of it in one commit:
        sqlite_batch); with `wait`, the future of its commit."""
        write = partial(_execute, upsert, row)
        return self._io.put(write, f"{kind} {key[1]}", wait, key=key, replaces=True, soon=soon)

    def append_logs(self, lines: Sequence[dict[str, Any]]) -> None:
        rows = [log_row(line) for line in lines]
        if rows:
            what = f"{len(rows)} log lines"
            self._io.put(partial(_execute_many, _INSERT_LOG, rows), what, False, key=APPEND_ONLY)

    def append_metrics(self, metrics: Sequence[dict[str, Any]]) -> None:
        rows = [metric_row(metric) for metric in metrics]
        if rows:
            self._io.put(
                partial(_execute_many, _INSERT_METRIC, rows),
                f"{len(rows)} metrics",
                False,
                key=APPEND_ONLY,
            )

    async def flush(self) -> None:
        await self._io.write(_noop, "flush")

    async def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        def get(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT doc FROM executions WHERE id = ?", (execution_id,))
            found = row.fetchone()
            if found is None:
                return None
            doc: dict[str, Any] = json.loads(found[0])
            runs = conn.execute(
                "SELECT doc FROM task_runs WHERE execution_id = ? ORDER BY seq", (execution_id,)
            )
            doc["taskRunList"] = [json.loads(r[0]) for r in runs]
            return doc

        return await self._io.read(get)

    async def _search(self, query: ExecutionQuery) -> tuple[list[dict[str, Any]], int]:
        where: list[str] = []
        params: list[Any] = []
        if query.namespace is not None and query.exact_namespace:
            where.append("namespace = ?")
            params.append(query.namespace)
        elif query.namespace is not None:
            # "a.b" or anything under "a.b."; '/' is the character after '.'
            where.append("(namespace = ? OR (namespace >= ? AND namespace < ?))")
            params += [query.namespace, query.namespace + ".", query.namespace + "/"]
        if query.flow_id is not None:
            where.append("flow_id = ?")
            params.append(query.flow_id)
        if query.text:
            where.append(
                "(instr(lower(id), ?) > 0 OR instr(lower(namespace), ?) > 0"
                " OR instr(lower(flow_id), ?) > 0)"
            )
            params += [query.text] * 3
        if query.states is not None:
            where.append(f"state IN ({', '.join('?' * len(query.states))})")
            params += query.states
        for key, value in query.labels.items():
            where.append(_LABEL_MATCH)
            params += [key, value]
        if query.start_after is not None:
            where.append("start_date >= ?")
            params.append(query.start_after)
        if query.start_before is not None:
            where.append("start_date < ?")
            params.append(query.start_before)
        if query.latest_end:
            where.append("end_date IS NOT NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = "end_date DESC, seq DESC" if query.latest_end else "start_date DESC, seq DESC"

        def search(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM executions{clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT doc FROM executions{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            )
            return [json.loads(r[0]) for r in rows], int(total)

        return await self._io.read(search)

    async def count_executions(self, namespace: str, flow_id: str, states: Sequence[str]) -> int:
        if not states:
            return 0
        sql = (
            "SELECT COUNT(*) FROM executions WHERE namespace = ? AND flow_id = ?"
            f" AND state IN ({', '.join('?' * len(states))})"
        )
        return int((await self._fetch_one(sql, namespace, flow_id, *states))[0])

    async def delete_task_runs(self, execution_id: str, task_run_ids: Sequence[str]) -> None:
        rows = [(execution_id, run_id) for run_id in task_run_ids]
        sql = "DELETE FROM task_runs WHERE execution_id = ? AND id = ?"
        if rows:
            await self._io.write(partial(_execute_many, sql, rows), f"task runs of {execution_id}")

    async def delete_execution(
        self, execution_id: str, *, logs: bool = True, metrics: bool = True
    ) -> None:
        tables = ("task_runs", *(("logs",) if logs else ()), *(("metrics",) if metrics else ()))

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,))
            for table in tables:
                conn.execute(f"DELETE FROM {table} WHERE execution_id = ?", (execution_id,))

        await self._io.write(delete, f"deletion of execution {execution_id}")

    async def logs(
        self,
        execution_id: str,
        *,
        task_run_id: str | None = None,
        min_level: str | None = None,
    ) -> list[dict[str, Any]]:
        sql = "SELECT message, doc FROM logs WHERE execution_id = ?"
        params: list[Any] = [execution_id]
        if task_run_id is not None:
            sql += " AND task_run_id = ?"
            params.append(task_run_id)
        level = level_number(min_level)
        if level is not None:
            sql += " AND level >= ?"
            params.append(level)
        rows = await self._fetch_all(sql + " ORDER BY id", *params)
        return [log_doc(message, doc) for message, doc in rows]

    async def metrics(self, execution_id: str) -> list[dict[str, Any]]:
        sql = "SELECT doc FROM metrics WHERE execution_id = ? ORDER BY id"
        return [json.loads(row[0]) for row in await self._fetch_all(sql, execution_id)]

    # KV


class _SqliteRevisions(RevisionTable):
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def list(
        self, namespace: str, flow_id: str, *, deleted: bool = False
    ) -> list[tuple[int, str]]:
        live = "" if deleted else " AND deleted = 0"
        sql = f"SELECT revision, source FROM flows WHERE namespace = ? AND id = ?{live}"
        rows = await self._store._fetch_all(sql + " ORDER BY revision", namespace, flow_id)
        return [(int(row[0]), row[1]) for row in rows]

    async def delete(self, namespace: str, flow_id: str, revisions: Sequence[int]) -> None:
        sql = "UPDATE flows SET deleted = 1 WHERE namespace = ? AND id = ? AND revision = ?"
        rows = [(namespace, flow_id, revision) for revision in sorted(set(revisions))]
        await self._store._io.write(partial(_execute_many, sql, rows), f"flow {flow_id}")


class _SqliteKeyValue(KeyValueTable):
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def purge(self, purge: KvPurge) -> int:
        return int(await self._store._io.write(purge.sqlite, "purge of KV pairs"))

    async def set(
        self, namespace: str, key: str, value: Any, *, expires_at: str | None = None
    ) -> None:
        params = (
            namespace,
            key,
            to_json(value, f"KV value {namespace}/{key}"),
            sortable_time(expires_at, "expires_at"),
            iso(self._store._clock.now()),
        )
        sql = "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?)"
        await self._store._io.write(partial(_execute, sql, params), f"KV {namespace}/{key}")

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        sql = f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE_KV}"
        row = await self._store._fetch_one(sql, namespace, key, self._store._now())
        return (False, None) if row is None else (True, json.loads(row[0]))

    async def delete(self, namespace: str, key: str) -> bool:
        now = self._store._now()

        def delete(conn: sqlite3.Connection) -> bool:
            live = conn.execute(
                f"SELECT 1 FROM kv WHERE namespace = ? AND key = ? AND {_LIVE_KV}",
                (namespace, key, now),
            ).fetchone()
            conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            return live is not None

        return bool(await self._store._io.write(delete, f"KV {namespace}/{key}"))

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        sql = (
            "SELECT key, value, expires_at, updated FROM kv"
            f" WHERE namespace = ? AND {_LIVE_KV} ORDER BY key"
        )
        return [
            {"key": k, "value": json.loads(v), "expiresAt": e, "updated": u}
            for k, v, e, u in await self._store._fetch_all(sql, namespace, self._store._now())
        ]

    async def entries(self) -> builtins.list[dict[str, Any]]:
        sql = (
            "SELECT namespace, key, value, expires_at, updated FROM kv"
            f" WHERE {_LIVE_KV} ORDER BY namespace, key"
        )
        return [
            {"namespace": n, "key": k, "value": json.loads(v), "expiresAt": e, "updated": u}
            for n, k, v, e, u in await self._store._fetch_all(sql, self._store._now())
        ]


class _SqliteState(StateTable):
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def get(self, key: str) -> dict[str, Any] | None:
        row = await self._store._fetch_one("SELECT value FROM state WHERE key = ?", key)
        return None if row is None else dict(json.loads(row[0]))

    async def set(self, key: str, value: dict[str, Any]) -> None:
        params = (key, to_json(value, f"state {key}"), iso(self._store._clock.now()))
        sql = "INSERT OR REPLACE INTO state VALUES (?, ?, ?)"
        await self._store._io.write(partial(_execute, sql, params), f"state {key}")

    async def claim(self, key: str) -> bool:
        sql = "INSERT OR IGNORE INTO claims VALUES (?, ?)"
        params = (key, iso(self._store._clock.now()))
        # rowcount is 0 when the key was already there: someone claimed it first
        claim: Write = lambda conn: conn.execute(sql, params).rowcount == 1  # noqa: E731
        return bool(await self._store._io.write(claim, f"claim {key}"))

    async def claimed(self, key: str) -> bool:
        return await self._store._fetch_one("SELECT 1 FROM claims WHERE key = ?", key) is not None


class _SqlitePurges(Purges):
    def __init__(self, io: SqliteIO) -> None:
        self._io = io

    async def logs(self, purge: LogPurge) -> int:
        return int(await self._io.write(purge.sqlite, "purge of logs"))
