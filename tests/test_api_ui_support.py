"""The API endpoints the UI's pages use, as any client sees them, with malformed input:
Kestra's execution statistics (the dashboard), log search across executions, the
namespaces of the flows, a file's preview and an expression rendered against an ended
execution (Kestra's ExecutionController `eval`), and the UI's flow-file status."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api_helpers import FlowServer, call, flow_server
from tests.harness import Harness

WORK = """\
id: work
namespace: stats.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "Counting rows for {{ inputs.who }}"
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*"]
    commands:
      - |
        printf 'a,b\\n1,2\\n3,4\\n5,6\\n' > rows.csv
        printf '{"k": [1, 2]}' > data.json
        printf '\\211PNG\\r\\n\\032\\n' > pixel.png
        printf '\\377\\376\\000binary' > blob.bin
  - id: secretive
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.who }}!"
inputs:
  - id: who
    type: STRING
    defaults: Ada
"""
FAIL = """\
id: broken
namespace: stats.other
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: nope
"""


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    root = tmp_path / "flows"
    await asyncio.to_thread(root.mkdir)
    await asyncio.to_thread((root / "work.yaml").write_text, WORK)
    await asyncio.to_thread((root / "broken.yaml").write_text, FAIL)
    async with flow_server(h, root) as running:
        yield running


async def run(h: Harness, namespace: str, flow_id: str) -> str:
    execution = await h.engine.submit_by_id(namespace, flow_id)
    await h.engine.wait(execution.id)
    return execution.id


async def test_daily_statistics_count_executions_by_state_with_durations(
    h: Harness, server: FlowServer
) -> None:
    for namespace, flow_id in (("stats.team", "work"), ("stats.team", "work"),
                               ("stats.other", "broken")):  # fmt: skip
        await run(h, namespace, flow_id)
    status, periods, _ = await call("POST", server.url + "/api/v1/stats/executions/daily", json={})
    assert status == 200
    assert len(periods) == 8 and {p["groupBy"] for p in periods} == {"day"}
    today = periods[-1]
    assert today["executionCounts"]["SUCCESS"] == 2 and today["executionCounts"]["FAILED"] == 1
    assert today["duration"]["count"] == 3 and today["duration"]["max"] >= today["duration"]["min"]
    assert sum(p["executionCounts"]["SUCCESS"] for p in periods[:-1]) == 0
    status, hourly, _ = await call(
        "POST",
        server.url + "/api/v1/stats/executions/daily",
        json={"namespace": "stats.team", "startDate": periods[-1]["startDate"]},
    )
    assert status == 200 and {p["groupBy"] for p in hourly} == {"hour"}
    assert sum(p["executionCounts"]["SUCCESS"] for p in hourly) == 2
    assert sum(p["executionCounts"]["FAILED"] for p in hourly) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[1]", "Bad Request: the body must be a JSON object, not an array"),
        ('{"startDate": "yesterday"}', "Bad Request: startDate 'yesterday' is not an ISO-8601"),
        ('{"startDate": 5}', "Bad Request: startDate must be an ISO-8601 date-time"),
        (
            '{"startDate": "2026-01-02T00:00:00Z", "endDate": "2026-01-01T00:00:00Z"}',
            "Bad Request: startDate must be before endDate",
        ),
        (
            '{"startDate": "1900-01-01T00:00:00Z", "endDate": "2026-01-01T00:00:00Z"}',
            "Bad Request: the period is longer than",
        ),
        ('{"namespace": 3}', "Bad Request: namespace must be text"),
        ("{not json", "Bad Request: the body is not valid JSON"),
    ],
)
async def test_daily_statistics_refuse_malformed_requests(
    server: FlowServer, body: str, message: str
) -> None:
    status, doc, _ = await call(
        "POST",
        server.url + "/api/v1/stats/executions/daily",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert doc["message"].startswith(message), doc


async def test_log_search_across_executions(h: Harness, server: FlowServer) -> None:
    first = await run(h, "stats.team", "work")
    await run(h, "stats.other", "broken")
    url = server.url + "/api/v1/logs/search"
    status, found, _ = await call("GET", url, params={"q": "COUNTING rows"})
    assert status == 200 and found["total"] == 1
    [line] = found["results"]
    assert (line["executionId"], line["message"]) == (first, "Counting rows for Ada")
    status, found, _ = await call("GET", url, params={"minLevel": "ERROR"})
    assert [line["namespace"] for line in found["results"]] == ["stats.other"]
    status, found, _ = await call("GET", url, params={"namespace": "stats", "flowId": "work"})
    assert found["total"] >= 1 and {r["flowId"] for r in found["results"]} == {"work"}
    for params, message in (
        ({"minLevel": "LOUD"}, "Bad Request: minLevel 'LOUD' is not one of TRACE"),
        ({"startDate": "soon"}, "Bad Request: startDate 'soon' is not an ISO-8601"),
        ({"size": "0"}, "Bad Request: size must be a number from 1 to 1000"),
    ):
        status, doc, _ = await call("GET", url, params=params)
        assert status == 400 and doc["message"].startswith(message), params


async def test_distinct_namespaces_include_the_ones_above(server: FlowServer) -> None:
    status, names, _ = await call("GET", server.url + "/api/v1/flows/distinct-namespaces")
    assert (status, names) == (200, ["stats", "stats.other", "stats.team"])
    status, names, _ = await call(
        "GET", server.url + "/api/v1/flows/distinct-namespaces", params={"q": "TEAM"}
    )
    assert names == ["stats.team"]


async def test_file_preview_of_rows_json_images_text_and_binary(
    h: Harness, server: FlowServer
) -> None:
    execution_id = await run(h, "stats.team", "work")
    doc = await h.store.get_execution(execution_id)
    assert doc is not None
    files = next(r for r in doc["taskRunList"] if r["taskId"] == "make")["outputs"]["outputFiles"]
    url = f"{server.url}/api/v1/executions/{execution_id}/file/preview"
    status, rows, _ = await call("GET", url, params={"path": files["rows.csv"], "maxRows": "2"})
    assert status == 200
    assert (rows["type"], rows["content"], rows["truncated"]) == (
        "LIST",
        [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}],
        True,
    )
    status, data, _ = await call("GET", url, params={"path": files["data.json"]})
    assert (data["type"], data["content"]) == ("JSON", {"k": [1, 2]})
    status, image, _ = await call("GET", url, params={"path": files["pixel.png"]})
    assert (image["type"], image["mimeType"]) == ("IMAGE", "image/png")
    assert base64.b64decode(image["content"]).startswith(b"\x89PNG")
    status, blob, _ = await call("GET", url, params={"path": files["blob.bin"]})
    assert (blob["type"], blob["content"]) == ("BINARY", None)
    for params, expected in (
        ({}, (400, "Bad Request: path is required (a kestra:/// URI)")),
        ({"path": "/etc/passwd"}, (400, "Bad Request: path '/etc/passwd' is not a kestra:/// URI")),
        ({"path": "kestra:///other/ns/x.csv"}, (403, "Forbidden: kestra:///other/ns/x.csv is not")),
        ({"path": files["rows.csv"], "maxRows": "0"}, (400, "Bad Request: maxRows must be")),
    ):
        status, doc, _ = await call("GET", url, params=params)
        assert (status, doc["message"][: len(expected[1])]) == expected, params
    status, doc, _ = await call(
        "GET", f"{server.url}/api/v1/executions/nope/file/preview", params={"path": "kestra:///x"}
    )
    assert (status, doc) == (404, {"message": "Not Found: execution nope not found"})


async def test_an_expression_renders_against_an_ended_execution(
    h: Harness, server: FlowServer
) -> None:
    execution_id = await run(h, "stats.team", "work")
    url = f"{server.url}/api/v1/executions/{execution_id}/eval"
    headers = {"Content-Type": "text/plain"}

    async def evaluate(text: str, where: str = url) -> dict[str, object]:
        status, doc, _ = await call("POST", where, data=text.encode(), headers=headers)
        assert status == 200, doc
        return dict(doc)

    assert await evaluate("{{ outputs.secretive.value }} in {{ flow.namespace }}") == {
        "result": "Ada! in stats.team",
        "error": None,
    }
    failed = await evaluate("{{ nothing.here }}")
    assert failed["result"] is None and "nothing" in str(failed["error"])
    refused = await evaluate("{{ secret('ANYTHING') }}")
    assert refused["result"] is None and "secret" in str(refused["error"])
    doc = await h.store.get_execution(execution_id)
    assert doc is not None
    run_id = next(r["id"] for r in doc["taskRunList"] if r["taskId"] == "say")
    assert (await evaluate("{{ taskrun.id }}", f"{url}/{run_id}"))["result"] == run_id
    status, body, _ = await call("POST", f"{url}/unknown", data=b"{{ 1 }}", headers=headers)
    assert (status, body) == (
        404,
        {"message": f"Not Found: task run unknown not found in execution {execution_id}"},
    )
    status, body, _ = await call("POST", url, data=b"\xff\xfe", headers=headers)
    assert (status, body) == (400, {"message": "Bad Request: the expression is not UTF-8 text"})
    status, body, _ = await call("POST", url, data=b"x" * 70_000, headers=headers)
    assert status == 413


async def test_flow_files_status_names_files_that_do_not_validate(
    h: Harness, server: FlowServer
) -> None:
    path = server.root / "work.yaml"
    await asyncio.to_thread(path.write_text, WORK.replace("    message:", "    mesage:", 1))
    await server.flows.reload(path)
    status, body, _ = await call("GET", server.url + "/ui/api/flows/files")
    assert status == 200
    [invalid] = body["invalid"]
    assert (invalid["file"], invalid["namespace"], invalid["id"]) == (
        "work.yaml",
        "stats.team",
        "work",
    )
    messages = [error["message"] for error in invalid["errors"]]
    assert "unknown property 'mesage'; did you mean 'message'?" in messages
    status, file, _ = await call("GET", server.url + "/ui/api/flows/stats.team/work/file")
    assert status == 200 and "mesage:" in file["text"] and file["errors"]
    assert h.engine.catalog.get("stats.team", "work") is not None  # the old revision still runs
    status, body, _ = await call("GET", server.url + "/ui/api/flows/stats.team/none/file")
    assert status == 404
    # a new file that never validated is listed by the id and namespace it names
    await asyncio.to_thread((server.root / "new.yaml").write_text, "id: fresh\nnamespace: x\n")
    await server.flows.reload(server.root / "new.yaml")
    status, body, _ = await call("GET", server.url + "/ui/api/flows/files")
    assert {(i["file"], i["id"]) for i in body["invalid"]} == {
        ("work.yaml", "work"),
        ("new.yaml", "fresh"),
    }
