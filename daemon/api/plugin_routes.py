"""Kestra's plug-in schema endpoint: the JSON Schema of the flow format (and of one task or
trigger), generated from the registered plug-ins (daemon/flows/schema.py), for editors.

Kestra 1.x serves it tenant-less (`/api/v1/plugins/schemas/{type}`); its UI also asks under
the `main` tenant, which every API route answers (daemon/api/tenant.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from daemon.api.common import ENGINE, HttpError, Param, Routes, error, flag, json_response, ok
from daemon.flows.schema import REF, flow_schema

routes = Routes("Plugins")

KINDS = ("flow", "task", "trigger")
_CACHE = {"Cache-Control": "public, max-age=3600"}
_DOC = "The JSON Schema (draft-07) of a flow, a task or a trigger, from the installed plug-ins"
_PARAMS = (Param("arrayOf", "A schema of a list of them", {"type": "boolean", "default": False}),)
_REPLIES = {200: ok(None, "The JSON Schema"), 404: error("No such schema type")}


@routes.operation("GET", "/api/v1/plugins/schemas/{type}", _DOC, params=_PARAMS, replies=_REPLIES)
async def plugin_schema(request: web.Request) -> web.Response:
    kind = request.match_info["type"].lower()
    if kind not in KINDS:
        raise HttpError(
            404, f"Not Found: no schema of type {request.match_info['type']!r} "
            f"(one of {', '.join(KINDS)})",
        )  # fmt: skip
    array_of = flag(request.query, "arrayOf")
    document = await asyncio.to_thread(flow_schema, request.app[ENGINE].resources.plugins)
    if kind != "flow":
        document["$ref"] = REF.format(model=f"{kind}s")
        document["title"] = f"podium {kind}"
    if array_of:
        root: dict[str, Any] = {"type": "array", "items": {"$ref": document.pop("$ref")}}
        document = {**document, **root}
    return json_response(document, headers=_CACHE)
