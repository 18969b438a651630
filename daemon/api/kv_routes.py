"""Kestra's KV endpoints: typed values per namespace, with an optional time to live; the
keys of every namespace (paged, Kestra's query filters), the keys a namespace inherits from
its parents, and a bulk deletion.

A value is sent as the request body: JSON (`42`, `true`, `"text"`, `{"a": 1}`) keeps its
type; anything that is not JSON is kept as text, as Kestra keeps a bare word.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from daemon.api.body_parsing import json_body, json_object
from daemon.api.common import (
    ENGINE,
    PAGE,
    SIZE,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    date_param,
    error,
    json_response,
    ok,
    page_of,
    paging,
)
from daemon.api.query_filters import Filter, filter_params, parse_filters
from daemon.api.sorting import SORT, sorted_by
from daemon.flows.definition import NAMESPACE_MAX, NAMESPACE_PATTERN
from daemon.sdk.durations import parse_duration
from daemon.sdk.errors import NotFound
from daemon.sdk.state import iso

routes = Routes("KV")

KEY_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
_KEY = re.compile(KEY_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
# A key is a file name in Kestra's storage (`<namespace>/_kv/<key>.ion`): at most 255 bytes;
# a longer one would also exceed what PostgreSQL can index.
KEY_MAX = 255
_INVALID = error("A malformed namespace, key, value or ttl")


def _where(request: web.Request, *, with_key: bool = True) -> tuple[str, str]:
    namespace = request.match_info["namespace"]
    if len(namespace) > NAMESPACE_MAX:
        raise HttpError(
            400,
            f"Bad Request: namespace is {len(namespace)} characters long; "
            f"at most {NAMESPACE_MAX} are allowed",
        )
    if not _NAMESPACE.match(namespace):
        raise HttpError(400, f"Bad Request: namespace {namespace!r} must match {NAMESPACE_PATTERN}")
    key = request.match_info.get("key", "") if with_key else ""
    if with_key:
        _check_key(key)
    return namespace, key


def _check_key(key: str) -> None:
    if len(key) > KEY_MAX:
        raise HttpError(
            400, f"Bad Request: key is {len(key)} characters long; at most {KEY_MAX} are allowed"
        )
    if not _KEY.match(key):
        raise HttpError(400, f"Bad Request: key {key!r} must match {KEY_PATTERN}")


_DATES = ("GREATER_THAN", "GREATER_THAN_OR_EQUAL_TO", "LESS_THAN", "LESS_THAN_OR_EQUAL_TO")
# Kestra's KV_METADATA query filters that podium applies (daemon/api/query_filters.py).
KV_FILTERS = {
    "q": ("EQUALS",),
    "namespace": ("EQUALS", "NOT_EQUALS", "PREFIX", "STARTS_WITH", "CONTAINS", "IN"),
    "updated": _DATES,
    "expirationDate": _DATES,
}
_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "key": lambda e: e["key"],
    "namespace": lambda e: e["namespace"],
    "updateDate": lambda e: _moment(e["updated"]),
    "expirationDate": lambda e: _moment(e["expiresAt"]),
}
_PAGE_OF_ENTRIES = Reply(
    "Kestra's PagedResults of KVEntry",
    "application/json",
    {
        "type": "object",
        "required": ["results", "total"],
        "properties": {
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/KVEntry"}},
            "total": {"type": "integer"},
        },
    },
)
_KEYS = {"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "string"}}}}


def kv_entry(entry: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """Kestra's KVEntry of a stored key (podium keeps no description or version)."""
    return {
        "namespace": entry.get("namespace", namespace),
        "key": entry["key"],
        "description": None,
        "updateDate": entry["updated"],
        "expirationDate": entry["expiresAt"],
    }


def kv_type(value: Any) -> str:
    """Kestra's KVType of a stored JSON value."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    return "STRING" if isinstance(value, str) else "JSON"


@routes.operation(
    "GET",
    "/api/v1/namespaces/{namespace}/kv",
    "The live keys of a namespace",
    replies={200: ok("KVEntry", array=True), 400: _INVALID},
)
async def list_keys(request: web.Request) -> web.Response:
    namespace, _ = _where(request, with_key=False)
    entries = await request.app[ENGINE].store.kv.list(namespace)
    return json_response([kv_entry(e, namespace) for e in entries])


@routes.operation(
    "GET",
    "/api/v1/kv",
    "The live keys of every namespace, a page at a time",
    params=(PAGE, SIZE, SORT, *filter_params(KV_FILTERS)),
    replies={200: _PAGE_OF_ENTRIES, 400: error("A malformed page, sort or filter")},
)
async def list_all_keys(request: web.Request) -> web.Response:
    """KVController.listAllKeys: expired keys are left out; `q` is text found in the key."""
    query = request.query
    page, size = paging(query)
    wanted = [_kv_filter(one) for one in parse_filters(query, KV_FILTERS, "KV pairs")]
    entries = [e for e in await request.app[ENGINE].store.kv.entries() if all(w(e) for w in wanted)]
    found = sorted_by(entries, query.getall("sort", []), _SORTS)
    return json_response(page_of([kv_entry(e) for e in found], page, size))


@routes.operation(
    "DELETE",
    "/api/v1/namespaces/{namespace}/kv",
    "Delete several keys: the ones deleted (live keys that were there)",
    body=Body(("application/json",), _KEYS),
    replies={
        200: Reply("The keys deleted", "application/json", _KEYS),
        400: _INVALID,
        415: error("Not JSON"),
        422: error("A body that is not {keys: [...]}"),
    },
)
async def delete_values(request: web.Request) -> web.Response:
    """KVController.deleteKeyValues: a key that was not there is left out of the answer."""
    namespace, _ = _where(request, with_key=False)
    body = json_object(await json_body(request, '{"keys": [...]}'), '{"keys": [...]}')
    keys = body.get("keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise HttpError(422, "Invalid entity: keys must be an array of strings")
    for key in keys:
        _check_key(key)
    store = request.app[ENGINE].store.kv
    deleted = [key for key in dict.fromkeys(keys) if await store.delete(namespace, key)]
    return json_response({"keys": deleted})


@routes.operation(
    "GET",
    "/api/v1/namespaces/{namespace}/kv/inheritance",
    "The live keys a namespace inherits from its parents, the nearest parent's first",
    replies={200: ok("KVEntry", array=True), 400: _INVALID},
)
async def list_inherited_keys(request: web.Request) -> web.Response:
    """KVController.listKeysWithInheritence: the keys of `a` and `a.b` for `a.b.c` (not of
    `a.b.c` itself); a key in both is `a.b`'s."""
    namespace, _ = _where(request, with_key=False)
    parts = namespace.split(".")
    store = request.app[ENGINE].store.kv
    found: dict[str, dict[str, Any]] = {}
    for depth in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:depth])
        for entry in await store.list(parent):
            found.setdefault(entry["key"], kv_entry(entry, parent))
    return json_response(list(found.values()))


@routes.operation(
    "GET",
    "/api/v1/namespaces/{namespace}/kv/{key}",
    "A value and its type",
    replies={200: ok("TypedValue"), 400: _INVALID, 404: error("No such key (or it expired)")},
)
async def get_value(request: web.Request) -> web.Response:
    namespace, key = _where(request)
    store = request.app[ENGINE].store.kv
    found, value = await store.get(namespace, key)
    if not found:
        raise NotFound(f"no value for key '{key}' in namespace '{namespace}'")
    updated = next((e["updated"] for e in await store.list(namespace) if e["key"] == key), None)
    return json_response({"type": kv_type(value), "value": value, "updated": updated})


def _kv_filter(one: Filter) -> Callable[[dict[str, Any]], bool]:
    """One KV_FILTERS filter as a test of a stored entry."""
    value, op = one.value, one.op
    if one.field == "q":
        return lambda e: value.lower() in e["key"].lower()
    if one.field == "namespace":
        tests: dict[str, Callable[[str], bool]] = {
            "EQUALS": lambda ns: ns == value,
            "NOT_EQUALS": lambda ns: ns != value,
            "PREFIX": lambda ns: ns == value or ns.startswith(value + "."),
            "STARTS_WITH": lambda ns: ns.startswith(value),
            "CONTAINS": lambda ns: value in ns,
            "IN": lambda ns: ns in value.split(","),
        }
        return lambda e: tests[op](e["namespace"])
    moment = date_param({one.field: value}, one.field)
    column = "updated" if one.field == "updated" else "expiresAt"
    compare: dict[str, Callable[[datetime, datetime], bool]] = {
        "GREATER_THAN": lambda a, b: a > b,
        "GREATER_THAN_OR_EQUAL_TO": lambda a, b: a >= b,
        "LESS_THAN": lambda a, b: a < b,
        "LESS_THAN_OR_EQUAL_TO": lambda a, b: a <= b,
    }

    def dated(entry: dict[str, Any]) -> bool:
        at = _moment(entry[column])
        return at is not None and moment is not None and compare[op](at, moment)

    return dated


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@routes.operation(
    "PUT",
    "/api/v1/namespaces/{namespace}/kv/{key}",
    "Set a value: the body is JSON, or text kept as a string",
    params=(Param("ttl", "How long the value lives, ISO-8601 (PT1H)", where="header"),),
    body=Body(("application/json", "text/plain"), {}),
    replies={204: Reply("Stored"), 400: _INVALID},
)
async def set_value(request: web.Request) -> web.Response:
    namespace, key = _where(request)
    engine = request.app[ENGINE]
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"Bad Request: the value is not UTF-8 text: {exc}") from None
    if not text.strip():
        raise HttpError(400, 'Bad Request: the value is empty; send "" for an empty string')
    try:
        value = json.loads(text)
    except RecursionError:
        raise HttpError(400, "Bad Request: the value is nested too deeply") from None
    except ValueError:
        value = text
    expires = None
    ttl = request.headers.get("ttl")
    if ttl is not None:
        try:
            lifetime = parse_duration(ttl)
        except ValueError as exc:
            raise HttpError(400, f"Bad Request: ttl {exc}") from None
        if lifetime.total_seconds() <= 0:
            raise HttpError(400, f"Bad Request: ttl {ttl!r} must be a positive duration")
        try:
            expires = iso(engine.clock.now() + lifetime)
        except OverflowError:
            raise HttpError(400, f"Bad Request: ttl {ttl!r} is too long") from None
    try:
        await engine.store.kv.set(namespace, key, value, expires_at=expires)
    except ValueError as exc:  # a number JSON allows but the store cannot keep
        raise HttpError(400, f"Bad Request: {exc}") from None
    return web.Response(status=204)


@routes.operation(
    "DELETE",
    "/api/v1/namespaces/{namespace}/kv/{key}",
    "Delete a key: true if a live key was there",
    replies={200: ok(None, "Whether the key was there"), 400: _INVALID},
)
async def delete_value(request: web.Request) -> web.Response:
    namespace, key = _where(request)
    return json_response(await request.app[ENGINE].store.kv.delete(namespace, key))
