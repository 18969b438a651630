"""Kestra's open-source namespace endpoints on a real port: search, one namespace and
autocomplete, namespaces derived from flows, KV pairs and namespace files
(NamespaceController, NamespaceControllerTest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.api_helpers import call, serving
from tests.harness import Harness


def flow(namespace: str) -> str:
    return f"""
id: f
namespace: {namespace}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


async def seeded(h: Harness) -> None:
    await h.flow(flow("my.ns"))
    await h.flow(flow("my.ns.flow"))
    await h.flow(flow("another.ns"))
    await h.store.kv.set("kv.only", "k", 1)
    await h.store.namespace_files.write("files.only", "/a.txt", one_chunk(b"a"))


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def ids(url: str, query: str = "") -> tuple[list[str], int]:
    status, doc, _ = await call("GET", f"{url}/api/v1/main/namespaces/search{query}")
    assert status == 200, doc
    assert all(n["deleted"] is False for n in doc["results"])
    return [n["id"] for n in doc["results"]], doc["total"]


async def test_search_lists_every_namespace_and_those_above_it(h: Harness) -> None:
    """NamespaceControllerTest.list: each namespace and its parents once; q, size, page and
    sort=id:desc; a page past the last answers nothing and a total of 0."""
    await seeded(h)
    async with serving(h) as url:
        everything = [
            "another", "another.ns", "files", "files.only", "kv", "kv.only", "my", "my.ns",
            "my.ns.flow",
        ]  # fmt: skip
        assert await ids(url) == (everything[:10], 9)
        assert await ids(url, "?size=2&sort=id:desc") == (["my.ns.flow", "my.ns"], 9)
        assert await ids(url, "?page=2&size=2&sort=id:desc") == (["my", "kv.only"], 9)
        assert await ids(url, "?q=NS") == (["another.ns", "my.ns", "my.ns.flow"], 3)
        assert await ids(url, "?page=6&size=2&sort=id:desc") == ([], 0)
        assert await ids(url, "?existing=true&q=files") == (["files", "files.only"], 2)


async def test_a_namespace_is_its_id(h: Harness) -> None:
    """NamespaceControllerTest.get; the open-source edition answers any id."""
    await seeded(h)
    async with serving(h) as url:
        status, doc, _ = await call("GET", f"{url}/api/v1/namespaces/my.ns")
        assert (status, doc) == (200, {"id": "my.ns", "deleted": False})
        status, doc, _ = await call("GET", f"{url}/api/v1/main/namespaces/not.yet")
        assert (status, doc) == (200, {"id": "not.yet", "deleted": False})


async def test_autocomplete_finds_by_text_and_keeps_the_ids_that_exist(h: Harness) -> None:
    """NamespaceController.autocompleteNamespaces: those holding q, plus each listed id
    that exists (an unknown one is left out), sorted."""
    await seeded(h)
    async with serving(h) as url:
        where = f"{url}/api/v1/namespaces/autocomplete"
        status, doc, _ = await call("POST", where, json={"q": "only", "ids": ["my", "ghost"]})
        assert (status, doc) == (200, ["files.only", "kv.only", "my"])
        _, doc, _ = await call("POST", where, json={})
        assert len(doc) == 9
        for body, expected in (
            ({"json": {"q": 3}}, (422, "Invalid entity: q must be a string")),
            ({"json": {"ids": "my"}}, (422, "Invalid entity: ids must be an array of strings")),
            ({"json": []}, (422, "Invalid entity: the body must be {q, ids, ...}, not an array")),
            ({}, (400, "Bad Request: the body is required: send {q, ids, existingOnly}")),
        ):
            status, doc, _ = await call("POST", where, **body)  # type: ignore[arg-type]
            assert (status, doc) == (expected[0], {"message": expected[1]}), body


async def test_malformed_searches_are_400(h: Harness) -> None:
    """NamespaceController.searchNamespaces: page and size from 1, existing a boolean, sort
    by id only (a query value Micronaut cannot convert is a 400)."""
    async with serving(h) as url:
        for query, message in (
            ("sort=name:asc", "Bad Request: sort 'name:asc' is not field:asc or field:desc "
             "with a field among id"),
            ("existing=maybe", "Bad Request: existing must be true or false, not 'maybe'"),
            ("size=0", "Bad Request: size must be a number from 1 to 1000, not '0'"),
        ):  # fmt: skip
            status, doc, _ = await call("GET", f"{url}/api/v1/namespaces/search?{query}")
            assert (status, doc) == (400, {"message": message}), query


async def test_enterprise_namespace_endpoints_stay_unserved(h: Harness) -> None:
    """Creating, updating and deleting a namespace, its inherited variables and plugin
    defaults are Kestra Enterprise's (not in kestra-io/kestra's NamespaceController)."""
    async with serving(h) as url:
        for method, path in (
            ("POST", "/api/v1/main/namespaces"),
            ("GET", "/api/v1/main/namespaces/my.ns/inherited-variables"),
            ("GET", "/api/v1/main/namespaces/my.ns/inherited-plugindefaults"),
        ):
            status, _, _ = await call(method, f"{url}{path}", json={"id": "x"})
            assert status == 404, path
        for method in ("PUT", "DELETE"):
            status, _, _ = await call(method, f"{url}/api/v1/main/namespaces/my.ns", json={})
            assert status == 405, method  # the path is served (GET), this method is not
