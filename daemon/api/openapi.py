"""The OpenAPI 3.1 document, built from the operations the route tables declare: the routes
the app serves and the document are one list, so neither can drift from the other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from daemon.api.common import Operation, Reply, Routes, error, json_response, ok
from daemon.api.csrf import SAFE_METHODS
from daemon.api.misc import version
from daemon.api.tenant import API_PREFIX, TENANT, tenant_path
from daemon.sdk.state import State

routes = Routes("OpenAPI")

TABLES: web.AppKey[tuple[Routes, ...]] = web.AppKey("tables")

_OBJECT: dict[str, Any] = {"type": "object"}
_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["results", "total"],
        "properties": {"results": {"type": "array", "items": item}, "total": {"type": "integer"}},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": _TEXT,
            "_embedded": {
                "type": "object",
                "properties": {
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "message": _TEXT,
                                "line": {"type": "integer"},
                                "column": {"type": "integer"},
                                "path": _TEXT,
                            },
                        },
                    }
                },
            },
        },
    },
    "Label": {
        "type": "object",
        "required": ["key", "value"],
        "additionalProperties": False,
        "properties": {"key": {"type": "string", "minLength": 1}, "value": _TEXT},
    },
    "State": {
        "type": "object",
        "required": ["current", "histories"],
        "properties": {
            "current": {"type": "string", "enum": [s.value for s in State]},
            "histories": {"type": "array", "items": _OBJECT},
            "startDate": _TEXT,
            "endDate": _TEXT,
            "duration": _TEXT,
        },
    },
    "Execution": {
        "type": "object",
        "required": ["id", "namespace", "flowId", "flowRevision", "state", "deleted"],
        "properties": {
            "id": _TEXT,
            "namespace": _TEXT,
            "flowId": _TEXT,
            "flowRevision": {"type": "integer"},
            "deleted": {"type": "boolean", "const": False},
            "inputs": _OBJECT,
            "labels": {"type": "array", "items": _ref("Label")},
            "state": _ref("State"),
            "outputs": {"type": ["object", "null"]},
            "taskRunList": {"type": "array", "items": _OBJECT},
        },
    },
    "ExecutionPage": _page(_ref("Execution")),
    "BulkResponse": {
        "type": "object",
        "required": ["count"],
        "properties": {"count": {"type": "integer", "minimum": 0}},
    },
    "BulkErrorResponse": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": _TEXT, "invalids": {"type": "array", "items": _OBJECT}},
    },
    "LogPage": _page(_ref("LogEntry")),
    "LogEntry": {
        "type": "object",
        "required": ["executionId", "level"],
        "properties": {
            "executionId": _TEXT,
            "taskRunId": _NULLABLE_TEXT,
            "taskId": _NULLABLE_TEXT,
            "level": _TEXT,
            "timestamp": _TEXT,
            "message": _NULLABLE_TEXT,
        },
    },
    "FlowWithSource": {
        "type": "object",
        "required": ["id", "namespace"],
        "properties": {
            "id": _TEXT,
            "namespace": _TEXT,
            "revision": {"type": ["integer", "null"]},
            "tasks": {"type": "array", "items": _OBJECT},
            "disabled": {"type": "boolean"},
            "deleted": {"type": "boolean"},
            "source": _TEXT,
        },
    },
    "FlowPage": _page(_ref("FlowWithSource")),
    "Validation": {
        "type": "object",
        "required": ["index"],
        "properties": {
            "index": {"type": "integer"},
            "flow": _NULLABLE_TEXT,
            "namespace": _NULLABLE_TEXT,
            "constraints": _NULLABLE_TEXT,
            "outdated": {"type": "boolean"},
            "deprecationPaths": {"type": "array", "items": _TEXT},
            "warnings": {"type": "array", "items": _TEXT},
            "infos": {"type": "array", "items": _TEXT},
            "errors": {"type": "array", "items": _OBJECT},
        },
    },
    "KVEntry": {
        "type": "object",
        "required": ["key"],
        "properties": {
            "key": _TEXT,
            "updateDate": _NULLABLE_TEXT,
            "expirationDate": _NULLABLE_TEXT,
        },
    },
    "TypedValue": {
        "type": "object",
        "required": ["type", "value"],
        "properties": {
            "type": {"type": "string", "enum": ["STRING", "NUMBER", "BOOLEAN", "JSON"]},
            "value": {},
        },
    },
    "TriggerContext": {
        "type": "object",
        "required": ["namespace", "flowId", "triggerId"],
        "properties": {
            "namespace": _TEXT,
            "flowId": _TEXT,
            "triggerId": _TEXT,
            "disabled": {"type": "boolean"},
            "date": _NULLABLE_TEXT,
            "executionId": _NULLABLE_TEXT,
            "nextExecutionDate": _NULLABLE_TEXT,
            "backfill": {"type": ["object", "null"]},
        },
    },
    "TriggerContextPage": _page(_ref("TriggerContext")),
    "TriggerPage": _page(
        {
            "type": "object",
            "properties": {
                "abstractTrigger": {"type": ["object", "null"]},
                "triggerContext": _ref("TriggerContext"),
            },
        }
    ),
}

# What any operation may answer besides its own replies.
_STORE_DOWN = error("The store is unavailable")
_UNAUTHORIZED = error("Basic-auth credentials are configured and were not given")
_MALFORMED = error("A malformed request body")
_TOO_LARGE = error("The request body is larger than the configured limit")
_CROSS_SITE = error(
    "Sent by another site (Sec-Fetch-Site, Origin), or a text/plain, url-encoded or "
    "untyped body without X-Requested-With (daemon/api/csrf.py)"
)


# Every /api/v1 operation is listed twice: tenant-less, and under Kestra's tenant path.
_TENANT_PARAM: dict[str, Any] = {
    "name": "tenant",
    "in": "path",
    "required": True,
    "description": f"The tenant: podium serves one, {TENANT!r}, as Kestra's open-source edition",
    "schema": {"type": "string", "enum": [TENANT]},
}


def document(tables: Sequence[Routes], api_version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    for table in tables:
        for op in table.operations:
            name = op.name if op.name not in names else f"{op.name}_{op.method.lower()}"
            names.add(name)
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, name)
            if op.path.startswith(API_PREFIX):
                twin = _operation(op, f"tenant_{name}", tenant=True)
                paths.setdefault(tenant_path(op.path), {})[op.method.lower()] = twin
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "podium",
            "version": api_version,
            "description": "Kestra's API paths and JSON shapes, served by podium.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
        "security": [{"basicAuth": []}],
    }


def _operation(op: Operation, name: str, *, tenant: bool = False) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [_TENANT_PARAM] if tenant else []
    parameters += [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in re.findall(r"{(\w+)}", op.path)
    ]
    for param in op.params:
        schema = {"type": "array", "items": param.schema} if param.repeated else param.schema
        parameters.append(
            {
                "name": param.name,
                "in": param.where,
                "required": param.required,
                "description": param.description,
                "schema": schema,
                **({"style": "form", "explode": True} if param.repeated else {}),
            }
        )
    replies: dict[int, Reply] = {**op.replies, 503: _STORE_DOWN}
    if not op.public:
        replies[401] = _UNAUTHORIZED
        if op.method not in SAFE_METHODS:
            replies[403] = _CROSS_SITE
    if op.body is not None:
        replies.setdefault(400, _MALFORMED)
        replies.setdefault(413, _TOO_LARGE)
    out: dict[str, Any] = {
        "operationId": name,
        "tags": [op.tag],
        "summary": op.summary,
        "parameters": parameters,
        "responses": {str(status): _reply(reply) for status, reply in sorted(replies.items())},
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body.required,
            "content": {media: {"schema": op.body.schema} for media in op.body.media},
        }
    if op.public:
        out["security"] = []
    return out


def _reply(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.media is not None:
        out["content"] = {reply.media: {"schema": reply.schema or {}}}
    return out


@routes.operation(
    "GET",
    "/api/v1/openapi.json",
    "This document",
    replies={200: ok(None, "The OpenAPI 3.1 document")},
)
async def openapi(request: web.Request) -> web.Response:
    tables: tuple[Routes, ...] = request.app[TABLES]
    return json_response(document(tables, await asyncio.to_thread(version)))
