"""`podium serve`: the long-running daemon and its lifecycle.

Start-up: store -> runtime (resuming what a crash left running) -> flows and their
triggers -> HTTP site -> flows-directory watcher -> READY=1. Signals only set events:
SIGTERM/SIGINT stop, SIGHUP reloads. Shutdown runs the stages below in order, each with
its own time limit; their sum stays under systemd's TimeoutStopSec (a test checks it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import systemd
from daemon.alerts import install as install_alerts
from daemon.config import Settings, load_settings
from daemon.flowdir import FlowDirectory
from daemon.registry import default_plugins
from daemon.runtime import Runtime
from daemon.store import open_store
from daemon.triggering import Triggers
from daemon.webhooks import WebhookRegistry

if TYPE_CHECKING:
    from daemon.cluster import Cluster
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
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        settings = self.settings
        async with AsyncExitStack() as stack:
            # Teardown runs in reverse: watcher, HTTP, triggers, executions, store.
            store = open_store(settings.store or settings.data_dir)
            await store.open()
            stack.push_async_callback(_bounded, store.close(), STORE_CLOSE_TIMEOUT, "store")
            plugins = await asyncio.to_thread(default_plugins)
            runtime = Runtime(
                settings.data_dir,
                store,
                plugins=plugins,
                keep_working_dirs=settings.keep_working_dirs,
                max_executions=settings.max_concurrent_executions,
                max_tasks=settings.max_concurrent_tasks,
            )
            runtime.public_url = settings.url
            install_alerts(runtime, settings)  # the `alerts:` setting (daemon/alerts.py)
            cluster = self._cluster(runtime, store)
            if cluster is not None:
                # after the executions are stored: give up what is still queued here
                stack.push_async_callback(
                    _bounded, cluster.leave(), CLUSTER_STAGE_TIMEOUT, "leaving the cluster"
                )
                stack.push_async_callback(
                    _bounded, cluster.stop(), CLUSTER_STAGE_TIMEOUT, "cluster"
                )
            stack.push_async_callback(self._drain, runtime)
            webhooks = WebhookRegistry()
            triggers = Triggers(runtime, settings, webhooks)
            if cluster is not None:
                cluster.triggers = triggers
                # no new claims once shutdown starts; heartbeats go on while draining
                stack.push_async_callback(
                    _bounded, cluster.stop_claiming(), CLUSTER_STAGE_TIMEOUT, "cluster claims"
                )
            stack.push_async_callback(
                _bounded, triggers.stop_all(), TRIGGERS_STOP_TIMEOUT, "triggers"
            )
            for hook in plugins.startup_hooks:
                try:
                    await hook(runtime)
                except Exception:
                    log.exception("start-up hook %s failed", getattr(hook, "__module__", hook))
            await triggers.restore()  # triggers disabled through the API stay disabled
            flows = FlowDirectory(settings.flows_dir, runtime, triggers)
            if cluster is None:
                resumed = await runtime.recover()
                await flows.load_all()
            else:
                resumed = 0  # claimed, like any other execution, once the node has joined
                await flows.load_all()  # this node's files go to the store first
                await cluster.sync_flows()
                await cluster.start()
            await self._serve_http(stack, runtime, webhooks, flows)
            await flows.watch()
            stack.push_async_callback(flows.stop_watching)
            self.ready = True
            systemd.notify("READY=1")
            interval = systemd.watchdog_interval()
            if interval:
                pinger = asyncio.create_task(systemd.watchdog_pings(interval))
                stack.callback(pinger.cancel)
            log.info(
                "podium serving %d flows from %s on http://%s:%d (data in %s%s)%s",
                flows.count,
                settings.flows_dir,
                settings.listen_host,
                self.port,
                settings.data_dir,
                ""
                if settings.basic_auth
                else "; no basic-auth credentials configured, so listening on 127.0.0.1 only",
                f"; resumed {resumed} executions" if resumed else "",
            )
            while not self._stop.is_set():
                stopped = asyncio.create_task(self._stop.wait())
                reload = asyncio.create_task(self._reload.wait())
                await asyncio.wait([stopped, reload], return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                reload.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self._reload_config(flows, runtime)
            self.ready = False
            systemd.notify("STOPPING=1")
            log.info(
                "stopping: no new events; running executions have %s to finish",
                settings.shutdown_grace,
            )
        stats = runtime.stats
        log.info(
            "stopped: %d executions done, %d failed, %d cancelled",
            stats["SUCCESS"] + stats["WARNING"],
            stats["FAILED"],
            stats["KILLED"] + stats["CANCELLED"],
        )
        return 0

    def _cluster(self, runtime: Runtime, store: Store) -> Cluster | None:
        """A node of a cluster when the store is shared (PostgreSQL)."""
        if not store.shared:
            return None
        from daemon.cluster import Cluster, default_node_id

        settings = self.settings
        node_id = settings.node_id or default_node_id(settings.port)
        cluster = Cluster(
            runtime,
            store,
            node_id,
            heartbeat_interval=settings.heartbeat_interval,
            node_timeout=settings.node_timeout,
            capacity=settings.max_concurrent_executions,
        )
        runtime.node_id = node_id
        runtime.cluster = cluster
        return cluster

    async def _serve_http(
        self,
        stack: AsyncExitStack,
        runtime: Runtime,
        webhooks: WebhookRegistry,
        flows: FlowDirectory,
    ) -> None:
        from aiohttp import web

        from daemon.api import create_app

        app = create_app(runtime, self.settings, webhooks, flows=flows, ready=lambda: self.ready)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(_bounded, runner.cleanup(), HTTP_STOP_TIMEOUT, "HTTP server")
        site = web.TCPSite(runner, self.settings.listen_host, self.settings.port)
        await site.start()
        self.port = int(runner.addresses[0][1]) if runner.addresses else self.settings.port

    async def _drain(self, runtime: Runtime) -> None:
        """Let running executions finish within the grace period, then kill the rest."""
        grace = self.settings.shutdown_grace.total_seconds()
        try:
            async with asyncio.timeout(grace):
                await runtime.drain()
        except TimeoutError:
            if runtime.cluster is not None:
                log.warning(
                    "grace period over: handing %d running executions over to the cluster",
                    runtime.running,
                )
            else:
                log.warning("grace period over: killing %d running executions", runtime.running)
        await _bounded(
            runtime.close(hand_over=runtime.cluster is not None), KILL_TIMEOUT, "killing executions"
        )

    async def _reload_config(self, flows: FlowDirectory, runtime: Runtime) -> None:
        log.info("SIGHUP: reloading configuration and flows")
        try:
            fresh = await asyncio.to_thread(load_settings, self.config_file, self.overrides)
        except Exception as exc:
            log.error("keeping the current configuration: %s", exc)
        else:
            fixed: tuple[str, ...] = ("data_dir", "store", "host", "port", "flows_dir")
            if fresh.basic_auth is None and self.settings.basic_auth is not None:
                # Listening on all interfaces was chosen because credentials were set.
                fixed = (*fixed, "basic_auth")
            changed = [n for n in fixed if getattr(fresh, n) != getattr(self.settings, n)]
            if changed:
                log.warning("%s changed: takes effect after a restart", ", ".join(changed))
            for name in Settings.model_fields:
                if name not in fixed:
                    setattr(self.settings, name, getattr(fresh, name))
            runtime.public_url = self.settings.url
        await flows.load_all()


async def _bounded(job: Any, seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            await job
    except TimeoutError:
        log.error("%s did not stop within %.0fs", what, seconds)


def serve(config_file: Path | None, overrides: dict[str, Any]) -> int:
    from daemon import logs

    settings = load_settings(config_file, overrides)
    logs.setup(settings.log_level)
    return asyncio.run(Daemon(settings, config_file, overrides).run())
