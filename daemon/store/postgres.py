"""The shared store's queries: `Store` as SQL over one PostgreSQL database.

How the database is reached (the pool, reconnecting, the group-commit writer) is in
`daemon.store.postgres_io`; the tables are in `daemon.store.postgres_schema`; the KV,
state and purge queries in `daemon.store.postgres_tables`; namespace files in
`daemon.store.postgres_nsfiles`. Several daemons may share the database: `daemon.cluster`
runs its own SQL through `pool` and listens on `dsn`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import orjson

from daemon.sdk.clock import Clock
from daemon.sdk.state import iso
from daemon.store.base import (
    QUEUED,
    ExecutionQuery,
    ExecutionRow,
    LogRow,
    Store,
    execution_row,
    level_number,
    log_doc,
    log_row,
    metric_row,
    task_run_row,
    to_json,
)
from daemon.store.postgres_insights import PostgresInsights
from daemon.store.postgres_io import Fn, Op, PostgresIO
from daemon.store.postgres_nsfiles import PostgresNamespaceFiles
from daemon.store.postgres_schema import FLOW_LOCK_CLASS, FLOWS_CHANNEL
from daemon.store.postgres_tables import (
    COLLATE_C,
    PostgresKeyValue,
    PostgresPurges,
    PostgresState,
    timestamptz,
)
from daemon.store.tables import RevisionTable

_EXECUTION_COLUMNS = "id, namespace, flow_id, state, start_date, end_date, labels, doc"
_INSERT_EXECUTION = f"""INSERT INTO executions ({_EXECUTION_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::json)"""
# never `owner`: that column belongs to the cluster's claims
_UPSERT_EXECUTION = f"""{_INSERT_EXECUTION}
    ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace,
        flow_id = excluded.flow_id, state = excluded.state, start_date = excluded.start_date,
        end_date = excluded.end_date, labels = excluded.labels, doc = excluded.doc"""
_CREATE_EXECUTION = f"{_INSERT_EXECUTION} ON CONFLICT (id) DO NOTHING RETURNING true"
_UPSERT_TASK_RUN = """
    INSERT INTO task_runs (id, execution_id, state, doc) VALUES ($1, $2, $3, $4::json)
    ON CONFLICT (id) DO UPDATE SET execution_id = excluded.execution_id,
        state = excluded.state, doc = excluded.doc"""
_INSERT_LOG = """INSERT INTO logs (execution_id, task_run_id, level, timestamp, message, doc)
    VALUES ($1, $2, $3, $4, $5, $6::json)"""
_INSERT_METRIC = """INSERT INTO metrics (execution_id, task_run_id, name, timestamp, doc)
    VALUES ($1, $2, $3, $4, $5::json)"""
_LATEST_FLOW = """SELECT revision, source, deleted FROM flows WHERE namespace = $1 AND id = $2
    ORDER BY revision DESC LIMIT 1"""
_LOCK_FLOW = "SELECT pg_advisory_xact_lock($1, hashtext($2))"


def _text(value: Any) -> str | None:
    """Indexed text taken from a doc as written; a number there is kept as its text."""
    return None if value is None else value if isinstance(value, str) else str(value)


def _execution_params(row: ExecutionRow) -> tuple[Any, ...]:
    return (*row[:4], timestamptz(row.start_date), timestamptz(row.end_date), row.labels, row.doc)


def _log_params(line: Mapping[str, Any], row: LogRow) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL: such a message stays inside the (escaped) JSON doc."""
    message, doc = row.message, row.doc
    if message is not None and "\x00" in message:
        message, doc = None, to_json(line, f"log line of execution {row.execution_id!r}")
    return (row.execution_id, _text(row.task_run_id), row.level, _text(row.timestamp), message, doc)


def _flow_lock(namespace: str, flow_id: str) -> tuple[int, str]:
    return FLOW_LOCK_CLASS, f"{namespace}\n{flow_id}"


class PostgresStore(Store):
    """`Store` on PostgreSQL (connections: `daemon.store.postgres_io`). `pool` and `dsn` are
    public: the cluster runs its own SQL and LISTENs. Use the store from the event loop
    that opened it; only `append_logs`/`append_metrics` may come from other threads."""

    shared = True

    def __init__(
        self,
        dsn: str,
        *,
        clock: Clock | None = None,
        reconnect_timeout: float = 60.0,
        pool_size: int = 10,
    ) -> None:
        if pool_size < 2:  # the writer keeps one connection; reads need another
            raise ValueError(f"pool_size must be at least 2, got {pool_size}")
        self.dsn = dsn
        self._clock = clock or Clock()
        self._io = PostgresIO(self, dsn, self._clock, reconnect_timeout, pool_size)
        self.revisions = _PostgresRevisions(self)
        self.kv = PostgresKeyValue(self)
        self.state = PostgresState(self)
        self.insights = PostgresInsights(self._io)
        self.namespace_files = PostgresNamespaceFiles(self._io, self._clock)
        self.purges = PostgresPurges(self)

    @property
    def pool(self) -> Any:
        """The asyncpg pool; a `StoreError` while the store is not open."""
        return self._io.pool

    @property
    def where(self) -> str:
        """The DSN without its password, for messages."""
        return self._io.where

    @property
    def commits(self) -> int:
        """Transactions committed by the writer; bench/store.py shows the grouping with it."""
        return self._io.commits

    # lifecycle

    async def open(self) -> None:
        await self._io.open()

    async def close(self) -> None:
        await self._io.close()

    async def _fetch_row(self, sql: str, *params: Any) -> Any:
        return await self._io.read(lambda conn: conn.fetchrow(sql, *params))

    async def _fetch_all(self, sql: str, *params: Any) -> list[Any]:
        rows: list[Any] = await self._io.read(lambda conn: conn.fetch(sql, *params))
        return rows

    async def _write(self, what: str, fn: Fn) -> Any:
        return await self._io.write(Op(what, fn=fn))

    def _queue_upsert(
        self, what: str, sql: str, row: Sequence[Any], wait: bool
    ) -> asyncio.Future[Any] | None:
        """Queue an idempotent upsert; with `wait`, the future of its commit."""
        return self._io.put(Op(what, sql=sql, rows=[row], idempotent=True), wait)

    async def _upsert(self, what: str, sql: str, row: Sequence[Any], wait: bool) -> None:
        future = self._queue_upsert(what, sql, row, wait)
        if future is not None:
            await future

    # flows

    async def save_flow(self, namespace: str, flow_id: str, source: str) -> int:
        updated = self._clock.now()

        async def save(conn: Any) -> int:
            await conn.execute(_LOCK_FLOW, *_flow_lock(namespace, flow_id))
            row = await conn.fetchrow(_LATEST_FLOW, namespace, flow_id)
            if row is not None and not row["deleted"] and row["source"] == source:
                return int(row["revision"])
            revision = (row["revision"] if row else 0) + 1
            await conn.execute(
                "INSERT INTO flows VALUES ($1, $2, $3, $4, false, $5)",
                namespace, flow_id, revision, source, updated,
            )  # fmt: skip
            await _notify_flow(conn, namespace, flow_id, revision, deleted=False)
            return int(revision)

        return int(await self._write(f"flow {namespace}.{flow_id}", save))

    async def get_flow(
        self, namespace: str, flow_id: str, revision: int | None = None
    ) -> tuple[int, str] | None:
        if revision is None:
            row = await self._fetch_row(_LATEST_FLOW, namespace, flow_id)
            return None if row is None or row["deleted"] else (row["revision"], row["source"])
        sql = "SELECT revision, source FROM flows WHERE (namespace, id, revision) = ($1, $2, $3)"
        row = await self._fetch_row(sql, namespace, flow_id, revision)
        return None if row is None else (row["revision"], row["source"])

    async def list_flows(self) -> list[dict[str, Any]]:
        rows = await self._fetch_all(
            "SELECT namespace, id, revision, source, updated FROM flows AS f"
            " WHERE NOT deleted AND revision = (SELECT max(revision) FROM flows AS g"
            "  WHERE g.namespace = f.namespace AND g.id = f.id)"
            f" ORDER BY namespace {COLLATE_C}, id {COLLATE_C}"
        )
        return [{**dict(row), "updated": iso(row["updated"])} for row in rows]

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        async def delete(conn: Any) -> None:
            await conn.execute(_LOCK_FLOW, *_flow_lock(namespace, flow_id))
            row = await conn.fetchrow(_LATEST_FLOW, namespace, flow_id)
            if row is not None and not row["deleted"]:
                await _delete_revisions(conn, namespace, flow_id, [row["revision"]])
                await _notify_flow(conn, namespace, flow_id, row["revision"], deleted=True)

        await self._write(f"flow {namespace}.{flow_id}", delete)

    # executions, task runs, logs, metrics

    async def save_execution(self, doc: dict[str, Any], *, wait: bool = True) -> None:
        row = execution_row(doc)
        params = _execution_params(row)
        await self._upsert(f"execution {row.id}", _UPSERT_EXECUTION, params, wait)

    async def create_execution(self, doc: dict[str, Any]) -> bool:
        params = _execution_params(execution_row(doc))

        async def create(conn: Any) -> bool:
            return await conn.fetchval(_CREATE_EXECUTION, *params) is not None

        return bool(await self._write(f"execution {params[0]}", create))

    def save_task_run(
        self, doc: dict[str, Any], *, wait: bool = True, soon: bool = True
    ) -> Awaitable[Any]:
        row = task_run_row(doc)
        committed = self._queue_upsert(f"task run {row.id}", _UPSERT_TASK_RUN, row, wait)
        return QUEUED if committed is None else committed

    def append_logs(self, lines: Sequence[dict[str, Any]]) -> None:
        rows = [_log_params(line, log_row(line)) for line in lines]
        if rows:
            self._io.put(Op(f"{len(rows)} log lines", sql=_INSERT_LOG, rows=rows), False)

    def append_metrics(self, metrics: Sequence[dict[str, Any]]) -> None:
        rows = [
            (row.execution_id, _text(row.task_run_id), _text(row.name), _text(row.timestamp),
             row.doc)
            for row in map(metric_row, metrics)
        ]  # fmt: skip
        if rows:
            op = Op(f"{len(rows)} metrics", sql=_INSERT_METRIC, rows=rows)
            self._io.put(op, False)

    async def flush(self) -> None:
        await self._io.flush()

    async def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        async def get(conn: Any) -> dict[str, Any] | None:
            found = await conn.fetchval("SELECT doc FROM executions WHERE id = $1", execution_id)
            if found is None:
                return None
            doc: dict[str, Any] = orjson.loads(found)
            runs = await conn.fetch(
                "SELECT doc FROM task_runs WHERE execution_id = $1 ORDER BY seq", execution_id
            )
            doc["taskRunList"] = [orjson.loads(run["doc"]) for run in runs]
            return doc

        return await self._io.read(get, snapshot=True)

    async def _search(self, query: ExecutionQuery) -> tuple[list[dict[str, Any]], int]:
        where: list[str] = []
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if (namespace := query.namespace) is not None and query.exact_namespace:
            where.append(f"namespace = {param(namespace)}")
        elif namespace is not None:
            where.append(f"(namespace = {param(namespace)}"
                         f" OR starts_with(namespace, {param(namespace + '.')}))")  # fmt: skip
        if query.flow_id is not None:
            where.append(f"flow_id = {param(query.flow_id)}")
        if query.text:
            text = param(query.text)
            where.append(f"(strpos(lower(id), {text}) > 0 OR strpos(lower(namespace), {text}) > 0"
                         f" OR strpos(lower(flow_id), {text}) > 0)")  # fmt: skip
        if query.states is not None:
            where.append(f"state = ANY({param(query.states)}::text[])")
        if query.labels:
            wanted = [{"key": k, "value": v} for k, v in query.labels.items()]
            where.append(f"labels @> {param(to_json(wanted, 'labels'))}::jsonb")
        if query.start_after is not None:
            where.append(f"start_date >= {param(timestamptz(query.start_after))}")
        if query.start_before is not None:
            before = timestamptz(query.start_before)
            where.append(f"start_date < {param(before)}")
        if query.latest_end:
            where.append("end_date IS NOT NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = "end_date DESC" if query.latest_end else "start_date DESC NULLS LAST"
        page_sql = (
            f"SELECT doc FROM executions{clause}"
            f" ORDER BY {order}, seq DESC"
            f" LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}"
        )

        async def search(conn: Any) -> tuple[list[dict[str, Any]], int]:
            total = await conn.fetchval(f"SELECT count(*) FROM executions{clause}", *params)
            rows = await conn.fetch(page_sql, *params, query.limit, query.offset)
            return [orjson.loads(row["doc"]) for row in rows], int(total)

        return await self._io.read(search, snapshot=True)

    async def count_executions(self, namespace: str, flow_id: str, states: Sequence[str]) -> int:
        if not states:
            return 0
        sql = (
            "SELECT count(*) FROM executions WHERE namespace = $1 AND flow_id = $2"
            " AND state = ANY($3::text[])"
        )
        return int((await self._fetch_row(sql, namespace, flow_id, list(states)))[0])

    async def delete_task_runs(self, execution_id: str, task_run_ids: Sequence[str]) -> None:
        sql = "DELETE FROM task_runs WHERE execution_id = $1 AND id = ANY($2::text[])"
        if task_run_ids:
            ids = list(task_run_ids)
            await self._write(f"task runs of {execution_id}",
                              lambda conn: conn.execute(sql, execution_id, ids))  # fmt: skip

    async def delete_execution(
        self, execution_id: str, *, logs: bool = True, metrics: bool = True
    ) -> None:
        tables = ("task_runs", *(("logs",) if logs else ()), *(("metrics",) if metrics else ()))

        async def delete(conn: Any) -> None:
            await conn.execute("DELETE FROM executions WHERE id = $1", execution_id)
            for table in tables:
                await conn.execute(f"DELETE FROM {table} WHERE execution_id = $1", execution_id)

        await self._write(f"deletion of execution {execution_id}", delete)

    async def logs(
        self,
        execution_id: str,
        *,
        task_run_id: str | None = None,
        min_level: str | None = None,
    ) -> list[dict[str, Any]]:
        sql = "SELECT message, doc FROM logs WHERE execution_id = $1"
        params: list[Any] = [execution_id]
        if task_run_id is not None:
            params.append(task_run_id)
            sql += f" AND task_run_id = ${len(params)}"
        level = level_number(min_level)
        if level is not None:
            params.append(level)
            sql += f" AND level >= ${len(params)}"
        rows = await self._fetch_all(sql + " ORDER BY id", *params)
        return [log_doc(row["message"], row["doc"]) for row in rows]

    async def metrics(self, execution_id: str) -> list[dict[str, Any]]:
        sql = "SELECT doc FROM metrics WHERE execution_id = $1 ORDER BY id"
        return [orjson.loads(row["doc"]) for row in await self._fetch_all(sql, execution_id)]

    # KV


class _PostgresRevisions(RevisionTable):
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def list(
        self, namespace: str, flow_id: str, *, deleted: bool = False
    ) -> list[tuple[int, str]]:
        live = "" if deleted else " AND NOT deleted"
        sql = f"SELECT revision, source FROM flows WHERE namespace = $1 AND id = $2{live}"
        rows = await self._store._fetch_all(sql + " ORDER BY revision", namespace, flow_id)
        return [(int(row["revision"]), row["source"]) for row in rows]

    async def delete(self, namespace: str, flow_id: str, revisions: Sequence[int]) -> None:
        async def delete(conn: Any) -> None:
            await conn.execute(_LOCK_FLOW, *_flow_lock(namespace, flow_id))
            row = await conn.fetchrow(_LATEST_FLOW, namespace, flow_id)
            await _delete_revisions(conn, namespace, flow_id, sorted(set(revisions)))
            if row is not None and not row["deleted"] and row["revision"] in revisions:
                await _notify_flow(conn, namespace, flow_id, row["revision"], deleted=True)

        await self._store._write(f"flow {namespace}.{flow_id}", delete)


async def _delete_revisions(
    conn: Any, namespace: str, flow_id: str, revisions: Sequence[int]
) -> None:
    await conn.execute(
        "UPDATE flows SET deleted = true WHERE namespace = $1 AND id = $2"
        " AND revision = ANY($3::integer[])",
        namespace, flow_id, list(revisions),
    )  # fmt: skip


async def _notify_flow(
    conn: Any, namespace: str, flow_id: str, revision: int, *, deleted: bool
) -> None:
    """Sent inside the change's transaction: listeners hear of it only once it commits."""
    payload = {"namespace": namespace, "id": flow_id, "revision": revision, "deleted": deleted}
    await conn.execute("SELECT pg_notify($1, $2)", FLOWS_CHANNEL, orjson.dumps(payload).decode())
