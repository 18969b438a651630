"""The store interface every backend implements, and the document checks they share.

The store keeps Kestra-shaped JSON documents and only looks inside them for the
few columns it indexes. The row-extraction helpers live here, not in a backend,
so that SQLite and PostgreSQL refuse exactly the same malformed input with the
same message.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Self

import orjson

from daemon.sdk.context import LEVELS
from daemon.sdk.errors import PodiumError

if TYPE_CHECKING:
    from daemon.store.insights import Insights
    from daemon.store.namespace_files import NamespaceFileTable
    from daemon.store.purge import Purges
    from daemon.store.tables import KeyValueTable, RevisionTable, StateTable


class StoreError(PodiumError):
    """The database cannot be opened or written: wrong file, newer schema, disk trouble."""


class StoreLost(StoreError):
    """No write can succeed again in this process (the file deleted, replaced, corrupted;
    the writer stopped): retrying is pointless, a restart with the file restored helps."""


class _Queued:
    """What a write not waited for hands back: awaiting it returns at once."""

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


QUEUED = _Queued()


class ExecutionRow(NamedTuple):
    id: str
    namespace: str
    flow_id: str
    state: str
    start_date: str | None
    end_date: str | None
    labels: str
    doc: str


class TaskRunRow(NamedTuple):
    id: str
    execution_id: str
    state: str
    doc: str


class LogRow(NamedTuple):
    execution_id: str
    task_run_id: str | None
    level: int
    timestamp: str | None
    message: str | None
    doc: str


class MetricRow(NamedTuple):
    execution_id: str
    task_run_id: str | None
    name: str | None
    timestamp: str | None
    doc: str


def sortable_time(value: str | None, what: str = "timestamp") -> str | None:
    """One fixed-width UTC form, so that text comparison is time comparison.

    Kestra writes "…:00Z" and "…:00.123456Z" for the same second; compared as text
    the shorter sorts after the longer, so every indexed date goes through here.
    """
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not an ISO-8601 date") from exc
    if len(value) == 27 and value[10] == "T" and value[19] == "." and value[-1] == "Z":
        return value  # already the form below (podium's own dates): no formatting again
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_json(value: Any, what: str) -> str:
    """Serialise at call time: the caller may keep mutating its dict after a `wait=False` save."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from exc


def _need(doc: Mapping[str, Any], key: str, kind: str) -> str:
    if type(doc) is not dict and not isinstance(doc, Mapping):  # a dict skips the ABC check
        raise ValueError(f"{kind} must be a dict, got {type(doc).__name__}")
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        ident = doc.get("id")
        which = f" {ident!r}" if isinstance(ident, str) and key != "id" else ""
        raise ValueError(f"{kind}{which} has no {key!r} (a non-empty string is required)")
    return value


def _current_state(doc: Mapping[str, Any], kind: str) -> tuple[str, Mapping[str, Any]]:
    state = doc.get("state")
    current = state.get("current") if isinstance(state, Mapping) else None
    if not isinstance(state, Mapping) or not isinstance(current, str):
        raise ValueError(f"{kind} {doc.get('id')!r} has no 'state.current'")
    return current, state


def execution_row(doc: Mapping[str, Any]) -> ExecutionRow:
    """Validate an execution document and pull out its indexed columns."""
    kind = "execution"
    ident = _need(doc, "id", kind)
    namespace = _need(doc, "namespace", kind)
    flow_id = _need(doc, "flowId", kind)
    current, state = _current_state(doc, kind)
    start = state.get("startDate")
    if start is None and state.get("histories"):
        start = state["histories"][0].get("date")
    labels = doc.get("labels") or []
    if isinstance(labels, Mapping):
        labels = [{"key": k, "value": v} for k, v in labels.items()]
    body = {k: v for k, v in doc.items() if k != "taskRunList"} if "taskRunList" in doc else doc
    return ExecutionRow(
        id=ident,
        namespace=namespace,
        flow_id=flow_id,
        state=current,
        start_date=sortable_time(start, f"execution {ident!r} startDate"),
        end_date=sortable_time(state.get("endDate"), f"execution {ident!r} endDate"),
        labels=to_json(labels, f"execution {ident!r} labels"),
        doc=to_json(body, f"execution {ident!r}"),
    )


def task_run_row(doc: Mapping[str, Any]) -> TaskRunRow:
    """Validate a task-run document and pull out its indexed columns."""
    kind = "task run"
    ident = _need(doc, "id", kind)
    execution_id = _need(doc, "executionId", kind)
    current, _ = _current_state(doc, kind)
    return TaskRunRow(ident, execution_id, current, to_json(doc, f"task run {ident!r}"))


def log_row(line: Mapping[str, Any]) -> LogRow:
    """Validate a log line; the message is kept in its own column, not twice."""
    execution_id = _need(line, "executionId", "log line")
    level = line.get("level", "INFO")
    if level not in LEVELS:
        raise ValueError(f"log line level {level!r} is not one of {', '.join(LEVELS)}")
    message = line.get("message")
    body = dict(line)
    if isinstance(message, str):
        del body["message"]
    else:
        message = None
    return LogRow(
        execution_id,
        line.get("taskRunId"),
        LEVELS[level],
        line.get("timestamp"),
        message,
        to_json(body, f"log line of execution {execution_id!r}"),
    )


def log_doc(message: str | None, doc: str) -> dict[str, Any]:
    """Inverse of `log_row`: the line exactly as it was appended."""
    line: dict[str, Any] = json.loads(doc)
    if message is not None:
        line["message"] = message
    return line


def metric_row(metric: Mapping[str, Any]) -> MetricRow:
    execution_id = _need(metric, "executionId", "metric")
    return MetricRow(
        execution_id,
        metric.get("taskRunId"),
        metric.get("name"),
        metric.get("timestamp"),
        to_json(metric, f"metric of execution {execution_id!r}"),
    )


def level_number(min_level: str | None) -> int | None:
    if min_level is None:
        return None
    if min_level not in LEVELS:
        raise ValueError(f"min_level {min_level!r} is not one of {', '.join(LEVELS)}")
    return LEVELS[min_level]


def check_page(page: int, size: int) -> None:
    if page < 1 or size < 1:
        raise ValueError(f"page and size start at 1 (got page={page}, size={size})")


@dataclass(frozen=True)
class ExecutionQuery:
    """A search's filters, checked and in the store's own forms (dates sortable text)."""

    namespace: str | None
    flow_id: str | None
    states: list[str] | None
    labels: dict[str, str]
    start_after: str | None
    start_before: str | None
    limit: int
    offset: int
    # Kestra's `q`: text found (any case) in the id, the namespace or the flow id.
    text: str | None = None
    # The namespace alone, not the ones under it.
    exact_namespace: bool = False
    # Only executions that have ended, the last to end first (Kestra's lastExecutions).
    latest_end: bool = False


class Store(ABC):
    """Durable home of flows, executions, task runs, logs, metrics, KV and trigger state.

    Execution and task-run saves are group-committed: awaiting one returns once the
    transaction holding it is committed, and concurrent saves share that commit.
    `wait=False` saves, logs and metrics are queued in call order; `flush()` (or
    `close()`) is the point after which they are durable and readable.
    Cancelling an awaited save does not cancel the write.
    """

    # True for a store several daemons may share as a cluster (PostgreSQL).
    shared: bool = False
    # Every revision of each flow, listed and deleted one by one (Kestra's revisions).
    revisions: RevisionTable
    # Kestra's KV pairs, and the daemon's own small durable state (triggers' markers).
    kv: KeyValueTable
    state: StateTable
    # Each namespace's file tree (daemon/store/namespace_files.py).
    namespace_files: NamespaceFileTable
    # Queries across executions: the dashboard's, the logs page's (daemon/store/insights.py).
    insights: Insights
    # Deletions across executions (Kestra's PurgeLogs).
    purges: Purges

    # Called with (what, seconds) after each committed write transaction (a group commit
    # counts once); /metrics observes store write latency through it. Must not block.
    observe_write: Callable[[str, float], None] | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date; a newer schema is a `StoreError`."""

    @abstractmethod
    async def close(self) -> None:
        """Commit everything queued, then release connections. Safe to call twice."""

    async def problem(self) -> str | None:
        """Why the store cannot keep what it is given now, found without a write (its file
        deleted or corrupted), or None. A server out of reach shows in reads instead."""
        return None

    # flows: each change of source is a new revision, so executions can name theirs

    @abstractmethod
    async def save_flow(self, namespace: str, flow_id: str, source: str) -> int:
        """Return the revision holding `source`; the same source as the latest reuses it."""

    @abstractmethod
    async def get_flow(
        self, namespace: str, flow_id: str, revision: int | None = None
    ) -> tuple[int, str] | None:
        """Latest live revision, or the given one even after deletion (old executions show it)."""

    @abstractmethod
    async def list_flows(self) -> list[dict[str, Any]]:
        """Latest revision of each live flow: namespace, id, revision, source, updated."""

    @abstractmethod
    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        """Hide the flow: its latest revision is marked deleted (Kestra's soft delete). Its
        revisions stay readable and a later save starts a new one."""

    # executions and task runs

    @abstractmethod
    async def save_execution(self, doc: dict[str, Any], *, wait: bool = True) -> None:
        """Insert or replace by id. A malformed doc raises `ValueError` before queueing."""

    @abstractmethod
    async def create_execution(self, doc: dict[str, Any]) -> bool:
        """Insert unless an execution with that id exists: then change nothing, return False.

        Committed before it returns. Idempotency keys rest on it: of several submissions
        with one id, on however many daemons, exactly one creates the execution.
        """

    @abstractmethod
    def save_task_run(
        self, doc: dict[str, Any], *, wait: bool = True, soon: bool = True
    ) -> Awaitable[Any]:
        """Insert or replace by id, queued at the call behind every write queued before it;
        the first save fixes its place in `taskRunList`. Its commit, to await now or later
        (a write queued after it that committed means it committed too); `QUEUED` without
        `wait`. Not a coroutine: the write is queued even if the result is never awaited.
        Without `soon`, a store may hold the write back a little for the next write someone
        waits for (`flush` is one), to commit them together."""

    @abstractmethod
    def append_logs(self, lines: Sequence[dict[str, Any]]) -> None:
        """Queue log lines; callable from any thread. All lines are checked before any is queued."""

    @abstractmethod
    def append_metrics(self, metrics: Sequence[dict[str, Any]]) -> None:
        """Queue metrics; callable from any thread."""

    @abstractmethod
    async def flush(self) -> None:
        """Return once everything queued before the call is committed."""

    @abstractmethod
    async def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        """The execution doc with "taskRunList" in creation order."""

    async def search_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        start_after: str | None = None,
        start_before: str | None = None,
        page: int = 1,
        size: int = 25,
        q: str | None = None,
        exact_namespace: bool = False,
        latest_end: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page, newest start first, and the total matching.

        `namespace` also matches its sub-namespaces (as Kestra's filter does), unless
        `exact_namespace` (Kestra's executions of one flow, its EQUALS filter);
        the time window is half-open: start_after <= startDate < start_before;
        `q` is text found, in any case, in the id, the namespace or the flow id.
        With `latest_end`, only ended executions, the last to end first.
        """
        check_page(page, size)
        if states is not None and not states:
            return [], 0
        query = ExecutionQuery(
            namespace,
            flow_id,
            list(states) if states is not None else None,
            dict(labels or {}),
            sortable_time(start_after, "start_after"),
            sortable_time(start_before, "start_before"),
            size,
            (page - 1) * size,
            q.lower() if q else None,
            exact_namespace,
            latest_end,
        )
        return await self._search(query)

    @abstractmethod
    async def _search(self, query: ExecutionQuery) -> tuple[list[dict[str, Any]], int]:
        """`search_executions` in this store's SQL dialect, on checked filters."""

    @abstractmethod
    async def count_executions(self, namespace: str, flow_id: str, states: Sequence[str]) -> int:
        """For the concurrency gate: exact namespace and flow."""

    @abstractmethod
    async def delete_task_runs(self, execution_id: str, task_run_ids: Sequence[str]) -> None:
        """Remove some task runs of an execution (a restart runs its handlers anew)."""

    @abstractmethod
    async def delete_execution(
        self, execution_id: str, *, logs: bool = True, metrics: bool = True
    ) -> None:
        """Remove the execution with its task runs, and its logs and metrics unless told to
        keep them (Kestra's `deleteLogs` / `deleteMetrics`)."""

    @abstractmethod
    async def logs(
        self,
        execution_id: str,
        *,
        task_run_id: str | None = None,
        min_level: str | None = None,
    ) -> list[dict[str, Any]]:
        """Lines in the order they were appended."""

    @abstractmethod
    async def metrics(self, execution_id: str) -> list[dict[str, Any]]:
        """Metrics in the order they were appended."""
