"""Flows in a cluster live in the database: each node pushes its `--flows` directory into
the store (the flows directory does), the store notifies podium_flows on every new
revision or deletion, and every node loads the store's latest revision of every flow."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from daemon.cluster.channels import RECONNECT_MAX, connection_errors
from daemon.flows.catalog import FlowCatalog
from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow
from daemon.flows.registry import Plugins
from daemon.sdk.errors import FlowError
from daemon.sdk.retry import Backoff

log = logging.getLogger(__name__)


class FlowSync:
    def __init__(self, store: Any, catalog: FlowCatalog, plugins: Plugins) -> None:
        self._store = store
        self._catalog = catalog
        self._plugins = plugins

    async def sync_all(self) -> None:
        """Load the store's latest revision of every flow this node does not run yet."""
        stored = await self._store.list_flows()
        live = {(f["namespace"], f["id"]) for f in stored}
        for item in stored:
            await self._load(item["namespace"], item["id"], item["revision"], item["source"])
        for uid in [uid for uid in self._catalog.uids() if uid not in live]:
            await self._unload(uid)

    async def sync(self, namespace: str, flow_id: str) -> None:
        """Follow one flow's change, retried while the database is out of reach: the
        notification came once and will not come again."""
        backoff = Backoff(0.1, RECONNECT_MAX)
        while True:
            try:
                latest = await self._store.get_flow(namespace, flow_id)
                break
            except connection_errors() as exc:
                log.warning("flow %s.%s not synced yet (%s); retrying", namespace, flow_id, exc)
                await backoff.sleep()
        if latest is None:
            await self._unload((namespace, flow_id))
            return
        await self._load(namespace, flow_id, latest[0], latest[1])

    async def _load(self, namespace: str, flow_id: str, revision: int, source: str) -> None:
        current = self._catalog.get(namespace, flow_id)
        if current is not None and (current.revision == revision or current.source == source):
            return
        try:
            flow: Flow = await asyncio.to_thread(
                load_flow,
                source,
                f"<{namespace}.{flow_id} revision {revision}>",
                self._plugins,
                self._catalog.plugin_defaults,
            )
            self._catalog.check(flow)
        except FlowError as exc:
            log.error(
                "flow %s.%s revision %d from the cluster does not load here:\n%s",
                namespace,
                flow_id,
                revision,
                "\n".join(f"  {p}" for p in exc.problems),
            )
            return
        flow.revision = revision
        await self._catalog.install(flow)
        log.info("loaded flow %s.%s revision %d from the cluster", namespace, flow_id, revision)

    async def _unload(self, uid: tuple[str, str]) -> None:
        if uid not in self._catalog:
            return
        await self._catalog.remove(uid, delete=False)
        log.info("unloaded flow %s.%s: deleted in the cluster", *uid)
