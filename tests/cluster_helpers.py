"""Cluster nodes for tests: a fresh database per test, and in-process nodes on it.

An in-process `Node` is what `podium serve` builds on a PostgreSQL store (runtime, cluster,
triggers), minus HTTP and signals, with heartbeats fast enough for tests to see takeovers.
Process-level tests use `tests.daemon_process.ServeProcess` with `--store`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from daemon.cluster import Cluster
from daemon.config import Settings
from daemon.registry import Plugins
from daemon.runtime import Runtime
from daemon.store import open_store
from daemon.store.base import Store
from daemon.triggering import Triggers
from daemon.webhooks import WebhookRegistry

HEARTBEAT = timedelta(seconds=0.2)
NODE_TIMEOUT = timedelta(seconds=1.5)


@asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[str]:
    """A new empty database on the session's PostgreSQL; dropped afterwards."""
    name = f"podium_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(server_dsn)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class Node:
    """One cluster node in this process."""

    def __init__(
        self, name: str, dsn: str, data_dir: Path, plugins: Plugins, capacity: int = 0
    ) -> None:
        self.name = name
        self.dsn = dsn
        self.data_dir = data_dir
        self.plugins = plugins
        self.capacity = capacity
        self.fenced = asyncio.Event()

    async def start(self) -> Node:
        self.store: Store = open_store(self.dsn)
        await self.store.open()
        self.runtime = Runtime(
            self.data_dir, self.store, plugins=self.plugins, max_executions=self.capacity
        )
        self.cluster = Cluster(
            self.runtime,
            self.store,
            self.name,
            heartbeat_interval=HEARTBEAT,
            node_timeout=NODE_TIMEOUT,
            capacity=self.capacity,
        )
        self.cluster.on_fenced = self.fenced.set
        self.runtime.node_id = self.name
        self.runtime.cluster = self.cluster
        settings = Settings(data_dir=self.data_dir, flows_dir=self.data_dir / "flows")
        self.triggers = Triggers(self.runtime, settings, WebhookRegistry())
        self.cluster.triggers = self.triggers
        await self.cluster.sync_flows()
        await self.cluster.start()
        return self

    async def stop(self) -> None:
        """A clean shutdown, as on SIGTERM."""
        await self.triggers.stop_all()
        await self.cluster.stop_claiming()
        await self.runtime.close()
        await self.cluster.stop()
        await self.cluster.leave()
        await self.store.close()


async def execution_rows(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, state, owner FROM executions ORDER BY seq")
    finally:
        await conn.close()
    return [dict(r) for r in rows]
