"""This node's part in a cluster of `podium serve` processes on one PostgreSQL store.

There is no coordinator: everything goes through the database (see the modules beside
this one): membership and heartbeats, claims of unowned executions, notifications,
leases of what must run on one node at a time, and the flows every node loads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from daemon.cluster.channels import Channels
from daemon.cluster.claims import Claims
from daemon.cluster.cluster_dispatcher import ClusterDispatcher
from daemon.cluster.flowsync import FlowSync
from daemon.cluster.leases import Leases
from daemon.cluster.membership import Membership
from daemon.engine.core import Engine
from daemon.engine.dispatcher import Dispatcher
from daemon.engine.local import LocalExecutions
from daemon.engine.pauses import Pauses
from daemon.engine.resources import Resources
from daemon.flows.catalog import FlowCatalog
from daemon.store.postgres_cluster import ClusterTables

log = logging.getLogger(__name__)


RESTART_PAUSE = 1.0  # seconds before a background loop that stopped is started again


async def _supervised(loop: Callable[[], Awaitable[None]], name: str) -> None:
    """Run a background loop for as long as the node lives (it returns only when it is done
    on purpose: a fenced node's heartbeat). The loops catch and retry what they expect;
    one that fails anyway (a bug) is logged and started again, never left dead while the
    node heartbeats as if all were well."""
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception("%s failed; starting it again", name)
        await asyncio.sleep(RESTART_PAUSE)


def default_node_id(port: int) -> str:
    """host-port: stable across restarts, so a restarted node takes its own work back at
    once. With port 0 (tests, benchmarks) the pid keeps two local nodes apart."""
    return f"{socket.gethostname()}-{port if port else os.getpid()}"


class ClusterNode:
    def __init__(
        self,
        store: Any,
        node_id: str,
        *,
        heartbeat_interval: timedelta,
        node_timeout: timedelta,
        capacity: int = 0,
    ) -> None:
        self.store = store  # a PostgresStore: its `pool` and `dsn` are used here
        self.node_id = node_id
        self.capacity = capacity
        self.tables = ClusterTables(store.pool, node_id)
        self.channels = Channels(store.dsn, self.tables, store)
        self.leases = Leases(store.dsn, node_id, self.channels)
        self.membership = Membership(
            self.tables,
            self.channels,
            heartbeat_interval=heartbeat_interval,
            node_timeout=node_timeout,
        )
        self.flows: FlowSync | None = None
        self._claims: Claims | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def dispatcher(
        self, resources: Resources, local: LocalExecutions, pauses: Pauses, catalog: FlowCatalog
    ) -> Dispatcher:
        """The engine's dispatcher on this node (an `Engine(dispatcher=...)` factory)."""
        return ClusterDispatcher(resources, local, pauses, catalog, self.tables, self.channels)

    async def sync_flows(self, engine: Engine) -> None:
        """Load every flow of the cluster; from now on flow changes are followed."""
        flows = self.flows = FlowSync(self.store, engine.catalog, engine.resources.plugins)
        self.channels.handle(flows=flows.sync, reconnected=flows.sync_all)
        await flows.sync_all()

    async def start(self, engine: Engine) -> None:
        """Join: register, take back what this node (same id) left unfinished, listen,
        heartbeat and claim."""
        self._claims = Claims(
            self.tables,
            self.channels,
            self.leases,
            engine.catalog,
            engine.local,
            engine.lifecycle,
            self.store,
            capacity=self.capacity,
        )
        # After any reconnect this node checks what it owns against what it runs.
        self.channels.handle(reconnected=self._claims.suspect_after_reconnect)
        self.membership.on_reachable(self._claims.suspect)
        await self.membership.join()
        await self.channels.connect()
        self._spawn(self.membership.heartbeat_loop, "cluster heartbeat")
        self._spawn(self._claims.loop, "cluster claims")
        self._spawn(self.channels.watch, "cluster listener")
        self.channels.work.set()
        log.info("node %s joined the cluster", self.node_id)

    def _spawn(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        self._tasks.append(asyncio.create_task(_supervised(loop, name), name=name))

    async def stop_claiming(self) -> None:
        """First step of shutdown: take no more executions. The heartbeat goes on while the
        engine drains, or the others would take over executions still running here."""
        self.leases.stopping = True
        jobs = [job for job in self._tasks if job.get_name() == "cluster claims"]
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)
        if self._claims is not None:
            await self._claims.stop()

    async def stop(self) -> None:
        """Once what ran here is stored: stop heartbeating and listening."""
        await self.stop_claiming()
        jobs = list(self._tasks)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)
        self._tasks.clear()
        await self.channels.jobs.cancel()
        self.channels.close()
        self.leases.close()

    async def leave(self) -> None:
        await self.membership.leave()
