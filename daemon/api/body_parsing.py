"""JSON request bodies of the bulk and query endpoints (KV, triggers): read within the body
limit, refused with a message that says what was expected."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.common import HttpError, parse_json
from daemon.api.uploads import bounded, json_kind


async def json_body(request: web.Request, expected: str) -> Any:
    """The request's JSON body; 400 when it is missing or malformed, 415 when another
    type is declared. `expected` names the shape for the messages ("{"keys": [...]}")."""
    raw = await bounded(request).read()
    if not raw.strip():
        raise HttpError(400, f"Bad Request: the body is required: send {expected}")
    if request.content_type != "application/json":
        raise HttpError(
            415,
            f"Unsupported Media Type: send {expected} as application/json, "
            f"not {request.content_type}",
        )
    return parse_json(raw)


def json_list(data: Any, expected: str) -> list[Any]:
    if not isinstance(data, list):
        raise HttpError(422, f"Invalid entity: the body must be {expected}, not {json_kind(data)}")
    return data


def json_object(data: Any, expected: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise HttpError(422, f"Invalid entity: the body must be {expected}, not {json_kind(data)}")
    return data
