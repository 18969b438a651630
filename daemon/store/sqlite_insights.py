"""`Insights` in SQLite's SQL (see daemon/store/insights.py)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from daemon.store.base import log_doc
from daemon.store.insights import Insights, LogQuery, Window

if TYPE_CHECKING:
    from daemon.store.sqlite_io import SqliteIO


def _where(window: Window, alias: str = "") -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if window.namespace is not None:
        # "a.b" or anything under "a.b."; '/' is the character after '.'
        where.append(f"({alias}namespace = ? OR ({alias}namespace >= ? AND {alias}namespace < ?))")
        params += [window.namespace, window.namespace + ".", window.namespace + "/"]
    if window.flow_id is not None:
        where.append(f"{alias}flow_id = ?")
        params.append(window.flow_id)
    if window.after is not None:
        where.append(f"{alias}start_date >= ?")
        params.append(window.after)
    if window.before is not None:
        where.append(f"{alias}start_date < ?")
        params.append(window.before)
    return where, params


class SqliteInsights(Insights):
    def __init__(self, io: SqliteIO) -> None:
        self._io = io

    async def _briefs(self, window: Window) -> list[dict[str, Any]]:
        where, params = _where(window)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = (
            "SELECT id, namespace, flow_id, state, start_date, end_date FROM executions"
            f"{clause} ORDER BY start_date, seq"
        )
        keys = ("id", "namespace", "flowId", "state", "startDate", "endDate")

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [dict(zip(keys, row, strict=True)) for row in conn.execute(sql, params)]

        found: list[dict[str, Any]] = await self._io.read(read)
        return found

    async def _logs(self, query: LogQuery) -> tuple[list[dict[str, Any]], int]:
        where, params = _where(query.window, "e.")
        if query.text:
            where.append("instr(lower(l.message), ?) > 0")
            params.append(query.text)
        if query.level is not None:
            where.append("l.level >= ?")
            params.append(query.level)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        joined = f"FROM logs AS l JOIN executions AS e ON e.id = l.execution_id{clause}"

        def read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], int]:
            total = conn.execute(f"SELECT COUNT(*) {joined}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT l.message, l.doc {joined} ORDER BY l.id DESC LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            )
            return [log_doc(message, doc) for message, doc in rows], int(total)

        found: tuple[list[dict[str, Any]], int] = await self._io.read(read)
        return found
