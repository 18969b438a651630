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
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Literal

from daemon.cluster.channels import Channels
from daemon.cluster.claims import Claims
from daemon.cluster.cluster_dispatcher import ClusterDispatcher
from daemon.cluster.flowsync import FlowSync
from daemon.cluster.leases import Leases
from daemon.cluster.membership import Membership
from daemon.cluster.task_queue import ClusterWorkers
from daemon.cluster.task_worker import TaskWorker
from daemon.engine.core import Engine
from daemon.engine.dispatcher import Dispatcher
from daemon.engine.local import LocalExecutions
from daemon.engine.pauses import Pauses
from daemon.engine.resources import Resources
from daemon.engine.workers import Workers
from daemon.flows.catalog import FlowCatalog
from daemon.store.postgres_cluster import ClusterTables
from daemon.store.postgres_jobs import JobTables

log = logging.getLogger(__name__)

Role = Literal["all", "executor", "worker"]
DEFAULT_WORKER_SLOTS = 8  # task runs a node's workers run at once (the `worker-slots` setting)


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
        role: Role = "all",
        worker_slots: int = DEFAULT_WORKER_SLOTS,
        worker_groups: Sequence[str] = (),
        worker_group_wait: timedelta | None = None,
    ) -> None:
        self.store = store  # a PostgresStore: its `pool` and `dsn` are used here
        self.node_id = node_id
        self.capacity = capacity
        # Kestra's components: an executor runs executions' state machines (and cheap
        # tasks), a worker runs task runs of any node's executions; `all` is both.
        self.role = role
        self.worker_slots = worker_slots if role != "executor" else 0
        self.worker_groups = list(worker_groups)
        self._heartbeat = heartbeat_interval
        self._node_timeout = node_timeout
        self._group_wait = worker_group_wait
        self.tables = ClusterTables(store.pool, node_id)
        self.jobs = JobTables(store.pool, node_id)
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
        self.worker: TaskWorker | None = None
        self._workers: ClusterWorkers | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def dispatcher(
        self, resources: Resources, local: LocalExecutions, pauses: Pauses, catalog: FlowCatalog
    ) -> Dispatcher:
        """The engine's dispatcher on this node (an `Engine(dispatcher=...)` factory)."""
        return ClusterDispatcher(resources, local, pauses, catalog, self.tables, self.channels)

    def workers(self, resources: Resources) -> Workers:
        """Where this node's executions run their attempts (an `Engine(workers=...)`
        factory): on any node's workers, through the task queue."""
        self._workers = ClusterWorkers(
            resources,
            self.jobs,
            self.channels,
            node_timeout=self._node_timeout,
            group_wait=self._group_wait,
        )
        return self._workers

    async def sync_flows(self, engine: Engine) -> None:
        """Load every flow of the cluster; from now on flow changes are followed."""
        flows = self.flows = FlowSync(self.store, engine.catalog, engine.resources.plugins)
        self.channels.handle(flows=flows.sync, reconnected=flows.sync_all)
        await flows.sync_all()

    async def start(self, engine: Engine) -> None:
        """Join: register, take back what this node (same id) left unfinished, listen,
        heartbeat, claim executions (executor) and take task runs (worker)."""
        if self.worker_slots > 0:
            worker = self.worker = TaskWorker(
                self.jobs,
                self.channels,
                engine,
                slots=self.worker_slots,
                groups=self.worker_groups,
                heartbeat_interval=self._heartbeat,
                node_timeout=self._node_timeout,
            )
            metrics = engine.metrics
            metrics.gauge(
                "podium_worker_slots",
                "Task runs this node's workers take from the cluster at once",
                lambda: worker.slots,
            )
            metrics.gauge(
                "podium_worker_task_runs_running",
                "Task runs (attempts) of any node's executions running on this node's workers",
                lambda: worker.running,
            )
            metrics.gauge(
                "podium_worker_task_runs_taken",
                "Task run attempts this node's workers took since it started",
                lambda: worker.taken,
            )
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
        await self.jobs.announce(self.role, self.worker_slots, self.worker_groups)
        await self.channels.connect()
        self._spawn(self.membership.heartbeat_loop, "cluster heartbeat")
        if self.role != "worker":
            self._spawn(self._claims.loop, "cluster claims")
        if self.worker is not None:
            self._spawn(self.worker.loop, "cluster task runs")
            self._spawn(self.worker.guard, "cluster worker guard")
        if self._workers is not None:
            self._spawn(self._workers.watch, "cluster task queue")
        self._spawn(self.channels.watch, "cluster listener")
        self.channels.work.set()
        groups = (
            f" of worker group(s) {', '.join(self.worker_groups)}" if self.worker_groups else ""
        )
        log.info(
            "node %s joined the cluster as %s (%d worker slots%s)",
            self.node_id,
            self.role,
            self.worker_slots,
            groups,
        )

    def _spawn(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        self._tasks.append(asyncio.create_task(_supervised(loop, name), name=name))

    async def stop_claiming(self) -> None:
        """First step of shutdown: take no more executions. The heartbeat goes on while the
        engine drains, or the others would take over executions still running here."""
        self.leases.stopping = True
        taking = ("cluster claims", "cluster task runs")
        jobs = [job for job in self._tasks if job.get_name() in taking]
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)
        if self._claims is not None:
            await self._claims.stop()

    async def drain_workers(self) -> None:
        """Let the task runs this node's workers run finish (bounded by the caller)."""
        if self.worker is not None:
            await self.worker.drain()

    async def stop(self) -> None:
        """Once what ran here is stored: hand back the task runs still running here, stop
        heartbeating and listening."""
        await self.stop_claiming()
        if self.worker is not None:
            await self.worker.stop()
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
