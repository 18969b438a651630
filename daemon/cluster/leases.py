"""Cluster-wide leases: what must run on one node at a time (a watched folder, a non-shared
MQTT subscription, the executions of a flow with a concurrency limit).

A lease is a PostgreSQL session advisory lock held on a dedicated connection; when its
node or that connection dies the server releases it and another node's retry takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from daemon.cluster.channels import Channels, connection_errors

log = logging.getLogger(__name__)

LEASE_RETRY = 2.0  # seconds between attempts at a lease another node holds


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.blake2b(".".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leases:
    def __init__(self, dsn: str, node_id: str, channels: Channels) -> None:
        self._dsn = dsn
        self._node_id = node_id
        self._channels = channels
        self._conn: Any = None
        self._mutex = asyncio.Lock()
        self._held: dict[int, asyncio.Event] = {}  # lease key -> set when the lease is lost
        self.stopping = False

    @contextlib.asynccontextmanager
    async def lease(self, *name: str) -> AsyncIterator[asyncio.Event]:
        """Hold the cluster-wide lease `name` for as long as the block runs.

        Waits until this node gets it. The event yielded is set if the lease is lost (the
        lock connection dropped): the holder must stop at once.
        """
        key = lock_key(*name)
        wake = self._channels.reconnected
        while True:
            if await self._try_lock(key):
                break
            wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LEASE_RETRY):
                    await wake.wait()
        lost = asyncio.Event()
        self._held[key] = lost
        log.info("node %s holds %s", self._node_id, ".".join(name))
        try:
            yield lost
        finally:
            self._held.pop(key, None)
            if not lost.is_set():
                await self._unlock(key)

    def close(self) -> None:
        """The server drops this node's leases with the connection."""
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = None
        for lost in self._held.values():
            lost.set()
        self._held.clear()

    async def _connection(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        conn = self._conn
        if conn is None or conn.is_closed():
            conn = await asyncpg.connect(
                self._dsn,
                timeout=10,
                server_settings={
                    # a machine that vanishes without closing its socket loses its leases
                    # after about idle + interval * count seconds
                    "tcp_keepalives_idle": "5",
                    "tcp_keepalives_interval": "2",
                    "tcp_keepalives_count": "3",
                },
            )
            conn.add_termination_listener(self._lost)
            self._conn = conn
        return conn

    def _lost(self, conn: Any) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        if self._held and not self.stopping:
            log.warning(
                "node %s: lock connection lost; giving up %d trigger leases",
                self._node_id,
                len(self._held),
            )
        for lost in self._held.values():
            lost.set()
        self._held.clear()

    async def _try_lock(self, key: int) -> bool:
        async with self._mutex:
            try:
                conn = await self._connection()
                got: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
                return got
            except connection_errors() as exc:
                log.debug("lease attempt failed: %s", exc)
                if self._conn is not None:
                    self._conn.terminate()
                return False

    async def _unlock(self, key: int) -> None:
        async with self._mutex:
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
            except connection_errors():
                conn.terminate()
