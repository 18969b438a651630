"""Kestra's KV endpoints: typed values per namespace, with an optional time to live.

A value is sent as the request body: JSON (`42`, `true`, `"text"`, `{"a": 1}`) keeps its
type; anything that is not JSON is kept as text, as Kestra keeps a bare word.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    ok,
)
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
    if with_key and len(key) > KEY_MAX:
        raise HttpError(
            400, f"Bad Request: key is {len(key)} characters long; at most {KEY_MAX} are allowed"
        )
    if with_key and not _KEY.match(key):
        raise HttpError(400, f"Bad Request: key {key!r} must match {KEY_PATTERN}")
    return namespace, key


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
    return json_response(
        [
            {
                "key": e["key"],
                "description": None,
                "updateDate": e["updated"],
                "expirationDate": e["expiresAt"],
            }
            for e in entries
        ]
    )


@routes.operation(
    "GET",
    "/api/v1/namespaces/{namespace}/kv/{key}",
    "A value and its type",
    replies={200: ok("TypedValue"), 400: _INVALID, 404: error("No such key (or it expired)")},
)
async def get_value(request: web.Request) -> web.Response:
    namespace, key = _where(request)
    found, value = await request.app[ENGINE].store.kv.get(namespace, key)
    if not found:
        raise NotFound(f"no value for key '{key}' in namespace '{namespace}'")
    return json_response({"type": kv_type(value), "value": value})


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
