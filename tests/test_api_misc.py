"""KV, triggers and basic auth over the whole API, on a real port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tasks.core
import triggers.schedule
import triggers.webhook
from daemon.config.settings import BasicAuth, Settings
from daemon.engine.core import Engine
from daemon.engine.events import Event, ExecutionChanged
from daemon.engine.supervisor import DISABLED_STATE
from daemon.flows.registry import Plugins
from daemon.sdk.clock import FakeClock
from daemon.sdk.context import TriggerContext
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import Emit, Trigger
from daemon.store import open_store
from tests.api_helpers import FlowServer, basic, call, flow_server, serving
from tests.harness import Harness, settle

TIMED = """\
id: timed
namespace: ns
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: tick
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: secretkey1
  - id: off
    type: io.kestra.plugin.core.trigger.Webhook
    key: secretkey2
    disabled: true
"""


async def write_flow(root: Path, source: str) -> None:
    def write() -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "timed.yaml").write_text(source)

    await asyncio.to_thread(write)


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    await write_flow(tmp_path / "flows", TIMED)
    async with flow_server(h, tmp_path / "flows") as s:
        yield s


# -- KV -------------------------------------------------------------------------------------


async def test_kv_values_keep_their_type(h: Harness) -> None:
    async with serving(h) as url:
        base = f"{url}/api/v1/namespaces/team.data/kv"
        for key, body, kind, value in (
            ("n", b"42", "NUMBER", 42),
            ("b", b"true", "BOOLEAN", True),
            ("j", b'{"a": [1]}', "JSON", {"a": [1]}),
            ("q", b'"quoted"', "STRING", "quoted"),
            ("t", b"hello world", "STRING", "hello world"),
        ):
            status, _, _ = await call(
                "PUT", f"{base}/{key}", data=body, headers={"Content-Type": "text/plain"}
            )
            assert status == 204, key
            status, doc, _ = await call("GET", f"{base}/{key}")
            assert (status, doc["type"], doc["value"]) == (200, kind, value)
        assert await h.store.kv.get("team.data", "n") == (True, 42)


async def test_kv_list_ttl_and_delete(h: Harness) -> None:
    async with serving(h) as url:
        base = f"{url}/api/v1/namespaces/ns/kv"
        await call("PUT", f"{base}/b", data=b"1")
        await call("PUT", f"{base}/a", data=b"2", headers={"ttl": "PT1H"})
        status, doc, _ = await call("GET", base)
        assert status == 200
        assert [(e["key"], e["expirationDate"] is not None) for e in doc] == [
            ("a", True),
            ("b", False),
        ]
        assert (await call("DELETE", f"{base}/a"))[:2] == (200, True)
        assert (await call("DELETE", f"{base}/a"))[:2] == (200, False)
        status, doc, _ = await call("GET", f"{base}/a")
        assert (status, doc) == (
            404,
            {"message": "Not Found: no value for key 'a' in namespace 'ns'"},
        )


async def test_malformed_kv_requests_are_400(h: Harness) -> None:
    async with serving(h) as url:
        base = f"{url}/api/v1/namespaces"
        for method, path, kwargs, message in (
            ("GET", "/ns/kv/a%20b", {}, "key 'a b' must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*$"),
            ("GET", "/NS!/kv", {}, "namespace 'NS!' must match ^[a-z0-9][a-z0-9._-]*$"),
            (
                "PUT",
                "/ns/kv/k",
                {"data": b"1", "headers": {"ttl": "soon"}},
                "ttl 'soon' is not an ISO-8601 duration (expected e.g. PT15S, PT1H30M, P1D)",
            ),
            (
                "PUT",
                "/ns/kv/k",
                {"data": b"1", "headers": {"ttl": "-PT1H"}},
                "ttl '-PT1H' must be a positive duration",
            ),
            ("PUT", "/ns/kv/k", {"data": b"  "}, 'the value is empty; send "" for an empty string'),
        ):
            status, doc, _ = await call(method, base + path, **kwargs)
            assert (status, doc) == (400, {"message": f"Bad Request: {message}"}), path


# -- triggers -------------------------------------------------------------------------------


def context(doc: dict[str, Any], trigger_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["results"] if c["triggerId"] == trigger_id)
    return found


async def test_flow_triggers_list_their_state_and_last_event(server: FlowServer) -> None:
    url = f"{server.url}/api/v1/triggers/ns/timed"
    status, doc, _ = await call("GET", url)
    assert status == 200 and doc["total"] == 3
    assert context(doc, "hook") == {
        "namespace": "ns",
        "flowId": "timed",
        "triggerId": "hook",
        "type": "io.kestra.plugin.core.trigger.Webhook",
        "disabled": False,
        "date": None,
        "executionId": None,
        "nextExecutionDate": None,
        "backfill": None,
        "stopAfter": None,
    }
    assert context(doc, "off")["disabled"] is True
    await settle()
    status, fired, _ = await call(
        "POST", f"{server.url}/api/v1/executions/webhook/ns/timed/secretkey1", json={}
    )
    assert status == 200, fired
    _, doc, _ = await call("GET", url)
    assert context(doc, "hook")["executionId"] == fired["id"]
    assert datetime.fromisoformat(context(doc, "hook")["date"]).tzinfo is not None
    status, doc, _ = await call("GET", f"{server.url}/api/v1/triggers/ns/nope")
    assert (status, doc) == (404, {"message": "Not Found: flow ns.nope not found"})


async def test_trigger_search_pairs_the_source_with_the_context(server: FlowServer) -> None:
    status, doc, _ = await call("GET", f"{server.url}/api/v1/triggers/search?namespace=ns&q=HOO")
    assert status == 200
    assert doc["total"] == 1
    assert doc["results"][0]["abstractTrigger"] == {
        "id": "hook",
        "type": "io.kestra.plugin.core.trigger.Webhook",
        "key": "secretkey1",
    }
    assert doc["results"][0]["triggerContext"]["triggerId"] == "hook"


async def test_a_trigger_disabled_at_run_time_stays_disabled_after_a_restart(
    h: Harness, server: FlowServer, tmp_path: Path
) -> None:
    hook = f"{server.url}/api/v1/executions/webhook/ns/timed/secretkey1"
    update = {"namespace": "ns", "flowId": "timed", "triggerId": "hook"}
    status, doc, _ = await call(
        "PUT", f"{server.url}/api/v1/triggers", json={**update, "disabled": True}
    )
    assert (status, doc["disabled"]) == (200, True)
    assert (await call("POST", hook, json={}))[0] == 404
    assert await h.store.state.get(DISABLED_STATE) == {"triggers": [["ns", "timed", "hook"]]}
    async with flow_server(h, tmp_path / "flows") as again:
        _, doc, _ = await call("GET", f"{again.url}/api/v1/triggers/ns/timed")
        assert context(doc, "hook")["disabled"] is True
    status, doc, _ = await call(
        "PUT", f"{server.url}/api/v1/triggers", json={**update, "disabled": False}
    )
    assert (status, doc["disabled"]) == (200, False)
    await settle()
    assert (await call("POST", hook, json={}))[0] == 200


async def test_backfill_runs_every_past_slot_of_a_schedule(h: Harness, server: FlowServer) -> None:
    seen: list[Execution] = []
    enough = asyncio.Event()

    def created(event: Event) -> None:
        if not isinstance(event, ExecutionChanged):
            return
        execution = event.execution
        if execution.trigger and execution not in seen:
            seen.append(execution)
            if len(seen) == 4:
                enough.set()

    unsubscribe = h.engine.subscribe(created)
    backfill = {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T03:00:00Z"}
    status, doc, _ = await call(
        "PUT",
        f"{server.url}/api/v1/triggers",
        json={"namespace": "ns", "flowId": "timed", "triggerId": "hourly", "backfill": backfill},
    )
    assert status == 200, doc
    assert doc["backfill"] == {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-01T03:00:00Z",
        "inputs": {},
        "paused": False,
    }
    async with asyncio.timeout(20):
        await enough.wait()
    unsubscribe()
    assert sorted(e.trigger["variables"]["date"] for e in seen if e.trigger) == [
        f"2024-01-01T0{hour}:00:00Z" for hour in range(4)
    ]


async def test_malformed_trigger_updates_are_refused_with_exact_messages(
    server: FlowServer,
) -> None:
    url = f"{server.url}/api/v1/triggers"
    ids = {"namespace": "ns", "flowId": "timed"}
    for body, status, message in (
        ({"namespace": "ns"}, 400, "Bad Request: namespace, flowId and triggerId are required"),
        (
            {**ids, "triggerId": "hook"},
            400,
            "Bad Request: send disabled (true or false) or backfill ({start, end, inputs})",
        ),
        (
            {**ids, "triggerId": "nope", "disabled": True},
            404,
            "Not Found: flow ns.timed has no trigger 'nope'",
        ),
        (
            {"namespace": "ns", "flowId": "nope", "triggerId": "x", "disabled": True},
            404,
            "Not Found: flow ns.nope not found",
        ),
        (
            {**ids, "triggerId": "hook", "backfill": {"start": "2024-01-01T00:00:00Z"}},
            400,
            "Bad Request: trigger hook of ns.timed (io.kestra.plugin.core.trigger.Webhook) "
            "cannot backfill",
        ),
        (
            {**ids, "triggerId": "hourly", "backfill": {"start": "yesterday"}},
            400,
            "Bad Request: backfill.start 'yesterday' is not an ISO-8601 date-time",
        ),
        (
            {**ids, "triggerId": "hourly", "backfill": {"end": "2024-01-01T00:00:00Z"}},
            400,
            "Bad Request: backfill.start is required",
        ),
        (
            {
                **ids,
                "triggerId": "hourly",
                "backfill": {"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
            },
            400,
            "Bad Request: backfill.end is before backfill.start",
        ),
        (
            {**ids, "triggerId": "off", "backfill": {"start": "2024-01-01T00:00:00Z"}},
            409,
            "Illegal state: trigger off of ns.timed is disabled",
        ),
        (
            {**ids, "triggerId": "off", "disabled": False},
            409,
            "Illegal state: trigger off of ns.timed is disabled in the flow's source",
        ),
    ):
        got, doc, _ = await call("PUT", url, json=body)
        assert (got, doc) == (status, {"message": message}), body
    got, doc, _ = await call("PUT", url, data=b"[]", headers={"Content-Type": "application/json"})
    assert (got, doc) == (
        400,
        {"message": "Bad Request: the body must be a JSON object, not an array"},
    )


class Ticker(Trigger):
    """A trigger that says when it fires next, as a Schedule does."""

    types = ("tests.Ticker",)

    def next_date(self, after: datetime) -> datetime | None:
        return after + timedelta(minutes=5)

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        await asyncio.Event().wait()


async def test_next_fire_time_comes_from_triggers_that_know_it(tmp_path: Path) -> None:
    plugins = Plugins()
    for module in (tasks.core, triggers.schedule, triggers.webhook):
        plugins.add_module(module)
    plugins.triggers.register(Ticker)
    store = open_store(tmp_path / "data")
    await store.open()
    clock = FakeClock(datetime(2024, 3, 1, 12, 0, tzinfo=UTC))
    h = Harness(Engine(tmp_path / "data", store, clock=clock, plugins=plugins), store)
    await write_flow(
        tmp_path / "flows",
        TIMED.replace(
            'io.kestra.plugin.core.trigger.Schedule\n    cron: "0 * * * *"', "tests.Ticker"
        ),
    )
    try:
        async with flow_server(h, tmp_path / "flows") as server:
            _, doc, _ = await call("GET", f"{server.url}/api/v1/triggers/ns/timed")
    finally:
        await h.close()
    assert context(doc, "hourly")["nextExecutionDate"] == "2024-03-01T12:05:00Z"
    assert context(doc, "hook")["nextExecutionDate"] is None


# -- basic auth -----------------------------------------------------------------------------


async def test_basic_auth_guards_the_new_endpoints_and_stays_out_of_the_log(
    h: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        data_dir=h.engine.data_dir,
        flows_dir=tmp_path / "flows",
        basic_auth=BasicAuth(username="ada", password="pa55word"),
    )
    await write_flow(tmp_path / "flows", TIMED)
    with caplog.at_level(logging.DEBUG):
        async with flow_server(h, tmp_path / "flows", settings) as server:
            for path in (
                "/api/v1/openapi.json",
                "/api/v1/flows/search",
                "/api/v1/executions/search",
                "/api/v1/triggers/search",
                "/api/v1/namespaces/ns/kv",
                "/api/v1/executions/x/follow",
                "/api/v1/logs/x/follow",
            ):
                status, doc, _ = await call("GET", server.url + path)
                assert (status, doc) == (401, {"message": "Unauthorized"}), path
                status, _, _ = await call(
                    "GET", server.url + path, headers=basic("ada", "pa55word")
                )
                assert status in (200, 404), path
    assert "pa55word" not in caplog.text
    assert "secretkey" not in caplog.text
