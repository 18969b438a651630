"""`GET /metrics` for Prometheus, and Kestra's metrics of one execution as JSON.

The counts live in `daemon.metrics` (fed by the engine's events); here each app gets a
`CollectorRegistry` of its own, never prometheus_client's global one, holding one
collector that turns the counts into families at scrape time. `/metrics` is not part of
the `/api/v1` document (a scraper knows its format) but sits behind the same basic auth:
Prometheus' `basic_auth` scrape setting sends it. Metric names follow Prometheus'
conventions: `podium_` prefix, base units in the name (`_seconds`), `_total` on counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from daemon.api.common import (
    ENGINE,
    PAGE,
    SIZE,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    page_of,
    paging,
    stored_execution,
)
from daemon.engine.metrics import STORE_WRITE_BUCKETS, TASK_RUN_BUCKETS, Metrics, TaskSeries

routes = Routes("Metrics")

_TEXT = {"type": "string"}
_ENTRY = {
    "type": "object",
    "required": ["executionId", "name", "type", "value"],
    "properties": {
        "namespace": _TEXT,
        "flowId": _TEXT,
        "executionId": _TEXT,
        "taskId": {"type": ["string", "null"]},
        "taskRunId": {"type": ["string", "null"]},
        "name": _TEXT,
        "type": {"type": "string", "enum": ["counter", "timer", "gauge"]},
        "value": {"type": "number"},
        "timestamp": _TEXT,
        "tags": {"type": "object", "additionalProperties": _TEXT},
    },
}
_PAGE = {
    "type": "object",
    "required": ["results", "total"],
    "properties": {"results": {"type": "array", "items": _ENTRY}, "total": {"type": "integer"}},
}


REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry")


def setup_metrics(app: web.Application) -> None:
    """Serve `/metrics` for the app's engine; its counts start now if no trigger has
    started them already."""
    registry = app[REGISTRY] = CollectorRegistry()
    registry.register(Collector(app[ENGINE].metrics))
    app.router.add_get("/metrics", scrape)


async def scrape(request: web.Request) -> web.Response:
    await request.app[ENGINE].metrics.probe_store()
    encoder, content_type = choose_encoder(request.headers.get("Accept") or "")
    return web.Response(
        body=encoder(request.app[REGISTRY]),
        headers={"Content-Type": content_type, "Cache-Control": "no-store"},
    )


class Collector:
    """The families of one engine's counts, built when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        yield _counter(
            "podium_executions_started",
            "Executions that started running in "
            "this process (one resumed after a restart counts again, a paused one "
            "that resumes does not)",
            ["namespace", "flow"],
            m.started.items(),
        )
        yield _counter(
            "podium_executions_ended",
            "Executions that reached a final state in this process, by that state",
            ["namespace", "flow", "state"],
            m.ended.items(),
        )
        yield _histogram(
            "podium_task_run_duration_seconds",
            "Task runs from creation to "
            "their final state, by task type (its full Kestra name) and state",
            ["type", "state"],
            TASK_RUN_BUCKETS,
            [(key, h.cumulative(), h.sum) for key, h in m.task_runs.items()],
        )
        yield _counter(
            "podium_trigger_events_received",
            "Trigger events submitted as an "
            "execution (an MQTT batch is one event), by trigger type",
            ["type"],
            [((k,), v) for k, v in m.received.items()],
        )
        yield _counter(
            "podium_trigger_events_rejected",
            "Trigger events refused without an "
            "execution: unknown webhook key, body or inputs that do not fit, "
            "conditions not met, MQTT payload that does not parse, flow disabled",
            ["type"],
            [((k,), v) for k, v in m.rejected.items()],
        )
        queued, running = m.waiting()
        yield GaugeMetricFamily(
            "podium_executions_queued",
            "Executions QUEUED in this process, waiting for a concurrency slot",
            value=queued,
        )
        yield GaugeMetricFamily(
            "podium_executions_running", "Executions running in this process", value=running
        )
        connected = GaugeMetricFamily(
            "podium_trigger_connection_up",
            "1 while a trigger holding a connection (MQTT) is "
            "connected to its server, 0 while it is not",
            labels=["type", "namespace", "flow", "trigger"],
        )
        for key, up in m.live_connections():
            connected.add_metric(key, up)
        yield connected
        yield GaugeMetricFamily(
            "podium_store_up",
            "1 when the store answered a read at this scrape, 0 when it did not",
            value=m.store_up,
        )
        yield _histogram(
            "podium_store_write_duration_seconds",
            "Committed store write transactions (a group commit counts once), by operation",
            ["operation"],
            STORE_WRITE_BUCKETS,
            [((what,), counts, total) for what, counts, total in m.store_write_snapshot()],
        )
        yield from _task_families(m)
        for name, (help_text, read) in m.gauges.items():
            yield GaugeMetricFamily(name, help_text, value=read())


def _counter(
    name: str, help_text: str, labels: list[str], counts: Iterable[tuple[Sequence[str], float]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=labels)
    for key, value in counts:
        family.add_metric(key, value)
    return family


def _histogram(
    name: str,
    help_text: str,
    labels: list[str],
    bounds: tuple[float, ...],
    rows: list[tuple[tuple[str, ...], list[int], float]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=labels)
    edges = [repr(float(b)) for b in bounds] + ["+Inf"]
    for key, cumulative, total in rows:
        family.add_metric(key, list(zip(edges, cumulative, strict=True)), total)
    return family


def _task_families(m: Metrics) -> Iterator[Metric]:
    """Script metrics: each series has its own tag labels, so the families are built
    sample by sample rather than with one fixed label list."""
    kinds: tuple[tuple[str, str, str, Mapping[TaskSeries, Any]], ...] = (
        (
            "podium_task_metric",
            "counter",
            "Counters sent by tasks (scripts' Kestra.counter), "
            "summed per flow, task, name and tags",
            m.task_counters,
        ),
        (
            "podium_task_timer_seconds",
            "summary",
            "Timers sent by tasks (scripts' Kestra.timer): how many and their total",
            m.task_timers,
        ),
        (
            "podium_task_metric_value",
            "gauge",
            "Gauges sent by tasks: the last value per flow, task, name and tags",
            m.task_gauges,
        ),
    )
    for name, kind, help_text, table in kinds:
        family = Metric(name, help_text, kind)
        for (namespace, flow, task_id, metric, tags), value in table.items():
            labels: dict[str, str] = {
                "namespace": namespace,
                "flow": flow,
                "task": task_id,
                "name": metric,
                **dict(tags),
            }
            if kind == "counter":
                family.add_sample(f"{name}_total", labels, value)
            elif kind == "summary":
                family.add_sample(f"{name}_count", labels, value[0])
                family.add_sample(f"{name}_sum", labels, value[1])
            else:
                family.add_sample(name, labels, value)
        yield family
    yield CounterMetricFamily(
        "podium_task_metric_series_dropped",
        "Task metrics not exported because the most series (label sets) kept are exported already",
        value=m.dropped,
    )


@routes.operation(
    "GET",
    "/api/v1/metrics/{executionId}",
    "The metrics tasks of an execution sent (scripts' Kestra.counter / timer), "
    "in the order they came",
    params=(
        PAGE,
        SIZE,
        Param("taskRunId", "Only this task run's metrics"),
        Param("taskId", "Only this task's metrics"),
    ),
    replies={
        200: Reply("Kestra's MetricEntry page", "application/json", _PAGE),
        400: error("A malformed parameter"),
        404: error("No such execution"),
    },
)
async def execution_metrics(request: web.Request) -> web.Response:
    page, size = paging(request.query)
    execution = await stored_execution(request)
    store = request.app[ENGINE].store
    await store.flush()  # metrics queued by running tasks become readable
    task_run_id, task_id = request.query.get("taskRunId"), request.query.get("taskId")
    entries: list[dict[str, Any]] = [
        {"namespace": execution["namespace"], "flowId": execution["flowId"], **metric}
        for metric in await store.metrics(execution["id"])
        if (task_run_id is None or metric.get("taskRunId") == task_run_id)
        and (task_id is None or metric.get("taskId") == task_id)
    ]
    return json_response(page_of(entries, page, size))
