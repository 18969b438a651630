"""`GET /metrics`: counters that move by exactly what happened, gauges read when scraped,
trigger events, connection states, script metrics with their tags, and the JSON API of an
execution's metrics.

Every scrape is parsed with prometheus_client's parser and checked against the rules
`promtool check metrics` applies (HELP and TYPE for each family, `_total` only and always
on counters, base units in names, cumulative histogram buckets that end at `_count`), and
by promtool itself: .ci/ensure-packages takes the binary out of Debian's `prometheus`
package into .venv/bin (installing the package would also start a Prometheus server).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import daemon.engine.metrics
from daemon.config.settings import BasicAuth, Settings
from daemon.engine.core import Engine
from daemon.engine.events import Event, ExecutionChanged
from daemon.sdk.state import State
from daemon.store import open_store
from tests.api_helpers import basic, call, flow_server, serving
from tests.harness import Harness, eventually, running_triggers
from tests.services import Mosquitto
from triggers.webhook import Webhook

Series = tuple[str, frozenset[tuple[str, str]]]

OK = """
id: ok
namespace: metrics.test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""
BAD = """
id: bad
namespace: metrics.test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: disk full
"""
MEH = """
id: meh
namespace: metrics.test
tasks:
  - id: shaky
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
"""
LOG = "io.kestra.plugin.core.log.Log"
FAIL = "io.kestra.plugin.core.execution.Fail"
WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"
KEY = "m3tr1csK3y"


# -- reading a scrape ------------------------------------------------------------------------


def parse(text: str) -> dict[Series, float]:
    """Every sample by name and labels, through prometheus_client's own parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Series, float], metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def moved(
    before: dict[Series, float], after: dict[Series, float], *names: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The series of `names` whose value changed, by how much."""
    out = {}
    for (name, labels), now in after.items():
        if name in names and now != before.get((name, labels), 0.0):
            out[(name, tuple(sorted(labels)))] = now - before.get((name, labels), 0.0)
    return out


def lint(text: str) -> list[str]:
    """What `promtool check metrics` would say, and the parser's own checks."""
    problems = []
    helped = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    typed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    if helped != typed:
        problems.append(f"HELP and TYPE differ: {sorted(helped ^ typed)}")
    for family in text_string_to_metric_families(text):
        name = family.name
        if not re.fullmatch(r"podium_[a-z0-9_]+", name):
            problems.append(f"{name}: not a podium_ snake_case name")
        if not family.documentation:
            problems.append(f"{name}: no HELP text")
        if family.type == "counter":
            problems += [
                f"{s.name}: counter sample without _total"
                for s in family.samples
                if not s.name.endswith("_total")
            ]
        elif name.endswith("_total"):
            problems.append(f"{name}: _total on a {family.type}")
        if ("duration" in name or family.type in ("histogram", "summary")) and not name.endswith(
            "_seconds"
        ):
            problems.append(f"{name}: a duration without its unit (_seconds)")
        for sample in family.samples:
            problems += [
                f"{sample.name}: bad label name {label!r}"
                for label in sample.labels
                if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) or label.startswith("__")
            ]
        if family.type == "histogram":
            problems += histogram_problems(name, family.samples)
    return problems


def histogram_problems(name: str, samples: list[Any]) -> list[str]:
    problems = []
    series: dict[frozenset[tuple[str, str]], dict[str, Any]] = {}
    for sample in samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        entry = series.setdefault(frozenset(labels.items()), {"buckets": []})
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        else:
            entry[sample.name.rsplit("_", 1)[1]] = sample.value
    for labels, entry in series.items():
        counts = [count for _, count in entry["buckets"]]
        bounds = [bound for bound, _ in entry["buckets"]]
        if bounds != sorted(bounds) or counts != sorted(counts):
            problems.append(f"{name}{dict(labels)}: buckets not cumulative")
        if not bounds or bounds[-1] != float("inf") or counts[-1] != entry.get("count"):
            problems.append(f"{name}{dict(labels)}: +Inf bucket is not _count")
    return problems


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which(
        "promtool", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail(
            "promtool not found: run `bash .ci/ensure-packages` (it extracts it from "
            "Debian's `prometheus` package into .venv/bin)",
            pytrace=False,
        )
    return found


async def promtool_check(text: str) -> str:
    """promtool's verdict on a scrape: "" when it has nothing to say."""
    binary = await asyncio.to_thread(promtool)
    proc = await asyncio.create_subprocess_exec(
        binary,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(text.encode())
    return "" if proc.returncode == 0 else f"exit {proc.returncode}: {out.decode()}"


async def scrape(url: str, **kwargs: Any) -> dict[Series, float]:
    status, text, response = await call("GET", f"{url}/metrics", **kwargs)
    assert status == 200, text
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert lint(text) == []
    assert await promtool_check(text) == ""
    return parse(text)


# -- executions and task runs ----------------------------------------------------------------


async def test_a_burst_of_executions_moves_the_counters_by_exactly_its_size(h: Harness) -> None:
    ok, bad, meh = await h.flow(OK), await h.flow(BAD), await h.flow(MEH)
    async with serving(h) as url:
        for _ in range(2):  # counted before the first scrape: the burst is a difference
            assert (await h.run(ok)).state.current == State.SUCCESS
        before = await scrape(url)
        started = [await h.start(ok) for _ in range(6)] + [await h.start(bad) for _ in range(3)]
        started += [await h.start(meh) for _ in range(2)]
        ended = [await h.engine.wait(e.id) for e in started]
        assert [e.state.current for e in ended] == [State.SUCCESS] * 6 + [State.FAILED] * 3 + [
            State.WARNING
        ] * 2
        after = await scrape(url)
    ns = ("namespace", "metrics.test")
    assert moved(
        before, after, "podium_executions_started_total", "podium_executions_ended_total"
    ) == {
        ("podium_executions_started_total", (("flow", "ok"), ns)): 6,
        ("podium_executions_started_total", (("flow", "bad"), ns)): 3,
        ("podium_executions_started_total", (("flow", "meh"), ns)): 2,
        ("podium_executions_ended_total", (("flow", "ok"), ns, ("state", "SUCCESS"))): 6,
        ("podium_executions_ended_total", (("flow", "bad"), ns, ("state", "FAILED"))): 3,
        ("podium_executions_ended_total", (("flow", "meh"), ns, ("state", "WARNING"))): 2,
    }
    assert moved(before, after, "podium_task_run_duration_seconds_count") == {
        ("podium_task_run_duration_seconds_count", (("state", "SUCCESS"), ("type", LOG))): 9,
        ("podium_task_run_duration_seconds_count", (("state", "FAILED"), ("type", FAIL))): 3,
        ("podium_task_run_duration_seconds_count", (("state", "WARNING"), ("type", FAIL))): 2,
    }
    assert value(after, "podium_executions_running") == 0
    assert value(after, "podium_executions_queued") == 0
    assert value(after, "podium_store_up") == 1
    commits = "podium_store_write_duration_seconds_count"
    assert value(after, commits, operation="commit") > value(before, commits, operation="commit")


PAUSED_ONE_AT_A_TIME = """
id: gate
namespace: metrics.test
concurrency:
  limit: 1
  behavior: QUEUE
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""


async def test_queue_depth_and_running_are_read_from_the_runtime_when_scraped(h: Harness) -> None:
    flow = await h.flow(PAUSED_ONE_AT_A_TIME)
    paused = asyncio.Queue[str]()

    def seen(event: Event) -> None:
        if isinstance(event, ExecutionChanged) and event.execution.state.current == State.PAUSED:
            paused.put_nowait(event.execution.id)

    unsubscribe = h.engine.subscribe(seen)
    async with serving(h) as url:
        executions = [await h.start(flow) for _ in range(3)]
        first = await asyncio.wait_for(paused.get(), 20)
        now = await scrape(url)
        assert (
            value(now, "podium_executions_running"),
            value(now, "podium_executions_queued"),
        ) == (1, 2)
        assert (
            value(now, "podium_executions_started_total", namespace="metrics.test", flow="gate")
            == 1
        )
        assert await h.engine.resume(first, {})
        for _ in range(2):
            assert await h.engine.resume(await asyncio.wait_for(paused.get(), 20), {})
        assert [(await h.engine.wait(e.id)).state.current for e in executions] == [
            State.SUCCESS
        ] * 3
        done = await scrape(url)
    unsubscribe()
    assert (value(done, "podium_executions_running"), value(done, "podium_executions_queued")) == (
        0,
        0,
    )
    # resuming a paused execution is not a second start
    assert (
        value(done, "podium_executions_started_total", namespace="metrics.test", flow="gate") == 3
    )


async def test_counts_of_two_runtimes_never_mix(h: Harness, tmp_path: Path) -> None:
    other = await Harness.open(tmp_path / "other")
    try:
        async with serving(h) as url, serving(other) as other_url:
            await h.run(OK)
            mine, theirs = await scrape(url), await scrape(other_url)
    finally:
        await other.close()
    labels = {"namespace": "metrics.test", "flow": "ok"}
    assert value(mine, "podium_executions_started_total", **labels) == 1
    assert value(theirs, "podium_executions_started_total", **labels) == 0


# -- scripts' task metrics -------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    id: etl
    namespace: metrics.test
    tasks:
      - id: load
        type: io.kestra.plugin.scripts.shell.Commands
        taskRunner:
          type: io.kestra.plugin.core.runner.Process
        commands:
          - >-
            echo '::{"metrics":[{"name":"rows","type":"counter","value":5,
            "tags":{"table":"trips","bad-key.x":"1"}},{"name":"took","type":"timer","value":1.5},
            {"name":"left","type":"gauge","value":-2}]}::'
          - >-
            echo '::{"metrics":[{"name":"rows","type":"counter","value":2,
            "tags":{"table":"trips","bad-key.x":"1"}},{"name":"rows","type":"counter",
            "value":1,"tags":{"table":"zones"}},{"name":"took","type":"timer","value":0.5}]}::'
    """)


async def test_script_metrics_appear_with_their_tags(h: Harness) -> None:
    async with serving(h) as url:
        execution = await h.run(SCRIPT)
        assert execution.state.current == State.SUCCESS
        after = await scrape(url)
    where = {"namespace": "metrics.test", "flow": "etl", "task": "load"}
    assert (
        value(
            after,
            "podium_task_metric_total",
            **where,
            name="rows",
            tag_table="trips",
            tag_bad_key_x="1",
        )
        == 7
    )
    assert value(after, "podium_task_metric_total", **where, name="rows", tag_table="zones") == 1
    assert value(after, "podium_task_timer_seconds_count", **where, name="took") == 2
    assert value(after, "podium_task_timer_seconds_sum", **where, name="took") == 2.0
    assert value(after, "podium_task_metric_value", **where, name="left") == -2
    assert value(after, "podium_task_metric_series_dropped_total") == 0


async def test_task_metric_series_past_the_limit_are_dropped_and_counted(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(daemon.engine.metrics, "MAX_TASK_METRIC_SERIES", 2)
    async with serving(h) as url:
        await h.run(SCRIPT)  # 4 series: rows/trips, took, left, rows/zones
        after = await scrape(url)
    families = {name for name, _ in after}
    assert "podium_task_metric_value" not in families
    assert value(after, "podium_task_metric_series_dropped_total") == 2
    assert [r.getMessage() for r in caplog.records if r.name == "daemon.engine.metrics"] == [
        "task metrics: 2 series are exported already; new ones (such as left of "
        "metrics.test.etl) are dropped: a tag whose value changes every run makes a series "
        "per run"
    ]


async def test_execution_metrics_api_answers_kestras_metric_entries(h: Harness) -> None:
    async with serving(h) as url:
        execution = await h.run(SCRIPT)
        base = f"{url}/api/v1/metrics/{execution.id}"
        status, page, _ = await call("GET", base)
        assert status == 200
        [run] = execution.task_runs
        assert page["total"] == 6
        assert [(m["name"], m["type"], m["value"], m["tags"]) for m in page["results"]] == [
            ("rows", "counter", 5.0, {"table": "trips", "bad-key.x": "1"}),
            ("took", "timer", 1.5, {}),
            ("left", "gauge", -2.0, {}),
            ("rows", "counter", 2.0, {"table": "trips", "bad-key.x": "1"}),
            ("rows", "counter", 1.0, {"table": "zones"}),
            ("took", "timer", 0.5, {}),
        ]
        first = page["results"][0]
        assert {
            k: first[k] for k in ("namespace", "flowId", "executionId", "taskId", "taskRunId")
        } == {
            "namespace": "metrics.test",
            "flowId": "etl",
            "executionId": execution.id,
            "taskId": "load",
            "taskRunId": run.id,
        }
        status, page, _ = await call("GET", f"{base}?page=2&size=2&taskRunId={run.id}")
        assert (status, page["total"], [m["name"] for m in page["results"]]) == (
            200,
            6,
            ["left", "rows"],
        )
        status, page, _ = await call("GET", f"{base}?taskId=other")
        assert (status, page) == (200, {"results": [], "total": 0})
        status, body, _ = await call("GET", f"{base}?size=0")
        assert (status, body) == (
            400,
            {"message": "Bad Request: size must be a number from 1 to 1000, not '0'"},
        )
        status, body, _ = await call("GET", f"{base}?page=x")
        assert (status, body) == (
            400,
            {"message": "Bad Request: page must be a number from 1 to 1000000, not 'x'"},
        )
        status, body, _ = await call("GET", f"{url}/api/v1/metrics/nope")
        assert (status, body) == (404, {"message": "Not Found: execution nope not found"})


# -- triggers ----------------------------------------------------------------------------------

HOOK = f"""
id: hook
namespace: metrics.test
inputs:
  - id: n
    type: INT
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.n }}}}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
    inputs:
      n: "{{{{ trigger.body.n }}}}"
"""
# An alias of the Webhook type, and conditions that never hold (before 2000).
PAST = f"""
id: past
namespace: metrics.test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: never
triggers:
  - id: web
    type: io.kestra.core.models.triggers.types.Webhook
    key: {KEY}
    conditions:
      - type: io.kestra.plugin.core.condition.DateTimeBetween
        before: "2000-01-01T00:00:00Z"
"""


async def test_webhook_events_count_as_received_or_rejected_under_the_webhook_type(
    h: Harness, tmp_path: Path
) -> None:
    root = tmp_path / "flows"
    await asyncio.to_thread(root.mkdir)
    await asyncio.to_thread((root / "hook.yaml").write_text, HOOK)
    await asyncio.to_thread((root / "past.yaml").write_text, PAST)
    settings = Settings(data_dir=h.engine.data_dir, flows_dir=root, webhook_max_body=100)
    async with flow_server(h, root, settings) as server:
        hooks = f"{server.url}/api/v1/executions/webhook/metrics.test"
        before = await scrape(server.url)
        for n in (1, 2):
            status, body, _ = await call("POST", f"{hooks}/hook/{KEY}", json={"n": n})
            assert status == 200, body
        refusals = [
            ("POST", f"{hooks}/hook/wrong-key", {"json": {"n": 1}}, 404),
            ("POST", f"{hooks}/nosuchflow/{KEY}", {"json": {"n": 1}}, 404),
            ("POST", f"{hooks}/hook/{KEY}", {"json": {"n": "x" * 200}}, 413),
            ("POST", f"{hooks}/hook/{KEY}", {"json": {"n": "abc"}}, 422),
            ("GET", f"{hooks}/past/{KEY}", {}, 204),
        ]
        for method, target, options, expected in refusals:
            status, body, _ = await call(method, target, **options)
            assert status == expected, (target, body)
        after = await scrape(server.url)
    assert Webhook.types[0] == WEBHOOK and Webhook.receives_webhooks
    assert moved(
        before,
        after,
        "podium_trigger_events_received_total",
        "podium_trigger_events_rejected_total",
    ) == {
        ("podium_trigger_events_received_total", (("type", WEBHOOK),)): 2,
        ("podium_trigger_events_rejected_total", (("type", WEBHOOK),)): 5,
    }


def realtime(broker: Mosquitto, name: str) -> str:
    return textwrap.dedent(f"""
        id: {name}
        namespace: metrics.test
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.payload }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: tcp://{broker.host}:{broker.port}
            clientId: {name}
            topic: {name}/in
            serdeType: JSON
        """)


async def publish(broker: Mosquitto, topic: str, message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        message,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_mqtt_connection_state_follows_the_broker_and_bad_payloads_are_rejected(
    h: Harness, mosquitto: Mosquitto
) -> None:
    name = f"m{uuid.uuid4().hex[:12]}"
    connection = {
        "type": "io.kestra.plugin.mqtt.RealtimeTrigger",
        "namespace": "metrics.test",
        "flow": name,
        "trigger": "mqtt",
    }
    kind = {"type": "io.kestra.plugin.mqtt.RealtimeTrigger"}
    async with serving(h) as url:

        def up_is(wanted: float) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return (
                    value(await scrape(url), "podium_trigger_connection_up", **connection) == wanted
                )

            return check

        try:
            async with running_triggers(h, realtime(mosquitto, name)) as th:
                await eventually(up_is(1))
                key = f"trigger:metrics.test:{name}:mqtt:session"
                await eventually(lambda: _stored(h, key))  # subscribed
                await publish(mosquitto, f"{name}/in", "{not json")
                await publish(mosquitto, f"{name}/in", '"fine"')
                [execution] = await th.wait_for(1)
                assert (await h.engine.wait(execution.id)).state.current == State.SUCCESS
                counted = await scrape(url)
                assert value(counted, "podium_trigger_events_rejected_total", **kind) == 1
                assert value(counted, "podium_trigger_events_received_total", **kind) == 1
                await asyncio.to_thread(mosquitto.stop)
                await eventually(up_is(0))
                await asyncio.to_thread(mosquitto.start)
                await eventually(up_is(1), timeout=60)  # the trigger backs off
        finally:
            if not mosquitto.running:
                await asyncio.to_thread(mosquitto.start)
        gone = await scrape(url)
    assert not [labels for series, labels in gone if series == "podium_trigger_connection_up"]


async def _stored(h: Harness, key: str) -> bool:
    return await h.store.state.get(key) is not None


# -- the store -----------------------------------------------------------------------------------


async def test_store_up_is_what_a_read_answers_at_the_scrape(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    await store.open()
    engine = Engine(tmp_path / "data", store)
    metrics = engine.metrics
    await metrics.probe_store()
    assert metrics.store_up == 1
    await store.close()
    await metrics.probe_store()
    assert metrics.store_up == 0


async def test_a_failing_write_observer_never_stops_the_store_writer(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(what: str, seconds: float) -> None:
        raise RuntimeError("observer bug")

    h.store.observe_write = broken
    with caplog.at_level(logging.ERROR, logger="daemon.store.sqlite_io"):
        first = await h.run(OK)
        second = await h.run(OK)
    assert (first.state.current, second.state.current) == (State.SUCCESS, State.SUCCESS)
    assert (await h.stored(second))["state"]["current"] == "SUCCESS"
    assert {r.getMessage() for r in caplog.records} == {"store: the commit observer failed"}


# -- the endpoint ----------------------------------------------------------------------------------


async def test_metrics_need_the_credentials_and_speak_openmetrics_when_asked(h: Harness) -> None:
    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username="ada", password="pa55word")
    )
    async with serving(h, settings) as url:
        status, body, response = await call("GET", f"{url}/metrics")
        assert (status, body, response.headers["WWW-Authenticate"]) == (
            401,
            {"message": "Unauthorized"},
            'Basic realm="podium"',
        )
        await h.run(OK)
        auth = basic("ada", "pa55word")
        classic = await scrape(url, headers=auth)
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{url}/metrics",
                headers={
                    **auth,
                    "Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8",
                },
            ) as resp,
        ):
            text = await resp.text()
            content_type = resp.headers["Content-Type"]
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    assert 'podium_executions_started_total{flow="ok",namespace="metrics.test"} 1.0' in text
    assert (
        value(classic, "podium_executions_started_total", namespace="metrics.test", flow="ok") == 1
    )
