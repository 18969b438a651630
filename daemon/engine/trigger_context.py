"""The engine's side of `TriggerContext`: what a trigger plug-in may use, implemented over
the store, the storage and the event bus (the task side is in contexts.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.engine.adapters import StorageFiles, StoreExecutions
from daemon.engine.events import ExecutionChanged
from daemon.engine.resources import Resources
from daemon.engine.trigger_locks import TriggerLocks
from daemon.sdk.context import TriggerContext
from daemon.sdk.execution import Execution
from daemon.sdk.services import ExecutionListener, FlowRef, WebhookRoutes

if TYPE_CHECKING:
    from daemon.engine.metrics import Metrics


class TriggerServices:
    """What every trigger of the daemon shares: where webhooks attach, the allowed paths,
    the counts for /metrics and the executions to wait for."""

    def __init__(
        self,
        resources: Resources,
        webhooks: WebhookRoutes,
        allowed_paths: Sequence[Path],
        metrics: Callable[[], Metrics],
        wait: Callable[[str], Any],
    ) -> None:
        self.resources = resources
        self.webhooks = webhooks
        self.allowed_paths = allowed_paths
        self.metrics = metrics
        self.wait = wait


class FlowTriggerContext(TriggerContext):
    """The context of one trigger of one loaded flow."""

    def __init__(
        self,
        services: TriggerServices,
        flow: FlowRef,
        trigger_id: str,
        trigger_type: str,
        logger: logging.Logger,
        locks: TriggerLocks,
    ) -> None:
        resources = services.resources
        self._services = services
        self._locks = locks
        self._resources = resources
        self._trigger_type = trigger_type
        self.flow = flow
        self.trigger_id = trigger_id
        self.logger = logger
        self.clock = resources.clock
        self.files = StorageFiles(resources.storage)
        self.state = resources.store.state
        self.executions = StoreExecutions(resources.store, services.wait, resources.events)
        self.secrets = resources.secrets
        self.webhooks = services.webhooks
        self.node_id = resources.options.node_id
        self.allowed_paths = services.allowed_paths

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        # the flow's namespace: kv() and read() without one look there, as in a task
        namespace = self.flow.namespace
        return self._resources.render(value, self._variables(extra), namespace)

    async def render_async(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        namespace = self.flow.namespace
        return await self._resources.render_async(value, self._variables(extra), namespace)

    def _variables(self, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        flow = self.flow
        return {
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
            "envs": self._resources.envs,
            "labels": flow.labels,
            **(extra or {}),
        }

    def data_path(self, *parts: str) -> Path:
        return self._resources.data_dir.joinpath(*parts)

    def watch_executions(self, listener: ExecutionListener) -> Callable[[], None]:
        def on_event(event: object) -> None:
            if isinstance(event, ExecutionChanged):
                listener(event.execution)

        return self._resources.events.subscribe(on_event)

    async def wait_locked(self, execution_id: str) -> Execution | None:
        key = (self.flow.namespace, self.flow.id, self.trigger_id)
        return await self._locks.hold(key, execution_id, self.executions.wait(execution_id))

    def count_rejected(self) -> None:
        self._services.metrics().trigger_event(self._trigger_type, rejected=True)

    def connection(self, up: bool) -> None:
        flow = self.flow
        self._services.metrics().trigger_connection(
            self._trigger_type, flow.namespace, flow.id, self.trigger_id, up
        )
