"""Purges behind Kestra's log.PurgeLogs (which lines go: one DELETE on `logs` joined to
`executions`, so no schema change) and kv.PurgeKV (which pairs go, by namespace, glob and
expiry: the KV table is scanned and matched here, then the pairs deleted by key)."""

from __future__ import annotations

import itertools
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class LogPurge:
    """Which log lines a purge deletes: written before `end` (any time when None) and from
    `start`, at these level numbers (all when None), of one execution, of one flow, or of a
    namespace and its sub-namespaces (all when None); and, for Kestra's log deletions by
    the API, only those of one task, task run, attempt or trigger. Dates are ISO-8601 texts
    as the store keeps them."""

    end: str | None = None
    start: str | None = None
    levels: Sequence[int] | None = None
    execution_id: str | None = None
    namespace: str | None = None
    flow_id: str | None = None
    task_id: str | None = None
    task_run_id: str | None = None
    attempt: int | None = None
    trigger_id: str | None = None

    def where(
        self, mark: Callable[[], str], doc_text: Callable[[str], str]
    ) -> tuple[str, list[Any]]:
        """The WHERE clause over `logs` and its parameters; `mark` gives the next
        placeholder (`?` for SQLite, `$n` for PostgreSQL), `doc_text` the SQL of a field of
        the line's JSON document as text."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        for column, value in (("timestamp <", self.end), ("timestamp >=", self.start)):
            if value is not None:
                where.append(f"{column} {mark()}")
                params.append(value)
        if self.levels is not None:
            where.append(f"level IN ({', '.join(mark() for _ in self.levels)})")
            params += list(self.levels)
        for column, value in (
            ("execution_id", self.execution_id),
            ("task_run_id", self.task_run_id),
        ):
            if value is not None:
                where.append(f"{column} = {mark()}")
                params.append(value)
        for field, text in (
            ("taskId", self.task_id),
            ("attemptNumber", None if self.attempt is None else str(self.attempt)),
            ("triggerId", self.trigger_id),
        ):
            if text is not None:
                where.append(f"{doc_text(field)} = {mark()}")
                params.append(text)
        owners: list[str] = []
        if self.namespace is not None and self.flow_id is not None:
            owners.append(f"namespace = {mark()} AND flow_id = {mark()}")
            params += [self.namespace, self.flow_id]
        elif self.namespace is not None:
            # "a.b" or anything under "a.b."; '/' is the character after '.'
            owners.append(
                f"(namespace = {mark()} OR (namespace >= {mark()} AND namespace < {mark()}))"
            )
            params += [self.namespace, self.namespace + ".", self.namespace + "/"]
        if owners:
            where.append(f"execution_id IN (SELECT id FROM executions WHERE {owners[0]})")
        return " AND ".join(where), params

    def sqlite(self, conn: sqlite3.Connection) -> int:
        """Run on SQLite's writer connection; how many lines went."""
        clause, params = self.where(
            lambda: "?", lambda field: f"CAST(json_extract(doc, '$.{field}') AS TEXT)"
        )
        return conn.execute(f"DELETE FROM logs WHERE {clause}", params).rowcount

    async def postgres(self, conn: Any) -> int:
        """Run on an asyncpg connection; how many lines went."""
        marks = itertools.count(1)
        clause, params = self.where(lambda: f"${next(marks)}", lambda field: f"(doc->>'{field}')")
        status = await conn.execute(f"DELETE FROM logs WHERE {clause}", *params)
        return int(status.split()[-1])  # "DELETE <n>"


@dataclass(frozen=True)
class KvPurge:
    """Which KV pairs a purge deletes: in `namespaces` (with their children when asked) or
    matching `namespace_glob` (all namespaces when neither), whose key matches `key_glob`,
    only those expired at `now` when `expired_only`."""

    now: datetime
    namespaces: Sequence[str] | None = None
    include_children: bool = True
    namespace_glob: str | None = None
    key_glob: str | None = None
    expired_only: bool = True

    def matches(self, namespace: str, key: str, expires_at: datetime | None) -> bool:
        if self.expired_only and (expires_at is None or expires_at > self.now):
            return False
        if self.key_glob is not None and not fnmatchcase(key, self.key_glob):
            return False
        if self.namespace_glob is not None and not fnmatchcase(namespace, self.namespace_glob):
            return False
        if self.namespaces is None:
            return True
        return any(
            namespace == ns or (self.include_children and namespace.startswith(ns + "."))
            for ns in self.namespaces
        )

    def sqlite(self, conn: sqlite3.Connection) -> int:
        rows = conn.execute("SELECT namespace, key, expires_at FROM kv").fetchall()
        doomed = [(ns, key) for ns, key, at in rows if self.matches(ns, key, _moment(at))]
        conn.executemany("DELETE FROM kv WHERE namespace = ? AND key = ?", doomed)
        return len(doomed)

    async def postgres(self, conn: Any) -> int:
        rows = await conn.fetch("SELECT namespace, key, expires_at FROM kv")
        doomed = [(r[0], r[1]) for r in rows if self.matches(r[0], r[1], r[2])]
        await conn.executemany("DELETE FROM kv WHERE namespace = $1 AND key = $2", doomed)
        return len(doomed)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Purges(ABC):
    """Bulk deletions across executions that a plan selects (Kestra's Purge* tasks)."""

    @abstractmethod
    async def logs(self, purge: LogPurge) -> int:
        """Delete the log lines `purge` selects; how many went (Kestra's PurgeLogs)."""
