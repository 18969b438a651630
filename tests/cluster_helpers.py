"""Cluster nodes for tests: a fresh database per test, and in-process nodes on it.

An in-process `Node` is what `podium serve` builds on a PostgreSQL store (engine, cluster
node, triggers), minus HTTP and signals, with heartbeats fast enough for tests to see
takeovers.
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

from daemon.cluster.node import ClusterNode
from daemon.engine.core import Engine
from daemon.engine.resources import EngineOptions
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.registry import Plugins
from daemon.store import open_store
from daemon.store.base import Store

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
        self.cluster = ClusterNode(
            self.store,
            self.name,
            heartbeat_interval=HEARTBEAT,
            node_timeout=NODE_TIMEOUT,
            capacity=self.capacity,
        )
        self.cluster.membership.on_fenced = self.fenced.set
        options = EngineOptions(max_executions=self.capacity, node_id=self.name)
        self.engine = Engine(
            self.data_dir,
            self.store,
            plugins=self.plugins,
            options=options,
            dispatcher=self.cluster.dispatcher,
        )
        self.triggers = self.engine.supervisor(WebhookRegistry(), leases=self.cluster.leases)
        self.engine.catalog.listen(self.triggers.flow_changed)
        await self.cluster.sync_flows(self.engine)
        await self.cluster.start(self.engine)
        return self

    async def stop(self) -> None:
        """A clean shutdown, as on SIGTERM."""
        await self.triggers.stop_all()
        await self.cluster.stop_claiming()
        await self.engine.close()
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
