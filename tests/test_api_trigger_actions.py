"""Kestra's trigger actions on a real port: unlock, restart, delete (a trigger's state),
disable/enable several, CSV export, and pausing, resuming or deleting a backfill, each for
one trigger, a list of them or a query (TriggerController, TriggerControllerTest)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.engine.events import Event, ExecutionChanged
from daemon.sdk.execution import Execution
from tests.api_helpers import FlowServer, call, flow_server, serving
from tests.harness import Harness, eventually, settle
from tests.test_api_misc import TIMED, write_flow
from tests.test_trigger_http import Backend, http_flow, serve

HOOK = {"namespace": "ns", "flowId": "timed", "triggerId": "hook"}
HOURLY = {**HOOK, "triggerId": "hourly"}
OFF = {**HOOK, "triggerId": "off"}
NOPE = {**HOOK, "triggerId": "nope"}
BACKFILL = {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z"}


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    await write_flow(tmp_path / "flows", TIMED)
    await write_flow(tmp_path / "flows" / "other", TIMED.replace("namespace: ns", "namespace: x"))
    async with flow_server(h, tmp_path / "flows") as s:
        yield s


async def contexts(server: FlowServer, namespace: str = "ns") -> dict[str, dict[str, Any]]:
    status, doc, _ = await call("GET", f"{server.url}/api/v1/triggers/{namespace}/timed")
    assert status == 200, doc
    return {c["triggerId"]: c for c in doc["results"]}


async def fire(server: FlowServer) -> int:
    await settle()  # a restarted webhook trigger attaches its route once it runs
    url = f"{server.url}/api/v1/executions/webhook/ns/timed/secretkey1"
    return (await call("POST", url, json={}))[0]


async def test_unlocking_a_trigger_that_waits_for_nothing_is_409(server: FlowServer) -> None:
    """TriggerController.unlockTrigger answers IllegalStateException "Trigger is not
    locked" (409) for a trigger that waits for no execution; the bulk forms count only the
    triggers they unlocked."""
    url = f"{server.url}/api/v1/main/triggers"
    status, doc, _ = await call("POST", f"{url}/ns/timed/hook/unlock")
    assert (status, doc) == (
        409,
        {"message": "Illegal state: Trigger is not locked: trigger hook of ns.timed"},
    )
    status, doc, _ = await call("POST", f"{url}/ns/timed/nope/unlock")
    assert (status, doc) == (404, {"message": "Not Found: flow ns.timed has no trigger 'nope'"})
    status, doc, _ = await call("POST", f"{url}/unlock/by-triggers", json=[HOOK, HOURLY, NOPE])
    assert (status, doc) == (200, {"count": 0})
    status, doc, _ = await call("POST", f"{url}/unlock/by-query?filters[namespace][EQUALS]=ns")
    assert (status, doc) == (200, {"count": 0})


SLEEPS = "tasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT3S\n"


async def test_an_http_trigger_waiting_for_its_execution_is_unlocked(
    h: Harness, tmp_path: Path
) -> None:
    """A polling trigger (the HTTP Trigger, without allowConcurrent) is locked while its
    execution runs; unlocking it (one, then by query) lets it poll again and start the
    next execution while the first still runs."""
    backend = Backend()
    runner = await serve(backend)
    try:
        uri = f"http://127.0.0.1:{runner.addresses[0][1]}/poll"
        root = tmp_path / "flows"
        await write_flow(root, http_flow(f"uri: {uri}\ninterval: PT0.05S", SLEEPS))
        started = Started(h)
        async with flow_server(h, root) as server:
            url = f"{server.url}/api/v1/triggers"
            first = await started.nth(1)
            status, doc, _ = await call("POST", f"{url}/test/poller/http/unlock")
            assert (status, doc["triggerId"]) == (200, "http")
            await started.nth(2)
            assert (await h.stored(first))["state"]["current"] == "RUNNING"
            status, doc, _ = await call("POST", f"{url}/unlock/by-query?namespace=test")
            assert (status, doc) == (200, {"count": 1})
            await started.nth(3)
            assert (await h.stored(first))["state"]["current"] == "RUNNING"
            for execution in started.executions:
                await h.engine.wait(execution.id)
        started.unsubscribe()
    finally:
        await runner.cleanup()


class Started:
    """The executions of the HTTP trigger's flow, in the order they were created."""

    def __init__(self, h: Harness) -> None:
        self.executions: list[Execution] = []
        self.unsubscribe = h.engine.subscribe(self._seen)

    def _seen(self, event: Event) -> None:
        if isinstance(event, ExecutionChanged) and event.execution.flow_id == "poller":
            if all(e.id != event.execution.id for e in self.executions):
                self.executions.append(event.execution)

    async def nth(self, count: int) -> Execution:
        """The `count`th execution, once created (a bounded wait)."""

        async def enough() -> bool:
            return len(self.executions) >= count

        await eventually(enough, f"{count} executions")
        return self.executions[count - 1]


async def test_restart_answers_the_context_and_the_trigger_runs_again(server: FlowServer) -> None:
    """TriggerController.restartTrigger: 200 with the trigger; 404 for an unknown one."""
    url = f"{server.url}/api/v1/triggers/ns/timed"
    status, doc, _ = await call("POST", f"{url}/hook/restart")
    assert status == 200
    assert (doc["triggerId"], doc["disabled"]) == ("hook", False)
    assert await fire(server) == 200
    status, doc, _ = await call("POST", f"{url}/nope/restart")
    assert (status, doc) == (404, {"message": "Not Found: flow ns.timed has no trigger 'nope'"})
    status, doc, _ = await call("POST", f"{server.url}/api/v1/triggers/ns/nope/x/restart")
    assert (status, doc) == (404, {"message": "Not Found: flow ns.nope not found"})


async def test_deleting_a_trigger_forgets_what_was_set_at_run_time(server: FlowServer) -> None:
    """TriggerController.deleteTrigger (204) and its bulk forms (BulkResponse): the trigger
    is recreated from its flow, enabled again and without its backfill."""
    url = f"{server.url}/api/v1/triggers"
    await call("PUT", url, json={**HOOK, "disabled": True})
    await call("PUT", url, json={**HOURLY, "backfill": BACKFILL})
    assert await fire(server) == 404
    status, body, _ = await call("DELETE", f"{url}/ns/timed/hook")
    assert (status, body) == (204, "")
    assert (await contexts(server))["hook"]["disabled"] is False
    assert await fire(server) == 200
    status, doc, _ = await call("DELETE", f"{url}/ns/timed/nope")
    assert status == 404
    listed = [HOURLY, NOPE, {**HOOK, "flowId": "none"}]
    status, doc, _ = await call("DELETE", f"{url}/delete/by-triggers", json=listed)
    assert (status, doc) == (200, {"count": 1})
    assert (await contexts(server))["hourly"]["backfill"] is None
    query = "filters[namespace][EQUALS]=x&filters[triggerId][EQUALS]=hook"
    status, doc, _ = await call("DELETE", f"{url}/delete/by-query?{query}")
    assert (status, doc) == (200, {"count": 1})


async def test_delete_by_query_applies_the_filters_kestrapy_sends_in_the_body(
    server: FlowServer,
) -> None:
    """kestrapy's delete_triggers_by_query sends DeleteTriggersByQueryRequest, {filters:
    [QueryFilter]}, as the body; Kestra reads filters from the query string only (and so
    would delete every trigger): podium applies those of the body."""
    url = f"{server.url}/api/v1/triggers"
    await call("PUT", url, json={**HOOK, "disabled": True})
    await call("PUT", url, json={**HOOK, "namespace": "x", "disabled": True})
    body = {
        "filters": [
            {"field": "NAMESPACE", "operation": "EQUALS", "value": {"value": "x"}},
            {"field": "TRIGGER_ID", "operation": "IN", "value": ["hook"]},
        ]
    }
    status, doc, _ = await call("DELETE", f"{url}/delete/by-query", json=body)
    assert status == 400  # IN is not among the operations podium applies on triggerId
    body["filters"][1] = {"field": "triggerId", "operation": "EQUALS", "value": "hook"}
    status, doc, _ = await call("DELETE", f"{url}/delete/by-query", json=body)
    assert (status, doc) == (200, {"count": 1})
    assert (await contexts(server, "x"))["hook"]["disabled"] is False
    assert (await contexts(server))["hook"]["disabled"] is True  # not selected
    for bad, message in (
        ({"filters": "x"}, "Invalid entity: filters must be an array, not a string"),
        ({"filters": [{"field": "NAMESPACE"}]}, "Invalid entity: filters[0] must be "
         "{field, operation, value}"),
        ([], "Invalid entity: the body must be {filters: [...]}, not an array"),
    ):  # fmt: skip
        status, doc, _ = await call("DELETE", f"{url}/delete/by-query", json=bad)
        assert (status, doc) == (422, {"message": message}), bad


async def test_set_disabled_by_triggers_and_by_query(server: FlowServer) -> None:
    """TriggerController.disabledTriggersByIds / disabledTriggersByQuery: BulkResponse of
    the triggers set (one its source disables is not enabled); `disabled` defaults to
    true on the query form."""
    url = f"{server.url}/api/v1/triggers/set-disabled"
    body = {"triggers": [HOOK, OFF, NOPE], "disabled": True}
    status, doc, _ = await call("POST", f"{url}/by-triggers", json=body)
    assert (status, doc) == (200, {"count": 2})
    assert await fire(server) == 404
    body = {"triggers": [HOOK, OFF], "disabled": False}
    status, doc, _ = await call("POST", f"{url}/by-triggers", json=body)
    assert (status, doc) == (200, {"count": 1})
    assert await fire(server) == 200
    assert (await contexts(server))["off"]["disabled"] is True
    status, doc, _ = await call("POST", f"{url}/by-query?filters[triggerId][EQUALS]=hook")
    assert (status, doc) == (200, {"count": 2})  # ns.timed's and x.timed's
    assert await fire(server) == 404
    status, doc, _ = await call("POST", f"{url}/by-query?namespace=ns&q=HOO&disabled=false")
    assert (status, doc) == (200, {"count": 1})
    assert await fire(server) == 200
    for bad, expected in (
        ({"triggers": [], "disabled": True}, (422, "Invalid entity: triggers must be a "
                                               "non-empty array of triggers")),
        ({"triggers": [HOOK]}, (422, "Invalid entity: disabled must be true or false, not null")),
        ({"triggers": [{"namespace": "ns"}], "disabled": True},
         (422, "Invalid entity: triggers[0]: namespace, flowId and triggerId are required")),
        ({"triggers": ["hook"], "disabled": True},
         (422, "Invalid entity: triggers[0] must be a trigger object, not a string")),
    ):  # fmt: skip
        status, doc, _ = await call("POST", f"{url}/by-triggers", json=bad)
        assert (status, doc) == (expected[0], {"message": expected[1]}), bad
    status, doc, _ = await call("POST", f"{url}/by-query?disabled=yes")
    assert (status, doc) == (
        400,
        {"message": "Bad Request: disabled must be true or false, not 'yes'"},
    )


async def test_export_is_one_csv_row_per_selected_trigger(server: FlowServer) -> None:
    """TriggerController.exportTriggers (CSVUtils.toCSVFlux): the first record's keys are
    the header; nothing selected is an empty file."""
    url = f"{server.url}/api/v1/triggers"
    await call("PUT", url, json={**HOURLY, "backfill": BACKFILL})
    status, text, resp = await call(
        "GET", f"{url}/export/by-query/csv?filters[namespace][EQUALS]=ns"
    )
    assert status == 200
    assert resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == "attachment; filename=triggers.csv"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["triggerId"] for r in rows] == ["hourly", "hook", "off"]
    assert rows[0]["flowId"] == "timed" and rows[0]["disabled"] == "false"
    assert rows[2]["disabled"] == "true" and rows[2]["executionId"] == ""
    assert json.loads(rows[0]["backfill"])["start"] == BACKFILL["start"]
    assert text.startswith("namespace,flowId,triggerId,type,disabled,date,executionId,")
    assert text.endswith("\r\n")
    status, text, _ = await call("GET", f"{url}/export/by-query/csv?filters[flowId][EQUALS]=x")
    assert (status, text) == (200, "")
    status, doc, _ = await call("GET", f"{url}/export/by-query/csv?filters[type][EQUALS]=x")
    assert (status, doc["message"]) == (
        400,
        "Bad Request: podium does not apply the filter type EQUALS on triggers (it applies "
        "q: EQUALS; namespace: EQUALS, PREFIX; flowId: EQUALS; triggerId: EQUALS)",
    )


async def test_a_backfill_is_paused_resumed_and_deleted(server: FlowServer) -> None:
    """TriggerController.pauseBackfill / unpauseBackfill / deleteBackfill: the trigger
    answered with its backfill's `paused`; without a backfill, 400 "No backfill found"."""
    url = f"{server.url}/api/v1/triggers"
    status, doc, _ = await call("PUT", url, json={**HOURLY, "backfill": BACKFILL})
    assert status == 200, doc
    status, doc, _ = await call("PUT", f"{url}/backfill/pause", json=HOURLY)
    assert (status, doc["backfill"]["paused"]) == (200, True)
    status, doc, _ = await call("PUT", f"{url}/backfill/unpause", json={**HOURLY, "date": "x"})
    assert (status, doc["backfill"]["paused"]) == (200, False)
    status, doc, _ = await call("POST", f"{url}/backfill/delete", json=HOURLY)
    assert (status, doc["backfill"]) == (200, None)
    for method, action in (("PUT", "pause"), ("PUT", "unpause"), ("POST", "delete")):
        status, doc, _ = await call(method, f"{url}/backfill/{action}", json=HOURLY)
        assert (status, doc) == (
            400,
            {"message": "Bad Request: No backfill found for trigger hourly of ns.timed"},
        )
        status, doc, _ = await call(method, f"{url}/backfill/{action}", json=NOPE)
        assert (status, doc) == (404, {"message": "Not Found: flow ns.timed has no trigger 'nope'"})
    for bad, expected in (
        ({"json": [HOURLY]}, (422, "Invalid entity: the body must be a trigger object, not "
                                   "an array")),
        ({"json": {"namespace": "ns"}}, (422, "Invalid entity: the body: namespace, flowId "
                                              "and triggerId are required")),
        ({}, (400, "Bad Request: the body is required: send a trigger object")),
        ({"data": b"x", "headers": {"Content-Type": "text/plain"}},
         (415, "Unsupported Media Type: send a trigger object as application/json, not "
               "text/plain")),
    ):  # fmt: skip
        status, doc, _ = await call("PUT", f"{url}/backfill/pause", **bad)  # type: ignore[arg-type]
        assert (status, doc) == (expected[0], {"message": expected[1]}), bad


async def test_backfills_paused_resumed_and_deleted_in_bulk(server: FlowServer) -> None:
    """The by-triggers and by-query forms count the triggers that had a backfill; one
    without is passed over (TriggerController.backfillsAction)."""
    url = f"{server.url}/api/v1/triggers"
    await call("PUT", url, json={**HOURLY, "backfill": BACKFILL})
    await call("PUT", url, json={**HOURLY, "namespace": "x", "backfill": BACKFILL})
    listed = [HOURLY, HOOK, NOPE]
    backfill = f"{url}/backfill"
    assert (await call("POST", f"{backfill}/pause/by-triggers", json=listed))[1] == {"count": 1}
    assert (await contexts(server))["hourly"]["backfill"]["paused"] is True
    assert (await contexts(server, "x"))["hourly"]["backfill"]["paused"] is False
    assert (await call("POST", f"{backfill}/pause/by-query?q=hour"))[1] == {"count": 2}
    assert (await contexts(server, "x"))["hourly"]["backfill"]["paused"] is True
    assert (await call("POST", f"{backfill}/unpause/by-query?namespace=x"))[1] == {"count": 1}
    assert (await contexts(server, "x"))["hourly"]["backfill"]["paused"] is False
    assert (await call("POST", f"{backfill}/unpause/by-triggers", json=listed))[1] == {"count": 1}
    assert (await call("POST", f"{backfill}/delete/by-triggers", json=listed))[1] == {"count": 1}
    assert (await call("POST", f"{backfill}/delete/by-query"))[1] == {"count": 1}
    assert (await contexts(server, "x"))["hourly"]["backfill"] is None
    status, doc, _ = await call("POST", f"{backfill}/delete/by-triggers", json={"x": 1})
    assert (status, doc) == (
        422,
        {"message": "Invalid entity: the body must be an array of triggers, not an object"},
    )
    status, doc, _ = await call("POST", f"{backfill}/delete/by-query?filters[flowId][IN]=a")
    assert status == 400


async def test_without_running_triggers_the_actions_are_409(h: Harness) -> None:
    """`podium serve` with no triggers (a worker-only node has no API): nothing to act on."""
    message = {
        "message": "Illegal state: this server runs no triggers, so they cannot be changed "
        "through the API"
    }
    async with serving(h) as url:
        for method, path, body in (
            ("POST", "/api/v1/triggers/unlock/by-query", None),
            ("POST", "/api/v1/triggers/ns/f/t/restart", None),
            ("DELETE", "/api/v1/triggers/ns/f/t", None),
            ("POST", "/api/v1/triggers/set-disabled/by-triggers", {"triggers": [HOOK]}),
            ("PUT", "/api/v1/triggers/backfill/pause", HOOK),
            ("GET", "/api/v1/triggers/export/by-query/csv", None),
        ):
            status, doc, _ = await call(method, f"{url}{path}", json=body)
            assert (status, doc) == (409, message), path
