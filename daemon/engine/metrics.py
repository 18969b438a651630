"""What this process has been doing, in numbers: the counts behind `GET /metrics`.

They are fed by the engine's events, by the triggers' contexts (`count_rejected`,
`connection`) and emitter, and by the store (`observe_write`); `daemon.api.prometheus`
turns them into Prometheus families at scrape time, adding what is read from the engine
then (queue depth, running executions, store up). The listener runs
on the executor's hot path (several events per task run), so the counts are plain dicts
and a small histogram of our own: no lock, no label validation per event, and no import
of prometheus_client for `podium run`, which never serves them. Counts start at zero with
the process, as Prometheus expects of counters: no total is read back from the store.

Task metrics that scripts send (`Kestra.counter/timer`, stored as the execution's
metrics) are counted too, labelled namespace, flow, task, name and one `tag_<key>` label
per tag the script gave (the key made a valid label name: other characters become `_`).
Each distinct set of label values is one series kept for the life of the process, so a
script that puts an id or a timestamp in a tag would grow it without end: past
`MAX_TASK_METRIC_SERIES` new series are dropped and counted instead.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from daemon.engine.events import Event, ExecutionChanged, MetricRecorded, TaskRunChanged
from daemon.engine.local import LocalExecutions
from daemon.engine.resources import Resources
from daemon.flows.catalog import FlowCatalog
from daemon.flows.definition import Flow
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.state import State

log = logging.getLogger(__name__)

MAX_TASK_METRIC_SERIES = 10_000
MAX_STORE_OPERATIONS = 20  # distinct `what` of store writes; more are counted as "other"
STORE_PROBE_TIMEOUT = 5.0  # seconds a scrape waits for the store's answer before "down"

# Task runs last from a millisecond (a Return) to hours (a taxi load).
TASK_RUN_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
)
# A group commit takes well under a millisecond on a quiet disk, seconds on a sick one.
STORE_WRITE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")

# namespace, flow, task id, metric name, sorted (label, value) pairs of its tags
TaskSeries = tuple[str, str, str, str, tuple[tuple[str, str], ...]]
ConnectionKey = tuple[str, str, str, str]  # trigger type, namespace, flow, trigger id


def label_name(tag: str) -> str:
    """A script's tag key as a Prometheus label name; `tag_` keeps it clear of ours."""
    return "tag_" + _LABEL_CHARS.sub("_", tag)


class Histogram:
    """Prometheus' histogram: a count per bucket (cumulated when exported) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # value <= its bound
        self.sum += value

    def cumulative(self) -> list[int]:
        out, total = [], 0
        for count in self.counts:
            total += count
            out.append(total)
        return out


class Metrics:
    """The counts of one engine and the listener that feeds them."""

    def __init__(self, resources: Resources, catalog: FlowCatalog, local: LocalExecutions) -> None:
        self._resources = resources
        self._catalog = catalog
        self._local = local
        self.started: dict[tuple[str, str], int] = {}  # (namespace, flow)
        self.ended: dict[tuple[str, str, str], int] = {}  # (namespace, flow, state)
        self.task_runs: dict[tuple[str, str], Histogram] = {}  # (task type, state)
        self.received: dict[str, int] = {}  # trigger type
        self.rejected: dict[str, int] = {}
        self.connections: dict[ConnectionKey, tuple[float, asyncio.Task[Any]]] = {}
        self.store_writes: dict[str, Histogram] = {}  # operation; written by the store's thread
        self.store_lock = threading.Lock()
        self.store_up = 1.0
        self.task_counters: dict[TaskSeries, float] = {}
        self.task_timers: dict[TaskSeries, list[float]] = {}  # [count, sum]
        self.task_gauges: dict[TaskSeries, float] = {}
        self.dropped = 0  # task metrics past MAX_TASK_METRIC_SERIES
        self._task_types: dict[tuple[str, str], tuple[Flow, dict[str, str]]] = {}
        self._trigger_types: dict[str, str] = {}
        # Figures other parts of the process read out when scraped (a cluster node's
        # workers): name -> (help, read).
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        resources.events.subscribe(self._event)
        resources.store.observe_write = self._store_write

    # -- engine events (the hot path) ---------------------------------------------------

    def _event(self, event: Event) -> None:
        if isinstance(event, TaskRunChanged):
            if event.task_run.state.current.terminated:
                self._task_run_ended(event.execution, event.task_run)
        elif isinstance(event, ExecutionChanged):
            self._execution_changed(event.execution)
        elif isinstance(event, MetricRecorded):
            self._task_metric(event.execution, event.metric)

    def _execution_changed(self, execution: Execution) -> None:
        state = execution.state.current
        if state is State.RUNNING:
            history = execution.state.histories
            if len(history) < 2 or history[-2][0] is not State.PAUSED:
                key = (execution.namespace, execution.flow_id)
                self.started[key] = self.started.get(key, 0) + 1
        elif state.terminated:
            ended = (execution.namespace, execution.flow_id, state.value)
            self.ended[ended] = self.ended.get(ended, 0) + 1

    def _task_run_ended(self, execution: Execution, task_run: TaskRun) -> None:
        state = task_run.state
        key = (self._task_type(execution, task_run.task_id), state.current.value)
        histogram = self.task_runs.get(key)
        if histogram is None:
            histogram = self.task_runs[key] = Histogram(TASK_RUN_BUCKETS)
        histogram.observe((state.histories[-1][1] - state.histories[0][1]).total_seconds())

    def _task_type(self, execution: Execution, task_id: str) -> str:
        """The task's full Kestra type, from the loaded flow ("unknown" for a flow that is
        not loaded, such as a subflow found only in the store)."""
        uid = (execution.namespace, execution.flow_id)
        flow = self._catalog.get(*uid)
        if flow is None:
            return "unknown"
        cached = self._task_types.get(uid)
        if cached is None or cached[0] is not flow:
            cached = self._task_types[uid] = (
                flow,
                {t.id: type(t).types[0] if type(t).types else t.type for t in flow.all_tasks()},
            )
        return cached[1].get(task_id, "unknown")

    def _task_metric(self, execution: Execution, metric: Mapping[str, Any]) -> None:
        kind, value = metric.get("type"), metric.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        tags = metric.get("tags") or {}
        series: TaskSeries = (
            execution.namespace,
            execution.flow_id,
            str(metric.get("taskId")),
            str(metric.get("name")),
            tuple(sorted((label_name(str(k)), str(v)) for k, v in tags.items())),
        )
        if kind == "counter":
            if value >= 0 and self._room(self.task_counters, series):
                self.task_counters[series] = self.task_counters.get(series, 0.0) + value
        elif kind == "timer":
            if self._room(self.task_timers, series):
                totals = self.task_timers.setdefault(series, [0.0, 0.0])
                totals[0] += 1
                totals[1] += value
        elif kind == "gauge" and self._room(self.task_gauges, series):
            self.task_gauges[series] = float(value)

    def _room(self, table: Mapping[TaskSeries, Any], series: TaskSeries) -> bool:
        if series in table:
            return True
        kept = len(self.task_counters) + len(self.task_timers) + len(self.task_gauges)
        if kept < MAX_TASK_METRIC_SERIES:
            return True
        if not self.dropped:
            log.warning(
                "task metrics: %d series are exported already; new ones (such as %s "
                "of %s.%s) are dropped: a tag whose value changes every run makes a "
                "series per run",
                kept,
                series[3],
                series[0],
                series[1],
            )
        self.dropped += 1
        return False

    # -- hooks -----------------------------------------------------------------------------

    def trigger_event(self, trigger_type: str, *, rejected: bool = False) -> None:
        table = self.rejected if rejected else self.received
        canonical = self._trigger_type(trigger_type)
        table[canonical] = table.get(canonical, 0) + 1

    def trigger_connection(
        self, trigger_type: str, namespace: str, flow_id: str, trigger_id: str, up: bool
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            key = (self._trigger_type(trigger_type), namespace, flow_id, trigger_id)
            self.connections[key] = (1.0 if up else 0.0, task)

    def live_connections(self) -> list[tuple[ConnectionKey, float]]:
        """The connections of triggers still running; the others are forgotten now."""
        out = []
        for key, (up, task) in list(self.connections.items()):
            if task.done():
                del self.connections[key]
            else:
                out.append((key, up))
        return out

    def _trigger_type(self, name: str) -> str:
        """An alias counts under the type's full Kestra name (its first name)."""
        found = self._trigger_types.get(name)
        if found is None:
            registry = self._resources.plugins.triggers
            found = registry.get(name).types[0] if name in registry else name
            self._trigger_types[name] = found
        return found

    def _store_write(self, what: str, seconds: float) -> None:
        """Called from the store's writer thread; the lock keeps a scrape's copy whole."""
        with self.store_lock:
            histogram = self.store_writes.get(what)
            if histogram is None:
                if len(self.store_writes) >= MAX_STORE_OPERATIONS:
                    what = "other"
                histogram = self.store_writes.setdefault(what, Histogram(STORE_WRITE_BUCKETS))
            histogram.observe(seconds)

    def store_write_snapshot(self) -> list[tuple[str, list[int], float]]:
        with self.store_lock:
            return [(what, h.cumulative(), h.sum) for what, h in self.store_writes.items()]

    # -- read at scrape time ---------------------------------------------------------------

    async def probe_store(self, timeout: float = STORE_PROBE_TIMEOUT) -> str | None:
        """Whether the store can keep what it is given now: its file still there and
        sound (SQLite), a read answered (the database connection). Returns why not."""
        store = self._resources.store
        try:
            async with asyncio.timeout(timeout):
                problem = await store.problem()
                if problem is None:
                    await store.state.get("metrics:probe")
        except Exception as exc:  # any failure to answer is "down"; the reason is logged
            problem = str(exc) or f"no answer within {timeout:g}s"
        if problem is not None:
            if self.store_up:
                log.warning("metrics: the store does not answer: %s", problem)
            self.store_up = 0.0
        else:
            self.store_up = 1.0
        return problem

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Publish `read()` as the gauge `name` at each scrape."""
        self.gauges[name] = (help_text, read)

    def waiting(self) -> tuple[int, int]:
        """(queued, running) executions of this process."""
        return self._local.admission.queued, self._local.running
