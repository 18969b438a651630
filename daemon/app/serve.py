"""`podium serve`: the long-running daemon and its lifecycle.

Each component is an async context manager entered in order on one exit stack, and torn
down in reverse: store -> engine (resuming what a crash left running) -> cluster node ->
triggers -> flows -> HTTP site -> flows-directory watcher, then READY=1. Signals only set
events: SIGTERM/SIGINT stop, SIGHUP reloads. Shutdown runs the stages below in order, each
with its own time limit; their sum stays under systemd's TimeoutStopSec (a test checks it).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from daemon.app import systemd
from daemon.app.alerts import install as install_alerts
from daemon.app.listen import bound_urls, check_exposure
from daemon.cluster.node import ClusterNode, default_node_id
from daemon.config.settings import ConfigError, Settings, load_settings
from daemon.engine.core import Engine, local_dispatcher
from daemon.engine.resources import EngineOptions
from daemon.engine.supervisor import TriggerSupervisor
from daemon.engine.webhooks import WebhookRegistry
from daemon.engine.workers import LocalWorkers
from daemon.flows.defaults import global_defaults
from daemon.flows.directory import FlowDirectory
from daemon.flows.registry import Plugins, serve_plugins
from daemon.sdk.context import StartupContext
from daemon.store import open_store
from daemon.store.base import Store

log = logging.getLogger("podium")

# Shutdown stages, in order. The grace period for running executions is a setting.
TRIGGERS_STOP_TIMEOUT = 5.0  # triggers detach: no new events
HTTP_STOP_TIMEOUT = 5.0  # the API stops answering
KILL_TIMEOUT = 10.0  # executions past the grace period are cancelled and stored KILLED
STORE_CLOSE_TIMEOUT = 5.0  # the last writes are committed
# A cluster node: stop claiming (before the grace period), stop heartbeating and listening,
# leave (after the executions are stored); each stage at most this long.
CLUSTER_STAGE_TIMEOUT = 3.0


def shutdown_budget(grace: timedelta) -> float:
    """Seconds the whole shutdown may take in the worst case."""
    return (
        TRIGGERS_STOP_TIMEOUT
        + HTTP_STOP_TIMEOUT
        + grace.total_seconds()
        + KILL_TIMEOUT
        + STORE_CLOSE_TIMEOUT
        + 3 * CLUSTER_STAGE_TIMEOUT
    )


class Daemon:
    def __init__(
        self, settings: Settings, config_file: Path | None, overrides: dict[str, Any]
    ) -> None:
        self.settings = settings
        self.config_file = config_file
        self.overrides = overrides
        self.ready = False
        self.port: int | None = None
        self.urls: list[str] = []  # of the sockets really bound
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._resumed = 0  # executions a crash left running, resumed at start

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        settings = self.settings
        await check_exposure(settings)  # before anything is opened
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(self._store())
            plugins = await asyncio.to_thread(serve_plugins)
            node = self._node(store)
            if node is not None:
                await stack.enter_async_context(self._cluster(node))
            engine = await stack.enter_async_context(self._engine(store, plugins, node))
            if node is not None and node.role == "worker":
                flows = None
                await self._worker_node(stack, engine, node)
            else:
                flows = await self._full_node(stack, engine, plugins, node)
            _freeze_startup_objects()
            self.ready = True
            systemd.notify("READY=1")
            interval = systemd.watchdog_interval()
            if interval:
                pinger = asyncio.create_task(systemd.watchdog_pings(interval))
                stack.callback(pinger.cancel)
            self._announce(flows, node)
            await self._until_stopped(flows, engine)
            self.ready = False
            systemd.notify("STOPPING=1")
            log.info(
                "stopping: no new events; running executions have %s to finish",
                settings.shutdown_grace,
            )
        stats = engine.local.stats
        log.info(
            "stopped: %d executions done, %d failed, %d cancelled",
            stats["SUCCESS"] + stats["WARNING"],
            stats["FAILED"],
            stats["KILLED"] + stats["CANCELLED"],
        )
        return 0

    async def _full_node(
        self, stack: AsyncExitStack, engine: Engine, plugins: Plugins, node: ClusterNode | None
    ) -> FlowDirectory:
        """Executions, triggers, flows and the whole API (a single daemon, or a cluster node
        of role `all` or `executor`)."""
        settings = self.settings
        install_alerts(engine, settings)  # the `alerts:` setting (daemon/app/alerts.py)
        webhooks = WebhookRegistry()
        supervisor = await stack.enter_async_context(self._triggers(engine, webhooks, node))
        await _startup_hooks(plugins, settings)
        flows = FlowDirectory(settings.flows_dir, engine.catalog, plugins, settings.max_flow_size)
        self._resumed = await self._flows(flows, engine, node)
        await stack.enter_async_context(self._http(engine, webhooks, flows, supervisor))
        await stack.enter_async_context(_watching(flows))
        return flows

    async def _worker_node(self, stack: AsyncExitStack, engine: Engine, node: ClusterNode) -> None:
        """A worker-only node takes task runs and serves nothing else: no triggers, no
        flows directory, no executions of its own; HTTP answers only /health and /metrics."""
        await node.start(engine)

        # SIGTERM: take no more task runs; those running get the grace period (`_drain`).
        async def stop_taking() -> None:
            await _bounded(node.stop_claiming(), CLUSTER_STAGE_TIMEOUT, "cluster claims")

        stack.push_async_callback(stop_taking)
        await stack.enter_async_context(
            self._http(engine, WebhookRegistry(), None, None, worker_only=True)
        )

    def _announce(self, flows: FlowDirectory | None, node: ClusterNode | None) -> None:
        settings = self.settings
        if flows is None and node is not None:
            log.info(
                "podium serving task runs as a worker node on %s (%d slots%s; data in %s)",
                " and ".join(self.urls),
                node.worker_slots,
                f", worker groups {', '.join(node.worker_groups)}" if node.worker_groups else "",
                settings.data_dir,
            )
            return
        assert flows is not None
        log.info(
            "podium serving %d flows from %s on %s (data in %s%s)%s",
            flows.count,
            settings.flows_dir,
            " and ".join(self.urls),
            settings.data_dir,
            "" if settings.basic_auth else "; no basic-auth credentials",
            f"; resumed {self._resumed} executions" if self._resumed else "",
        )

    async def _until_stopped(self, flows: FlowDirectory | None, engine: Engine) -> None:
        while not self._stop.is_set():
            stopped = asyncio.create_task(self._stop.wait())
            reload = asyncio.create_task(self._reload.wait())
            await asyncio.wait([stopped, reload], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            reload.cancel()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                await self._reload_config(flows, engine)

    # -- the components, each opened and closed by one context manager --------------------

    @asynccontextmanager
    async def _store(self) -> AsyncIterator[Store]:
        store = open_store(self.settings.store or self.settings.data_dir)
        await store.open()
        try:
            yield store
        finally:
            await _bounded(store.close(), STORE_CLOSE_TIMEOUT, "store")

    def _node(self, store: Store) -> ClusterNode | None:
        """A node of a cluster when the store is shared (PostgreSQL)."""
        settings = self.settings
        if not store.shared:
            if settings.role != "all":
                raise ConfigError(
                    f"role {settings.role} is for a node of a cluster: it needs a PostgreSQL "
                    "store (--store postgresql://...)"
                )
            return None
        return ClusterNode(
            store,
            settings.node_id or default_node_id(settings.port),
            heartbeat_interval=settings.heartbeat_interval,
            node_timeout=settings.node_timeout,
            capacity=settings.max_concurrent_executions,
            role=settings.role,
            worker_slots=settings.worker_slots,
            worker_groups=settings.worker_groups,
            worker_group_wait=settings.worker_group_wait,
        )

    @asynccontextmanager
    async def _engine(
        self, store: Store, plugins: Plugins, node: ClusterNode | None
    ) -> AsyncIterator[Engine]:
        """The engine; on the way out, running executions get the grace period, then are
        killed (or, on a cluster node, handed over to the others)."""
        settings = self.settings
        try:
            plugin_defaults = global_defaults(settings.plugin_defaults)
        except ValueError as exc:
            raise ConfigError(f"invalid settings: {exc}") from None
        options = EngineOptions(
            keep_working_dirs=settings.keep_working_dirs,
            max_executions=settings.max_concurrent_executions,
            max_tasks=settings.max_concurrent_tasks,
            public_url=settings.url,
            node_id=node.node_id if node is not None else None,
            flows_dir=settings.flows_dir,
            globals=dict(settings.globals),
            storage=settings.storage,
            plugin_defaults=plugin_defaults,
        )
        engine = Engine(
            settings.data_dir,
            store,
            plugins=plugins,
            options=options,
            dispatcher=node.dispatcher if node is not None else local_dispatcher,
            workers=node.workers if node is not None else LocalWorkers,
        )
        try:
            yield engine
        finally:
            await self._drain(engine, node)

    @asynccontextmanager
    async def _cluster(self, node: ClusterNode) -> AsyncIterator[None]:
        """The node joins once the flows are loaded (see `_flows`); it stops heartbeating
        and leaves only once what ran here is stored (the engine closes first)."""
        try:
            yield
        finally:
            await _bounded(node.stop(), CLUSTER_STAGE_TIMEOUT, "cluster")
            await _bounded(node.leave(), CLUSTER_STAGE_TIMEOUT, "leaving the cluster")

    @asynccontextmanager
    async def _triggers(
        self, engine: Engine, webhooks: WebhookRegistry, node: ClusterNode | None
    ) -> AsyncIterator[TriggerSupervisor]:
        supervisor = engine.supervisor(
            webhooks,
            self.settings.allowed_paths,
            leases=node.leases if node is not None else None,
        )
        engine.catalog.listen(supervisor.flow_changed)
        await supervisor.restore()  # triggers disabled through the API stay disabled
        try:
            yield supervisor
        finally:
            await _bounded(supervisor.stop_all(), TRIGGERS_STOP_TIMEOUT, "triggers")
            if node is not None:
                # no new claims once shutdown starts; heartbeats go on while draining
                await _bounded(node.stop_claiming(), CLUSTER_STAGE_TIMEOUT, "cluster claims")

    async def _flows(self, flows: FlowDirectory, engine: Engine, node: ClusterNode | None) -> int:
        """Load the flows (and, alone, resume what a crash left): returns how many resumed."""
        if node is None:
            resumed = await engine.lifecycle.recover()
            await flows.load_all()
            return resumed
        await flows.load_all()  # this node's files go to the store first
        await node.sync_flows(engine)
        await node.start(engine)  # claimed, like any other execution, once the node joined
        return 0

    @asynccontextmanager
    async def _http(
        self,
        engine: Engine,
        webhooks: WebhookRegistry,
        flows: FlowDirectory | None,
        supervisor: TriggerSupervisor | None,
        *,
        worker_only: bool = False,
    ) -> AsyncIterator[None]:
        from aiohttp import web

        from daemon.api.server import ROUTE_TABLES, WORKER_ROUTE_TABLES, create_app

        app = create_app(
            engine,
            self.settings,
            webhooks,
            flows=flows,
            supervisor=supervisor,
            ready=lambda: self.ready,
            routes=WORKER_ROUTE_TABLES if worker_only else ROUTE_TABLES,
            ui=not worker_only,
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.listen_host, self.settings.port)
            await site.start()
            self.port = int(runner.addresses[0][1]) if runner.addresses else self.settings.port
            self.urls = bound_urls(runner.addresses)
            yield
        finally:
            await _bounded(runner.cleanup(), HTTP_STOP_TIMEOUT, "HTTP server")

    async def _drain(self, engine: Engine, node: ClusterNode | None) -> None:
        """Let running executions (and a cluster node's task runs) finish within the grace
        period, then kill the rest (on a cluster node: hand them over to the others)."""
        grace = self.settings.shutdown_grace.total_seconds()
        hand_over = node is not None
        running = engine.local.running
        try:
            async with asyncio.timeout(grace):
                await engine.drain()
                if node is not None:
                    await node.drain_workers()
        except TimeoutError:
            running = engine.local.running
            if hand_over:
                log.warning(
                    "grace period over: handing %d running executions over to the cluster",
                    running,
                )
            else:
                log.warning("grace period over: killing %d running executions", running)
        await _bounded(engine.close(hand_over=hand_over), KILL_TIMEOUT, "killing executions")

    async def _reload_config(self, flows: FlowDirectory | None, engine: Engine) -> None:
        log.info("SIGHUP: reloading configuration and flows")
        try:
            fresh = await asyncio.to_thread(load_settings, self.config_file, self.overrides)
        except Exception as exc:
            log.error("keeping the current configuration: %s", exc)
        else:
            fixed: tuple[str, ...] = (
                "data_dir",
                "store",
                "host",
                "port",
                "flows_dir",
                "insecure_no_auth",
                "storage",
            )
            if fresh.basic_auth is None and self.settings.basic_auth is not None:
                # Listening on all interfaces was chosen because credentials were set.
                fixed = (*fixed, "basic_auth")
            changed = [n for n in fixed if getattr(fresh, n) != getattr(self.settings, n)]
            if changed:
                log.warning("%s changed: takes effect after a restart", ", ".join(changed))
            for name in Settings.model_fields:
                if name not in fixed:
                    setattr(self.settings, name, getattr(fresh, name))
            engine.options.public_url = self.settings.url
        if flows is not None:
            await flows.load_all()


@asynccontextmanager
async def _watching(flows: FlowDirectory) -> AsyncIterator[None]:
    await flows.watch()
    try:
        yield
    finally:
        await flows.stop_watching()


async def _startup_hooks(plugins: Plugins, settings: Settings) -> None:
    """Plug-ins' `on_daemon_start`: clean-up after a crash (containers left behind...)."""
    ctx = StartupContext(settings.data_dir, log)
    for hook in plugins.startup_hooks:
        try:
            await hook(ctx)
        except Exception:
            log.exception("start-up hook %s failed", getattr(hook, "__module__", hook))


async def _bounded(job: Any, seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            await job
    except TimeoutError:
        log.error("%s did not stop within %.0fs", what, seconds)


def _freeze_startup_objects() -> None:
    """What start-up built (modules, plug-in classes and schemas, flows) lives as long as
    the daemon: moved out of the garbage collector's generations, a full collection no
    longer walks it. Measured with bench/webhook.py: the longest pause went from ~60 ms
    to ~10 ms (issue #18)."""
    gc.collect()
    gc.freeze()


def serve(config_file: Path | None, overrides: dict[str, Any]) -> int:
    from daemon.app import eventloop
    from daemon.app import logsetup as logs
    from daemon.app.malloc import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread: see daemon/app/malloc.py
    settings = load_settings(config_file, overrides)
    logs.setup(settings.log_level)
    return eventloop.run(Daemon(settings, config_file, overrides).run(), settings.event_loop)
