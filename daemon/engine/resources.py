"""What every part of the engine shares in one process: the store, file storage, clock,
event bus, secrets, expression renderer and plug-ins, and the resources plug-ins open
(pools, clients) that close with the daemon.

It does no job of its own: submission, admission, execution, lifecycle and pauses each
live in their own module and take this in their constructor.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.config.storage import StorageSettings
from daemon.engine.events import EventBus
from daemon.engine.functions import ServiceFunctions
from daemon.engine.scratch import ScratchDirs
from daemon.engine.secrets import SecretStore
from daemon.engine.workers import LocalWorkers, Workers
from daemon.flows.definition import PluginDefault
from daemon.flows.registry import Plugins
from daemon.sdk.clock import Clock
from daemon.store.base import Store
from daemon.store.internal_storage import Storage, open_blobs

if TYPE_CHECKING:
    from daemon.expr.renderer import Renderer

log = logging.getLogger(__name__)


@dataclass
class EngineOptions:
    """Settings the engine runs with (`podium serve` fills them from its Settings)."""

    keep_working_dirs: bool = False
    max_executions: int = 0  # executions running at once in this process (0: no cap)
    max_tasks: int = 0  # task attempts running at once across executions (0: no cap)
    public_url: str | None = None  # address of the UI, for links in notifications
    node_id: str | None = None  # this node's name in a cluster
    flows_dir: Path | None = None  # the watched directory `podium serve` loads flows from
    # While a cluster node stops: interrupted executions are left for another node.
    handing_over: bool = False
    # `{{ globals.x }}`: the server-wide variables of the `globals:` setting (Kestra's
    # `kestra.variables.globals`).
    globals: dict[str, Any] = field(default_factory=dict)
    # Where `kestra://` files live (the `storage:` setting); default: <data-dir>/storage.
    storage: StorageSettings = field(default_factory=StorageSettings)
    # The `plugin-defaults` setting: pluginDefaults every flow gets after its own (Kestra's
    # `kestra.plugins.defaults`), some named (`ref`) for `pluginDefaultsRef`.
    plugin_defaults: Sequence[PluginDefault] = ()


class Resources:
    def __init__(
        self,
        data_dir: Path,
        store: Store,
        plugins: Plugins,
        *,
        clock: Clock | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.clock = clock or Clock()
        self.plugins = plugins
        self.options = options or EngineOptions()
        blobs = open_blobs(self.options.storage, data_dir, getattr(store, "dsn", None))
        cache_size = self.options.storage.cache_size
        self.storage = Storage(blobs, data_dir / "cache" / "storage", cache_size)
        self.events = EventBus()
        self.secrets = SecretStore()
        self.envs = {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self.functions = ServiceFunctions(self.storage, self.secrets, store, loop)
        # Where task attempts run: here by default; a cluster node puts its own in.
        self.workers: Workers = LocalWorkers(self)
        self.scratch = ScratchDirs(data_dir / "tmp", lambda: self.options.keep_working_dirs)
        self._renderer: Renderer | None = None
        self._closers: dict[str, Callable[[], Awaitable[None]]] = {}

    @property
    def renderer(self) -> Renderer:
        """Created on first use: a flow without expressions never pays for Jinja's import."""
        if self._renderer is None:
            from daemon.expr.renderer import Renderer

            self._renderer = Renderer(clock=self.clock)
        return self._renderer

    def render(self, value: Any, variables: dict[str, Any], namespace: str | None) -> Any:
        """Render a value with `variables` and the service functions of `namespace`."""
        return self.renderer.render_value(value, variables, self.functions.table(namespace))

    async def render_async(
        self, value: Any, variables: dict[str, Any], namespace: str | None
    ) -> Any:
        """`render`, never holding the event loop for more than a few milliseconds."""
        functions = self.functions.table(namespace)
        return await self.renderer.render_value_async(value, variables, functions)

    def masked(self, value: Any) -> Any:
        return self.secrets.masked(value)

    def on_close(self, key: str, closer: Callable[[], Awaitable[None]]) -> None:
        """Have `closer` run once when the engine closes; the first one under a key is kept."""
        self._closers.setdefault(key, closer)

    async def close(self) -> None:
        await self.scratch.settle()
        closers, self._closers = self._closers, {}
        for key, closer in closers.items():
            try:
                await closer()
            except Exception:
                log.exception("closing %s failed", key)
        try:
            await self.storage.close()  # last: what plug-ins closed above may have written
        except Exception:
            log.exception("closing the storage failed")
