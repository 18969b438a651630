"""Namespace files on PostgreSQL, shared by every node of a cluster (see
`daemon.store.namespace_files` for the blob scheme). Chunk writes are idempotent upserts, so the
writer may replay one after a lost connection; the commit runs under an advisory lock per
namespace so that two nodes writing one tree do not interleave their checks."""

from __future__ import annotations

from datetime import datetime
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
from daemon.store.postgres_io import Op, PostgresIO

NSFILES_LOCK_CLASS = 0x706F6466
"""First key of the two-key advisory locks that serialise changes to one namespace's tree."""
_COLUMNS = "namespace, path, is_dir, size, created, updated"
_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext($2))"


def _info(row: Any) -> NamespaceFileInfo:
    return NamespaceFileInfo(
        row["namespace"],
        row["path"],
        bool(row["is_dir"]),
        int(row["size"]),
        iso(row["created"]) or "",
        iso(row["updated"]) or "",
    )


async def _stat(conn: Any, namespace: str, path: str) -> NamespaceFileInfo | None:
    if path == "/":
        return NamespaceFileInfo(namespace, "/", True, 0, "", "")
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM namespace_files WHERE namespace = $1 AND path = $2",
        namespace,
        path,
    )
    return None if row is None else _info(row)


async def _make_directories(
    conn: Any, namespace: str, directories: list[str], now: datetime
) -> None:
    for directory in directories:
        found = await _stat(conn, namespace, directory)
        if found is not None and not found.is_directory:
            raise FileConflict(f"{directory} is a file, not a directory")
        if found is None:
            await conn.execute(
                "INSERT INTO namespace_files VALUES ($1, $2, $3, true, 0, NULL, $4, $4)",
                namespace, directory, parent_of(directory), now,
            )  # fmt: skip


async def _drop_blobs(conn: Any, blobs: list[str]) -> None:
    if blobs:
        await conn.execute("DELETE FROM namespace_file_chunks WHERE blob = ANY($1)", blobs)
        await conn.execute("DELETE FROM namespace_file_blobs WHERE blob = ANY($1)", blobs)


class PostgresNamespaceFiles(NamespaceFileTable):
    def __init__(self, io: PostgresIO, clock: Clock) -> None:
        self._io = io
        self._clock = clock

    async def _locked(self, what: str, namespace: str, fn: Any) -> Any:
        """`fn(conn)` in a write transaction holding the namespace's lock."""

        async def run(conn: Any) -> Any:
            await conn.execute(_LOCK, NSFILES_LOCK_CLASS, namespace)
            return await fn(conn)

        return await refusal_kept(self._io.write(Op(what, fn=run)))

    async def stat(self, namespace: str, path: str) -> NamespaceFileInfo | None:
        path = normalize_path(path)
        return await self._io.read(lambda conn: _stat(conn, namespace, path))

    async def _entries(
        self, namespace: str, directory: str, recursive: bool
    ) -> list[NamespaceFileInfo]:
        if recursive:
            sql = (
                f"SELECT {_COLUMNS} FROM namespace_files"
                " WHERE namespace = $1 AND path > $2 AND path < $3"
            )
            params: tuple[Any, ...] = (namespace, *below(directory))
        else:
            sql = f"SELECT {_COLUMNS} FROM namespace_files WHERE namespace = $1 AND parent = $2"
            params = (namespace, directory)
        rows = await self._io.read(lambda conn: conn.fetch(sql + " ORDER BY path", *params))
        return [_info(row) for row in rows]

    async def make_directory(self, namespace: str, path: str) -> None:
        path = normalize_path(path)
        if path == "/":
            return
        now = self._clock.now()

        async def make(conn: Any) -> None:
            await _make_directories(conn, namespace, [*ancestors(path), path], now)

        await self._locked(f"directory {namespace}:{path}", namespace, make)

    async def delete(self, namespace: str, path: str) -> list[str]:
        path = normalize_path(path)
        low, high = below(path)

        async def delete(conn: Any) -> list[str]:
            rows = await conn.fetch(
                "DELETE FROM namespace_files WHERE namespace = $1"
                " AND (path = $2 OR (path > $3 AND path < $4)) RETURNING path, blob",
                namespace, path, low, high,
            )  # fmt: skip
            await _drop_blobs(conn, [row["blob"] for row in rows if row["blob"]])
            return sorted(row["path"] for row in rows)

        removed: list[str] = await self._locked(f"deletion {namespace}:{path}", namespace, delete)
        return removed

    async def move(self, namespace: str, source: str, target: str) -> None:
        source, target = normalize_path(source), normalize_path(target)
        if source == "/" or target == "/" or target == source or target.startswith(source + "/"):
            raise FileConflict(f"{source} cannot be moved to {target}")
        now = self._clock.now()

        async def move(conn: Any) -> None:
            if await _stat(conn, namespace, source) is None:
                raise NotFound(f"namespace file {source} not found in namespace {namespace}")
            existing = await _stat(conn, namespace, target)
            if existing is not None:
                raise target_error(target, existing)
            await _make_directories(conn, namespace, ancestors(target), now)
            await conn.execute(
                "UPDATE namespace_files SET path = $1, parent = $2, updated = $3"
                " WHERE namespace = $4 AND path = $5",
                target, parent_of(target), now, namespace, source,
            )  # fmt: skip
            cut = len(source) + 1
            await conn.execute(
                "UPDATE namespace_files SET path = $1 || substr(path, $2),"
                " parent = $1 || substr(parent, $2)"
                " WHERE namespace = $3 AND path > $4 AND path < $5",
                target, cut, namespace, *below(source),
            )  # fmt: skip

        await self._locked(f"move {namespace}:{source}", namespace, move)

    async def namespaces(self) -> list[str]:
        sql = "SELECT DISTINCT namespace FROM namespace_files ORDER BY namespace"
        rows = await self._io.read(lambda conn: conn.fetch(sql))
        return [row["namespace"] for row in rows]

    async def sweep(self) -> int:
        cutoff = self._clock.now() - PENDING_TTL

        async def sweep(conn: Any) -> int:
            rows = await conn.fetch(
                "SELECT blob FROM namespace_file_blobs WHERE started < $1", cutoff
            )
            await _drop_blobs(conn, [row["blob"] for row in rows])
            return len(rows)

        return int(await self._io.write(Op("sweep of pending namespace file blobs", fn=sweep)))

    async def _begin_blob(self, blob: str) -> None:
        sql = "INSERT INTO namespace_file_blobs VALUES ($1, $2) ON CONFLICT DO NOTHING"
        await self._io.write(
            Op(f"blob {blob}", sql=sql, rows=[(blob, self._clock.now())], idempotent=True)
        )

    async def _put_chunk(self, blob: str, seq: int, data: bytes) -> None:
        sql = (
            "INSERT INTO namespace_file_chunks VALUES ($1, $2, $3)"
            " ON CONFLICT (blob, seq) DO UPDATE SET data = excluded.data"
        )
        await self._io.write(
            Op(f"chunk {seq} of blob {blob}", sql=sql, rows=[(blob, seq, data)], idempotent=True)
        )

    async def _drop_blob(self, blob: str) -> None:
        async def drop(conn: Any) -> None:
            await _drop_blobs(conn, [blob])

        await self._io.write(Op(f"blob {blob}", fn=drop))

    async def _commit(
        self, namespace: str, path: str, blob: str, size: int, conflict: Conflict
    ) -> NamespaceFileInfo | None:
        now = self._clock.now()

        async def commit(conn: Any) -> NamespaceFileInfo | None:
            existing = await _stat(conn, namespace, path)
            if existing is not None and (existing.is_directory or conflict == "ERROR"):
                raise target_error(path, existing)
            if existing is not None and conflict == "SKIP":
                await _drop_blobs(conn, [blob])
                return None
            await _make_directories(conn, namespace, ancestors(path), now)
            old = await conn.fetchval(
                "SELECT blob FROM namespace_files WHERE namespace = $1 AND path = $2",
                namespace, path,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO namespace_files VALUES ($1, $2, $3, false, $4, $5, $6, $6)"
                " ON CONFLICT (namespace, path) DO UPDATE SET size = excluded.size,"
                " blob = excluded.blob, updated = excluded.updated",
                namespace, path, parent_of(path), size, blob, now,
            )  # fmt: skip
            await conn.execute("DELETE FROM namespace_file_blobs WHERE blob = $1", blob)
            if old:
                await _drop_blobs(conn, [old])
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM namespace_files WHERE namespace = $1 AND path = $2",
                namespace, path,
            )  # fmt: skip
            return _info(row)

        result: NamespaceFileInfo | None = await self._locked(
            f"file {namespace}:{path}", namespace, commit
        )
        return result

    async def _blob_of(self, namespace: str, path: str) -> tuple[str, int] | None:
        sql = (
            "SELECT blob, size FROM namespace_files"
            " WHERE namespace = $1 AND path = $2 AND NOT is_dir"
        )
        row = await self._io.read(lambda conn: conn.fetchrow(sql, namespace, path))
        return None if row is None else (row["blob"], int(row["size"]))

    async def _chunk(self, blob: str, seq: int) -> bytes | None:
        sql = "SELECT data FROM namespace_file_chunks WHERE blob = $1 AND seq = $2"
        data = await self._io.read(lambda conn: conn.fetchval(sql, blob, seq))
        return None if data is None else bytes(data)
