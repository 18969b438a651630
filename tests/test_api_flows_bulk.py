"""Kestra's bulk flow endpoints against a real app and a live flows directory (every change
is a file written or removed, a revision in the store): FlowControllerTest.bulk,
updateFlowFlowsInNamespaceAsString, updateFlowFromJsonFlowsInNamespace,
disableEnableFlowsByIds, disableEnableFlowsByQuery, deleteFlowFlowsByQuery and
deleteFlowFlowsByIds (kestra-io/kestra webserver/src/test/java/.../FlowControllerTest.java).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_helpers import FlowServer, call, flow_server, yaml_body
from tests.harness import Harness


def flow(flow_id: str, namespace: str, value: str = "a", *, disabled: str = "") -> str:
    """Kestra's generateFlowAsString: a comment, an input named after `value`, one task."""
    return (
        f"id: {flow_id}\n# Comment i added\nnamespace: {namespace}\ninputs:\n"
        f"  - id: {value}\n    type: STRING\ntasks:\n  - id: test\n"
        "    type: io.kestra.plugin.core.debug.Return\n    format: test\n" + disabled
    )


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    async with flow_server(h, tmp_path / "flows") as s:
        yield s


async def create(server: FlowServer, source: str) -> dict[str, Any]:
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(source))
    assert status == 200, doc
    return dict(doc)


def ids(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["id"]) for d in docs]


async def files(root: Path) -> list[str]:
    found = await asyncio.to_thread(lambda: sorted(root.rglob("*.yaml")))
    return [str(p.relative_to(root)) for p in found]


async def test_bulk_creates_and_a_second_identical_call_adds_no_revision(
    h: Harness, server: FlowServer
) -> None:
    """FlowControllerTest.bulk: three flows of one YAML; the same again keeps revision 1."""
    body = "---\n".join(flow(f"flow{i}", "io.kestra.bulk") for i in (1, 2, 3))
    url = f"{server.url}/api/v1/flows/bulk?namespace=io.kestra.bulk"
    status, docs, _ = await call("POST", url, **yaml_body(body))
    assert status == 200, docs
    assert ids(docs) == [("io.kestra.bulk", f"flow{i}") for i in (1, 2, 3)]
    assert {d["revision"] for d in docs} == {1}
    assert docs[0]["source"] == flow("flow1", "io.kestra.bulk")
    status, docs, _ = await call("POST", url, **yaml_body(body))
    assert (status, {d["revision"] for d in docs}) == (200, {1})
    assert await files(server.root) == [f"io.kestra.bulk/flow{i}.yaml" for i in (1, 2, 3)]
    assert h.engine.catalog[("io.kestra.bulk", "flow2")].revision == 1


async def test_bulk_deletes_the_flows_not_sent_unless_told_not_to(server: FlowServer) -> None:
    for flow_id in ("keep", "old"):
        await create(server, flow(flow_id, "io.kestra.bulk"))
    await create(server, flow("other", "io.kestra.elsewhere"))
    url = f"{server.url}/api/v1/flows/bulk?namespace=io.kestra.bulk"
    status, docs, _ = await call(
        "POST", url + "&delete=false", **yaml_body(flow("new", "io.kestra.bulk"))
    )
    assert (status, ids(docs)) == (200, [("io.kestra.bulk", "new")])
    body = flow("keep", "io.kestra.bulk", "b")
    status, docs, _ = await call("POST", url, **yaml_body(body))
    assert status == 200
    assert ids(docs) == [
        ("io.kestra.bulk", "new"),
        ("io.kestra.bulk", "old"),
        ("io.kestra.bulk", "keep"),
    ]
    assert [d["revision"] for d in docs] == [1, 1, 2]
    assert await files(server.root) == [
        "io.kestra.bulk/keep.yaml",
        "io.kestra.elsewhere/other.yaml",
    ]


async def test_bulk_without_a_namespace_deletes_every_other_flow(server: FlowServer) -> None:
    """bulkUpdateOrCreate with no namespace: `delete` considers all flows (kept by id)."""
    await create(server, flow("a", "one"))
    await create(server, flow("b", "two"))
    status, docs, _ = await call(
        "POST", f"{server.url}/api/v1/flows/bulk", **yaml_body(flow("b", "three"))
    )
    assert status == 200
    assert ids(docs) == [("one", "a"), ("three", "b")]
    assert await files(server.root) == ["three/b.yaml", "two/b.yaml"]


async def test_bulk_accepts_child_namespaces_only_when_asked(server: FlowServer) -> None:
    body = flow("child", "io.kestra.bulk.sub")
    url = f"{server.url}/api/v1/flows/bulk?namespace=io.kestra.bulk"
    status, doc, _ = await call("POST", url, **yaml_body(body))
    assert status == 422
    assert "flow.namespace" in doc["message"]
    assert doc["_embedded"]["errors"][0]["path"] == "flow.namespace"
    assert doc["_embedded"]["errors"][0]["line"] == 3  # where the namespace is written
    status, docs, _ = await call("POST", url + "&allowNamespaceChild=true", **yaml_body(body))
    assert (status, ids(docs)) == (200, [("io.kestra.bulk.sub", "child")])


async def test_bulk_refuses_everything_when_one_document_is_wrong(server: FlowServer) -> None:
    """A flow that does not validate (its line counted in the whole body), a duplicate id,
    a body that is not YAML: 422 or 415, and nothing is written."""
    broken = flow("ok", "io.kestra.bulk") + "---\n" + "id: bad\nnamespace: io.kestra.bulk\n"
    url = f"{server.url}/api/v1/flows/bulk?namespace=io.kestra.bulk"
    status, doc, _ = await call("POST", url, **yaml_body(broken))
    assert status == 422
    assert doc["_embedded"]["errors"][0]["line"] == 12  # line 1 of the second document
    assert "missing required property 'tasks'" in doc["message"]
    twice = flow("same", "io.kestra.bulk") + "---\n" + flow("same", "io.kestra.bulk", "b")
    status, doc, _ = await call("POST", url, **yaml_body(twice))
    assert (status, "flow.id: Duplicate flow id 'same'" in doc["message"]) == (422, True)
    status, doc, _ = await call("POST", url, data=b"id: x", headers={"Content-Type": "text/csv"})
    assert status == 415
    status, _, _ = await call(
        "POST", url + "&delete=maybe", **yaml_body(flow("x", "io.kestra.bulk"))
    )
    assert status == 400
    assert await files(server.root) == []


async def test_update_a_namespace_from_yaml(server: FlowServer) -> None:
    """updateFlowFlowsInNamespaceAsString, and updateFlowFromJsonFlowsInNamespace's rules
    with YAML: f1, f2 deleted once f3 and f4 are sent; a flow of another namespace is 422."""
    url = f"{server.url}/api/v1/flows/io.kestra.updatenamespace"
    first = "---\n".join(flow(f"f{i}", "io.kestra.updatenamespace", f"v{i}") for i in (1, 2, 3))
    status, docs, _ = await call("POST", url, **yaml_body(first))
    assert (status, len(docs)) == (200, 3)
    second = "---\n".join(
        [
            flow("f3", "io.kestra.updatenamespace", "v3-3"),
            flow("f4", "io.kestra.updatenamespace", "v4"),
        ]
    )
    status, docs, _ = await call("POST", url, **yaml_body(second))
    assert status == 200
    assert [d["id"] for d in docs] == ["f1", "f2", "f3", "f4"]
    assert docs[2]["inputs"][0]["id"] == "v3-3" and docs[3]["inputs"][0]["id"] == "v4"
    for gone in ("f1", "f2"):
        status, _, _ = await call("GET", f"{url}/{gone}")
        assert status == 404
    other = (
        flow("f6", "io.kestra.another") + "---\n" + flow("f4", "io.kestra.updatenamespace", "v5")
    )
    status, doc, _ = await call("POST", url, **yaml_body(other))
    assert (status, "flow.namespace" in doc["message"]) == (422, True)
    status, doc, _ = await call("GET", f"{url}/f4")
    assert doc["inputs"][0]["id"] == "v4"  # not updated


async def test_update_a_namespace_from_a_json_list_and_from_files(server: FlowServer) -> None:
    """The deprecated JSON variant (flows as objects, answered without source) and the
    multipart one (`flows` files; `override` sets their namespace)."""
    url = f"{server.url}/api/v1/flows/io.kestra.json"
    flows = [
        {
            "id": "j1",
            "namespace": "io.kestra.json",
            "labels": [{"key": "team", "value": "data"}],
            "revision": 7,
            "deleted": False,
            "tasks": [{"id": "t", "type": "io.kestra.plugin.core.log.Log", "message": "hi"}],
        },
        {"source": flow("j2", "io.kestra.json")},
    ]
    status, docs, _ = await call("POST", url, json=flows)
    assert status == 200, docs
    assert [(d["id"], d["revision"], "source" in d) for d in docs] == [
        ("j1", 1, False),
        ("j2", 1, False),
    ]
    assert docs[0]["labels"] == [{"key": "team", "value": "data"}]
    status, _, _ = await call("POST", url, json={"id": "x"})
    assert status == 400
    form = aiohttp.FormData()
    form.add_field("flows", flow("m1", "elsewhere").encode(), filename="m1.yaml")
    status, docs, _ = await call("POST", url + "?override=true&delete=false", data=form)
    assert status == 200, docs
    assert ids(docs) == [("io.kestra.json", "m1")]
    assert docs[0]["source"].count("namespace: io.kestra.json") == 1


async def test_disable_and_enable_by_ids(server: FlowServer, h: Harness) -> None:
    """disableEnableFlowsByIds: each flow gets `disabled` in its source, a new revision; one
    already so is not counted; an unknown id is a 404 and nothing changes."""
    for flow_id in ("each-object", "webhook"):
        await create(server, flow(flow_id, "io.kestra.tests"))
    body = [{"namespace": "io.kestra.tests", "id": i} for i in ("each-object", "webhook")]
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows/disable/by-ids", json=body)
    assert (status, doc) == (200, {"count": 2})
    disabled = h.engine.catalog[("io.kestra.tests", "webhook")]
    assert (disabled.disabled, disabled.revision) == (True, 2)
    assert disabled.source.endswith("disabled: true\n") and "# Comment i added" in disabled.source
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows/disable/by-ids", json=body)
    assert (status, doc) == (200, {"count": 0})
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows/enable/by-ids", json=body)
    assert (status, doc) == (200, {"count": 2})
    enabled = h.engine.catalog[("io.kestra.tests", "webhook")]
    assert (enabled.disabled, enabled.revision) == (False, 3)
    assert "disabled: false" in enabled.source and "disabled: true" not in enabled.source
    unknown = [*body, {"namespace": "io.kestra.tests", "id": "nope"}]
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows/disable/by-ids", json=unknown)
    assert status == 404 and "io.kestra.tests.nope" in doc["message"]
    assert not h.engine.catalog[("io.kestra.tests", "webhook")].disabled


async def test_disable_and_enable_by_query(server: FlowServer, h: Harness) -> None:
    """disableEnableFlowsByQuery with the legacy `namespace` (a prefix) and the filters."""
    await create(server, flow("toDisable", "io.kestra.unittest.disabled"))
    await create(server, flow("other", "io.kestra.unittest"))
    url = f"{server.url}/api/v1/flows"
    status, doc, _ = await call(
        "POST", f"{url}/disable/by-query?namespace=io.kestra.unittest.disabled"
    )
    assert (status, doc) == (200, {"count": 1})
    assert h.engine.catalog[("io.kestra.unittest.disabled", "toDisable")].disabled
    query = "filters[namespace][EQUALS]=io.kestra.unittest.disabled"
    status, doc, _ = await call("POST", f"{url}/enable/by-query?{query}")
    assert (status, doc) == (200, {"count": 1})
    assert not h.engine.catalog[("io.kestra.unittest.disabled", "toDisable")].disabled
    status, doc, _ = await call("POST", f"{url}/disable/by-query?filters[flowId][EQUALS]=x")
    assert status == 400 and "flowId" in doc["message"]


async def test_delete_by_query_and_by_ids(server: FlowServer, h: Harness) -> None:
    """deleteFlowFlowsByQuery (`q` and `namespace`) and deleteFlowFlowsByIds; an unknown id
    deletes nothing; the files go and the flows unload."""
    for flow_id in ("flowIdA", "flowIdB", "flowIdC"):
        await create(server, flow(flow_id, "io.kestra.tests.delete"))
    await create(server, flow("kept", "io.kestra.tests.delete"))
    url = f"{server.url}/api/v1/flows/delete"
    status, doc, _ = await call(
        "DELETE", f"{url}/by-query?q=flowId&namespace=io.kestra.tests.delete"
    )
    assert (status, doc) == (200, {"count": 3})
    assert [f.id for f in h.engine.catalog] == ["kept"]
    await create(server, flow("second", "io.kestra.tests.delete"))
    body = [{"namespace": "io.kestra.tests.delete", "id": "kept"}, {"namespace": "x", "id": "y"}]
    status, doc, _ = await call("DELETE", f"{url}/by-ids", json=body)
    assert status == 404
    assert len(h.engine.catalog) == 2
    status, doc, _ = await call("DELETE", f"{url}/by-ids", json=body[:1])
    assert (status, doc) == (200, {"count": 1})
    assert await files(server.root) == ["io.kestra.tests.delete/second.yaml"]
    status, doc, _ = await call("DELETE", f"{url}/by-query?labels=team:none")
    assert (status, doc) == (200, {"count": 0})
    status, doc, _ = await call("DELETE", f"{url}/by-query?scope=SYSTEM")
    assert (status, doc) == (200, {"count": 0})


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"namespace": "a", "id": "b"}', b'[{"namespace": "a"}]', b"[1]"],
)
async def test_a_malformed_id_list_is_400(server: FlowServer, body: bytes) -> None:
    for method, path in (
        ("DELETE", "delete/by-ids"),
        ("POST", "disable/by-ids"),
        ("POST", "enable/by-ids"),
        ("POST", "export/by-ids"),
    ):
        status, doc, _ = await call(
            method,
            f"{server.url}/api/v1/flows/{path}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, (path, doc)


async def test_without_a_flows_directory_changes_are_409(h: Harness) -> None:
    from tests.api_helpers import serving

    async with serving(h) as url:
        status, doc, _ = await call("POST", f"{url}/api/v1/flows/bulk", **yaml_body("id: a"))
        assert status == 409 and "no flows directory" in doc["message"]
        status, _, _ = await call("DELETE", f"{url}/api/v1/flows/delete/by-query")
        assert status == 409
