"""The engine's side of the SDK contexts: what `RunContext` and `TriggerContext` promise a
plug-in, implemented over the store, the storage, the event bus and the pauses."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from daemon.engine.adapters import (
    StorageFiles,
    StoreExecutions,
    StoreKeyValue,
    StoreNamespaceFiles,
)
from daemon.engine.events import ExecutionChanged, LogAppended, MetricRecorded, TaskRunChanged
from daemon.engine.pauses import Pauses, until_done
from daemon.engine.resources import Resources
from daemon.engine.task_builder import LauncherControl
from daemon.flows.definition import Flow
from daemon.sdk.context import LEVELS, ReportedRun, RunContext, TaskLogger
from daemon.sdk.execution import Execution, TaskRun, derived_id, new_id
from daemon.sdk.services import (
    Closer,
    FlowDefinition,
    FlowRef,
)
from daemon.sdk.state import State, StateHistory, iso

if TYPE_CHECKING:
    from daemon.sdk.inputs import InputSpec
    from daemon.sdk.review import Review, ReviewForm


class Launcher(Protocol):
    """What a task may start and wait for: the engine's one way in."""

    async def submit_by_id(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        parent: dict[str, Any] | None = None,
        trigger: dict[str, Any] | None = None,
        revision: int | None = None,
        execution_id: str | None = None,
    ) -> Execution: ...

    async def submit_iteration(
        self, parent: Execution, loop: dict[str, Any], execution_id: str
    ) -> Execution: ...

    async def wait(self, execution_id: str) -> Execution: ...

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool: ...

    async def kill(self, execution_id: str) -> bool: ...

    async def toggle_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None: ...

    async def find_flow(self, namespace: str, flow_id: str) -> Flow: ...


class ExecutionLog(TaskLogger):
    """Execution logs: every line goes to the store with its execution, task run and level."""

    def __init__(
        self,
        resources: Resources,
        execution: Execution,
        task_run: TaskRun | None,
        min_level: str | None = None,
    ) -> None:
        self._resources = resources
        self._execution = execution
        self._task_run = task_run
        self._min = LEVELS[min_level] if min_level else 0

    def log(self, level: str, message: str) -> None:
        level = "WARN" if level == "WARNING" else level
        if LEVELS[level] < self._min:
            return
        tr, ex, resources = self._task_run, self._execution, self._resources
        line = {
            "executionId": ex.id,
            "taskRunId": tr.id if tr else None,
            "taskId": tr.task_id if tr else None,
            "namespace": ex.namespace,
            "flowId": ex.flow_id,
            "level": level,
            "timestamp": iso(resources.clock.now()),
            "message": resources.secrets.mask(message),
            "attemptNumber": max(len(tr.attempts) - 1, 0) if tr else 0,
        }
        resources.store.append_logs([line])
        resources.events.publish(LogAppended(ex, tr, line))


class TaskWaits:
    """Where one task run waits for a person, PAUSED (its execution too) until resumed
    (Pause) or reviewed (Approval, the context's `reviews`), or until time runs out; the
    execution stays PAUSED while another of its task runs waits."""

    def __init__(
        self, resources: Resources, pauses: Pauses, execution: Execution, task_run: TaskRun
    ) -> None:
        self._resources = resources
        self._pauses = pauses
        self._execution = execution
        self._task_run = task_run

    async def paused(
        self, seconds: float | None, inputs: Sequence[InputSpec]
    ) -> dict[str, Any] | None:
        point = self._pauses.point(self._execution.id, self._task_run.id, inputs)
        result: dict[str, Any] | None = await self._wait(point, seconds)
        return result

    async def wait(self, seconds: float | None, form: ReviewForm) -> Review | None:
        point = self._pauses.point(self._execution.id, self._task_run.id, form.inputs, form)
        result: Review | None = await self._wait(point, seconds)
        return result

    async def _wait(self, point: asyncio.Future[Any], seconds: float | None) -> Any:
        ex, tr = self._execution, self._task_run
        await self._set(State.PAUSED)
        try:
            return await until_done(point, seconds, self._resources.clock)
        finally:
            self._pauses.release(ex.id, tr.id)
            point.cancel()
            if tr.state.current == State.PAUSED:
                await asyncio.shield(self._set(State.RUNNING))

    async def _set(self, state: State) -> None:
        resources, ex, tr = self._resources, self._execution, self._task_run
        now = resources.clock.now()
        tr.state.set(state, now)
        store = resources.store
        await store.save_task_run(resources.masked(tr.to_json()), wait=False)
        resources.events.publish(TaskRunChanged(ex, tr))
        pauses = self._pauses
        if ex.state.current == state or (
            state == State.RUNNING and (pauses.holds(ex.id) or pauses.held(ex.id))
        ):
            return
        ex.state.set(state, now)
        await store.save_execution(resources.masked(ex.to_json(task_runs=False)))
        resources.events.publish(ExecutionChanged(ex))


class TaskContext(RunContext):
    """One task-run attempt's context."""

    def __init__(
        self,
        resources: Resources,
        launcher: Launcher,
        pauses: Pauses,
        flow: FlowRef,
        execution: Execution,
        task_run: TaskRun,
        variables: dict[str, Any],
        logger: TaskLogger,
        shared_dir: Path | None = None,
    ) -> None:
        self._resources = resources
        self._launcher = launcher
        self.flow = flow
        self.execution = execution
        self.task_run = task_run
        self.variables = variables
        self.logger = logger
        self.clock = resources.clock
        self.files = StorageFiles(resources.storage)
        self.kv = StoreKeyValue(resources.store, resources.clock)
        self.namespace_files = StoreNamespaceFiles(resources.store)
        self.secrets = resources.secrets
        self.executions = StoreExecutions(resources.store, launcher.wait, resources.events)
        # A task built at run time (TemplatedTask) gets pluginDefaults as the loader's do.
        own = flow.plugin_defaults if isinstance(flow, Flow) else ()
        defaults = (own, resources.options.plugin_defaults)
        self.control = LauncherControl(resources.plugins, launcher, defaults)
        self._waits = TaskWaits(resources, pauses, execution, task_run)
        self.reviews = self._waits
        self.public_url = resources.options.public_url
        self.flows_dir = resources.options.flows_dir
        self.warning = False
        self._working_dir: Path | None = None
        # A directory other task runs share (the WorkingDirectory around this one): used,
        # never removed, by this task run.
        self._shared_dir = shared_dir

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        variables = {**self.variables, **extra} if extra else self.variables
        return self._resources.render(value, variables, self.execution.namespace)

    def render_bool(self, value: str | bool) -> bool:
        return self._resources.renderer.evaluate_bool(
            value, self.variables, self._resources.functions.table(self.execution.namespace)
        )

    async def render_async(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        variables = {**self.variables, **extra} if extra else self.variables
        return await self._resources.render_async(value, variables, self.execution.namespace)

    async def render_bool_async(self, value: str | bool) -> bool:
        return await self._resources.renderer.evaluate_bool_async(
            value, self.variables, self._resources.functions.table(self.execution.namespace)
        )

    @property
    def working_dir_path(self) -> Path:
        if self._shared_dir is not None:
            return self._shared_dir
        return self._resources.data_dir / "tmp" / self.execution.id / self.task_run.id

    @property
    def shares_working_dir(self) -> bool:
        """It works in a directory other task runs share (inside a WorkingDirectory)."""
        return self._shared_dir is not None

    async def working_dir(self) -> Path:
        if self._working_dir is None:
            path = self.working_dir_path
            self._resources.scratch.wanted(self.execution.id)
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            self._working_dir = path
        return self._working_dir

    async def cleanup(self) -> None:
        """Remove the working directory (kept with the `keep-working-dirs` setting, and
        when it is shared: the task run that owns it removes it)."""
        if self._shared_dir is not None:
            return
        if self._working_dir is not None and not self._resources.options.keep_working_dirs:
            await asyncio.to_thread(shutil.rmtree, self._working_dir, True)
            self._working_dir = None

    def storage_prefix(self) -> str:
        ex = self.execution
        prefix = self.files.execution_prefix(ex.namespace, ex.flow_id, ex.id)
        return f"{prefix}/tasks/{self.task_run.task_id}/{self.task_run.id}"

    async def put_file(self, source: Path | bytes, name: str | None = None) -> str:
        if name is None:
            if isinstance(source, bytes):
                raise ValueError("a name is needed to store bytes")
            name = source.name
        return await self.files.put(source, prefix=self.storage_prefix(), name=name)

    async def file_path(self, uri: str) -> Path:
        return await self.files.path(uri)

    def data_path(self, *parts: str) -> Path:
        return self._resources.data_dir.joinpath(*parts)

    async def pause(
        self, seconds: float | None, on_resume: Sequence[InputSpec]
    ) -> dict[str, Any] | None:
        return await self._waits.paused(seconds, on_resume)

    async def report_task_runs(self, runs: Sequence[ReportedRun]) -> None:
        """Each run becomes a terminated child task run of this one, with its log lines."""
        resources = self._resources
        for run in runs:
            if not run.history or not run.history[-1][0].terminated:
                raise ValueError(f"the reported run {run.task_id} has no terminal state")
            first, *rest = run.history
            state = StateHistory(*first)
            for step in rest:
                state.set(*step)
            attempt = StateHistory(*first)
            for step in rest:
                attempt.set(*step)
            child = TaskRun(
                id=new_id(),
                execution_id=self.execution.id,
                namespace=self.execution.namespace,
                flow_id=self.execution.flow_id,
                task_id=run.task_id,
                state=state,
                parent_task_run_id=self.task_run.id,
                attempts=[attempt],
                outputs=dict(run.outputs),
            )
            self.execution.task_runs.append(child)
            await resources.store.save_task_run(resources.masked(child.to_json()), wait=False)
            log = ExecutionLog(resources, self.execution, child)
            for level, message in run.logs:
                log.log(level, message)
            resources.events.publish(TaskRunChanged(self.execution, child))

    def add_labels(self, labels: Mapping[str, str]) -> None:
        self.execution.labels.update({k: str(v) for k, v in labels.items()})

    def metric(
        self, name: str, type_: str, value: float, tags: Mapping[str, str] | None = None
    ) -> None:
        metric = {
            "executionId": self.execution.id,
            "taskRunId": self.task_run.id,
            "taskId": self.task_run.task_id,
            "name": name,
            "type": type_,
            "value": value,
            "tags": dict(tags or {}),
            "timestamp": iso(self.clock.now()),
        }
        self._resources.store.append_metrics([metric])
        self._resources.events.publish(MetricRecorded(self.execution, self.task_run, metric))

    async def run_subflow(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any],
        labels: Mapping[str, str],
        wait: bool,
        *,
        revision: int | None = None,
        key: str | None = None,
        iteration: int | None = None,
    ) -> Execution:
        parent: dict[str, Any] = {
            "executionId": self.execution.id,
            "namespace": self.execution.namespace,
            "flowId": self.execution.flow_id,
            "taskRunId": self.task_run.id,
            # How deep subflows nest here: the submit path refuses them past its limit.
            "depth": int((self.execution.parent or {}).get("depth", 0)) + 1,
        }
        if iteration is not None:
            parent["taskRunIteration"] = iteration
        # Kestra's trigger of a subflow execution: the task that started it.
        variables = {
            **parent,
            "flowRevision": self.execution.flow_revision,
            "taskId": self.task_run.task_id,
        }
        if self.task_run.value is not None:
            variables["taskRunValue"] = self.task_run.value
        task_type = (self.variables.get("task") or {}).get("type")
        trigger = {"id": self.task_run.task_id, "type": task_type, "variables": variables}
        execution_id = None
        if key is not None:
            execution_id = derived_id("subflow", self.execution.id, self.task_run.id, key)
        # Kestra's ExecutableUtils.subflowExecution: the child carries this execution's
        # system labels (its correlationId) whatever `inheritLabels` says.
        system = {k: v for k, v in self.execution.labels.items() if k.startswith("system.")}
        child = await self._launcher.submit_by_id(
            namespace,
            flow_id,
            inputs,
            labels={**system, **labels},
            parent=parent,
            trigger=trigger,
            revision=revision,
            execution_id=execution_id,
        )
        if wait:
            return await self._launcher.wait(child.id)
        return child

    async def run_iteration(self, index: int, value: str, key: str | None = None) -> Execution:
        ex, tr = self.execution, self.task_run
        loop: dict[str, Any] = {
            "executionId": ex.id,
            "taskId": tr.task_id,
            "taskRunId": tr.id,
            "index": index,
            "value": value,
        }
        if key is not None:
            loop["key"] = key
        if ex.loop is not None:  # a loop inside an iteration: the enclosing ones, outermost first
            enclosing = {k: ex.loop[k] for k in ("index", "key", "value") if k in ex.loop}
            loop["parents"] = [*(ex.loop.get("parents") or []), enclosing]
        execution_id = derived_id("loop", ex.id, tr.id, str(index))
        return await self._launcher.submit_iteration(ex, loop, execution_id)

    async def find_flow(self, namespace: str, flow_id: str) -> FlowDefinition:
        return await self._launcher.find_flow(namespace, flow_id)

    async def set_variables(self, variables: Mapping[str, Any]) -> None:
        resources, ex = self._resources, self.execution
        ex.variables = dict(variables)
        await resources.store.save_execution(resources.masked(ex.to_json(task_runs=False)))

    async def resume_execution(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        return await self._launcher.resume(execution_id, inputs)

    def on_close(self, key: str, closer: Closer) -> None:
        self._resources.on_close(key, closer)
