"""Kestra's open-source namespace endpoints: search, one namespace, autocomplete.

Kestra's open-source edition stores no namespace objects: it derives them from what lives
in one, and so does podium: the namespaces of the loaded flows, of KV pairs and of
namespace files, each with every namespace above it. A namespace is only its id. What
Kestra's Enterprise edition adds (creating, updating, deleting a namespace, its variables,
plugin defaults, secrets and credentials) is not served.
"""

from __future__ import annotations

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
    error,
    flag,
    json_response,
    paging,
)
from daemon.api.sorting import SORT, sorted_by

routes = Routes("Namespaces")

# Kestra's autocomplete answers at most this many namespaces found by their text.
AUTOCOMPLETE_LIMIT = 50
_NAMESPACE = {
    "type": "object",
    "required": ["id", "deleted"],
    "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean", "const": False}},
}
_AUTOCOMPLETE = {
    "type": "object",
    "properties": {
        "q": {"type": ["string", "null"]},
        "ids": {"type": ["array", "null"], "items": {"type": "string"}},
        "existingOnly": {"type": "boolean"},
    },
}


def _namespace(namespace_id: str) -> dict[str, Any]:
    return {"id": namespace_id, "deleted": False}


async def known_namespaces(request: web.Request) -> list[str]:
    """Every namespace podium knows of, sorted: those of the loaded flows, KV pairs and
    namespace files, and every namespace above each."""
    engine = request.app[ENGINE]
    store = engine.store
    found = {flow.namespace for flow in engine.catalog}
    found.update(entry["namespace"] for entry in await store.kv.entries())
    found.update(await store.namespace_files.namespaces())
    tree: set[str] = set()
    for namespace in found:
        parts = namespace.split(".")
        tree.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(tree)


@routes.operation(
    "GET",
    "/api/v1/namespaces/search",
    "The namespaces, a page at a time",
    params=(
        Param("q", "Text found in the namespace (any case)"),
        PAGE,
        SIZE,
        SORT,
        Param("existing", "Only namespaces that exist (all of them do in podium)"),
    ),
    replies={
        200: Reply(
            "Kestra's PagedResults of Namespace",
            "application/json",
            {
                "type": "object",
                "required": ["results", "total"],
                "properties": {
                    "results": {"type": "array", "items": _NAMESPACE},
                    "total": {"type": "integer"},
                },
            },
        ),
        400: error("A malformed page, sort or flag"),
    },
)
async def search_namespaces(request: web.Request) -> web.Response:
    """NamespaceController.searchNamespaces (NamespaceControllerTest.list): sorted by id; a
    page past the last answers no results and a total of 0, as Kestra does."""
    query = request.query
    page, size = paging(query)
    flag(query, "existing")
    text = query.get("q", "").lower()
    names = [n for n in await known_namespaces(request) if text in n.lower()]
    names = sorted_by(names, query.getall("sort", []), {"id": lambda n: n})
    shown = names[(page - 1) * size : page * size]
    return json_response(
        {"results": [_namespace(n) for n in shown], "total": len(names) if shown else 0}
    )


@routes.operation(
    "POST",
    "/api/v1/namespaces/autocomplete",
    "Namespace ids for an autocomplete field: those holding `q`, and the `ids` that exist",
    body=Body(("application/json",), _AUTOCOMPLETE),
    replies={
        200: Reply("Namespace ids, sorted", "application/json", {"type": "array"}),
        415: error("Not JSON"),
        422: error("A body that is not {q, ids, existingOnly}"),
    },
)
async def autocomplete_namespaces(request: web.Request) -> web.Response:
    """NamespaceController.autocompleteNamespaces: at most 50 found by their text, plus
    each of `ids` that exists, sorted."""
    body = json_object(await json_body(request, "{q, ids, existingOnly}"), "{q, ids, ...}")
    text, ids = body.get("q"), body.get("ids") or []
    if text is not None and not isinstance(text, str):
        raise HttpError(422, "Invalid entity: q must be a string")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HttpError(422, "Invalid entity: ids must be an array of strings")
    known = await known_namespaces(request)
    found = [n for n in known if n not in ids and (not text or text.lower() in n.lower())]
    chosen = set(found[:AUTOCOMPLETE_LIMIT]) | (set(ids) & set(known))
    return json_response(sorted(chosen))


@routes.operation(
    "GET",
    "/api/v1/namespaces/{id}",
    "A namespace",
    replies={200: Reply("The namespace", "application/json", _NAMESPACE)},
)
async def get_namespace(request: web.Request) -> web.Response:
    """NamespaceController.getNamespace: Kestra's open-source edition answers any id, a
    namespace being only its name there."""
    return json_response(_namespace(request.match_info["id"]))
