"""Namespace files on the embedded store: rows and chunks in the SQLite file, every write
through its one writer thread (see `daemon.store.namespace_files` for the blob scheme)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from daemon.sdk.clock import Clock
from daemon.sdk.errors import NotFound
from daemon.sdk.nsfiles import (
    Conflict,
    FileConflict,
    NamespaceFileInfo,
    ancestors,
    normalize_path,
    parent_of,
)
from daemon.sdk.state import iso
from daemon.store.namespace_files import (
    PENDING_TTL,
    NamespaceFileTable,
    below,
    refusal_kept,
    target_error,
)
from daemon.store.sqlite_io import SqliteIO

_COLUMNS = "namespace, path, is_dir, size, created, updated"
_ROOT_CHILD = "(path > ? AND path < ?)"


def _info(row: Any) -> NamespaceFileInfo:
    namespace, path, is_dir, size, created, updated = row
    return NamespaceFileInfo(namespace, path, bool(is_dir), size, created, updated)


def _stat(conn: sqlite3.Connection, namespace: str, path: str) -> NamespaceFileInfo | None:
    if path == "/":
        return NamespaceFileInfo(namespace, "/", True, 0, "", "")
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM namespace_files WHERE namespace = ? AND path = ?",
        (namespace, path),
    ).fetchone()
    return None if row is None else _info(row)


def _make_directories(
    conn: sqlite3.Connection, namespace: str, directories: list[str], now: str
) -> None:
    """Directory rows for each of `directories` (outermost first) that has none;
    FileConflict when one of them is a file."""
    for directory in directories:
        found = _stat(conn, namespace, directory)
        if found is not None and not found.is_directory:
            raise FileConflict(f"{directory} is a file, not a directory")
        if found is None:
            conn.execute(
                "INSERT INTO namespace_files VALUES (?, ?, ?, 1, 0, NULL, ?, ?)",
                (namespace, directory, parent_of(directory), now, now),
            )


def _drop_blobs(conn: sqlite3.Connection, blobs: list[str]) -> None:
    conn.executemany("DELETE FROM namespace_file_chunks WHERE blob = ?", [(b,) for b in blobs])
    conn.executemany("DELETE FROM namespace_file_blobs WHERE blob = ?", [(b,) for b in blobs])


class SqliteNamespaceFiles(NamespaceFileTable):
    def __init__(self, io: SqliteIO, clock: Clock) -> None:
        self._io = io
        self._clock = clock

    def _now(self) -> str:
        return iso(self._clock.now()) or ""

    async def _write(self, fn: Callable[[sqlite3.Connection], Any], what: str) -> Any:
        return await refusal_kept(self._io.write(fn, what))

    async def stat(self, namespace: str, path: str) -> NamespaceFileInfo | None:
        path = normalize_path(path)
        return await self._io.read(lambda conn: _stat(conn, namespace, path))

    async def _entries(
        self, namespace: str, directory: str, recursive: bool
    ) -> list[NamespaceFileInfo]:
        if recursive:
            sql = f"SELECT {_COLUMNS} FROM namespace_files WHERE namespace = ? AND {_ROOT_CHILD}"
            params: tuple[Any, ...] = (namespace, *below(directory))
        else:
            sql = f"SELECT {_COLUMNS} FROM namespace_files WHERE namespace = ? AND parent = ?"
            params = (namespace, directory)
        rows = await self._io.read(
            lambda conn: conn.execute(sql + " ORDER BY path", params).fetchall()
        )
        return [_info(row) for row in rows]

    async def make_directory(self, namespace: str, path: str) -> None:
        path = normalize_path(path)
        if path == "/":
            return
        now = self._now()

        def make(conn: sqlite3.Connection) -> None:
            found = _stat(conn, namespace, path)
            if found is not None and not found.is_directory:
                raise target_error(path, found)
            _make_directories(conn, namespace, [*ancestors(path), path], now)

        await self._write(make, f"directory {namespace}:{path}")

    async def delete(self, namespace: str, path: str) -> list[str]:
        path = normalize_path(path)
        low, high = below(path)

        def delete(conn: sqlite3.Connection) -> list[str]:
            where = f"namespace = ? AND (path = ? OR {_ROOT_CHILD})"
            params = (namespace, path, low, high)
            rows = conn.execute(
                f"SELECT path, blob FROM namespace_files WHERE {where} ORDER BY path", params
            ).fetchall()
            conn.execute(f"DELETE FROM namespace_files WHERE {where}", params)
            _drop_blobs(conn, [blob for _, blob in rows if blob])
            return [p for p, _ in rows]

        removed: list[str] = await self._write(delete, f"deletion {namespace}:{path}")
        return removed

    async def move(self, namespace: str, source: str, target: str) -> None:
        source, target = normalize_path(source), normalize_path(target)
        if source == "/" or target == "/" or target == source or target.startswith(source + "/"):
            raise FileConflict(f"{source} cannot be moved to {target}")
        now = self._now()

        def move(conn: sqlite3.Connection) -> None:
            if _stat(conn, namespace, source) is None:
                raise NotFound(f"namespace file {source} not found in namespace {namespace}")
            existing = _stat(conn, namespace, target)
            if existing is not None:
                raise target_error(target, existing)
            _make_directories(conn, namespace, ancestors(target), now)
            conn.execute(
                "UPDATE namespace_files SET path = ?, parent = ?, updated = ?"
                " WHERE namespace = ? AND path = ?",
                (target, parent_of(target), now, namespace, source),
            )
            cut = len(source) + 1
            conn.execute(
                "UPDATE namespace_files SET path = ? || substr(path, ?),"
                f" parent = ? || substr(parent, ?) WHERE namespace = ? AND {_ROOT_CHILD}",
                (target, cut, target, cut, namespace, *below(source)),
            )

        await self._write(move, f"move {namespace}:{source}")

    async def namespaces(self) -> list[str]:
        sql = "SELECT DISTINCT namespace FROM namespace_files ORDER BY namespace"
        rows = await self._io.read(lambda conn: conn.execute(sql).fetchall())
        return [row[0] for row in rows]

    async def sweep(self) -> int:
        cutoff = iso(self._clock.now() - PENDING_TTL)

        def sweep(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT blob FROM namespace_file_blobs WHERE started < ?", (cutoff,)
            ).fetchall()
            _drop_blobs(conn, [row[0] for row in rows])
            return len(rows)

        return int(await self._write(sweep, "sweep of pending namespace file blobs"))

    async def _begin_blob(self, blob: str) -> None:
        params = (blob, self._now())
        await self._write(
            lambda conn: conn.execute("INSERT INTO namespace_file_blobs VALUES (?, ?)", params),
            f"blob {blob}",
        )

    async def _put_chunk(self, blob: str, seq: int, data: bytes) -> None:
        params = (blob, seq, data)
        sql = "INSERT OR REPLACE INTO namespace_file_chunks VALUES (?, ?, ?)"
        await self._write(lambda conn: conn.execute(sql, params), f"chunk {seq} of blob {blob}")

    async def _drop_blob(self, blob: str) -> None:
        await self._write(lambda conn: _drop_blobs(conn, [blob]), f"blob {blob}")

    async def _commit(
        self, namespace: str, path: str, blob: str, size: int, conflict: Conflict
    ) -> NamespaceFileInfo | None:
        now = self._now()

        def commit(conn: sqlite3.Connection) -> NamespaceFileInfo | None:
            existing = _stat(conn, namespace, path)
            if existing is not None and (existing.is_directory or conflict == "ERROR"):
                raise target_error(path, existing)
            if existing is not None and conflict == "SKIP":
                _drop_blobs(conn, [blob])
                return None
            _make_directories(conn, namespace, ancestors(path), now)
            old = conn.execute(
                "SELECT blob FROM namespace_files WHERE namespace = ? AND path = ?",
                (namespace, path),
            ).fetchone()
            created = existing.created if existing is not None else now
            conn.execute(
                "INSERT OR REPLACE INTO namespace_files VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (namespace, path, parent_of(path), size, blob, created, now),
            )
            conn.execute("DELETE FROM namespace_file_blobs WHERE blob = ?", (blob,))
            if old is not None and old[0]:
                _drop_blobs(conn, [old[0]])
            return NamespaceFileInfo(namespace, path, False, size, created, now)

        result: NamespaceFileInfo | None = await self._write(commit, f"file {namespace}:{path}")
        return result

    async def _blob_of(self, namespace: str, path: str) -> tuple[str, int] | None:
        sql = (
            "SELECT blob, size FROM namespace_files WHERE namespace = ? AND path = ? AND is_dir = 0"
        )
        row = await self._io.read(lambda conn: conn.execute(sql, (namespace, path)).fetchone())
        return None if row is None else (row[0], int(row[1]))

    async def _chunk(self, blob: str, seq: int) -> bytes | None:
        sql = "SELECT data FROM namespace_file_chunks WHERE blob = ? AND seq = ?"
        row = await self._io.read(lambda conn: conn.execute(sql, (blob, seq)).fetchone())
        return None if row is None else bytes(row[0])
