"""Flow endpoints against a real app and a live flows directory: flows are files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api_helpers import FlowServer, call, flow_server, serving, yaml_body
from tests.harness import Harness

HELLO = """\
id: hello
namespace: team.data
description: Says hello
labels:
  owner: ada
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: Hello
"""

BAD_TYPE = """\
id: hello
namespace: team.data
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Logg
    message: hi
  - id: b
    type: io.kestra.plugin.core.log.Log
"""


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    async with flow_server(h, tmp_path / "flows") as s:
        yield s


async def read(path: Path) -> str:
    return await asyncio.to_thread(path.read_text)


async def exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


async def test_create_writes_the_file_loads_it_and_answers_revision_one(
    h: Harness, server: FlowServer
) -> None:
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    assert status == 200, doc
    assert (doc["id"], doc["namespace"], doc["revision"], doc["source"]) == (
        "hello",
        "team.data",
        1,
        HELLO,
    )
    assert doc["labels"] == [{"key": "owner", "value": "ada"}]
    assert doc["tasks"] == [
        {"id": "greet", "type": "io.kestra.plugin.core.log.Log", "message": "Hello"}
    ]
    assert await read(server.root / "team.data" / "hello.yaml") == HELLO
    assert h.engine.catalog[("team.data", "hello")].revision == 1


async def test_get_answers_json_and_the_source_on_request(server: FlowServer) -> None:
    await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/hello")
    assert status == 200
    assert "source" not in doc
    assert (doc["description"], doc["disabled"], doc["deleted"]) == ("Says hello", False, False)
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/hello?source=true")
    assert (status, doc["source"]) == (200, HELLO)


async def test_unknown_flow_is_404(server: FlowServer) -> None:
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/nope")
    assert (status, doc) == (404, {"message": "Not Found: flow team.data.nope not found"})
    status, doc, _ = await call(
        "PUT", f"{server.url}/api/v1/flows/team.data/nope", **yaml_body(HELLO)
    )
    assert (status, doc) == (404, {"message": "Not Found: flow team.data.nope not found"})
    status, doc, _ = await call("DELETE", f"{server.url}/api/v1/flows/team.data/nope")
    assert (status, doc) == (404, {"message": "Not Found: flow team.data.nope not found"})
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/nope/revisions")
    assert (status, doc) == (404, {"message": "Not Found: flow team.data.nope not found"})


async def test_bad_yaml_is_422_with_line_and_column_and_nothing_is_written(
    server: FlowServer,
) -> None:
    status, doc, _ = await call(
        "POST", f"{server.url}/api/v1/flows", **yaml_body("id: x\nnamespace: ns\ntasks: [\n")
    )
    message = (
        "invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node)"
    )
    assert (status, doc) == (
        422,
        {
            "message": f"Invalid entity: 4:1: {message}",
            "_embedded": {"errors": [{"line": 4, "column": 1, "path": "", "message": message}]},
        },
    )
    assert await asyncio.to_thread(lambda: list(server.root.rglob("*.yaml"))) == []


async def test_invalid_flow_is_422_with_every_error(server: FlowServer) -> None:
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(BAD_TYPE))
    unknown = (
        "unknown task type 'io.kestra.plugin.core.log.Logg'; did you mean "
        "io.kestra.plugin.core.log.Log?"
    )
    assert (status, doc) == (
        422,
        {
            "message": f"Invalid entity: 5:11: tasks[0].type: {unknown}; "
            "7:5: tasks[1]: missing required property 'message'",
            "_embedded": {
                "errors": [
                    {"line": 5, "column": 11, "path": "tasks[0].type", "message": unknown},
                    {
                        "line": 7,
                        "column": 5,
                        "path": "tasks[1]",
                        "message": "missing required property 'message'",
                    },
                ]
            },
        },
    )


async def test_creating_an_existing_flow_is_422(server: FlowServer) -> None:
    await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    assert (status, doc) == (
        422,
        {"message": "Invalid entity: flow team.data.hello already exists"},
    )


async def test_a_body_that_is_not_yaml_is_415(server: FlowServer) -> None:
    status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", json={"id": "x"})
    assert (status, doc) == (
        415,
        {
            "message": "Unsupported Media Type: send the flow as "
            "application/x-yaml, not application/json"
        },
    )


async def test_update_gives_a_new_revision_and_keeps_every_revision(server: FlowServer) -> None:
    await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    changed = HELLO.replace("message: Hello", "message: Hello again")
    status, doc, _ = await call(
        "PUT", f"{server.url}/api/v1/flows/team.data/hello", **yaml_body(changed)
    )
    assert (status, doc["revision"], doc["tasks"][0]["message"]) == (200, 2, "Hello again")
    assert await read(server.root / "team.data" / "hello.yaml") == changed
    status, revisions, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/hello/revisions")
    assert status == 200
    assert [(r["revision"], r["source"]) for r in revisions] == [(1, HELLO), (2, changed)]
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/hello?revision=1")
    assert (status, doc["tasks"][0]["message"]) == (200, "Hello")


async def test_update_writes_the_file_that_already_defines_the_flow(
    h: Harness, server: FlowServer
) -> None:
    own = server.root / "mine.yml"
    await asyncio.to_thread(own.write_text, HELLO)
    await server.flows.reload(own)
    changed = HELLO.replace("Says hello", "Says hello twice")
    status, doc, _ = await call(
        "PUT", f"{server.url}/api/v1/flows/team.data/hello", **yaml_body(changed)
    )
    assert (status, doc["description"]) == (200, "Says hello twice")
    assert await read(own) == changed
    assert not await exists(server.root / "team.data" / "hello.yaml")


async def test_update_cannot_change_the_id_or_the_namespace(server: FlowServer) -> None:
    await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    url = f"{server.url}/api/v1/flows/team.data/hello"
    status, doc, _ = await call("PUT", url, **yaml_body(HELLO.replace("id: hello", "id: bye")))
    assert (status, doc) == (
        422,
        {
            "message": "Invalid entity: the id and namespace of a flow "
            "cannot change (team.data.hello, not "
            "team.data.bye)"
        },
    )
    status, doc, _ = await call("PUT", url, **yaml_body(HELLO.replace("team.data", "team")))
    assert (status, doc) == (
        422,
        {
            "message": "Invalid entity: the id and namespace of a flow "
            "cannot change (team.data.hello, not team.hello)"
        },
    )


async def test_update_with_an_invalid_flow_keeps_the_current_revision(
    h: Harness, server: FlowServer
) -> None:
    await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    status, doc, _ = await call(
        "PUT", f"{server.url}/api/v1/flows/team.data/hello", **yaml_body(BAD_TYPE)
    )
    assert status == 422
    assert doc["_embedded"]["errors"][0]["path"] == "tasks[0].type"
    assert await read(server.root / "team.data" / "hello.yaml") == HELLO
    assert h.engine.catalog[("team.data", "hello")].revision == 1


async def test_delete_removes_the_file_and_unloads_the_flow(h: Harness, server: FlowServer) -> None:
    await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO))
    status, body, _ = await call("DELETE", f"{server.url}/api/v1/flows/team.data/hello")
    assert (status, body) == (204, "")
    assert not await exists(server.root / "team.data" / "hello.yaml")
    assert ("team.data", "hello") not in h.engine.catalog
    status, _, _ = await call("GET", f"{server.url}/api/v1/flows/team.data/hello")
    assert status == 404


async def test_search_filters_by_namespace_and_text_and_pages(server: FlowServer) -> None:
    for namespace, flow_id in (
        ("team.data", "a"),
        ("team.data.sub", "b"),
        ("team", "c"),
        ("other", "d"),
    ):
        source = HELLO.replace("id: hello", f"id: {flow_id}").replace(
            "namespace: team.data", f"namespace: {namespace}"
        )
        status, doc, _ = await call("POST", f"{server.url}/api/v1/flows", **yaml_body(source))
        assert status == 200, doc
    base = f"{server.url}/api/v1/flows/search"
    status, doc, _ = await call("GET", f"{base}?namespace=team.data")
    assert status == 200
    assert [(f["namespace"], f["id"]) for f in doc["results"]] == [
        ("team.data", "a"),
        ("team.data.sub", "b"),
    ]
    assert doc["total"] == 2 and "source" not in doc["results"][0]
    _, doc, _ = await call("GET", f"{base}?q=OTHER")
    assert [f["id"] for f in doc["results"]] == ["d"]
    _, doc, _ = await call("GET", f"{base}?size=3&page=2")
    assert ([f["id"] for f in doc["results"]], doc["total"]) == (["b"], 4)  # by namespace, id


async def test_bad_page_size_is_400(server: FlowServer) -> None:
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/search?size=0")
    assert (status, doc) == (
        400,
        {"message": "Bad Request: size must be a number from 1 to 1000, not '0'"},
    )
    status, doc, _ = await call("GET", f"{server.url}/api/v1/flows/search?page=x")
    assert (status, doc) == (
        400,
        {"message": "Bad Request: page must be a number from 1 to 1000000, not 'x'"},
    )


async def test_validate_answers_each_document_with_its_errors_at_their_lines(
    server: FlowServer,
) -> None:
    status, doc, _ = await call(
        "POST", f"{server.url}/api/v1/flows/validate", **yaml_body(HELLO + "---\n" + BAD_TYPE)
    )
    assert status == 200
    assert doc[0] == {
        "index": 0,
        "flow": "hello",
        "namespace": "team.data",
        "outdated": False,
        "deprecationPaths": [],
        "warnings": [],
        "infos": [],
        "errors": [],
    }
    unknown = (
        "unknown task type 'io.kestra.plugin.core.log.Logg'; did you mean "
        "io.kestra.plugin.core.log.Log?"
    )
    assert doc[1] == {
        "index": 1,
        "flow": "hello",
        "namespace": "team.data",
        "outdated": False,
        "deprecationPaths": [],
        "warnings": [],
        "infos": [],
        "constraints": f"15:11: tasks[0].type: {unknown}\n"
        "17:5: tasks[1]: missing required property 'message'",
        "errors": [
            {"line": 15, "column": 11, "path": "tasks[0].type", "message": unknown},
            {
                "line": 17,
                "column": 5,
                "path": "tasks[1]",
                "message": "missing required property 'message'",
            },
        ],
    }
    assert await asyncio.to_thread(lambda: list(server.root.rglob("*.yaml"))) == []


async def test_without_a_flows_directory_flows_cannot_change(h: Harness) -> None:
    async with serving(h) as url:
        status, doc, _ = await call("POST", f"{url}/api/v1/flows", **yaml_body(HELLO))
    assert (status, doc) == (
        409,
        {
            "message": "Illegal state: this server has no flows "
            "directory, so flows and triggers cannot be "
            "changed through the API"
        },
    )
