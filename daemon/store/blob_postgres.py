"""Files kept in PostgreSQL itself, for a cluster that wants nothing else to run.

A file is a row of `storage_files` naming a chunk set (`blob`), and rows of
`storage_chunks` holding its bytes a chunk at a time. A write inserts the chunks and
swaps the file row in one transaction: a reader sees the old file or the new one, and a
writer that dies leaves nothing behind. A read fetches a few chunks per query, so neither
side ever holds the file whole.

The tables are this backend's own (created on first use, `IF NOT EXISTS`), not part of the
store's schema: a daemon whose files live elsewhere never has them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from daemon.sdk.errors import NotFound
from daemon.sdk.files import StorageError
from daemon.store.blobs import (
    READ_CHUNK,
    BlobInfo,
    Blobs,
    Transient,
    check_key,
    check_prefix,
    with_retries,
)

T = TypeVar("T")

CHUNKS_PER_QUERY = 4
_LOCK = 0x706F6469756D0F17  # advisory lock: first opens by several nodes create tables once
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS storage_files (key text PRIMARY KEY, blob uuid NOT NULL,
        size bigint NOT NULL, chunk integer NOT NULL,
        updated timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS storage_chunks (blob uuid NOT NULL, seq integer NOT NULL,
        data bytea NOT NULL, PRIMARY KEY (blob, seq))""",
    # Chunks are stored as they come: compressing megabytes of (often already compressed)
    # data costs more CPU than the disk it saves.
    "ALTER TABLE storage_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
)
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


def _like(prefix: str) -> str:
    folder = check_prefix(prefix) + "/"
    return folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class PostgresBlobs(Blobs):
    def __init__(self, dsn: str, *, retries: int) -> None:
        self._dsn = dsn
        self._chunk = READ_CHUNK
        self._retries = retries
        self._pool: Any = None
        self._opening = asyncio.Lock()
        host = dsn.split("@")[-1].split("?")[0]  # no password in messages
        self.where = f"postgresql://{host.removeprefix('postgresql://')}"

    async def _open(self) -> Any:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=4)
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                    for statement in _SCHEMA:
                        await conn.execute(statement)
                self._pool = pool
            return self._pool

    async def _run(self, what: str, job: Callable[[Any], Awaitable[T]]) -> T:
        """`job(connection)`, tried again on a lost connection or an unreachable server."""

        async def attempt() -> T:
            try:
                pool = await self._open()
                async with pool.acquire() as conn:
                    return await job(conn)
            except _TRANSIENT as exc:
                raise Transient(f"{type(exc).__name__}: {exc}") from exc
            except asyncpg.PostgresError as exc:
                raise StorageError(f"cannot {what} ({self.where}): {exc}", None) from exc

        return await with_retries(what, self._retries, attempt, where=self.where)

    async def _query(self, what: str, method: str, sql: str, *args: Any) -> Any:
        """One statement (`method` of the connection: fetch, fetchrow...), with retries."""
        return await self._run(what, lambda conn: getattr(conn, method)(sql, *args))

    async def put_file(self, key: str, source: Path, size: int) -> None:
        check_key(key)

        async def write(conn: Any) -> None:
            handle = await asyncio.to_thread(source.open, "rb")
            try:
                await self._swap(conn, key, handle)
            finally:
                handle.close()

        await self._run(f"write {key}", write)

    async def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        await self._run(f"write {key}", lambda conn: self._swap(conn, key, data))

    async def _swap(self, conn: Any, key: str, source: Any) -> None:
        blob = uuid.uuid4()
        size = 0
        async with conn.transaction():
            seq = 0
            while True:
                if isinstance(source, bytes):
                    chunk = source[size : size + self._chunk]
                else:
                    chunk = await asyncio.to_thread(source.read, self._chunk)
                if not chunk and seq:
                    break
                await conn.execute(
                    "INSERT INTO storage_chunks (blob, seq, data) VALUES ($1, $2, $3)",
                    blob, seq, chunk,
                )  # fmt: skip
                size += len(chunk)
                seq += 1
                if not chunk:
                    break
            # Writers of one key take turns, so that each removes the chunks it replaced.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 17))", key)
            old = await conn.fetchval("SELECT blob FROM storage_files WHERE key = $1", key)
            await conn.execute(
                """INSERT INTO storage_files (key, blob, size, chunk) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (key) DO UPDATE SET blob = $2, size = $3, chunk = $4,
                   updated = now()""",
                key, blob, size, self._chunk,
            )  # fmt: skip
            if old is not None:
                await conn.execute("DELETE FROM storage_chunks WHERE blob = $1", old)

    async def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        check_key(key)
        row = await self._query(
            f"read {key}", "fetchrow",
            "SELECT blob, size, chunk FROM storage_files WHERE key = $1", key,
        )  # fmt: skip
        if row is None:
            raise NotFound(f"no stored file {key}")
        blob, size, chunk = row["blob"], int(row["size"]), int(row["chunk"])
        count = max(1, -(-size // chunk))
        seq, skip = divmod(offset, chunk)
        while seq < count:
            rows = await self._query(
                f"read {key}", "fetch",
                """SELECT seq, data FROM storage_chunks WHERE blob = $1 AND seq >= $2
                   ORDER BY seq LIMIT $3""",
                blob, seq, CHUNKS_PER_QUERY,
            )  # fmt: skip
            if not rows or rows[0]["seq"] != seq:
                raise StorageError(f"cannot read {key}: it was replaced while being read", None)
            for chunk_row in rows:
                data = bytes(chunk_row["data"])[skip:]
                skip = 0
                seq += 1
                if data:
                    yield data

    async def info(self, key: str) -> BlobInfo | None:
        check_key(key)
        row = await self._query(
            f"look up {key}", "fetchrow", "SELECT blob, size FROM storage_files WHERE key=$1", key
        )
        return None if row is None else BlobInfo(int(row["size"]), str(row["blob"]))

    async def keys(self, prefix: str) -> list[str]:
        pattern = _like(prefix)
        rows = await self._query(
            f"list {prefix}", "fetch",
            "SELECT key FROM storage_files WHERE key LIKE $1 ORDER BY key", pattern,
        )  # fmt: skip
        return [str(r["key"]) for r in rows]

    async def delete(self, key: str) -> bool:
        check_key(key)

        async def remove(conn: Any) -> bool:
            async with conn.transaction():
                blob = await conn.fetchval(
                    "DELETE FROM storage_files WHERE key = $1 RETURNING blob", key
                )
                if blob is None:
                    return False
                await conn.execute("DELETE FROM storage_chunks WHERE blob = $1", blob)
                return True

        return await self._run(f"delete {key}", remove)

    async def delete_prefix(self, prefix: str) -> list[str]:
        pattern = _like(prefix)

        async def remove(conn: Any) -> list[str]:
            async with conn.transaction():
                rows = await conn.fetch(
                    "DELETE FROM storage_files WHERE key LIKE $1 RETURNING key, blob", pattern
                )
                await conn.execute(
                    "DELETE FROM storage_chunks WHERE blob = ANY($1::uuid[])",
                    [r["blob"] for r in rows],
                )
                return sorted(str(r["key"]) for r in rows)

        return await self._run(f"delete {prefix}", remove)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
