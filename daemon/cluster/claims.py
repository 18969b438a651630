"""Claiming executions: each node with room takes unowned unfinished executions, oldest
first, and runs them (resuming those that ran before where they stopped).

Flows with a `concurrency` limit run on the one node holding their lease, so that the
limit counts every execution of the flow wherever it was submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from daemon.cluster.channels import POLL_INTERVAL, RECONNECT_MAX, Channels, log_retry
from daemon.cluster.leases import Leases
from daemon.engine.lifecycle import WAITING, Lifecycle
from daemon.engine.local import LocalExecutions
from daemon.flows.catalog import FlowCatalog
from daemon.sdk.execution import Execution
from daemon.sdk.retry import Backoff
from daemon.sdk.state import State
from daemon.store.postgres_cluster import ClusterTables

log = logging.getLogger(__name__)

CLAIM_BATCH = 32  # executions claimed per query
RECHECK_INTERVAL = 30.0  # seconds between checks of what this node owns, when all is calm
ORPHAN_GRACE = 2.0  # seconds an owned execution must stay unrun here before it is run


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
        # Owned executions not running here: since when (monotonic), by id.
        self._orphans: dict[str, float] = {}
        self._suspect = False
        self._next_recheck = time.monotonic() + RECHECK_INTERVAL

    def _room(self) -> int:
        if not self.capacity:
            return CLAIM_BATCH
        return max(self.capacity - self._local.running - self._local.starting, 0)

    async def loop(self) -> None:
        wake = self._channels.work
        backoff = Backoff(0.1, RECONNECT_MAX)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_INTERVAL):
                    await wake.wait()
            wake.clear()
            try:
                await self._claim_all()
                if self._recheck_due():
                    await self._recheck()
                backoff.reset()
            except Exception as exc:
                # A claim whose answer was lost may have committed: what this node owns is
                # checked again once the database answers.
                log_retry("claiming", self._tables.node_id, exc)
                self.suspect()
                await backoff.sleep()
                wake.set()

    def suspect(self) -> None:
        """Something may have gone unseen (a reconnect, a failed claim): check soon what
        this node owns against what it runs."""
        self._suspect = True
        self._channels.work.set()

    async def suspect_after_reconnect(self) -> None:
        self.suspect()

    async def _claim_all(self) -> None:
        others = self._pin_limited_flows()
        while (room := self._room()) > 0:
            rows = await self._tables.claim(min(room, CLAIM_BATCH), others)
            # A new execution comes with its doc; one that ran before (taken over,
            # restarted, replayed) is read again with its task runs. One after the other:
            # those holding a concurrency slot first (taken over from a dead node), then
            # the waiting ones oldest first, so a flow's queue keeps its order.
            for row in sorted(rows, key=_waiting):  # stable: oldest first within each
                await self._adopt(row)
            if len(rows) < min(room, CLAIM_BATCH):
                break

    def _recheck_due(self) -> bool:
        now = time.monotonic()
        if self._suspect or self._orphans or now >= self._next_recheck:
            self._suspect = False
            self._next_recheck = now + RECHECK_INTERVAL
            return True
        return False

    async def _recheck(self) -> None:
        """Run what the database says this node owns but nothing runs here: a claim that
        committed while its answer was lost, an adoption cut short, a final state that
        could not be stored.

        An execution counts only once it was seen so for `ORPHAN_GRACE`: a kill takes an
        unowned execution for a moment before storing it KILLED, and must not be run.
        """
        now = time.monotonic()
        unrun = [i for i in await self._tables.owned() if not self._local.runs_here(i)]
        ripe = [i for i in unrun if now - self._orphans.get(i, now) >= ORPHAN_GRACE]
        self._orphans = {i: self._orphans.get(i, now) for i in unrun if i not in ripe}
        if self._orphans:
            asyncio.get_running_loop().call_later(ORPHAN_GRACE, self._channels.work.set)
        if not ripe:
            return
        log.warning(
            "node %s: %d executions it owns were not running here (a claim whose answer was "
            "lost, or an adoption cut short): running them now",
            self._tables.node_id,
            len(ripe),
        )
        await asyncio.gather(*(self._adopt_stored(i) for i in ripe))

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
        backoff = Backoff(0.1, RECONNECT_MAX)
        while True:
            try:
                async with self._leases.lease("concurrency", *uid) as lost:
                    self._pinned.add(uid)
                    self._channels.work.set()
                    backoff.reset()
                    try:
                        await lost.wait()
                    finally:
                        self._pinned.discard(uid)
            except Exception as exc:  # never a silent end: this flow would stop running
                log_retry(f"holding the lease of {uid[0]}.{uid[1]}", self._tables.node_id, exc)
                await backoff.sleep()

    async def _adopt(self, row: Any) -> None:
        if row["has_runs"]:
            await self._adopt_stored(row["id"])
            return
        doc = {**orjson.loads(row["doc"]), "taskRunList": []}
        await self._lifecycle.adopt(Execution.from_json(doc))

    async def _adopt_stored(self, execution_id: str) -> None:
        """Run an execution as stored, with its task runs (those finished are kept)."""
        doc = await self._store.get_execution(execution_id)
        if doc is not None:
            await self._lifecycle.adopt(Execution.from_json(doc))


def _waiting(row: Any) -> bool:
    """Not started yet (it passes admission when adopted), from the claimed row's doc."""
    return State(orjson.loads(row["doc"])["state"]["current"]) in WAITING
