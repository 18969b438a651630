"""kestrapy 1.3.1 (the SDK of Kestra 1.3), unchanged, against a real `podium serve`: every
method of its KVApi, LogsApi, NamespacesApi and TriggersApi that podium serves beyond
tests/test_kestrapy.py, each answer validated by kestrapy's own models (the `client`
fixture turns their silent fallback into a failure). The behaviour each checks is that of
Kestra's KVControllerTest, LogControllerTest, NamespaceControllerTest and
TriggerControllerTest."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from kestrapy import KestraClient
from kestrapy.base_api import BaseApi
from kestrapy.exceptions import ConflictException, NotFoundException
from kestrapy.models.api_autocomplete import ApiAutocomplete
from kestrapy.models.delete_triggers_by_query_request import DeleteTriggersByQueryRequest
from kestrapy.models.kv_controller_api_delete_bulk_request import KVControllerApiDeleteBulkRequest
from kestrapy.models.query_filter import QueryFilter
from kestrapy.models.state_type import StateType
from kestrapy.models.trigger import Trigger
from kestrapy.models.trigger_controller_set_disabled_request import (
    TriggerControllerSetDisabledRequest,
)

from tests.daemon_process import ServeProcess
from tests.test_kestrapy import PASSWORD, TENANT, USER, _strict

NS = "company.team"
CLOCK = """\
id: clock
namespace: company.team
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
    key: kestrapy-hook-key
"""
CHATTY = """\
id: chatty
namespace: company.team.logs
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: first says hi
  - id: second
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: second warns
"""


@pytest.fixture(scope="module")
def podium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("kestrapy-actions")
    (root / "flows").mkdir()
    env = {"PODIUM_BASIC_AUTH_USERNAME": USER, "PODIUM_BASIC_AUTH_PASSWORD": PASSWORD}
    serve = ServeProcess(root, root / "flows", root / "data", env=env).start()
    try:
        yield serve
    finally:
        assert serve.stop() == 0, serve.output()


@pytest.fixture
def client(podium: ServeProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[KestraClient]:
    monkeypatch.setattr(BaseApi, "_construct_model", staticmethod(_strict))
    with KestraClient(host=podium.url(""), username=USER, password=PASSWORD, timeout=60) as kc:
        yield kc


def _flow(client: KestraClient, source: str) -> None:
    namespace = source.split("namespace: ", 1)[1].split("\n", 1)[0]
    flow_id = source.split("\n", 1)[0].removeprefix("id: ")
    try:
        client.flows.flow(namespace, flow_id, TENANT)
    except NotFoundException:
        client.flows.create_flow(TENANT, source)


def _trigger(trigger_id: str, namespace: str = NS, flow_id: str = "clock") -> Trigger:
    """kestrapy's Trigger model, as a client builds one (its `date` is required)."""
    return Trigger(
        namespace=namespace, flowId=flow_id, triggerId=trigger_id, date=datetime.now(UTC)
    )


def _contexts(client: KestraClient) -> dict[str, dict[str, Any]]:
    found = client.triggers.search_triggers_for_flow(TENANT, NS, "clock")
    return {c["triggerId"]: c for c in found["results"]}


def _start_backfill(podium: ServeProcess) -> None:
    """`PUT /api/v1/main/triggers` (TriggerController.updateTrigger), which kestrapy 1.3.1
    has no method for."""
    answer = requests.put(
        podium.url("/api/v1/main/triggers"),
        json={
            "namespace": NS,
            "flowId": "clock",
            "triggerId": "hourly",
            "backfill": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z"},
        },
        auth=(USER, PASSWORD),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def test_kv_listing_inheritance_bulk_delete_and_detail(client: KestraClient) -> None:
    """KVControllerTest: listAllKeys, listKeysWithInheritance, the bulk deletion and the
    KvDetail of one key."""
    kv = client.kv
    kv.set_key_value("io", "parent-key", TENANT, '"parent"')
    kv.set_key_value("io.namespace", "child-key", TENANT, "42")
    page = kv.list_all_keys(
        TENANT,
        page=1,
        size=10,
        sort=["key:desc"],
        filters=[QueryFilter(field="NAMESPACE", operation="PREFIX", value={"value": "io"})],
    )
    assert [(e.namespace, e.key) for e in page.results] == [
        ("io", "parent-key"),
        ("io.namespace", "child-key"),
    ]
    assert page.total == 2 and page.results[0].update_date is not None
    inherited = kv.list_keys_with_inheritance("io.namespace", TENANT)
    assert [(e.namespace, e.key) for e in inherited] == [("io", "parent-key")]
    detail = kv.key_value("io.namespace", "child-key", TENANT)
    assert (detail.type.value, detail.value) == ("NUMBER", 42)
    assert detail.updated is not None and detail.updated.tzinfo is not None
    deleted = kv.delete_key_values(
        "io.namespace", TENANT, KVControllerApiDeleteBulkRequest(keys=["child-key", "nope"])
    )
    assert deleted.keys == ["child-key"]
    assert kv.list_all_keys(TENANT, filters=[]).total == 1


def test_delete_an_executions_logs_and_a_flows(client: KestraClient) -> None:
    """LogControllerTest: deleteLogsFromExecution (with taskId, then all), and
    deleteLogsFromFlow."""
    _flow(client, CHATTY)
    one = client.executions.create_execution(TENANT, f"{NS}.logs", "chatty", wait=True)
    two = client.executions.create_execution(TENANT, f"{NS}.logs", "chatty", wait=True)
    assert one.state.current == StateType.SUCCESS
    logs = client.logs
    logs.delete_logs_from_execution(one.id, TENANT, task_id="second")
    kept = logs.list_logs_from_execution(one.id, TENANT)
    assert [line.message for line in kept] == ["first says hi"]
    logs.delete_logs_from_execution(one.id, TENANT, min_level="INFO")
    assert logs.list_logs_from_execution(one.id, TENANT) == []
    assert len(logs.list_logs_from_execution(two.id, TENANT)) == 2
    logs.delete_logs_from_flow(f"{NS}.logs", "chatty", None, TENANT)  # type: ignore[arg-type]
    assert logs.list_logs_from_execution(two.id, TENANT) == []


def test_namespaces_search_one_and_autocomplete(client: KestraClient) -> None:
    """NamespaceControllerTest.list and get, and autocompleteNamespaces."""
    _flow(client, CLOCK)
    found = client.namespaces.search_namespaces(TENANT, q="company", page=1, size=1, sort=["id"])
    assert [n.id for n in found.results] == ["company"]
    assert found.total >= 2 and found.results[0].deleted is False
    assert client.namespaces.namespace(NS, TENANT).id == NS
    ids = client.namespaces.autocomplete_namespaces(
        TENANT, ApiAutocomplete(q="team", ids=["company", "ghost"])
    )
    assert "company" in ids and NS in ids and "ghost" not in ids


def test_unlock_restart_and_delete_a_trigger(client: KestraClient) -> None:
    """TriggerControllerTest: unlock (409, podium's triggers hold no lock; the bulk forms
    count none), restart (the trigger back), delete (its state; 404 once the flow is gone)."""
    _flow(client, CLOCK)
    triggers = client.triggers
    with pytest.raises(ConflictException, match="Trigger is not locked"):
        triggers.unlock_trigger(TENANT, NS, "clock", "hourly")
    with pytest.raises(NotFoundException):
        triggers.unlock_trigger(TENANT, NS, "clock", "nope")
    listed = [{"namespace": NS, "flowId": "clock", "triggerId": "hourly"}]
    assert triggers.unlock_triggers_by_ids(TENANT, listed) == {"count": 0}
    assert triggers.unlock_triggers_by_query(TENANT) == {"count": 0}
    restarted = triggers.restart_trigger(TENANT, NS, "clock", "hook")
    assert (restarted["triggerId"], restarted["disabled"]) == ("hook", False)
    triggers.disabled_triggers_by_ids(
        TENANT, TriggerControllerSetDisabledRequest(triggers=[_trigger("hook")], disabled=True)
    )
    assert _contexts(client)["hook"]["disabled"] is True
    assert triggers.delete_trigger(TENANT, NS, "clock", "hook") is None
    assert _contexts(client)["hook"]["disabled"] is False
    with pytest.raises(NotFoundException):
        triggers.delete_trigger(TENANT, NS, "clock", "nope")


def test_disable_enable_delete_and_export_several_triggers(client: KestraClient) -> None:
    """TriggerControllerTest: disabledTriggersByIds / ByQuery, deleteTriggersByIds / ByQuery
    (the filters in kestrapy's request body) and exportTriggers (CSV)."""
    _flow(client, CLOCK)
    triggers = client.triggers
    by_namespace = [QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": NS})]
    hook = [QueryFilter(field="TRIGGER_ID", operation="EQUALS", value={"value": "hook"})]
    both = TriggerControllerSetDisabledRequest(
        triggers=[_trigger("hook"), _trigger("hourly")], disabled=True
    )
    assert triggers.disabled_triggers_by_ids(TENANT, both) == {"count": 2}
    assert triggers.disabled_triggers_by_query(TENANT, disabled=False, filters=hook) == {"count": 1}
    assert {t: c["disabled"] for t, c in _contexts(client).items()} == {
        "hourly": True,
        "hook": False,
    }
    text = triggers.export_triggers(TENANT, filters=by_namespace)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {(r["triggerId"], r["disabled"]) for r in rows if r["flowId"] == "clock"} == {
        ("hourly", "true"),
        ("hook", "false"),
    }
    assert triggers.delete_triggers_by_ids(TENANT, [_trigger("hourly")]) == {"count": 1}
    assert _contexts(client)["hourly"]["disabled"] is False
    assert triggers.disabled_triggers_by_query(TENANT, filters=hook) == {"count": 1}
    request = DeleteTriggersByQueryRequest(filters=hook)
    assert triggers.delete_triggers_by_query(TENANT, request) == {"count": 1}
    assert _contexts(client)["hook"]["disabled"] is False


def test_pause_resume_and_delete_backfills(podium: ServeProcess, client: KestraClient) -> None:
    """TriggerControllerTest: pauseBackfill, unpauseBackfill, deleteBackfill and their
    ByIds / ByQuery forms (BulkResponse); "No backfill found" is a 400."""
    _flow(client, CLOCK)
    triggers = client.triggers
    hourly = _trigger("hourly")
    on_clock = [QueryFilter(field="FLOW_ID", operation="EQUALS", value={"value": "clock"})]
    _start_backfill(podium)
    assert triggers.pause_backfill(TENANT, hourly)["backfill"]["paused"] is True
    assert triggers.unpause_backfill(TENANT, hourly)["backfill"]["paused"] is False
    assert triggers.pause_backfill_by_ids(TENANT, [hourly, _trigger("hook")]) == {"count": 1}
    assert triggers.unpause_backfill_by_ids(TENANT, [hourly]) == {"count": 1}
    assert triggers.pause_backfill_by_query(TENANT, filters=on_clock) == {"count": 1}
    assert _contexts(client)["hourly"]["backfill"]["paused"] is True
    assert triggers.unpause_backfill_by_query(TENANT, filters=on_clock) == {"count": 1}
    assert triggers.delete_backfill(TENANT, hourly)["backfill"] is None
    with pytest.raises(Exception, match="No backfill found") as refused:
        triggers.pause_backfill(TENANT, hourly)
    assert getattr(refused.value, "status", None) == 400
    _start_backfill(podium)
    assert triggers.delete_backfill_by_ids(TENANT, [hourly]) == {"count": 1}
    _start_backfill(podium)
    assert triggers.delete_backfill_by_query(TENANT, filters=on_clock) == {"count": 1}
    assert triggers.delete_backfill_by_query(TENANT, filters=on_clock) == {"count": 0}
