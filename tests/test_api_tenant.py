"""Kestra 1.x's tenant paths (`/api/v1/main/...`), its query filters and its JSON shapes.

Kestra 1.x serves every API operation under `/api/v1/{tenant}/...`; its open-source
edition has one tenant, `main` (Kestra's OpenAPI document and its `kestrapy` SDK, whose
`BaseApi._tenant_path` puts the tenant in every path). Filters follow Kestra's
`QueryFilter` (core/src/main/java/io/kestra/core/models/QueryFilter.java).
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest
from aiohttp import web

from daemon.api.server import create_app
from daemon.api.tenant import tenant_routes
from daemon.config.settings import BasicAuth, Settings
from daemon.engine.webhooks import WebhookRegistry
from tests.api_helpers import basic, call, flow_server, serving, yaml_body
from tests.harness import Harness

HOOK = """\
id: hook
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body.name }}"
triggers:
  - id: web
    type: io.kestra.plugin.core.trigger.Webhook
    key: t0ps3cr3t
"""


def _flow(namespace: str, flow_id: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n"
        "  - id: one\n    type: io.kestra.plugin.core.log.Log\n    message: one\n"
    )


async def test_every_api_route_has_its_main_tenant_twin(h: Harness) -> None:
    """The OpenAPI document of Kestra 1.x lists each operation as /api/v1/{tenant}/..."""
    app = create_app(h.engine, Settings(data_dir=h.engine.data_dir), WebhookRegistry())
    handlers = {
        (r.method, r.resource.canonical): r.handler
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1/")
    }
    plain = {key: handler for key, handler in handlers.items() if "{tenant}" not in key[1]}
    assert len(plain) >= 30
    twins = {
        (method, path.replace("/api/v1/", "/api/v1/{tenant}/", 1)): handler
        for (method, path), handler in plain.items()
    }
    assert {key: handlers.get(key) for key in twins} == twins  # the same handler
    assert len(handlers) == 2 * len(plain)


def test_an_api_path_starting_with_a_variable_is_refused_at_start_up() -> None:
    """`/api/v1/{x}/...` would also match `/api/v1/main/...`: the two forms would collide."""
    table = web.RouteTableDef()

    @table.get("/api/v1/{namespace}/things")
    async def things(request: web.Request) -> web.Response:
        raise AssertionError("never routed")

    with pytest.raises(ValueError, match="must start with a literal segment"):
        tenant_routes(table)


async def test_the_main_tenant_answers_as_the_tenant_less_path(h: Harness, tmp_path: Path) -> None:
    """Kestra's FlowController and ExecutionController under /api/v1/main/."""
    async with flow_server(h, tmp_path / "flows") as server:
        status, created, _ = await call(
            "POST", f"{server.url}/api/v1/main/flows", **yaml_body(_flow("company.team", "one"))
        )
        assert status == 200, created
        plain = await call("GET", f"{server.url}/api/v1/flows/company.team/one?source=true")
        tenant = await call("GET", f"{server.url}/api/v1/main/flows/company.team/one?source=true")
        assert (plain[0], plain[1]) == (tenant[0], tenant[1]) == (200, created)
        status, execution, _ = await call(
            "POST", f"{server.url}/api/v1/main/executions/company.team/one?wait=true"
        )
        assert (status, execution["state"]["current"]) == (200, "SUCCESS")
        status, found, _ = await call(
            "GET", f"{server.url}/api/v1/main/executions/{execution['id']}"
        )
        assert (status, found["id"], found["deleted"]) == (200, execution["id"], False)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/acme/flows/search", "/api/v1/acme/executions/company.team/one", "/api/v1/x/y"],
)
async def test_another_tenant_is_404_naming_the_tenant_podium_serves(h: Harness, path: str) -> None:
    async with serving(h) as url:
        status, doc, _ = await call("POST", url + path)
    tenant = path.split("/")[3]
    assert status == 404
    assert doc["message"] == (
        f"Not Found: tenant {tenant!r} does not exist: podium serves one tenant, 'main' "
        "(as Kestra's open-source edition does), at /api/v1/main/... and at /api/v1/..."
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/executions/a/b/c/d", 404),  # an area of the API: no tenant named
        ("GET", "/api/v1/main/nothing/here", 404),
        ("PATCH", "/api/v1/main/flows/search", 405),  # the route exists, not the method
    ],
)
async def test_paths_naming_no_other_tenant_keep_their_plain_answer(
    h: Harness, method: str, path: str, status: int
) -> None:
    async with serving(h) as url:
        got, doc, _ = await call(method, url + path)
    assert got == status
    assert "tenant" not in doc["message"]


async def test_another_tenant_needs_credentials_before_it_is_named(h: Harness) -> None:
    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username="a", password="b")
    )
    async with serving(h, settings) as url:
        status, doc, _ = await call("GET", f"{url}/api/v1/acme/flows/search")
        assert (status, doc["message"]) == (401, "Unauthorized")
        status, doc, _ = await call(
            "GET", f"{url}/api/v1/acme/flows/search", headers=basic("a", "b")
        )
        assert status == 404 and "tenant 'acme'" in doc["message"]


async def test_the_tenant_webhook_is_open_and_its_key_never_logged(
    h: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kestra's blueprints give webhook URLs as /api/v1/main/executions/webhook/{ns}/{id}/{key}
    (Webhook trigger docs); the key is the credential, so basic auth does not apply."""
    caplog.set_level(logging.INFO, logger="daemon.api.access")
    root = tmp_path / "flows"
    await asyncio.to_thread(root.mkdir)
    await asyncio.to_thread((root / "hook.yaml").write_text, HOOK)
    settings = Settings(
        data_dir=h.engine.data_dir,
        flows_dir=root,
        basic_auth=BasicAuth(username="ada", password="pw"),
    )
    async with flow_server(h, root, settings) as server:
        base = f"{server.url}/api/v1/main/executions/webhook/company.team/hook"
        status, doc, _ = await call("POST", f"{base}/t0ps3cr3t", json={"name": "Ada"})
        assert status == 200, doc
        assert doc["trigger"]["id"] == "web"
        status, doc, _ = await call("POST", f"{base}/wrong", json={"name": "Ada"})
        assert (status, doc["message"]) == (404, "Not Found: webhook not found")
        status, _, _ = await call(
            "POST", f"{server.url}/api/v1/acme/executions/webhook/company.team/hook/t0ps3cr3t"
        )
        assert status == 401  # any other tenant is an ordinary API path
    lines = [r.getMessage() for r in caplog.records if r.name == "daemon.api.access"]
    assert any(
        re.fullmatch(r"POST /api/v1/main/executions/webhook/company.team/hook/\*\*\* 200 .*", line)
        for line in lines
    ), lines
    assert "t0ps3cr3t" not in caplog.text


async def test_the_openapi_document_lists_each_operation_with_and_without_the_tenant(
    h: Harness,
) -> None:
    async with serving(h) as url:
        _, doc, _ = await call("GET", f"{url}/api/v1/openapi.json")
    plain = doc["paths"]["/api/v1/executions/{executionId}"]["get"]
    tenant = doc["paths"]["/api/v1/{tenant}/executions/{executionId}"]["get"]
    assert tenant["operationId"] == f"tenant_{plain['operationId']}"
    assert tenant["parameters"][0] == {
        "name": "tenant",
        "in": "path",
        "required": True,
        "description": "The tenant: podium serves one, 'main', as Kestra's open-source edition",
        "schema": {"type": "string", "enum": ["main"]},
    }
    assert tenant["parameters"][1:] == plain["parameters"]
    assert "/api/v1/{tenant}/executions/webhook/{namespace}/{flowId}/{key}" in doc["paths"]
    assert "/health" in doc["paths"] and "/api/v1/{tenant}/health" not in str(doc["paths"])


async def _ids(url: str, query: str) -> tuple[list[str], int]:
    status, doc, _ = await call("GET", f"{url}/api/v1/main/executions/search?{query}")
    assert status == 200, doc
    return sorted(e["flowId"] for e in doc["results"]), doc["total"]


async def test_kestra_query_filters_narrow_an_execution_search(h: Harness) -> None:
    """Kestra's `filters[field][OPERATION]=value` (QueryFilter; its UI's executions list)."""
    await h.run(_flow("company", "top"), labels={"team": "data"})
    await h.run(_flow("company.team", "sub"))
    await h.run(
        _flow("company.team", "bad").replace(
            "io.kestra.plugin.core.log.Log\n    message: one",
            "io.kestra.plugin.core.execution.Fail",
        )
    )
    async with serving(h) as url:
        assert await _ids(url, "filters[namespace][EQUALS]=company") == (["top"], 1)
        assert await _ids(url, "filters[namespace][PREFIX]=company") == (["bad", "sub", "top"], 3)
        assert await _ids(url, "filters[flowId][EQUALS]=sub") == (["sub"], 1)
        assert await _ids(url, "filters[state][IN]=FAILED,KILLED") == (["bad"], 1)
        assert await _ids(url, "filters[state][EQUALS]=SUCCESS") == (["sub", "top"], 2)
        assert await _ids(url, "filters[labels][EQUALS][team]=data") == (["top"], 1)
        assert await _ids(url, "filters[q][EQUALS]=COMPANY.team") == (["bad", "sub"], 2)
        assert await _ids(url, "filters[startDate][GREATER_THAN_OR_EQUAL_TO]=2000-01-01") == (
            ["bad", "sub", "top"],
            3,
        )
        assert await _ids(url, "filters[startDate][LESS_THAN]=2000-01-01T00:00:00Z") == ([], 0)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("filters[namespace][REGEX]=a.*", "does not apply the filter namespace REGEX"),
        ("filters[kind][EQUALS]=NORMAL", "does not apply the filter kind EQUALS"),
        ("filters[namespace]=a", "'filters[namespace]' is not filters[field][OPERATION]"),
        ("filters[flowId][EQUALS][x]=a", "only labels take a [key]"),
        ("filters[labels][EQUALS]=a:b", "only labels take a [key]"),
        ("filters[state][IN]=SUCCESS,DONE", "state 'DONE' is not one of"),
        ("filters[startDate][LESS_THAN]=yesterday", "startDate 'yesterday' is not an ISO-8601"),
    ],
)
async def test_a_filter_podium_cannot_apply_is_400_not_ignored(
    h: Harness, query: str, message: str
) -> None:
    async with serving(h) as url:
        status, doc, _ = await call("GET", f"{url}/api/v1/executions/search?{query}")
    assert status == 400
    assert message in doc["message"]


async def test_executions_of_one_flow_leave_out_a_sub_namespace_s_same_id(h: Harness) -> None:
    """Kestra's ExecutionController.searchExecutionsByFlowId: GET /executions?namespace&flowId."""
    await h.run(_flow("company", "etl"))
    await h.run(_flow("company.team", "etl"))
    async with serving(h) as url:
        status, doc, _ = await call(
            "GET", f"{url}/api/v1/main/executions?namespace=company&flowId=etl"
        )
        assert (status, doc["total"]) == (200, 1)
        assert doc["results"][0]["namespace"] == "company"
        assert doc["results"][0]["deleted"] is False
        status, doc, _ = await call("GET", f"{url}/api/v1/executions?namespace=company")
        assert (status, doc["message"]) == (
            400,
            "Bad Request: namespace and flowId are required",
        )


async def test_flow_inputs_defaults_are_answered_as_kestra_property_text(
    h: Harness, tmp_path: Path
) -> None:
    """Kestra serialises a Property as its expression (Property.PropertySerializer), so its
    clients read an input's default as text."""
    source = """\
id: typed
namespace: company.team
inputs:
  - id: flag
    type: BOOLEAN
    defaults: true
  - id: count
    type: INT
    defaults: 3
  - id: cols
    type: ARRAY
    itemType: STRING
    defaults: [brand, price]
  - id: name
    type: STRING
    defaults: Ada
concurrency:
  limit: 2
tasks:
  - id: one
    type: io.kestra.plugin.core.log.Log
    message: one
"""
    async with flow_server(h, tmp_path / "flows") as server:
        status, doc, _ = await call("POST", f"{server.url}/api/v1/main/flows", **yaml_body(source))
    assert status == 200, doc
    assert [i["defaults"] for i in doc["inputs"]] == ["true", "3", '["brand","price"]', "Ada"]
    assert doc["concurrency"] == {"limit": 2, "behavior": "QUEUE"}
    assert doc["source"] == source


async def test_kestra_query_filters_narrow_flow_and_trigger_searches(
    h: Harness, tmp_path: Path
) -> None:
    """Kestra's QueryFilter on FLOW (namespace, q) and TRIGGER (namespace, flowId, q)."""
    scheduled = _flow("company.team", "sub") + (
        "triggers:\n  - id: nightly\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        '    cron: "0 2 * * *"\n'
    )
    async with flow_server(h, tmp_path / "flows") as server:
        for source in (_flow("company", "top"), scheduled, _flow("company.team", "other")):
            status, doc, _ = await call(
                "POST", f"{server.url}/api/v1/main/flows", **yaml_body(source)
            )
            assert status == 200, doc

        async def ids(what: str, query: str) -> list[str]:
            status, doc, _ = await call("GET", f"{server.url}/api/v1/main/{what}/search?{query}")
            assert status == 200, doc
            return sorted(
                r["id"] if what == "flows" else r["triggerContext"]["flowId"]
                for r in doc["results"]
            )

        assert await ids("flows", "filters[namespace][EQUALS]=company") == ["top"]
        assert await ids("flows", "filters[namespace][PREFIX]=company") == ["other", "sub", "top"]
        assert await ids("flows", "filters[q][EQUALS]=OTH") == ["other"]
        assert await ids("triggers", "filters[namespace][EQUALS]=company") == []
        assert await ids("triggers", "filters[flowId][EQUALS]=sub") == ["sub"]
        status, doc, _ = await call(
            "GET", f"{server.url}/api/v1/flows/search?filters[flowId][EQUALS]=top"
        )
    assert status == 400
    assert "does not apply the filter flowId EQUALS on flows" in doc["message"]
