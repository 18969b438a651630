"""The flows a process knows: the loaded revision of each, and every revision in the store.

The flows directory, the cluster's flow sync and the API install and remove flows here;
whoever runs something per flow (the triggers' supervisor) listens. Executions look up
the exact revision they started with (`at`), loaded or read back from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence

from daemon.flows.checks import cycle_problem
from daemon.flows.definition import Flow, PluginDefault
from daemon.flows.loader import load_flow
from daemon.flows.registry import Plugins
from daemon.sdk.errors import FlowError, NotFound
from daemon.store.base import Store

Uid = tuple[str, str]
# (uid, the flow now loaded under it, or None once removed)
Listener = Callable[[Uid, Flow | None], Awaitable[None]]
# Finds a flow the store does not know yet (`podium run` looks next to the flow file).
Lookup = Callable[[str, str], Flow | None]


class FlowCatalog:
    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        *,
        lookup: Lookup | None = None,
        plugin_defaults: Sequence[PluginDefault] = (),
    ) -> None:
        self._store = store
        self._plugins = plugins
        # The `plugin-defaults` setting: every flow read in this process gets them after
        # its own pluginDefaults (whoever loads a flow for the catalog passes them on).
        self.plugin_defaults = tuple(plugin_defaults)
        self._lookup = lookup
        self._loaded: dict[Uid, Flow] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Have `listener` awaited after each install or removal."""
        self._listeners.append(listener)

    # -- the loaded flows -------------------------------------------------------------------

    def get(self, namespace: str, flow_id: str) -> Flow | None:
        return self._loaded.get((namespace, flow_id))

    def __getitem__(self, uid: Uid) -> Flow:
        return self._loaded[uid]

    def __iter__(self) -> Iterator[Flow]:
        return iter(list(self._loaded.values()))

    def __len__(self) -> int:
        return len(self._loaded)

    def __contains__(self, uid: object) -> bool:
        return uid in self._loaded

    def uids(self) -> list[Uid]:
        return list(self._loaded)

    def add(self, flow: Flow) -> None:
        """Load a flow without storing a revision or telling the listeners (`podium run`,
        tests): it is run, not served."""
        self._loaded[flow.uid] = flow

    def check(self, flow: Flow) -> None:
        """Refuse (FlowError) a flow that would start itself again through the loaded flows
        (a Subflow calling a flow that calls it back): its executions would never end."""
        problem = cycle_problem(flow, self._loaded.values())
        if problem is not None:
            raise FlowError([problem])

    async def install(self, flow: Flow) -> Flow:
        """Load `flow` in place of its previous revision; one with no revision yet is stored
        as the next. Listeners (triggers) restart it. FlowError when `check` refuses it."""
        self.check(flow)
        if flow.revision is None:
            flow.revision = await self._store.save_flow(flow.namespace, flow.id, flow.source)
        self._loaded[flow.uid] = flow
        await self._tell(flow.uid, flow)
        return flow

    async def remove(self, uid: Uid, *, delete: bool) -> None:
        """Unload a flow; `delete` also deletes it from the store (old revisions stay
        readable for the executions that ran them)."""
        known = self._loaded.pop(uid, None)
        if known is not None:
            await self._tell(uid, None)
        if delete:
            await self._store.delete_flow(*uid)

    async def _tell(self, uid: Uid, flow: Flow | None) -> None:
        for listener in self._listeners:
            await listener(uid, flow)

    # -- any revision -----------------------------------------------------------------------

    async def find(self, namespace: str, flow_id: str) -> Flow:
        """The loaded flow, else the latest stored revision; NotFound when there is none."""
        flow = self._loaded.get((namespace, flow_id))
        if flow is None and self._lookup is not None:
            flow = await asyncio.to_thread(self._lookup, namespace, flow_id)
            if flow is not None:
                # Found once for every later call: a ForEachItem starting a subflow per
                # batch neither reads the files again nor stores a revision per batch.
                self._loaded[flow.uid] = flow
        if flow is None:
            stored = await self._store.get_flow(namespace, flow_id)
            if stored is not None:
                flow = await self._load(namespace, flow_id, *stored)
        if flow is None:
            raise NotFound(f"flow {namespace}.{flow_id} not found")
        return flow

    async def at(self, namespace: str, flow_id: str, revision: int) -> Flow:
        """The flow exactly as it was at `revision`: the loaded one when it is that
        revision, else read back from the store; NotFound when it is not there."""
        loaded = self._loaded.get((namespace, flow_id))
        if loaded is not None and loaded.revision == revision:
            return loaded
        stored = await self._store.get_flow(namespace, flow_id, revision)
        if stored is None:
            raise NotFound(f"flow {namespace}.{flow_id} revision {revision} is not in the store")
        return await self._load(namespace, flow_id, *stored)

    async def _load(self, namespace: str, flow_id: str, revision: int, source: str) -> Flow:
        where = f"<{namespace}.{flow_id} revision {revision}>"
        flow = await asyncio.to_thread(
            load_flow, source, where, self._plugins, self.plugin_defaults
        )
        flow.revision = revision
        return flow
