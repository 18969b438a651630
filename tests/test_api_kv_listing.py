"""Kestra's KV listing across namespaces, inherited keys and bulk deletion, on a real port
(KVController, KVControllerTest)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from daemon.engine.core import Engine
from daemon.flows.registry import Plugins
from daemon.sdk.clock import FakeClock
from daemon.sdk.state import iso
from daemon.store import open_store
from tests.api_helpers import call, serving
from tests.harness import Harness


async def keys_of(url: str, query: str = "") -> tuple[list[tuple[str, str]], int]:
    status, doc, _ = await call("GET", f"{url}/api/v1/kv{query}")
    assert status == 200, doc
    return [(e["namespace"], e["key"]) for e in doc["results"]], doc["total"]


async def test_all_keys_are_listed_a_page_at_a_time_without_expired_ones(h: Harness) -> None:
    """KVControllerTest.listAllKeys: every namespace's live keys; size, page and
    sort=key:desc; an expired key is not listed; a deleted one is gone."""
    store = h.store.kv
    clock = h.engine.clock
    await store.set(
        "company.team", "namespace-key", "v", expires_at=iso(clock.now() + timedelta(minutes=5))
    )
    await store.set(
        "company.team", "z-expired-key", "v", expires_at=iso(clock.now() - timedelta(hours=1))
    )
    await store.set("other", "another-namespace-key", 1)
    async with serving(h) as url:
        assert await keys_of(url, "?size=1&page=1&sort=key:desc") == (
            [("company.team", "namespace-key")],
            2,
        )
        assert await keys_of(url, "?size=1&page=2&sort=key:desc") == (
            [("other", "another-namespace-key")],
            2,
        )
        _, doc, _ = await call("GET", f"{url}/api/v1/kv")
        assert doc["results"][0] == {
            "namespace": "company.team",
            "key": "namespace-key",
            "description": None,
            "updateDate": doc["results"][0]["updateDate"],
            "expirationDate": doc["results"][0]["expirationDate"],
        }
        assert doc["results"][0]["expirationDate"].startswith(
            (clock.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
        )
        assert doc["results"][1]["expirationDate"] is None
        await store.delete("other", "another-namespace-key")
        assert await keys_of(url) == ([("company.team", "namespace-key")], 1)


async def test_all_keys_narrowed_by_kestra_filters_and_sorted(tmp_path: Path) -> None:
    """The KV_METADATA query filters (QueryFilter.Resource): q, namespace, updated and
    expirationDate; sort by namespace, key, updateDate or expirationDate."""
    clock = FakeClock()
    store = open_store(tmp_path, clock=clock)  # the same clock for expiry and updates
    await store.open()
    h = Harness(Engine(tmp_path, store, clock=clock, plugins=Plugins()), store)
    try:
        await h.store.kv.set("a", "alpha", 1)
        await clock.advance(60)
        await h.store.kv.set("a.b", "beta", 2, expires_at=iso(clock.now() + timedelta(days=1)))
        await clock.advance(60)
        await h.store.kv.set("ab", "Alphabet", 3)
        async with serving(h) as url:
            assert (await keys_of(url, "?filters[q][EQUALS]=ALPH"))[0] == [
                ("a", "alpha"),
                ("ab", "Alphabet"),
            ]
            for query, expected in (
                ("filters[namespace][EQUALS]=a", ["alpha"]),
                ("filters[namespace][PREFIX]=a", ["alpha", "beta"]),
                ("filters[namespace][STARTS_WITH]=a", ["alpha", "beta", "Alphabet"]),
                ("filters[namespace][NOT_EQUALS]=a", ["beta", "Alphabet"]),
                ("filters[namespace][CONTAINS]=.", ["beta"]),
                ("filters[namespace][IN]=ab,a.b", ["beta", "Alphabet"]),
                ("filters[updated][GREATER_THAN]=2026-01-01T00:01:00Z", ["Alphabet"]),
                (
                    "filters[updated][GREATER_THAN_OR_EQUAL_TO]=2026-01-01T00:01:00Z",
                    ["beta", "Alphabet"],
                ),
                ("filters[updated][LESS_THAN_OR_EQUAL_TO]=2026-01-01T00:01:00Z", ["alpha", "beta"]),
                ("filters[expirationDate][LESS_THAN]=2026-01-03", ["beta"]),
                ("sort=updateDate:desc", ["Alphabet", "beta", "alpha"]),
                ("sort=expirationDate:desc", ["beta", "alpha", "Alphabet"]),
                ("sort=namespace:desc&sort=key", ["Alphabet", "beta", "alpha"]),
                ("sort=key:ASC", ["Alphabet", "alpha", "beta"]),
            ):
                found, total = await keys_of(url, "?" + query)
                assert [k for _, k in found] == expected, query
                assert total == len(expected)
    finally:
        await h.close()


async def test_malformed_listing_queries_are_400(h: Harness) -> None:
    """KVController.listAllKeys: a sort, filter or page Kestra cannot apply is a 400
    (ErrorController: InvalidQueryFiltersException, a query value not converted)."""
    async with serving(h) as url:
        for query, message in (
            ("sort=value:asc", "Bad Request: sort 'value:asc' is not field:asc or field:desc "
             "with a field among key, namespace, updateDate, expirationDate"),
            ("sort=key:sideways", "Bad Request: sort 'key:sideways' is not field:asc or "
             "field:desc with a field among key, namespace, updateDate, expirationDate"),
            ("filters[updated][EQUALS]=2026-01-01", "Bad Request: podium does not apply the "
             "filter updated EQUALS on KV pairs (it applies q: EQUALS; namespace: EQUALS, "
             "NOT_EQUALS, PREFIX, STARTS_WITH, CONTAINS, IN; updated: GREATER_THAN, "
             "GREATER_THAN_OR_EQUAL_TO, LESS_THAN, LESS_THAN_OR_EQUAL_TO; expirationDate: "
             "GREATER_THAN, GREATER_THAN_OR_EQUAL_TO, LESS_THAN, LESS_THAN_OR_EQUAL_TO)"),
            ("filters[updated][LESS_THAN]=soon", "Bad Request: updated 'soon' is not an "
             "ISO-8601 date-time (e.g. 2024-01-31T10:00:00Z)"),
            ("page=0", "Bad Request: page must be a number from 1 to 1000000, not '0'"),
        ):  # fmt: skip
            status, doc, _ = await call("GET", f"{url}/api/v1/kv?{query}")
            assert (status, doc) == (400, {"message": message}), query


async def test_inherited_keys_are_the_parents_the_nearest_first(h: Harness) -> None:
    """KVControllerTest.listKeysWithInheritance: the keys of io for io.namespace, not its
    own; a key in several parents is the nearest parent's."""
    kv = h.store.kv
    await kv.set("io.namespace", "shared-key", "child")
    await kv.set("io.namespace", "child-key", "child")
    await kv.set("io", "shared-key", "parent")
    await kv.set("io", "parent-key", "parent")
    await kv.set("a", "top", 1)
    await kv.set("a.b", "top", 2)
    await kv.set("a.b.c", "own", 3)
    async with serving(h) as url:
        status, doc, _ = await call("GET", f"{url}/api/v1/namespaces/io.namespace/kv/inheritance")
        assert status == 200
        assert sorted((e["namespace"], e["key"]) for e in doc) == [
            ("io", "parent-key"),
            ("io", "shared-key"),
        ]
        _, doc, _ = await call("GET", f"{url}/api/v1/main/namespaces/a.b.c.d/kv/inheritance")
        assert [(e["namespace"], e["key"]) for e in doc] == [("a.b.c", "own"), ("a.b", "top")]
        _, doc, _ = await call("GET", f"{url}/api/v1/namespaces/io/kv/inheritance")
        assert doc == []
        status, doc, _ = await call("GET", f"{url}/api/v1/namespaces/Bad!/kv/inheritance")
        assert status == 400


NOT_STRINGS = "Invalid entity: keys must be an array of strings"


async def test_bulk_delete_answers_the_keys_that_were_there(h: Harness) -> None:
    """KVControllerTest: shouldReturnSuccessForDeleteKeyValueBulkOperationGivenExistingKeys
    and ...GivenNonExistingKeys."""
    await h.store.kv.set("io.namespace", "my-key", "content")
    await h.store.kv.set("io.namespace", "kept", "content")
    async with serving(h) as url:
        where = f"{url}/api/v1/namespaces/io.namespace/kv"
        status, doc, _ = await call("DELETE", where, json={"keys": ["my-key", "nope", "my-key"]})
        assert (status, doc) == (200, {"keys": ["my-key"]})
        status, doc, _ = await call("DELETE", where, json={"keys": ["my-key"]})
        assert (status, doc) == (200, {"keys": []})
        status, doc, _ = await call("DELETE", where, json={})
        assert (status, doc) == (200, {"keys": []})
        assert await h.store.kv.get("io.namespace", "kept") == (True, "content")
        for body, expected in (
            ({"json": {"keys": "my-key"}}, (422, NOT_STRINGS)),
            ({"json": {"keys": [1]}}, (422, NOT_STRINGS)),
            ({"json": ["my-key"]}, (422, "Invalid entity: the body must be "
                                    '{"keys": [...]}, not an array')),
            ({"json": {"keys": ["bad$key"]}}, (400, "Bad Request: key 'bad$key' must match "
                                               "^[a-zA-Z0-9][a-zA-Z0-9._-]*$")),
            ({}, (400, 'Bad Request: the body is required: send {"keys": [...]}')),
            ({"data": b"{", "headers": {"Content-Type": "application/json"}},
             (400, "Bad Request: the body is not valid JSON: Expecting property name enclosed "
                   "in double quotes: line 1 column 2 (char 1)")),
            ({"data": b"keys", "headers": {"Content-Type": "text/plain"}},
             (415, 'Unsupported Media Type: send {"keys": [...]} as application/json, not '
                   "text/plain")),
        ):  # fmt: skip
            status, doc, _ = await call("DELETE", where, **body)  # type: ignore[arg-type]
            assert (status, doc) == (expected[0], {"message": expected[1]}), body
        assert await h.store.kv.get("io.namespace", "kept") == (True, "content")


async def test_a_value_is_answered_with_its_type_and_last_update(h: Harness) -> None:
    """KVController.getKeyValue's KvDetail: type, value and the update date (podium keeps
    no revision)."""
    await h.store.kv.set("ns", "k", {"a": [1]})
    async with serving(h) as url:
        status, doc, _ = await call("GET", f"{url}/api/v1/namespaces/ns/kv/k")
        assert status == 200
        [listed] = await h.store.kv.list("ns")
        assert doc == {"type": "JSON", "value": {"a": [1]}, "updated": listed["updated"]}
        assert listed["updated"] is not None
