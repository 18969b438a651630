"""Kestra's FlowController views and per-flow endpoints against a real app and a live flows
directory: source search (SearchResult fragments), deprecated tasks, the FlowGraph of a
flow and of a source, dependencies, a task's definition, validate task/trigger, flows of
a namespace, delete revisions, and the ConcurrencyLimitController. The Kestra tests
named are in webserver/src/test/java/io/kestra/webserver/controllers/api/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_helpers import FlowServer, call, flow_server, yaml_body
from tests.harness import Harness

LOG = "io.kestra.plugin.core.log.Log"


def flow(flow_id: str, namespace: str = "io.kestra.tests", tasks: str = "") -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n" + (
        tasks or f"  - id: log\n    type: {LOG}\n    message: hello {flow_id}\n"
    )


PARENT = flow(
    "parent",
    tasks="  - id: call\n    type: io.kestra.plugin.core.flow.Subflow\n"
    "    namespace: io.kestra.tests\n    flowId: child\n"
    f"  - id: seq\n    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n"
    f"      - id: inner\n        type: {LOG}\n        message: deep\n",
)
FOLLOWER = flow("follower", "io.kestra.other") + (
    "triggers:\n  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n"
    "    conditions:\n      - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
    "        namespace: io.kestra.tests\n        flowId: parent\n"
)


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    async with flow_server(h, tmp_path / "flows") as s:
        for source in (flow("child"), PARENT, FOLLOWER):
            await create(s, source)
        yield s


async def create(server: FlowServer, source: str) -> dict[str, Any]:
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(source))
    assert status == 200, doc
    return dict(doc)


async def test_flows_of_a_namespace(server: FlowServer) -> None:
    """getFlowFlowsByNamespace: the flows of that namespace only, without source."""
    status, docs, _ = await call("GET", f"{server.url}/api/v1/flows/io.kestra.tests")
    assert status == 200
    assert [d["id"] for d in docs] == ["child", "parent"]
    assert all("source" not in d for d in docs)
    status, docs, _ = await call("GET", f"{server.url}/api/v1/flows/io.kestra")
    assert (status, docs) == (200, [])


async def test_search_in_the_sources_with_marked_fragments(server: FlowServer) -> None:
    """findSourceCode: flows whose source holds `q` (any case), a fragment of four lines
    from the one before the first match, the match between [mark] and [/mark]."""
    url = f"{server.url}/api/v1/flows/source"
    status, doc, _ = await call("GET", f"{url}?q=DEEP")
    assert status == 200
    assert doc["total"] == 1
    [result] = doc["results"]
    assert result["model"]["id"] == "parent" and "source" not in result["model"]
    assert result["fragments"] == [f"        type: {LOG}\n        message: [mark]deep[/mark]"]
    _, doc, _ = await call("GET", f"{url}?q=hello&namespace=io.kestra.other")
    assert [r["model"]["id"] for r in doc["results"]] == ["follower"]
    _, doc, _ = await call("GET", f"{url}?size=1&page=2")
    assert (doc["total"], [r["model"]["id"] for r in doc["results"]]) == (3, ["child"])
    status, _, _ = await call("GET", f"{url}?page=0")
    assert status == 400


async def test_deprecated_task_types_are_listed_with_their_replacement(
    server: FlowServer,
) -> None:
    """FlowService.findDeprecatedTasks: an older type name (its replacement), a type
    deprecated itself (no replacement)."""
    await create(
        server,
        flow(
            "old",
            "io.kestra.legacy",
            f"  - id: alias\n    type: io.kestra.core.tasks.log.Log\n    message: x\n"
            "  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n    values: [1]\n"
            f"    tasks:\n      - id: fine\n        type: {LOG}\n        message: y\n",
        ),
    )
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/deprecated")
    assert status == 200
    assert doc == [
        {
            "namespace": "io.kestra.legacy",
            "flowId": "old",
            "revision": 1,
            "deprecatedTasks": [
                {
                    "taskId": "alias",
                    "taskType": "io.kestra.core.tasks.log.Log",
                    "replacement": LOG,
                },
                {
                    "taskId": "each",
                    "taskType": "io.kestra.plugin.core.flow.ForEach",
                    "replacement": None,
                },
            ],
        }
    ]
    _, doc, _ = await call("GET", f"{server.url}/api/v1/flows/deprecated?namespace=io.kestra.tests")
    assert doc == []


async def test_the_graph_of_a_flow_and_of_a_source(server: FlowServer) -> None:
    """FlowControllerTest.graph / graph_FlowNotFound, and generateFlowGraphFromSource."""
    status, graph, _ = await call("GET", f"{server.url}/api/v1/flows/io.kestra.tests/parent/graph")
    assert status == 200
    uids = {n["uid"]: n["type"].rsplit(".", 1)[1] for n in graph["nodes"]}
    assert uids["root.call"] == "SubflowGraphTask"
    assert uids["root.seq.inner"] == "GraphTask"
    assert [c["cluster"]["uid"] for c in graph["clusters"]] == ["cluster_root.seq"]
    assert all(not c["cluster"]["uid"].startswith("cluster_cluster_") for c in graph["clusters"])
    status, opened, _ = await call(
        "GET", f"{server.url}/api/v1/flows/io.kestra.tests/parent/graph?subflows=root.call"
    )
    assert status == 200
    assert "root.call.log" in {n["uid"] for n in opened["nodes"]}
    status, doc, _ = await call(
        "GET", f"{server.url}/api/v1/flows/io.kestra.tests/unknown-flow/graph"
    )
    assert (status, doc["message"]) == (
        404,
        "Not Found: Unable to find flow main_io.kestra.tests_unknown-flow",
    )
    status, doc, _ = await call(
        "GET", f"{server.url}/api/v1/flows/io.kestra.tests/parent/graph?revision=x"
    )
    assert status == 400
    status, graph, _ = await call("POST", f"{server.url}/api/v1/flows/graph", **yaml_body(PARENT))
    assert status == 200 and len(graph["clusters"]) == 1
    status, doc, _ = await call(
        "POST", f"{server.url}/api/v1/flows/graph", **yaml_body("id: x\nnamespace: y\n")
    )
    assert status == 422


async def test_the_graph_of_an_earlier_revision(server: FlowServer) -> None:
    await create(server, flow("versions"))
    status, _, _ = await call(
        "PUT",
        f"{server.url}/api/v1/flows/io.kestra.tests/versions",
        **yaml_body(flow("versions", tasks=PARENT.split("tasks:\n", 1)[1])),
    )
    assert status == 200
    url = f"{server.url}/api/v1/flows/io.kestra.tests/versions/graph"
    _, now, _ = await call("GET", url)
    _, before, _ = await call("GET", f"{url}?revision=1")
    assert "root.seq.inner" in {n["uid"] for n in now["nodes"]}
    assert "root.log" in {n["uid"] for n in before["nodes"]}
    status, _, _ = await call("GET", f"{url}?revision=9")
    assert status == 404


async def test_dependencies_of_a_flow_and_of_a_namespace(server: FlowServer) -> None:
    """FlowControllerTest.dependencies: the Subflow (FLOW_TASK) and the Flow trigger
    (FLOW_TRIGGER) as FlowTopologyGraph nodes and edges."""
    url = f"{server.url}/api/v1/flows/io.kestra.tests/parent/dependencies"
    status, doc, _ = await call("GET", url)
    assert status == 200
    edges = {(e["source"], e["target"], e["relation"]) for e in doc["edges"]}
    assert edges == {
        ("main_io.kestra.tests_parent", "main_io.kestra.tests_child", "FLOW_TASK"),
        ("main_io.kestra.tests_parent", "main_io.kestra.other_follower", "FLOW_TRIGGER"),
    }
    _, doc, _ = await call("GET", url + "?destinationOnly=true")
    assert doc == {"nodes": [], "edges": []}
    status, _, _ = await call("GET", url + "?expandAll=yes")
    assert status == 400
    status, doc, _ = await call(
        "GET", f"{server.url}/api/v1/namespaces/io.kestra.other/dependencies"
    )
    assert status == 200
    assert {n["id"] for n in doc["nodes"]} == {"parent", "follower"}


async def test_a_task_of_a_flow(server: FlowServer) -> None:
    """FlowControllerTest.task and taskNotFound: the task as written, nested ones too."""
    url = f"{server.url}/api/v1/flows/io.kestra.tests/parent/tasks"
    status, doc, _ = await call("GET", f"{url}/inner")
    assert (status, doc) == (200, {"id": "inner", "type": LOG, "message": "deep"})
    status, doc, _ = await call("GET", f"{url}/seq")
    assert doc["tasks"][0]["id"] == "inner"
    status, _, _ = await call("GET", f"{url}/notFound")
    assert status == 404
    status, doc, _ = await call("GET", f"{url}/inner?revision=1")
    assert status == 200
    status, _, _ = await call("GET", f"{server.url}/api/v1/flows/io.kestra.tests/nope/tasks/x")
    assert status == 404


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        ("task", {"id": "t", "type": LOG, "message": "ok"}, None),
        (
            "task",
            {"id": "t", "type": "io.kestra.plugin.core.debug.UnknownTask"},
            "unknown task type",
        ),
        ("task", {"id": "t", "type": LOG, "message": "x", "unknownProp": 1}, "unknownProp"),
        ("task", {"id": "t", "type": LOG}, "missing required property 'message'"),
        (
            "trigger",
            {"id": "s", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "0 * * * *"},
            None,
        ),
        (
            "trigger",
            {"id": "s", "type": "io.kestra.plugin.core.debug.UnknownTrigger"},
            "unknown trigger type",
        ),
        ("trigger", {"id": "s", "type": "io.kestra.plugin.core.trigger.Schedule"}, "cron"),
    ],
)
async def test_validate_one_task_or_trigger(
    server: FlowServer, path: str, body: dict[str, Any], problem: str | None
) -> None:
    """FlowControllerTest.validateTask / validateTrigger: one ValidateConstraintViolation,
    `constraints` only when something is wrong."""
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows/validate/{path}", json=body)
    assert status == 200
    assert (doc["index"], doc["outdated"]) == (0, False)
    if problem is None:
        assert "constraints" not in doc
    else:
        assert problem in doc["constraints"]


async def test_validate_a_trigger_as_yaml_through_the_task_section(server: FlowServer) -> None:
    url = f"{server.url}/api/v1/flows/validate/task"
    yaml = "id: s\ntype: io.kestra.plugin.core.trigger.Schedule\ncron: '0 * * * *'\n"
    status, doc, _ = await call("POST", f"{url}?section=TRIGGERS", **yaml_body(yaml))
    assert (status, "constraints" in doc) == (200, False)
    status, doc, _ = await call("POST", f"{url}?section=TASKS", **yaml_body(yaml))
    assert "unknown task type" in doc["constraints"]
    status, _, _ = await call("POST", f"{url}?section=OTHER", **yaml_body(yaml))
    assert status == 400
    status, _, _ = await call("POST", url, data=b"", headers={"Content-Type": "application/json"})
    assert status == 400
    status, doc, _ = await call(
        "POST", url, data=b'{"id": ', headers={"Content-Type": "application/json"}
    )
    assert status == 200 and "invalid YAML" in doc["constraints"]
    status, doc, _ = await call("POST", f"{url}?section=TRIGGERS", data=yaml.encode())
    assert (status, "constraints" in doc) == (200, False)  # untyped, as kestrapy sends a text
    status, _, _ = await call("POST", url, data={"id": "x"})
    assert status == 415


async def test_delete_revisions(server: FlowServer, h: Harness) -> None:
    """FlowController.deleteRevisions: the revisions named leave the list; the latest
    among them deletes the flow (its file goes)."""
    for message in ("one", "two", "three"):
        source = flow("revised", tasks=f"  - id: log\n    type: {LOG}\n    message: {message}\n")
        status, _, _ = await call(
            "PUT" if message != "one" else "POST",
            f"{server.url}/api/v1/flows" + ("/io.kestra.tests/revised" if message != "one" else ""),
            **yaml_body(source),
        )
        assert status == 200
    url = f"{server.url}/api/v1/flows/io.kestra.tests/revised/revisions"
    status, body, _ = await call("DELETE", f"{url}?revisions=1,2")
    assert (status, body) == (204, "")
    _, docs, _ = await call("GET", url)
    assert [d["revision"] for d in docs] == [3]
    _, docs, _ = await call("GET", url + "?allowDelete=true")
    assert [d["revision"] for d in docs] == [1, 2, 3]
    status, doc, _ = await call(
        "GET", f"{server.url}/api/v1/flows/io.kestra.tests/revised?revision=1"
    )
    assert status == 200 and doc["revision"] == 1
    for bad in ("", "0", "x", "1,,2"):
        status, _, _ = await call("DELETE", f"{url}?revisions={bad}")
        assert status == 400, bad
    status, _, _ = await call("DELETE", url)
    assert status == 400
    status, _, _ = await call("DELETE", f"{url}?revisions=3")
    assert status == 204
    assert ("io.kestra.tests", "revised") not in h.engine.catalog
    assert not await asyncio.to_thread((server.root / "io.kestra.tests" / "revised.yaml").exists)
    status, _, _ = await call("DELETE", f"{url}?revisions=3")
    assert status == 404


async def test_concurrency_limits(server: FlowServer, h: Harness) -> None:
    """ConcurrencyLimitController: the flows with a limit, their running count, and the
    count set (read from the body, as Kestra reads it)."""
    limited = flow("limited") + "concurrency:\n  limit: 1\n"
    await create(server, limited)
    url = f"{server.url}/api/v1/concurrency-limit"
    status, doc, _ = await call("GET", f"{url}/search")
    assert (status, doc) == (
        200,
        {
            "results": [
                {
                    "tenantId": "main",
                    "namespace": "io.kestra.tests",
                    "flowId": "limited",
                    "running": 0,
                }
            ],
            "total": 1,
        },
    )
    body = {"tenantId": "main", "namespace": "io.kestra.tests", "flowId": "limited", "running": 2}
    status, doc, _ = await call("PUT", f"{url}/io.kestra.tests/limited", json=body)
    assert (status, doc["running"]) == (200, 2)
    flow_model = h.engine.catalog[("io.kestra.tests", "limited")]
    assert h.engine.local.admission.active(flow_model) == 2
    status, doc, _ = await call("GET", f"{url}/io.kestra.tests/limited")
    assert (status, doc["running"]) == (200, 2)
    status, _, _ = await call("GET", f"{url}/io.kestra.tests/child")
    assert status == 404
    status, _, _ = await call("PUT", f"{url}/x/y", json={**body, "flowId": "child"})
    assert status == 404
    for wrong in ({**body, "running": -1}, {**body, "running": "2"}, [body], {"flowId": 1}):
        status, _, _ = await call("PUT", f"{url}/io.kestra.tests/limited", json=wrong)
        assert status == 400, wrong
