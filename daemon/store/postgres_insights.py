"""`Insights` in PostgreSQL's SQL (see daemon/store/insights.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from daemon.store.base import log_doc
from daemon.store.insights import Insights, LogQuery, Window

if TYPE_CHECKING:
    from daemon.store.postgres_io import PostgresIO


def _sortable(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _where(window: Window, param: _Params, alias: str = "") -> list[str]:
    where: list[str] = []
    if (namespace := window.namespace) is not None:
        where.append(f"({alias}namespace = {param(namespace)}"
                     f" OR starts_with({alias}namespace, {param(namespace + '.')}))")  # fmt: skip
    if window.flow_id is not None:
        where.append(f"{alias}flow_id = {param(window.flow_id)}")
    if window.after is not None:
        where.append(f"{alias}start_date >= {param(datetime.fromisoformat(window.after))}")
    if window.before is not None:
        where.append(f"{alias}start_date < {param(datetime.fromisoformat(window.before))}")
    return where


class PostgresInsights(Insights):
    def __init__(self, io: PostgresIO) -> None:
        self._io = io

    async def _briefs(self, window: Window) -> list[dict[str, Any]]:
        param = _Params()
        where = _where(window, param)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = (
            "SELECT id, namespace, flow_id, state, start_date, end_date FROM executions"
            f"{clause} ORDER BY start_date NULLS FIRST, seq"
        )

        async def read(conn: Any) -> list[dict[str, Any]]:
            rows = await conn.fetch(sql, *param.values)
            return [
                {
                    "id": row["id"],
                    "namespace": row["namespace"],
                    "flowId": row["flow_id"],
                    "state": row["state"],
                    "startDate": _sortable(row["start_date"]),
                    "endDate": _sortable(row["end_date"]),
                }
                for row in rows
            ]

        found: list[dict[str, Any]] = await self._io.read(read, snapshot=True)
        return found

    async def _logs(self, query: LogQuery) -> tuple[list[dict[str, Any]], int]:
        param = _Params()
        where = _where(query.window, param, "e.")
        if query.text:
            where.append(f"strpos(lower(l.message), {param(query.text)}) > 0")
        if query.level is not None:
            where.append(f"l.level >= {param(query.level)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        joined = f"FROM logs AS l JOIN executions AS e ON e.id = l.execution_id{clause}"
        count = len(param.values)
        page_sql = (
            f"SELECT l.message, l.doc {joined} ORDER BY l.id DESC"
            f" LIMIT ${count + 1} OFFSET ${count + 2}"
        )

        async def read(conn: Any) -> tuple[list[dict[str, Any]], int]:
            total = await conn.fetchval(f"SELECT count(*) {joined}", *param.values)
            rows = await conn.fetch(page_sql, *param.values, query.limit, query.offset)
            return [log_doc(row["message"], row["doc"]) for row in rows], int(total)

        found: tuple[list[dict[str, Any]], int] = await self._io.read(read, snapshot=True)
        return found
