"""Every FlowsApi operation of Kestra's Python SDK, `kestrapy` 1.3.1, unchanged against a
real `podium serve` (paths under `/api/v1/main/...`), beyond the CRUD and search of
tests/test_kestrapy.py: bulk and namespace updates, by-ids and by-query actions, export and
import, source search, deprecated tasks, revisions, graphs, dependencies, a task, the
validations and the concurrency limits.

As in tests/test_kestrapy.py, the `client` fixture turns kestrapy's silent fallback to an
unchecked model into a failure, so every answer validates against Kestra's own models.
The behaviour checked is FlowControllerTest's and ConcurrencyLimitController's.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
from kestrapy import KestraClient
from kestrapy.base_api import BaseApi
from kestrapy.exceptions import NotFoundException, UnprocessableEntityException
from kestrapy.models.concurrency_limit import ConcurrencyLimit
from kestrapy.models.flow_controller_task_validation_type import (
    FlowControllerTaskValidationType,
)
from kestrapy.models.id_with_namespace import IdWithNamespace
from kestrapy.models.query_filter import QueryFilter

from tests.daemon_process import ServeProcess
from tests.test_kestrapy import PASSWORD, USER, _strict

TENANT = "main"
LOG = "io.kestra.plugin.core.log.Log"


def flow(flow_id: str, namespace: str, extra: str = "", message: str = "hello") -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: log\n    type: {LOG}\n"
        f"    message: {message}\n{extra}"
    )


@pytest.fixture(scope="module")
def podium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("kestrapy-flows")
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


def ids(*pairs: tuple[str, str]) -> list[IdWithNamespace]:
    return [IdWithNamespace(namespace=ns, id=i) for ns, i in pairs]


def test_bulk_update_and_update_a_namespace(client: KestraClient) -> None:
    """bulk_update_flows and update_flows_in_namespace (FlowControllerTest.bulk,
    updateFlowFlowsInNamespaceAsString)."""
    ns = "sdk.bulk"
    body = "---\n".join(flow(f"f{i}", ns) for i in (1, 2))
    created = client.flows.bulk_update_flows(TENANT, namespace=ns, body=body)
    assert [(f.id, f.revision) for f in created] == [("f1", 1), ("f2", 1)]
    again = client.flows.bulk_update_flows(TENANT, delete=False, namespace=ns, body=body)
    assert {f.revision for f in again} == {1}
    updated = client.flows.update_flows_in_namespace(ns, TENANT, flow("f3", ns))
    assert [f.id for f in updated] == ["f1", "f2", "f3"]
    assert [f.id for f in client.flows.list_flows_by_namespace(ns, TENANT)] == ["f3"]
    with pytest.raises(UnprocessableEntityException, match=r"flow\.namespace"):
        client.flows.bulk_update_flows(
            TENANT, namespace=ns, allow_namespace_child=False, body=flow("x", ns + ".child")
        )
    child = client.flows.bulk_update_flows(
        TENANT, delete=False, namespace=ns, allow_namespace_child=True, body=flow("x", ns + ".c")
    )
    assert [f.namespace for f in child] == [ns + ".c"]
    assert ns + ".c" in client.flows.list_distinct_namespaces(TENANT)


def test_disable_enable_and_delete_by_ids_and_by_query(client: KestraClient) -> None:
    """disable/enable/delete_flows_by_ids and _by_query (BulkResponse)."""
    ns = "sdk.actions"
    for flow_id in ("a", "b", "c"):
        client.flows.create_flow(TENANT, flow(flow_id, ns))
    by_ns = [QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": ns})]
    assert client.flows.disable_flows_by_ids(TENANT, ids((ns, "a"))).count == 1
    assert client.flows.flow(ns, "a", TENANT).disabled is True
    assert client.flows.disable_flows_by_query(TENANT, filters=by_ns).count == 2
    assert client.flows.enable_flows_by_ids(TENANT, ids((ns, "a"), (ns, "b"))).count == 2
    assert client.flows.enable_flows_by_query(TENANT, filters=by_ns).count == 1
    assert not any(f.disabled for f in client.flows.list_flows_by_namespace(ns, TENANT))
    assert client.flows.delete_flows_by_ids(TENANT, ids((ns, "a"))).count == 1
    with pytest.raises(NotFoundException):
        client.flows.delete_flows_by_ids(TENANT, ids((ns, "a")))
    assert client.flows.delete_flows_by_query(TENANT, filters=by_ns).count == 2
    assert client.flows.list_flows_by_namespace(ns, TENANT) == []


def test_export_and_import(client: KestraClient) -> None:
    """export_flows_by_ids, export_flows_by_query (ZIPs of sources) and import_flows (a
    YAML of several flows, then a ZIP)."""
    ns = "sdk.transfer"
    client.flows.create_flow(TENANT, flow("one", ns))
    client.flows.create_flow(TENANT, flow("two", ns))
    data = client.flows.export_flows_by_ids(TENANT, ids((ns, "one")))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == [f"{ns}.one.yaml"]
    by_query = client.flows.export_flows_by_query(
        TENANT, filters=[QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": ns})]
    )
    with zipfile.ZipFile(io.BytesIO(by_query)) as archive:
        assert sorted(archive.namelist()) == [f"{ns}-one.yml", f"{ns}-two.yml"]
    text = flow("three", ns) + "---\nid: broken\n"
    assert client.flows.import_flows(TENANT, file_content=text.encode()) == ["1"]
    assert client.flows.flow(ns, "three", TENANT).revision == 1
    assert client.flows.import_flows(TENANT, fail_on_error=True, file_content=by_query) == []


def test_source_search_deprecated_and_revisions(client: KestraClient) -> None:
    """search_flows_by_source_code, list_deprecated, list_flow_revisions, delete_revisions."""
    ns = "sdk.source"
    client.flows.create_flow(TENANT, flow("needle", ns, message="find the NEEDLE here"))
    found = client.flows.search_flows_by_source_code(TENANT, q="needle here", namespace=ns)
    assert found.total == 1
    assert found.results[0].model.id == "needle"
    assert "[mark]NEEDLE here[/mark]" in found.results[0].fragments[0]
    legacy = flow("legacy", ns).replace(LOG, "io.kestra.core.tasks.log.Log")
    client.flows.create_flow(TENANT, legacy)
    deprecated = client.flows.list_deprecated(TENANT, namespace=ns)
    assert [(d["flowId"], d["deprecatedTasks"][0]["replacement"]) for d in deprecated] == [
        ("legacy", LOG)
    ]
    client.flows.update_flow(ns, "needle", TENANT, flow("needle", ns, message="second"))
    client.flows.update_flow(ns, "needle", TENANT, flow("needle", ns, message="third"))
    revisions = client.flows.list_flow_revisions(ns, "needle", TENANT)
    assert [r.revision for r in revisions] == [1, 2, 3]
    client.flows.delete_revisions(ns, "needle", TENANT, [1, 2])
    assert [r.revision for r in client.flows.list_flow_revisions(ns, "needle", TENANT)] == [3]
    everything = client.flows.list_flow_revisions(ns, "needle", TENANT, allow_delete=True)
    assert [r.revision for r in everything] == [1, 2, 3]


def test_graphs_dependencies_and_a_task(client: KestraClient) -> None:
    """generate_flow_graph (with a subflow expanded), generate_flow_graph_from_source,
    flow_dependencies, flow_dependencies_from_namespace, task_from_flow."""
    ns = "sdk.graph"
    client.flows.create_flow(TENANT, flow("child", ns))
    parent = (
        f"id: parent\nnamespace: {ns}\ntasks:\n  - id: call\n"
        f"    type: io.kestra.plugin.core.flow.Subflow\n    namespace: {ns}\n    flowId: child\n"
        f"  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
        f"      - id: p1\n        type: {LOG}\n        message: x\n"
    )
    client.flows.create_flow(TENANT, parent)
    graph = client.flows.generate_flow_graph(ns, "parent", TENANT, subflows=["root.call"])
    uids = {node.uid for node in graph.nodes}
    assert {"root.call", "root.call.log", "root.par", "root.par.p1"} <= uids
    assert {c.cluster.uid for c in graph.clusters} == {"cluster_root.call", "cluster_root.par"}
    from_source = client.flows.generate_flow_graph_from_source(TENANT, parent)
    assert len(from_source.clusters) == 1
    topology = client.flows.flow_dependencies(ns, "child", TENANT, destination_only=True)
    assert [(e.source, e.target, e.relation.value) for e in topology.edges] == [
        (f"main_{ns}_parent", f"main_{ns}_child", "FLOW_TASK")
    ]
    expanded = client.flows.flow_dependencies(ns, "parent", TENANT, expand_all=True)
    assert {n.id for n in expanded.nodes} == {"parent", "child"}
    of_namespace = client.flows.flow_dependencies_from_namespace(ns, TENANT)
    assert {n.id for n in of_namespace.nodes} == {"parent", "child"}
    task = client.flows.task_from_flow(ns, "parent", "p1", TENANT)
    assert (task.id, task.type) == ("p1", LOG)
    with pytest.raises(NotFoundException):
        client.flows.task_from_flow(ns, "parent", "nope", TENANT)


def test_validations(client: KestraClient) -> None:
    """validate_flows, validate_task (both sections) and validate_trigger."""
    [ok] = client.flows.validate_flows(TENANT, flow("v", "sdk.validate"))
    assert (ok.index, ok.constraints) == (0, None)
    task = {"id": "t", "type": LOG, "message": "x"}
    valid = client.flows.validate_task(FlowControllerTaskValidationType.TASKS, TENANT, task)
    assert valid.constraints is None
    wrong = client.flows.validate_task(
        FlowControllerTaskValidationType.TASKS, TENANT, {"id": "t", "type": LOG}
    )
    assert "missing required property 'message'" in (wrong.constraints or "")
    schedule = {"id": "s", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "0 * * * *"}
    as_section = client.flows.validate_task(
        FlowControllerTaskValidationType.TRIGGERS, TENANT, schedule
    )
    assert as_section.constraints is None
    trigger = client.flows.validate_trigger(TENANT, {**schedule, "cron": None})
    assert trigger.constraints is not None


def test_concurrency_limits(client: KestraClient) -> None:
    """search_concurrency_limits and update_concurrency_limit."""
    ns = "sdk.concurrency"
    client.flows.create_flow(TENANT, flow("limited", ns, "concurrency:\n  limit: 2\n"))
    found = client.flows.search_concurrency_limits(TENANT)
    mine = [c for c in found.results if c.namespace == ns]
    assert [(c.flow_id, c.running, c.tenant_id) for c in mine] == [("limited", 0, TENANT)]
    limit = ConcurrencyLimit(tenantId=TENANT, namespace=ns, flowId="limited", running=1)
    updated = client.flows.update_concurrency_limit(ns, "limited", TENANT, limit)
    assert updated.running == 1
    with pytest.raises(NotFoundException):
        client.flows.update_concurrency_limit(
            ns, "nope", TENANT, ConcurrencyLimit(tenantId=TENANT, namespace=ns, flowId="nope")
        )
