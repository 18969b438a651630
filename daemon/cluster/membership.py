"""A node's membership: joining, heartbeating, judging silent nodes dead, leaving.

A node whose heartbeat is older than `node_timeout` is removed by any live node, and the
executions it owned lose their owner: the others claim them and resume them where they
stopped. A node that finds its own row gone was declared dead: it exits at once, without
another write, so that two nodes never run one execution.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta

from daemon.cluster.channels import Channels, connection_errors, log_retry
from daemon.store.postgres_cluster import ClusterTables

log = logging.getLogger(__name__)

FENCED_EXIT = 70  # exit status of a node that finds it was declared dead (EX_SOFTWARE)
LEAVE_TIMEOUT = 2.5  # seconds leaving may take before the others' takeover is relied on


class Membership:
    def __init__(
        self,
        tables: ClusterTables,
        channels: Channels,
        *,
        heartbeat_interval: timedelta,
        node_timeout: timedelta,
        on_fenced: Callable[[], None] | None = None,
    ) -> None:
        self._tables = tables
        self._channels = channels
        self.node_id = tables.node_id
        self.interval = heartbeat_interval.total_seconds()
        self.timeout = node_timeout
        self.on_fenced = on_fenced or _exit_fenced
        # Since when the database has answered without a break (None while it does not).
        self._connected_since: float | None = None
        self._on_reachable: list[Callable[[], None]] = []

    def on_reachable(self, listener: Callable[[], None]) -> None:
        """Call `listener` each time the database answers again after it did not."""
        self._on_reachable.append(listener)

    async def join(self) -> None:
        """Register, and put up for claiming what this node (same id) left unfinished."""
        released = await self._tables.join()
        if released:
            log.info(
                "node %s: %d executions it left unfinished are up for claiming",
                self.node_id,
                released,
            )
        self._connected_since = time.monotonic()

    async def leave(self) -> None:
        """Once what ran here is stored: executions still queued here go back up for
        claiming, and the node's row goes."""
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                released = await self._tables.leave()
        except Exception as exc:
            log.warning(
                "node %s could not leave the cluster cleanly (%s); the others will take its "
                "work over after %s",
                self.node_id,
                exc,
                self.timeout,
            )
            return
        if released:
            log.info(
                "node %s left; %d executions it had queued are up for claiming",
                self.node_id,
                released,
            )

    async def heartbeat_loop(self) -> None:
        errors = connection_errors()
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with asyncio.timeout(max(self.interval, 1.0) * 5):
                    alive = await self._tables.heartbeat()
            except Exception as exc:  # whatever it is, the next beat tries again
                if not isinstance(exc, errors):
                    log.error("node %s: heartbeat failed; retrying", self.node_id, exc_info=exc)
                elif self._connected_since is not None:
                    log.warning(
                        "node %s: cannot reach the database (%s); retrying", self.node_id, exc
                    )
                self._connected_since = None
                continue
            if self._connected_since is None:
                log.info("node %s: database reachable again", self.node_id)
                self._connected_since = time.monotonic()
                for listener in self._on_reachable:
                    listener()
            if not alive:
                log.critical(
                    "node %s was declared dead by the cluster (no heartbeat for %s); its "
                    "executions were taken over: exiting so they never run twice",
                    self.node_id,
                    self.timeout,
                )
                self.on_fenced()
                return
            # After an outage every node needs a moment to heartbeat again before anyone
            # may judge the others dead.
            if time.monotonic() - self._connected_since > self.timeout.total_seconds():
                await self._reap()

    async def _reap(self) -> None:
        try:
            names, taken = await self._tables.reap(self.timeout)
        except Exception as exc:  # the next beat checks again
            log_retry("checking for dead nodes", self.node_id, exc)
            return
        if not names:
            return
        log.warning(
            "node(s) %s stopped heartbeating for %s: %d unfinished executions are taken over",
            ", ".join(names),
            self.timeout,
            taken,
        )
        self._channels.work.set()


def _exit_fenced() -> None:
    logging.shutdown()
    os._exit(FENCED_EXIT)
