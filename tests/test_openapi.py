"""The OpenAPI document is true to the router, and schemathesis finds no server error in it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.api.server import create_app
from daemon.config.settings import BasicAuth, Settings
from daemon.engine.webhooks import WebhookRegistry
from tests.api_helpers import basic, call, flow_server, form, yaml_body
from tests.harness import Harness

HELLO = """\
id: hello
namespace: ns
inputs:
  - id: name
    type: STRING
    defaults: World
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: hookkey
"""
AUTH = basic("ada", "pa55word")
EXAMPLES = 12  # per operation and pass: enough to reach the parsers' branches


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every API route; HEAD is aiohttp's automatic twin of GET, and the
    UI's pages are not part of the API document."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and (route.resource.canonical.startswith("/api/") or route.resource.canonical == "/health")
    }


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


async def test_every_route_is_in_the_document_and_every_operation_is_routed(h: Harness) -> None:
    app = create_app(h.engine, Settings(data_dir=h.engine.data_dir), WebhookRegistry())
    async with flow_server(h, h.engine.data_dir / "flows") as server:
        status, doc, _ = await call("GET", f"{server.url}/api/v1/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    assert router_operations(app) == document_operations(doc)
    assert len(document_operations(doc)) >= 30
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


async def test_the_document_names_the_parameters_of_each_path(h: Harness) -> None:
    async with flow_server(h, h.engine.data_dir / "flows") as server:
        _, doc, _ = await call("GET", f"{server.url}/api/v1/openapi.json")
    search = doc["paths"]["/api/v1/executions/search"]["get"]
    assert [p["name"] for p in search["parameters"]] == [
        "namespace",
        "flowId",
        "q",
        "state",
        "labels",
        "startDate",
        "endDate",
        "page",
        "size",
        "filters[q][EQUALS]",
        "filters[namespace][EQUALS]",
        "filters[namespace][PREFIX]",
        "filters[flowId][EQUALS]",
        "filters[state][EQUALS]",
        "filters[state][IN]",
        "filters[startDate][GREATER_THAN_OR_EQUAL_TO]",
        "filters[startDate][LESS_THAN]",
    ]
    kill = doc["paths"]["/api/v1/executions/{executionId}/kill"]["delete"]
    assert kill["parameters"][0] == {
        "name": "executionId",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "security" not in kill


@pytest.mark.timeout(600)  # three passes over each of some 80 operations: minutes, not seconds
async def test_schemathesis_finds_no_server_error_in_any_operation(
    h: Harness, tmp_path: Path
) -> None:
    """Every operation of the document, three times: path parameters generated (mostly
    404s), taken from real objects (the handlers' own parsing), and with requests that break
    the schema (negative mode: wrong types, missing fields, bodies of the wrong shape).

    The `/api/v1/{tenant}/...` twins are left out: each runs the very handler of its
    tenant-less operation (test_api_tenant.py checks the router), so fuzzing them again
    would double the run and reach no other code."""
    settings = Settings(
        data_dir=h.engine.data_dir,
        flows_dir=tmp_path / "flows",
        basic_auth=BasicAuth(username="ada", password="pa55word"),
    )
    async with flow_server(h, tmp_path / "flows", settings) as server:
        status, flow, _ = await call(
            "POST",
            f"{server.url}/api/v1/flows",
            headers=AUTH | {"Content-Type": "application/x-yaml"},
            data=yaml_body(HELLO)["data"],
        )
        assert status == 200, flow
        status, execution, _ = await call(
            "POST", f"{server.url}/api/v1/executions/ns/hello?wait=true", headers=AUTH, json={}
        )
        assert status == 200, execution
        await h.store.kv.set("ns", "key", {"a": 1})
        _, doc, _ = await call("GET", f"{server.url}/api/v1/openapi.json", headers=AUTH)
        real = {
            "namespace": "ns",
            "flowId": "hello",
            "id": "hello",
            "key": "hookkey",
            "executionId": execution["id"],
        }
        report = await asyncio.to_thread(fuzz, doc, server.url, real, tmp_path)
    assert not report.failures, "\n\n".join(report.failures)
    assert report.operations == {
        (method, path) for method, path in document_operations(doc) if "{tenant}" not in path
    }


@dataclass
class Report:
    operations: set[tuple[str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def fuzz(doc: dict[str, Any], url: str, known: dict[str, str], scratch: Path) -> Report:
    """Generated requests (authenticated) against every operation; blocking, run in a
    thread."""
    import schemathesis
    from hypothesis.configuration import set_hypothesis_home_dir
    from hypothesis.errors import Unsatisfiable

    set_hypothesis_home_dir(scratch / "hypothesis")  # its caches stay out of the work tree
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Ok
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    conforming = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    passes = [
        (GenerationMode.POSITIVE, False, conforming),
        (GenerationMode.POSITIVE, True, conforming),
        (GenerationMode.NEGATIVE, True, [not_a_server_error]),
    ]
    schema = schemathesis.openapi.from_dict(doc)
    report = Report()
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            report.failures.append(f"the document has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        if operation.path.startswith("/api/v1/{tenant}/"):
            continue
        report.operations.add((operation.method.upper(), operation.path))
        names = {
            p["name"]
            for p in doc["paths"][operation.path][operation.method]["parameters"]
            if p["in"] == "path"
        }
        spec = doc["paths"][operation.path][operation.method]
        for mode, use_known, checks in passes:
            if (
                mode is GenerationMode.NEGATIVE
                and not spec["parameters"]
                and "requestBody" not in spec
            ):
                continue  # nothing to get wrong
            fixed = {name: known[name] for name in names if name in known} if use_known else None

            try:
                run_pass(operation, mode, fixed, checks, url)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # every part takes any value: fine
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports groups
                report.failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"
                )
    return report


def run_pass(
    operation: Any, mode: Any, fixed: dict[str, str] | None, checks: list[Any], url: str
) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=10)
        case.validate_response(response, checks=checks)

    check()


# -- 500s the fuzzing found, each posted as it was found --------------------------------------

FILES = """\
id: files
namespace: ns
inputs:
  - id: f
    type: FILE
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.f }}"
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
"""
DEEP = "[" * 100_000 + "]" * 100_000
JSON = {"Content-Type": "application/json"}


async def test_malformed_yaml_that_crashed_the_loader_is_422_at_its_position(
    h: Harness, tmp_path: Path
) -> None:
    cases = [
        (
            "id: a\nnamespace: ns\ntasks: &t [*t]\n",
            "3:8: tasks[0]: an alias refers to a value that contains it",
        ),  # was RecursionError
        ("id: a\x00\n", "1:6: invalid YAML: character U+0000 is not allowed"),  # ReaderError
        ("id: !!timestamp soon\n", "1:5: id: invalid YAML: cannot read 'soon' as timestamp"),
        (
            "revision: " + "9" * 5000 + "\n",
            f"1:11: revision: invalid YAML: cannot read '{'9' * 40}...' as int",
        ),
        (
            "id: " + "[" * 2000 + "]" * 2000 + "\n",
            "1:104: invalid YAML: nested more than 100 levels deep",
        ),
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"  # an alias bomb: the request never ended
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "1:14: e[7][8][9][0][2]: aliases expand to more than 100000 values",
        ),
    ]
    async with flow_server(h, tmp_path / "flows") as server:
        for text, problem in cases:
            for method, path in (("POST", "/api/v1/flows"), ("PUT", "/api/v1/flows/ns/a")):
                status, doc, _ = await call(method, f"{server.url}{path}", **yaml_body(text))
                if method == "PUT" and status == 404:
                    continue  # no flow ns.a to replace: the YAML is read after the lookup
                assert (status, doc["message"]) == (422, f"Invalid entity: {problem}"), path
            status, doc, _ = await call(
                "POST", f"{server.url}/api/v1/flows/validate", **yaml_body(text)
            )
            assert (status, doc[0]["constraints"]) == (200, problem)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (DEEP, "Bad Request: the body is not valid JSON: it is nested too deeply"),
        (
            '{"f": 1' + "0" * 30 + "}",
            "Bad Request: the body holds a value podium cannot store: Integer exceeds 64-bit range",
        ),
        (
            '{"f": "\\ud800"}',
            "Bad Request: the body holds a value podium cannot store: str is not "
            "valid UTF-8: surrogates not allowed",
        ),
    ],
)
async def test_json_bodies_the_store_cannot_keep_are_400(
    h: Harness, tmp_path: Path, body: str, message: str
) -> None:
    async with flow_server(h, tmp_path / "flows") as server:
        assert (await call("POST", f"{server.url}/api/v1/flows", **yaml_body(FILES)))[0] == 200
        execution = await h.run(HELLO)
        labels = body if body == DEEP else f'[{{"key": "a", "value": {body[6:-1]}}}]'
        trigger = (
            body
            if body == DEEP
            else f'{{"namespace": "ns", "flowId": "files", "triggerId": {body[6:-1]}}}'
        )
        for path, data in (
            ("/api/v1/executions/ns/files", body),
            (f"/api/v1/executions/{execution.id}/labels", labels),
            ("/api/v1/triggers", trigger),
        ):
            status, doc, _ = await call(
                "POST" if "triggers" not in path else "PUT",
                f"{server.url}{path}",
                data=data,
                headers=JSON,
            )
            assert (status, doc) == (400, {"message": message}), path


async def test_a_kv_value_nested_too_deeply_is_400(h: Harness, tmp_path: Path) -> None:
    async with flow_server(h, tmp_path / "flows") as server:
        status, doc, _ = await call(
            "PUT", f"{server.url}/api/v1/namespaces/ns/kv/k", data=DEEP, headers=JSON
        )
    assert (status, doc) == (400, {"message": "Bad Request: the value is nested too deeply"})


@pytest.mark.parametrize("body", [DEEP, '{"n": 1' + "0" * 30 + "}", '{"n": "\\ud800"}'])
async def test_a_webhook_body_the_store_cannot_keep_as_json_is_kept_as_text(
    h: Harness, tmp_path: Path, body: str
) -> None:
    async with flow_server(h, tmp_path / "flows") as server:
        assert (await call("POST", f"{server.url}/api/v1/flows", **yaml_body(HELLO)))[0] == 200
        status, doc, _ = await call(
            "POST",
            f"{server.url}/api/v1/executions/webhook/ns/hello/hookkey",
            data=body,
            headers=JSON,
        )
    assert status == 200, doc  # was 500: RecursionError, or the store refusing the execution
    assert doc["trigger"]["variables"]["body"] == body


async def test_an_upload_with_a_file_name_too_long_for_the_disk_is_cut_to_fit(
    h: Harness, tmp_path: Path
) -> None:
    name = "x" * 300 + ".csv"  # the file system refused it, and the API said 500
    async with flow_server(h, tmp_path / "flows") as server:
        assert (await call("POST", f"{server.url}/api/v1/flows", **yaml_body(FILES)))[0] == 200
        status, doc, _ = await call(
            "POST", f"{server.url}/api/v1/executions/ns/files", data=form(f=(name, "a,b\n"))
        )
        assert status == 200, doc
        assert doc["inputs"]["f"].rsplit("/", 1)[1] == "x" * 196 + ".csv"
        status, wide, _ = await call(
            "POST",
            f"{server.url}/api/v1/executions/ns/files",
            data=form(f=("é" * 150 + ".csv", "a,b\n")),
        )
    assert status == 200, wide  # 304 bytes, cut between characters, never inside one
    assert wide["inputs"]["f"].endswith(".csv")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"])
async def test_dates_with_no_utc_instant_are_400(h: Harness, tmp_path: Path, moment: str) -> None:
    async with flow_server(h, tmp_path / "flows") as server:
        assert (await call("POST", f"{server.url}/api/v1/flows", **yaml_body(FILES)))[0] == 200
        status, doc, _ = await call(
            "GET", f"{server.url}/api/v1/executions/search", params={"startDate": moment}
        )
        assert (status, doc) == (
            400,
            {"message": f"Bad Request: startDate {moment!r} is out of range once in UTC"},
        )
        status, doc, _ = await call(
            "PUT",
            f"{server.url}/api/v1/triggers",
            json={
                "namespace": "ns",
                "flowId": "files",
                "triggerId": "hourly",
                "backfill": {"start": moment},
            },
        )
        assert (status, doc) == (
            400,
            {"message": f"Bad Request: backfill.start {moment!r} is out of range once in UTC"},
        )
