"""The OpenAPI document is true to the router, and schemathesis finds no server error in it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from daemon.api import create_app
from daemon.config import BasicAuth, Settings
from daemon.webhooks import WebhookRegistry
from tests.api_helpers import basic, call, flow_server, yaml_body
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
EXAMPLES = 15  # per operation and pass: enough to reach the parsers' branches, well under 60 s


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every API route; HEAD is aiohttp's automatic twin of GET, and the
    UI's pages are not part of the API document."""
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
            and (route.resource.canonical.startswith("/api/")
                 or route.resource.canonical == "/health")}


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


async def test_every_route_is_in_the_document_and_every_operation_is_routed(
        h: Harness) -> None:
    app = create_app(h.runtime, Settings(data_dir=h.runtime.data_dir), WebhookRegistry())
    async with flow_server(h, h.runtime.data_dir / "flows") as server:
        status, doc, _ = await call("GET", f"{server.url}/api/v1/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    assert router_operations(app) == document_operations(doc)
    assert len(document_operations(doc)) >= 30
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


async def test_the_document_names_the_parameters_of_each_path(h: Harness) -> None:
    async with flow_server(h, h.runtime.data_dir / "flows") as server:
        _, doc, _ = await call("GET", f"{server.url}/api/v1/openapi.json")
    search = doc["paths"]["/api/v1/executions/search"]["get"]
    assert [p["name"] for p in search["parameters"]] == \
        ["namespace", "flowId", "state", "labels", "startDate", "endDate", "page", "size"]
    kill = doc["paths"]["/api/v1/executions/{executionId}/kill"]["delete"]
    assert kill["parameters"][0] == {"name": "executionId", "in": "path", "required": True,
                                     "schema": {"type": "string"}}
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "security" not in kill


async def test_schemathesis_finds_no_server_error(h: Harness, tmp_path: Path) -> None:
    settings = Settings(data_dir=h.runtime.data_dir, flows_dir=tmp_path / "flows",
                        basic_auth=BasicAuth(username="ada", password="pa55word"))
    async with flow_server(h, tmp_path / "flows", settings) as server:
        status, flow, _ = await call("POST", f"{server.url}/api/v1/flows",
                                     headers=AUTH | {"Content-Type": "application/x-yaml"},
                                     data=yaml_body(HELLO)["data"])
        assert status == 200, flow
        status, execution, _ = await call("POST", f"{server.url}/api/v1/executions/ns/hello"
                                                  "?wait=true", headers=AUTH, json={})
        assert status == 200, execution
        await h.store.kv_set("ns", "key", {"a": 1})
        _, doc, _ = await call("GET", f"{server.url}/api/v1/openapi.json", headers=AUTH)
        real = {"namespace": "ns", "flowId": "hello", "id": "hello", "key": "hookkey",
                "executionId": execution["id"]}
        failures = await asyncio.to_thread(fuzz, doc, server.url, {}, tmp_path)
        failures += await asyncio.to_thread(fuzz, doc, server.url, real, tmp_path)
    assert failures == []


def fuzz(doc: dict[str, Any], url: str, known: dict[str, str], scratch: Path) -> list[str]:
    """Every operation with generated requests (authenticated), its path parameters taken
    from `known` when they are there; blocking, run in a thread."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(scratch / "hypothesis")  # its caches stay out of the work tree
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Ok
    from schemathesis.specs.openapi.checks import status_code_conformance

    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the document has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        names = {p["name"] for p in doc["paths"][operation.path][operation.method]["parameters"]
                 if p["in"] == "path"}
        fixed = {name: known[name] for name in names if name in known} or None

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(path_parameters=fixed))
        def check(case: Any) -> None:
            response = case.call(base_url=url, headers=AUTH, timeout=10)
            case.validate_response(response, checks=[not_a_server_error,
                                                     status_code_conformance])

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports failures as groups
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures
