"""PostgresStore's tables beside executions: Kestra's KV pairs, the daemon's small durable
state and claims, and the purges (apart from daemon/store/postgres.py: each stays one
sitting)."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from daemon.sdk.state import iso
from daemon.store.base import sortable_time, to_json
from daemon.store.purge import KvPurge, LogPurge, Purges
from daemon.store.tables import KeyValueTable, StateTable

if TYPE_CHECKING:
    from daemon.store.postgres import PostgresStore

_UPSERT_KV = """INSERT INTO kv VALUES ($1, $2, $3::json, $4, $5)
    ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
        expires_at = excluded.expires_at, updated = excluded.updated"""
_UPSERT_STATE = """INSERT INTO state VALUES ($1, $2::json, $3)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated"""
COLLATE_C = 'COLLATE "C"'
"""Orders text as SQLite does, by code point, whatever the database's collation."""


def timestamptz(text: str | None) -> datetime | None:
    """A `sortable_time` string as the datetime a timestamptz column takes."""
    return None if text is None else datetime.fromisoformat(text)


def _sortable(value: datetime | None) -> str | None:
    """The form SQLite keeps `expires_at` in, so both stores list it alike."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _live(now: str) -> str:
    """The key has no expiry or expires after `now` (the store's clock, not the server's)."""
    return f"(expires_at IS NULL OR expires_at > {now}::timestamptz)"


class PostgresKeyValue(KeyValueTable):
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def set(
        self, namespace: str, key: str, value: Any, *, expires_at: str | None = None
    ) -> None:
        row = (
            namespace,
            key,
            to_json(value, f"KV value {namespace}/{key}"),
            timestamptz(sortable_time(expires_at, "expires_at")),
            self._store._clock.now(),
        )
        await self._store._upsert(f"KV {namespace}/{key}", _UPSERT_KV, row, True)

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        sql = f"SELECT value FROM kv WHERE namespace = $1 AND key = $2 AND {_live('$3')}"
        row = await self._store._fetch_row(sql, namespace, key, self._store._clock.now())
        return (False, None) if row is None else (True, orjson.loads(row["value"]))

    async def delete(self, namespace: str, key: str) -> bool:
        now = self._store._clock.now()

        async def delete(conn: Any) -> bool:
            live = await conn.fetchval(
                "DELETE FROM kv WHERE namespace = $1 AND key = $2"
                f" RETURNING {_live('$3')}",
                namespace, key, now,
            )  # fmt: skip
            return bool(live)

        return bool(await self._store._write(f"KV {namespace}/{key}", delete))

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        sql = (
            "SELECT key, value, expires_at, updated FROM kv"
            f" WHERE namespace = $1 AND {_live('$2')} ORDER BY key {COLLATE_C}"
        )
        return [
            {
                "key": row["key"],
                "value": orjson.loads(row["value"]),
                "expiresAt": _sortable(row["expires_at"]),
                "updated": iso(row["updated"]),
            }
            for row in await self._store._fetch_all(sql, namespace, self._store._clock.now())
        ]

    async def entries(self) -> builtins.list[dict[str, Any]]:
        sql = (
            "SELECT namespace, key, value, expires_at, updated FROM kv"
            f" WHERE {_live('$1')} ORDER BY namespace {COLLATE_C}, key {COLLATE_C}"
        )
        return [
            {
                "namespace": row["namespace"],
                "key": row["key"],
                "value": orjson.loads(row["value"]),
                "expiresAt": _sortable(row["expires_at"]),
                "updated": iso(row["updated"]),
            }
            for row in await self._store._fetch_all(sql, self._store._clock.now())
        ]

    async def purge(self, purge: KvPurge) -> int:
        return int(await self._store._write("purge of KV pairs", purge.postgres))


class PostgresState(StateTable):
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def get(self, key: str) -> dict[str, Any] | None:
        row = await self._store._fetch_row("SELECT value FROM state WHERE key = $1", key)
        return None if row is None else dict(orjson.loads(row["value"]))

    async def set(self, key: str, value: dict[str, Any]) -> None:
        row = (key, to_json(value, f"state {key}"), self._store._clock.now())
        await self._store._upsert(f"state {key}", _UPSERT_STATE, row, True)

    async def claim(self, key: str) -> bool:
        now = self._store._clock.now()

        async def claim(conn: Any) -> bool:
            # no row back when the key was already there: someone claimed it first
            sql = "INSERT INTO claims VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true"
            return await conn.fetchval(sql, key, now) is not None

        return bool(await self._store._write(f"claim {key}", claim))

    async def claimed(self, key: str) -> bool:
        return await self._store._fetch_row("SELECT 1 FROM claims WHERE key = $1", key) is not None


class PostgresPurges(Purges):
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def logs(self, purge: LogPurge) -> int:
        return int(await self._store._write("purge of logs", purge.postgres))
