"""What every area of the API shares: app keys, the error type, JSON answers, query parsing,
and `Routes`, a `RouteTableDef` that also records each operation's OpenAPI description so
that the served document is built from the same declarations as the router.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiohttp import web

from daemon.config.settings import Settings
from daemon.engine.core import Engine
from daemon.engine.supervisor import TriggerSupervisor
from daemon.engine.webhooks import Handler, WebhookRegistry
from daemon.flows.directory import FlowDirectory
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution

ENGINE = web.AppKey("engine", Engine)
SETTINGS = web.AppKey("settings", Settings)
WEBHOOKS = web.AppKey("webhooks", WebhookRegistry)
READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
FLOWS: web.AppKey[FlowDirectory | None] = web.AppKey("flows")
SUPERVISOR: web.AppKey[TriggerSupervisor | None] = web.AppKey("supervisor")

MAX_PAGE = 1_000_000
_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")
MAX_SIZE = 1000

JSON = Mapping[str, Any]


class HttpError(Exception):
    """A request podium refuses: the status and the Kestra-style message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """orjson, because execution documents may hold dates that the json module refuses."""
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def supervisor(request: web.Request) -> TriggerSupervisor:
    found = request.app[SUPERVISOR]
    if found is None:
        raise HttpError(
            409,
            "Illegal state: this server runs no triggers, so they cannot be changed "
            "through the API",
        )
    return found


def flows_dir(request: web.Request) -> FlowDirectory:
    flows = request.app[FLOWS]
    if flows is None:
        raise HttpError(
            409,
            "Illegal state: this server has no flows directory, so flows and "
            "triggers cannot be changed through the API",
        )
    return flows


# -- OpenAPI declarations -------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A query parameter or header of one operation."""

    name: str
    description: str
    schema: JSON = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    repeated: bool = False
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True)
class Body:
    """The request body: the media types accepted and the schema of their content."""

    media: tuple[str, ...]
    schema: JSON
    required: bool = True


@dataclass(frozen=True)
class Reply:
    description: str
    media: str | None = None
    schema: JSON | None = None


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    tag: str
    summary: str
    params: tuple[Param, ...]
    body: Body | None
    replies: Mapping[int, Reply]
    public: bool


class Routes(web.RouteTableDef):
    """Routes of one area (an OpenAPI tag); `operations` describes each for the document."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.operations: list[Operation] = []

    def operation(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        params: Iterable[Param] = (),
        body: Body | None = None,
        replies: Mapping[int, Reply],
        public: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.route(method, path)(handler)
            self.operations.append(
                Operation(
                    getattr(handler, "__name__", path),
                    method,
                    path,
                    self.tag,
                    summary,
                    tuple(params),
                    body,
                    replies,
                    public,
                )
            )
            return handler

        return register


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def ok(name: str | None, description: str = "OK", *, array: bool = False) -> Reply:
    """A JSON reply whose schema is the named component (or any JSON when None)."""
    schema: JSON = {} if name is None else ref(name)
    return Reply(
        description, "application/json", {"type": "array", "items": schema} if array else schema
    )


def error(description: str) -> Reply:
    return Reply(description, "application/json", ref("Error"))


PAGE = Param(
    "page", "The page, from 1", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}
)
SIZE = Param(
    "size",
    "Results per page",
    {"type": "integer", "minimum": 1, "maximum": MAX_SIZE, "default": 10},
)
REVISION = Param(
    "revision",
    "The flow revision the new execution runs (the original's when absent)",
    {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
)


# -- request parsing ------------------------------------------------------------------------


async def stored_execution(request: web.Request) -> dict[str, Any]:
    execution_id = request.match_info["executionId"]
    doc = await request.app[ENGINE].store.get_execution(execution_id)
    if doc is None:
        raise NotFound(f"execution {execution_id} not found")
    return doc


def kestra_execution(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An execution document as Kestra's API answers it: Kestra's `Execution` (and the
    `kestrapy` model of it) requires `deleted`, which podium's store has no use for (a
    deleted execution is gone)."""
    return {**doc, "deleted": False}


def masked_json(request: web.Request, execution: Execution) -> dict[str, Any]:
    """An execution as an answer: secrets masked, as in the store (an execution in memory
    holds them in clear: `?wait=true`, restart, replay)."""
    doc: dict[str, Any] = request.app[ENGINE].resources.masked(execution.to_json())
    return kestra_execution(doc)


def label_pairs(raw: Iterable[str]) -> dict[str, str]:
    """`labels=key:value`, repeatable, as Kestra."""
    labels: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise HttpError(400, f"Bad Request: label {item!r} is not key:value")
        labels[key] = _storable_label(key, value)
    return labels


def settable_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """`system.` labels are Kestra's own, set by podium (the correlation id excepted)."""
    for key in labels:
        if key.startswith("system.") and key != "system.correlationId":
            raise HttpError(400, f"Bad Request: label {key!r}: system labels are set by podium")
        _storable_label(key, labels[key])
    return dict(labels)


def _storable_label(key: str, value: str) -> str:
    """A NUL cannot be stored (PostgreSQL's text and jsonb refuse it): a 400 naming the
    label, not a 503 from the store."""
    if "\x00" in key or "\x00" in value:
        raise HttpError(
            400, f"Bad Request: label {key!r}: labels cannot contain the NUL character (\\0)"
        )
    return value


def flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise HttpError(400, f"Bad Request: {name} must be true or false, not {value!r}")
    return value == "true"


def number(query: Mapping[str, str], name: str, default: int, highest: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= highest:
        raise HttpError(
            400, f"Bad Request: {name} must be a number from 1 to {highest}, not {value!r}"
        )
    return int(value)


def revision_param(query: Mapping[str, str]) -> int | None:
    """Kestra's `revision` query value, a Java Integer: its flow revision must exist (404
    otherwise, found by whoever reads it); one that is not such an integer is Micronaut's
    conversion error, which Kestra answers 422."""
    value = query.get("revision")
    if value is None:
        return None
    if not _INTEGER.fullmatch(value) or not -(2**31) <= int(value) < 2**31:
        raise HttpError(422, f"Invalid entity: revision must be an integer, not {value!r}")
    return int(value)


def paging(query: Mapping[str, str]) -> tuple[int, int]:
    """Kestra's `page` (from 1) and `size` (10 by default)."""
    return number(query, "page", 1, MAX_PAGE), number(query, "size", 10, MAX_SIZE)


def date_param(query: Mapping[str, str], name: str) -> datetime | None:
    """An ISO-8601 date or date-time; without an offset it is UTC."""
    value = query.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(
            400,
            f"Bad Request: {name} {value!r} is not an ISO-8601 date-time "
            "(e.g. 2024-01-31T10:00:00Z)",
        ) from None
    return in_utc_range(
        moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC), f"{name} {value!r}"
    )


def in_utc_range(moment: datetime, what: str) -> datetime:
    """The store compares instants in UTC: 9999-12-31T23:00-05:00 has none."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise HttpError(400, f"Bad Request: {what} is out of range once in UTC") from None
    return moment


def parse_json(body: bytes | str) -> Any:
    """A JSON body, refused with a 400 naming why when it is malformed, nested deeper than
    Python's parser recurses, or holds what the store cannot keep (a lone surrogate, an
    integer past 64 bits): those used to reach the store and answer 500."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise HttpError(
            400, "Bad Request: the body is not valid JSON: it is nested too deeply"
        ) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise HttpError(400, f"Bad Request: the body is not valid JSON: {exc}") from None
    try:
        orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        raise HttpError(
            400, f"Bad Request: the body holds a value podium cannot store: {exc}"
        ) from None
    return data


def page_of(items: list[Any], page: int, size: int) -> dict[str, Any]:
    """Kestra's paged shape over a list already in memory."""
    start = (page - 1) * size
    return {"results": items[start : start + size], "total": len(items)}
