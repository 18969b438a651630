"""What a running task or trigger may use: its whole world, handed over by the engine.

`RunContext` is given to `Task.run` (one per attempt), `TriggerContext` to `Trigger.run`.
Both are interfaces: the engine implements them over its store, storage and event bus,
and a plug-in never sees more than the narrow services named here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.sdk.clock import Clock
from daemon.sdk.nsfiles import NamespaceFiles
from daemon.sdk.services import (
    Closer,
    EngineControl,
    ExecutionListener,
    ExecutionQueries,
    Files,
    FlowDefinition,
    FlowRef,
    KeyValueStore,
    Reviews,
    Secrets,
    StateStore,
    WebhookRoutes,
)
from daemon.sdk.state import State

if TYPE_CHECKING:
    from daemon.sdk.execution import Execution, TaskRun
    from daemon.sdk.inputs import InputSpec

# Kestra's log levels, lowest first; the store keeps the number so that a minimum level
# is one comparison.
LEVELS: dict[str, int] = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4}


class TaskLogger(ABC):
    """An execution's log: every line goes to the store with its task run and level."""

    @abstractmethod
    def log(self, level: str, message: str) -> None:
        """`level` is one of LEVELS (WARNING is read as WARN)."""

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


@dataclass(frozen=True)
class ReportedRun:
    """Work a task did itself that a person should see as a task run of its own under the
    task's run (Kestra's dynamic task runs: one per dbt model). It runs nothing: the engine
    records it with the states and times it went through (`history`, oldest first, the
    last one terminal), its outputs, and its log lines as (level, message)."""

    task_id: str
    history: Sequence[tuple[State, datetime]]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    logs: Sequence[tuple[str, str]] = ()


class RunContext(ABC):
    """Handed to `Task.run`; one per task-run attempt."""

    flow: FlowRef
    execution: Execution
    task_run: TaskRun
    variables: dict[str, Any]
    logger: TaskLogger
    clock: Clock
    files: Files
    kv: KeyValueStore
    # Every namespace's file tree (Kestra's namespace files), kept in the store.
    namespace_files: NamespaceFiles
    secrets: Secrets
    executions: ExecutionQueries
    # Acting on other executions, triggers and tasks (Kestra's Kill, Toggle, TemplatedTask).
    control: EngineControl
    # Waiting for a reviewer's decision (Kestra's Approval).
    reviews: Reviews
    public_url: str | None
    # Set by a task that succeeded with a caveat (e.g. warningOnStdErr): it ends WARNING.
    warning: bool
    # The directory `podium serve` loads flows from and watches (None in `podium run`): a
    # flow file written there is loaded (or reported invalid in the daemon's log), one
    # removed is unloaded; git's SyncFlows and PushFlows work on it.
    flows_dir: Path | None

    @abstractmethod
    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render a value (strings inside lists and maps too) with this task run's variables."""

    @abstractmethod
    def render_bool(self, value: str | bool) -> bool: ...

    async def render_async(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """`render` from a coroutine: the way plug-ins should render, since an expression
        may need seconds (jq, long loops) that must not hold the event loop."""
        return self.render(value, extra)

    async def render_bool_async(self, value: str | bool) -> bool:
        """`render_bool` from a coroutine (see `render_async`)."""
        return self.render_bool(value)

    @property
    @abstractmethod
    def working_dir_path(self) -> Path:
        """Where `working_dir()` is (or will be): for messages, before it exists."""

    @abstractmethod
    async def working_dir(self) -> Path:
        """A fresh directory for this task run, created on first use, removed afterwards."""

    @abstractmethod
    def storage_prefix(self) -> str:
        """Where this task run's output files are stored."""

    @abstractmethod
    async def put_file(self, source: Path | bytes, name: str | None = None) -> str:
        """Store a file the task produced under `storage_prefix()`; returns its URI."""

    @abstractmethod
    async def file_path(self, uri: str) -> Path:
        """The local path of a stored file, to read it; NotFound if missing."""

    @abstractmethod
    def data_path(self, *parts: str) -> Path:
        """A directory of the daemon's data for a plug-in's own use (caches, environments);
        not created here."""

    @abstractmethod
    async def pause(
        self, seconds: float | None, on_resume: Sequence[InputSpec]
    ) -> dict[str, Any] | None:
        """Hold this task run and its execution PAUSED until resumed (with the coerced
        `onResume` values) or until `seconds` pass (None)."""

    @abstractmethod
    def add_labels(self, labels: Mapping[str, str]) -> None: ...

    @abstractmethod
    def metric(
        self, name: str, type_: str, value: float, tags: Mapping[str, str] | None = None
    ) -> None:
        """Record a metric (counter, timer or gauge) of this task run."""

    @abstractmethod
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
        """Start another flow through the one submit path, optionally waiting for its end.

        `revision` picks a revision of the flow (default: the latest). With a `key`, the
        call is idempotent: this task run asking again with the same key (an attempt
        interrupted by a crash and run again) gets the execution the first call created.
        `iteration` tells the child which of the task run's several subflows it is
        (`trigger.taskRunIteration`).
        """

    @abstractmethod
    async def find_flow(self, namespace: str, flow_id: str) -> FlowDefinition:
        """Another flow, as the daemon has it loaded (its latest revision); NotFound."""

    @abstractmethod
    async def set_variables(self, variables: Mapping[str, Any]) -> None:
        """Replace the execution's variables, which tasks that start afterwards read as
        `vars`; stored at once."""

    @abstractmethod
    async def resume_execution(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        """Resume a PAUSED execution (this one or another) as the API's resume does, with
        the `onResume` inputs of the task that holds it; False when none is paused under
        that id. InputError when the inputs do not fit."""

    async def run_iteration(self, index: int, value: str, key: str | None = None) -> Execution:
        """Start one iteration of this task's child tasks (a task that `RunsIterations`) as an
        execution of its own, of this flow, that sees this execution's inputs, outputs and
        `execution.*`, and `item.index`, `item.value`, `item.key` (Kestra's loop
        sub-execution). Idempotent by `index` for this task run: asked again after a crash,
        it returns the execution the first call created."""
        raise NotImplementedError(f"{type(self).__name__} cannot run iterations")

    async def report_task_runs(self, runs: Sequence[ReportedRun]) -> None:
        """Record `runs` as children of this task run, stored and shown at once."""
        raise NotImplementedError(f"{type(self).__name__} cannot record task runs")

    @abstractmethod
    def on_close(self, key: str, closer: Closer) -> None:
        """Have `closer` run once when the daemon stops (a plug-in's pools and clients);
        the first closer registered under a key is kept."""


class TriggerContext(ABC):
    """Handed to `Trigger.run`: the flow it belongs to and the daemon's services.

    `logger` is the daemon's own log (stdout/journald), not an execution's. State that
    must survive restarts goes to `state`, under keys from `state_key`.
    """

    flow: FlowRef
    trigger_id: str
    logger: logging.Logger
    clock: Clock
    files: Files
    state: StateStore
    executions: ExecutionQueries
    secrets: Secrets
    webhooks: WebhookRoutes
    # This node's name in a cluster (None on a single node).
    node_id: str | None
    # Directories a file trigger may watch, read, move or delete in.
    allowed_paths: Sequence[Path]

    @abstractmethod
    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render a trigger property the flow author templated (never outside data), with
        `flow`, `envs` and `labels`, plus `extra`."""

    async def render_async(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """`render` from a coroutine, without holding the event loop (jq, long loops)."""
        return self.render(value, extra)

    def state_key(self, *parts: str) -> str:
        """A state key owned by this trigger of this flow: `trigger:ns:flow:id:parts...`."""
        return ":".join(("trigger", self.flow.namespace, self.flow.id, self.trigger_id, *parts))

    @abstractmethod
    def data_path(self, *parts: str) -> Path:
        """A directory of the daemon's data for a plug-in's own use; not created here."""

    @abstractmethod
    def watch_executions(self, listener: ExecutionListener) -> Callable[[], None]:
        """Call `listener` (synchronously, keep it short) on every change of an execution's
        state; returns the function that stops it."""

    @abstractmethod
    async def wait_locked(self, execution_id: str) -> Execution | None:
        """Wait for the end of an execution this trigger started, the trigger locked
        meanwhile (Kestra's lock: a polling trigger is not evaluated while its execution
        runs). The ended execution; None when the lock is released first through the API
        (unlock), the trigger then going on at once, its execution still running."""

    @abstractmethod
    def count_rejected(self) -> None:
        """Count an event this trigger refused itself (malformed, conditions not met), for
        /metrics; what it emits, and what `emit` refuses, is counted for it."""

    @abstractmethod
    def connection(self, up: bool) -> None:
        """A trigger holding a connection (a broker) says whether it is connected now."""


@dataclass(frozen=True)
class StartupContext:
    """Handed to a plug-in module's `async def on_daemon_start(ctx)` hook, run once when
    `podium serve` starts, before any execution resumes (clean-up after a crash)."""

    data_dir: Path
    logger: logging.Logger
