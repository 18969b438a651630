"""Claiming executions: each node with room takes unowned unfinished executions, oldest
first, and runs them (resuming those that ran before where they stopped).

Flows with a `concurrency` limit run on the one node holding their lease, so that the
limit counts every execution of the flow wherever it was submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from daemon.cluster.channels import POLL_INTERVAL, RECONNECT_MAX, Channels, connection_errors
from daemon.cluster.leases import Leases
from daemon.engine.lifecycle import Lifecycle
from daemon.engine.local import LocalExecutions
from daemon.flows.catalog import FlowCatalog
from daemon.sdk.execution import Execution
from daemon.store.postgres_cluster import ClusterTables

log = logging.getLogger(__name__)

CLAIM_BATCH = 32  # executions claimed per query


class Claims:
    def __init__(
        self,
        tables: ClusterTables,
        channels: Channels,
        leases: Leases,
        catalog: FlowCatalog,
        local: LocalExecutions,
        lifecycle: Lifecycle,
        store: Any,
        *,
        capacity: int = 0,
    ) -> None:
        self._tables = tables
        self._channels = channels
        self._leases = leases
        self._catalog = catalog
        self._local = local
        self._lifecycle = lifecycle
        self._store = store
        self.capacity = capacity
        # Lease jobs by flow with a concurrency limit, and the flows whose lease is held.
        self._limited: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._pinned: set[tuple[str, str]] = set()

    def _room(self) -> int:
        if not self.capacity:
            return CLAIM_BATCH
        return max(self.capacity - self._local.running - self._local.starting, 0)

    async def loop(self) -> None:
        wake = self._channels.work
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_INTERVAL):
                    await wake.wait()
            wake.clear()
            others = self._pin_limited_flows()
            try:
                while (room := self._room()) > 0:
                    rows = await self._tables.claim(min(room, CLAIM_BATCH), others)
                    # A new execution comes with its doc; one that ran before (taken
                    # over, restarted, replayed) is read again with its task runs.
                    await asyncio.gather(*(self._adopt(row) for row in rows))
                    if len(rows) < min(room, CLAIM_BATCH):
                        break
            except connection_errors() as exc:
                log.warning("node %s: claiming failed (%s); retrying", self._tables.node_id, exc)
                await asyncio.sleep(RECONNECT_MAX)
                wake.set()

    async def stop(self) -> None:
        jobs = list(self._limited.values())
        self._limited.clear()
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)

    def _pin_limited_flows(self) -> list[str]:
        """Keep one lease job per loaded flow with a concurrency limit; return the flows this
        node must not claim executions of (their lease is elsewhere), as claim keys."""
        limited = {flow.uid for flow in self._catalog if flow.concurrency is not None}
        for uid in list(self._limited):
            if uid not in limited:
                self._limited.pop(uid).cancel()
        for uid in limited - set(self._limited):
            job = asyncio.create_task(self._hold_flow(uid), name=f"lease {uid[0]}.{uid[1]}")
            self._limited[uid] = job
        return [f"{ns}\x1f{flow_id}" for ns, flow_id in limited - self._pinned]

    async def _hold_flow(self, uid: tuple[str, str]) -> None:
        while True:
            async with self._leases.lease("concurrency", *uid) as lost:
                self._pinned.add(uid)
                self._channels.work.set()
                try:
                    await lost.wait()
                finally:
                    self._pinned.discard(uid)

    async def _adopt(self, row: Any) -> None:
        if row["has_runs"]:
            doc = await self._store.get_execution(row["id"])
            if doc is None:
                return
        else:
            doc = {**orjson.loads(row["doc"]), "taskRunList": []}
        await self._lifecycle.adopt(Execution.from_json(doc))
