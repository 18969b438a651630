"""One process's engine, assembled: what the API, the CLI, the cluster and the tests drive.

It builds the parts (resources, catalog, local executions, dispatcher, submitter,
lifecycle, pauses, controls) and passes each its collaborators; its own methods only
forward to the part that does the job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from daemon.engine.controls import Controls
from daemon.engine.dispatcher import Dispatcher, LocalDispatcher
from daemon.engine.events import Listener
from daemon.engine.executor import ExecutionRunner
from daemon.engine.lifecycle import Lifecycle
from daemon.engine.local import LocalExecutions
from daemon.engine.metrics import Metrics
from daemon.engine.pauses import Pauses
from daemon.engine.resources import EngineOptions, Resources
from daemon.engine.submission import Submitter
from daemon.engine.supervisor import Leases, TriggerSupervisor
from daemon.engine.trigger_context import TriggerServices
from daemon.engine.workers import LocalWorkers, Workers
from daemon.flows.catalog import FlowCatalog, Lookup
from daemon.flows.definition import Flow
from daemon.flows.registry import Plugins, default_plugins
from daemon.sdk.clock import Clock
from daemon.sdk.errors import NotFound, PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.review import Review
from daemon.sdk.services import WebhookRoutes
from daemon.sdk.state import State
from daemon.store.base import Store

DispatcherFactory = Callable[[Resources, LocalExecutions, Pauses, FlowCatalog], Dispatcher]
WorkersFactory = Callable[[Resources], Workers]


def local_dispatcher(
    resources: Resources, local: LocalExecutions, pauses: Pauses, catalog: FlowCatalog
) -> Dispatcher:
    return LocalDispatcher(resources, local, pauses)


class Engine:
    def __init__(
        self,
        data_dir: Path,
        store: Store,
        *,
        plugins: Plugins | None = None,
        clock: Clock | None = None,
        options: EngineOptions | None = None,
        lookup: Lookup | None = None,
        dispatcher: DispatcherFactory = local_dispatcher,
        workers: WorkersFactory = LocalWorkers,
    ) -> None:
        self.resources = Resources(
            data_dir, store, plugins or default_plugins(), clock=clock, options=options
        )
        self.resources.workers = workers(self.resources)
        self.catalog = FlowCatalog(
            store,
            self.resources.plugins,
            lookup=lookup,
            plugin_defaults=self.resources.options.plugin_defaults,
        )
        self.pauses = Pauses()
        self.local = LocalExecutions(self.resources, self._run)
        self.dispatcher = dispatcher(self.resources, self.local, self.pauses, self.catalog)
        self.submitter = Submitter(self.resources, self.catalog, self.dispatcher)
        self.lifecycle = Lifecycle(
            self.resources, self.catalog, self.local, self.dispatcher, self.submitter.coerce
        )
        self.controls = Controls(self.resources, self.dispatcher)
        self._metrics: Metrics | None = None
        # The supervisor running this process's triggers (`podium serve`), for Toggle.
        self._supervisor: TriggerSupervisor | None = None

    # -- what everyone reads ------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.resources.store

    @property
    def data_dir(self) -> Path:
        return self.resources.data_dir

    @property
    def clock(self) -> Clock:
        return self.resources.clock

    @property
    def options(self) -> EngineOptions:
        return self.resources.options

    @property
    def metrics(self) -> Metrics:
        """The counts behind /metrics, kept from the first time they are asked for (a
        `podium run` never pays for them)."""
        if self._metrics is None:
            self._metrics = Metrics(self.resources, self.catalog, self.local)
        return self._metrics

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.resources.events.subscribe(listener)

    def supervisor(
        self,
        webhooks: WebhookRoutes,
        allowed_paths: Sequence[Path] = (),
        *,
        leases: Leases | None = None,
    ) -> TriggerSupervisor:
        """A supervisor for the triggers of flows, emitting through this engine. `podium
        serve` has it follow the catalog (`catalog.listen(supervisor.flow_changed)`)."""
        services = TriggerServices(
            self.resources, webhooks, allowed_paths, lambda: self.metrics, self.wait
        )
        self._supervisor = TriggerSupervisor(
            self.resources, self.submitter, services, leases=leases
        )
        return self._supervisor

    async def toggle_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None:
        """Disable or enable a trigger durably, as `PUT /api/v1/triggers` does (Kestra's
        trigger.Toggle); NotFound for an unknown flow or trigger, PodiumError when this
        process runs no triggers or the flow's source disables it."""
        supervisor = self._supervisor
        if supervisor is None:
            raise PodiumError("this process runs no triggers (podium run): nothing to toggle")
        flow = await self.catalog.find(namespace, flow_id)
        source = next((t for t in flow.triggers if t.id == trigger_id), None)
        if source is None:
            raise NotFound(f"flow {namespace}.{flow_id} has no trigger {trigger_id!r}")
        if enabled and (flow.disabled or source.disabled):
            raise PodiumError(
                f"trigger {trigger_id} of {namespace}.{flow_id} is disabled in the flow's source"
            )
        await supervisor.set_disabled(flow, trigger_id, not enabled)

    # -- the one way in, and what follows -------------------------------------------------

    async def submit(
        self, flow: Flow, inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Execution:
        return await self.submitter.submit(flow, inputs, **kwargs)

    async def submit_by_id(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Execution:
        return await self.submitter.submit_by_id(namespace, flow_id, inputs, **kwargs)

    async def submit_iteration(
        self, parent: Execution, loop: dict[str, Any], execution_id: str
    ) -> Execution:
        return await self.submitter.submit_iteration(parent, loop, execution_id)

    async def wait(self, execution_id: str) -> Execution:
        return await self.dispatcher.wait(execution_id)

    async def find_flow(self, namespace: str, flow_id: str) -> Flow:
        """The flow as loaded here, else its latest stored revision; NotFound."""
        return await self.catalog.find(namespace, flow_id)

    async def kill(self, execution_id: str) -> bool:
        return await self.dispatcher.kill(execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        return await self.dispatcher.resume(execution_id, inputs)

    async def review(self, execution_id: str, task_run_id: str, review: Review) -> bool:
        return await self.dispatcher.review(execution_id, task_run_id, review)

    async def restart(self, execution_id: str) -> Execution:
        return await self.lifecycle.restart(execution_id)

    async def replay(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        *,
        latest: bool = False,
        revision: int | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Execution:
        return await self.lifecycle.replay(
            execution_id, task_run_id, latest=latest, revision=revision, inputs=inputs
        )

    async def drain(self) -> None:
        """Until nothing runs here (tests' "until idle" step)."""
        await self.local.drain()
        await self.resources.scratch.settle()

    async def close(self, *, hand_over: bool = False) -> None:
        """Stop what runs here (see LocalExecutions.close), close what plug-ins opened, and
        commit the last writes."""
        await self.lifecycle.close()
        await self.local.close(hand_over=hand_over)
        await self.resources.close()
        await self.resources.store.flush()

    async def _run(self, flow: Flow, execution: Execution) -> Execution:
        ended = await ExecutionRunner(self.resources, self, self.pauses, flow, execution).run()
        if ended.state.current == State.RETRIED:  # the flow's retry: a new execution follows
            self.lifecycle.retry_later(flow, ended)
        return ended
