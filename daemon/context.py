"""What a running task (or trigger) may use: rendering, logs, files, labels, subflows.

Tasks never reach into the executor or the store directly; this is their whole world.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.sdk.clock import Clock
from daemon.sdk.state import State, iso

if TYPE_CHECKING:
    from daemon.config import Settings
    from daemon.flow import Flow
    from daemon.runtime import Runtime
    from daemon.sdk.execution import Execution, TaskRun
    from daemon.sdk.inputs import InputSpec
    from daemon.webhooks import WebhookRegistry

LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40}


class TaskLogger:
    """Execution logs: every line goes to the store with its execution, task run and level."""

    def __init__(
        self,
        runtime: Runtime,
        execution: Execution,
        task_run: TaskRun | None,
        min_level: str | None = None,
    ) -> None:
        self._runtime = runtime
        self._execution = execution
        self._task_run = task_run
        self._min = LEVELS[min_level] if min_level else 0

    def log(self, level: str, message: str) -> None:
        level = "WARN" if level == "WARNING" else level
        if LEVELS[level] < self._min:
            return
        tr = self._task_run
        line = {
            "executionId": self._execution.id,
            "taskRunId": tr.id if tr else None,
            "taskId": tr.task_id if tr else None,
            "namespace": self._execution.namespace,
            "flowId": self._execution.flow_id,
            "level": level,
            "timestamp": iso(self._runtime.clock.now()),
            "message": self._runtime.mask(message),
            "attemptNumber": max(len(tr.attempts) - 1, 0) if tr else 0,
        }
        self._runtime.store.append_logs([line])
        self._runtime.publish("log", self._execution, tr, line)

    def trace(self, message: str) -> None:
        self.log("TRACE", message)

    def debug(self, message: str) -> None:
        self.log("DEBUG", message)

    def info(self, message: str) -> None:
        self.log("INFO", message)

    def warning(self, message: str) -> None:
        self.log("WARN", message)

    def error(self, message: str) -> None:
        self.log("ERROR", message)


@dataclass
class RunContext:
    """Handed to `Task.run`; one per task-run attempt."""

    runtime: Runtime
    flow: Flow
    execution: Execution
    task_run: TaskRun
    variables: dict[str, Any]
    logger: TaskLogger
    # Set by a task that succeeded with a caveat (e.g. warningOnStdErr): it ends WARNING.
    warning: bool = False
    _working_dir: Path | None = field(default=None, repr=False)

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render a value (strings inside lists and maps too) with this task run's variables."""
        variables = {**self.variables, **extra} if extra else self.variables
        return self.runtime.renderer.render_value(value, variables, self.runtime.functions(self))

    def render_bool(self, value: str | bool) -> bool:
        return self.runtime.renderer.evaluate_bool(
            value, self.variables, self.runtime.functions(self)
        )

    @property
    def working_dir_path(self) -> Path:
        return self.runtime.data_dir / "tmp" / self.execution.id / self.task_run.id

    async def working_dir(self) -> Path:
        """A fresh directory for this task run, created on first use, removed afterwards."""
        if self._working_dir is None:
            path = self.working_dir_path
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            self._working_dir = path
        return self._working_dir

    async def cleanup(self) -> None:
        if self._working_dir is not None and not self.runtime.keep_working_dirs:
            await asyncio.to_thread(shutil.rmtree, self._working_dir, True)
            self._working_dir = None

    def storage_prefix(self) -> str:
        ex = self.execution
        prefix = self.runtime.storage.execution_prefix(ex.namespace, ex.flow_id, ex.id)
        return f"{prefix}/tasks/{self.task_run.task_id}/{self.task_run.id}"

    async def put_file(self, source: Path | bytes, name: str | None = None) -> str:
        """Store a file produced by the task; returns its `kestra://` URI."""
        if name is None:
            if isinstance(source, bytes):
                raise ValueError("a name is needed to store bytes")
            name = source.name
        return await asyncio.to_thread(
            self.runtime.storage.put, source, prefix=self.storage_prefix(), name=name
        )

    async def file_path(self, uri: str) -> Path:
        """The local path of a stored file (for reading); NotFound if missing."""
        return await asyncio.to_thread(self.runtime.storage.path, uri)

    async def pause(
        self, seconds: float | None, on_resume: Sequence[InputSpec]
    ) -> dict[str, Any] | None:
        """Hold this task run and its execution PAUSED until resumed through the API (the
        coerced `onResume` values) or until `seconds` pass (None)."""
        runtime, ex, tr = self.runtime, self.execution, self.task_run
        resumed = runtime.pause_point(ex.id, on_resume)
        await self._set_paused(State.PAUSED)
        try:
            if seconds is None:
                return await resumed
            timer: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(seconds))
            waiting: list[asyncio.Future[Any]] = [resumed, timer]
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
            return resumed.result() if resumed.done() else None
        finally:
            runtime.unpause(ex.id)
            resumed.cancel()
            if tr.state.current == State.PAUSED:
                await asyncio.shield(self._set_paused(State.RUNNING))

    async def _set_paused(self, state: State) -> None:
        now = self.clock.now()
        self.task_run.state.set(state, now)
        self.execution.state.set(state, now)
        store = self.runtime.store
        await store.save_task_run(self.runtime.masked(self.task_run.to_json()), wait=False)
        await store.save_execution(self.runtime.masked(self.execution.to_json(task_runs=False)))
        self.runtime.publish("taskrun", self.execution, self.task_run)
        self.runtime.publish("execution", self.execution, None)

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
        self.runtime.store.append_metrics([metric])
        self.runtime.publish("metric", self.execution, self.task_run, metric)  # to /metrics

    async def run_subflow(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any],
        labels: Mapping[str, str],
        wait: bool,
    ) -> Execution:
        """Start another flow through the one submit path, optionally waiting for its end."""
        parent = {
            "executionId": self.execution.id,
            "namespace": self.execution.namespace,
            "flowId": self.execution.flow_id,
            "taskRunId": self.task_run.id,
        }
        child = await self.runtime.submit_by_id(
            namespace, flow_id, inputs, labels=labels, parent=parent
        )
        if wait:
            return await self.runtime.wait(child.id)
        return child


@dataclass
class TriggerContext:
    """Handed to `Trigger.run`: the flow it belongs to and the daemon's services.

    `logger` is the daemon's own log (stdout/journald), not an execution's. Trigger state
    that must survive restarts goes to `runtime.store` (`get_state`/`set_state`, and `claim`
    for exactly-once), under keys from `state_key`.
    """

    runtime: Runtime
    flow: Flow
    trigger_id: str
    logger: logging.Logger
    settings: Settings
    webhooks: WebhookRegistry

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render a trigger property the flow author templated (never outside data)."""
        flow = self.flow
        variables = {
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
            "envs": self.runtime.envs,
            "labels": flow.labels,
            **(extra or {}),
        }
        return self.runtime.renderer.render_value(value, variables, self.runtime.functions(None))

    def state_key(self, *parts: str) -> str:
        """A store key owned by this trigger of this flow: `trigger:ns:flow:id:parts...`."""
        return ":".join(("trigger", self.flow.namespace, self.flow.id, self.trigger_id, *parts))
