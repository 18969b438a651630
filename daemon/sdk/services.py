"""The narrow services the core hands a plug-in through its context.

Each is a small protocol: a plug-in sees what it needs (files, a namespace's KV pairs,
its own durable state, the executions it may wait for) and never the engine or the
store behind them, so the core can change how they are kept without touching a plug-in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from daemon.sdk.clock import Clock
    from daemon.sdk.execution import Execution
    from daemon.sdk.inputs import InputSpec
    from daemon.sdk.plugin import Task
    from daemon.sdk.review import Review, ReviewForm

WebhookHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]
# The request's match_info key of what follows the key in a webhook URL, Kestra's optional
# `{/path}` segment (`.../webhook/{namespace}/{flowId}/{key}/{path}`); absent without one.
WEBHOOK_SUBPATH = "path"


class FlowRef(Protocol):
    """What a plug-in may read of the flow it belongs to."""

    @property
    def namespace(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def revision(self) -> int | None: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def inputs(self) -> list[InputSpec]: ...


class FlowDefinition(FlowRef, Protocol):
    """Another flow as loaded, down to its tasks (what a Template task injects)."""

    @property
    def tasks(self) -> Sequence[Task]: ...

    @property
    def errors(self) -> Sequence[Task]: ...


class Files(Protocol):
    """The daemon's file storage, whose files are addressed by `kestra://` URIs."""

    def execution_prefix(self, namespace: str, flow_id: str, execution_id: str) -> str:
        """Where an execution's files live: every URI under it belongs to the execution."""
        ...

    async def put(self, source: Path | bytes, *, prefix: str, name: str) -> str:
        """Store a file (or bytes) under `prefix`; returns its URI. StorageError when the
        storage refuses it; the source's own OSError when it cannot be read."""
        ...

    async def path(self, uri: str) -> Path:
        """A local path to read the file from; NotFound when there is none. With object
        storage or PostgreSQL it is a cached copy: read it, never write to it."""
        ...

    async def read_text(self, uri: str) -> str: ...

    async def delete(self, uri: str) -> bool:
        """Remove one file; False when there was none."""
        ...

    async def delete_prefix(self, prefix: str) -> list[str]:
        """Remove every file under `prefix`; returns their URIs."""
        ...


class KeyValueStore(Protocol):
    """Kestra's KV store: JSON values by key, scoped by namespace, with optional expiry."""

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """(found, value): None is a value a flow may store."""
        ...

    async def set(
        self, namespace: str, key: str, value: Any, *, expires_at: datetime | None = None
    ) -> None: ...

    async def delete(self, namespace: str, key: str) -> bool: ...

    async def list(self, namespace: str) -> list[dict[str, Any]]: ...

    async def purge(
        self,
        *,
        namespaces: Sequence[str] | None,
        include_children: bool,
        namespace_glob: str | None,
        key_glob: str | None,
        expired_only: bool,
    ) -> int:
        """Delete pairs of these namespaces (all when None; children too when asked) or
        matching `namespace_glob`, with keys matching `key_glob`, only expired ones when
        `expired_only`; how many went."""
        ...


class StateStore(Protocol):
    """Durable small state of a plug-in (a trigger's markers), kept across restarts and
    shared by the nodes of a cluster. Keys come from `TriggerContext.state_key`."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any]) -> None: ...

    async def claim(self, key: str) -> bool:
        """True for the first caller ever, across restarts and nodes: exactly-once."""
        ...

    async def claimed(self, key: str) -> bool:
        """Whether `key` was claimed, without claiming it: a plug-in records what it is
        about to do before it claims, so that a crash right after the claim is undone."""
        ...


class ExecutionQueries(Protocol):
    """Executions a plug-in may look at or wait for."""

    async def wait(self, execution_id: str) -> Execution:
        """The execution once it has ended, wherever it runs."""
        ...

    def watch(self, listener: ExecutionListener) -> Callable[[], None]:
        """Call `listener` (synchronously, keep it short) on every change of the state of
        an execution run by this process; returns the function that stops it."""
        ...

    async def logs(
        self, execution_id: str, *, task_run_id: str | None = None, min_level: str | None = None
    ) -> list[dict[str, Any]]:
        """Its log lines so far (everything appended until now included)."""
        ...

    async def get(self, execution_id: str) -> Execution | None:
        """The execution as stored now (with its task runs), or None."""
        ...

    async def search(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Sequence[str] | None = None,
        start_after: str | None = None,
        start_before: str | None = None,
        page: int = 1,
        size: int = 100,
    ) -> tuple[list[dict[str, Any]], int]:
        """Stored executions, newest first, without task runs, and how many match.

        `namespace` matches its sub-namespaces too; the start window is half-open,
        start_after <= startDate < start_before (ISO-8601 texts)."""
        ...

    async def purge_logs(
        self,
        *,
        end: datetime,
        start: datetime | None = None,
        levels: Sequence[str] | None = None,
        execution_id: str | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> int:
        """Delete the stored log lines written in [start, end) at these levels (all when
        None), of one execution, flow or namespace (with sub-namespaces); how many went."""
        ...

    async def delete(self, execution_id: str) -> dict[str, int]:
        """Remove an ended execution from the store with its task runs, logs and metrics
        (not its files: `Files.delete_prefix`); how many `logs` and `metrics` went."""
        ...


class Reviews(Protocol):
    """Waiting for a person's decision (Kestra's Approval): the task run and its execution
    are PAUSED until a reviewer approves or denies (the API's review, checked against the
    form before anything resumes), or until `seconds` pass (None)."""

    async def wait(self, seconds: float | None, form: ReviewForm) -> Review | None: ...


class EngineControl(Protocol):
    """What a task may do to the daemon beyond its own run: kill an execution, toggle a
    trigger, build a task from its YAML (Kestra's Kill, Toggle and TemplatedTask)."""

    async def kill(self, execution_id: str) -> bool:
        """Kill an execution (this one or another) as the API's kill does; False when none
        runs under that id. Killing the calling task's own execution cancels it too."""
        ...

    async def toggle_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None:
        """Disable or enable a trigger of a flow durably (as the API does); NotFound for an
        unknown flow or trigger, PodiumError when it cannot be done here."""
        ...

    def build_task(self, spec: Mapping[str, Any]) -> Task:
        """A runnable task from its YAML mapping, as the flow loader builds one (its
        expressions left to render); ValueError naming what is wrong with it."""
        ...


class Secrets(Protocol):
    """Secret values in clear never leave the process: everything stored is masked."""

    def mask(self, text: str) -> str:
        """`text` with every secret known so far replaced by ******."""
        ...

    def add(self, value: str) -> None:
        """A value to mask from now on (a password a plug-in read from its properties)."""
        ...

    def masked(self, value: Any) -> Any:
        """`value` (text, or lists and mappings of them) with every secret known so far
        replaced by ******: what a plug-in hands out of the process (a webhook's answer)."""
        ...


class WebhookRoutes(Protocol):
    """The API's webhook route, to which Webhook triggers attach their handler. A request
    with a path after the key reaches the same handler, the path in
    `request.match_info[WEBHOOK_SUBPATH]`: a handler that takes none raises NotFound, which
    the route answers as it answers an unknown key."""

    def attach(
        self, namespace: str, flow_id: str, key: str, handler: WebhookHandler
    ) -> Callable[[], None]:
        """Route requests for this flow and key to `handler`; returns the detach function.
        ValueError when another handler holds the same flow and key."""
        ...


class AlertServices(Protocol):
    """What an alert channel (`capabilities.AlertChannel`) sends with: a task's context
    satisfies it, and so does the daemon's `alerts:` setting."""

    @property
    def clock(self) -> Clock: ...

    @property
    def files(self) -> Files: ...

    @property
    def executions(self) -> ExecutionQueries: ...

    @property
    def public_url(self) -> str | None: ...


Closer = Callable[[], Awaitable[None]]
ExecutionListener = Callable[["Execution"], None]
