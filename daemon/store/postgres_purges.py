"""PostgresStore's purges and its KV table's purge, apart so postgres.py stays one sitting."""

from __future__ import annotations

from typing import Any

from daemon.store.base import Purges
from daemon.store.purge import KvPurge, LogPurge


class PostgresPurges(Purges):
    """PostgresStore's purges (apart: postgres.py stays one sitting)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def logs(self, purge: LogPurge) -> int:
        return int(await self._store._write("purge of logs", purge.postgres))


class PurgesKv:
    """The PostgreSQL KV table's `purge` (a mixin: postgres.py stays one sitting)."""

    _store: Any

    async def purge(self, purge: KvPurge) -> int:
        return int(await self._store._write("purge of KV pairs", purge.postgres))
