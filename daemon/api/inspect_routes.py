"""Looking into an execution: a preview of one of its files (CSV and JSON lines as rows,
JSON, text, images), as Kestra's `/file/preview` answers, and an expression rendered
against it (Kestra's `/eval`), for the UI's Outputs tab.

Declared before the execution routes: `POST /api/v1/executions/{id}/eval` would otherwise
be taken for the creation of an execution of the flow "eval".
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import mimetypes
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    HttpError,
    Param,
    Routes,
    error,
    json_response,
    number,
    ok,
    stored_execution,
)
from daemon.api.execution_routes import execution_file
from daemon.api.uploads import bounded
from daemon.engine.variables import execution_variables, outputs_of
from daemon.sdk.errors import NotFound, TemplateError
from daemon.sdk.execution import Execution

routes = Routes("Executions")

MAX_ROWS = 1000
DEFAULT_ROWS = 100
TEXT_LIMIT = 256 * 1024  # bytes of a text file shown
IMAGE_LIMIT = 5 * 1024 * 1024
JSON_LIMIT = 1024 * 1024
_ROWS = {"csv": ",", "tsv": "\t"}
_LINES = ("jsonl", "ndjson", "ion")
_IMAGES = ("png", "jpg", "jpeg", "gif", "webp", "svg", "bmp")
MAX_EXPRESSION = 64 * 1024


@routes.operation(
    "GET",
    "/api/v1/executions/{executionId}/file/preview",
    "A preview of a file of the execution: rows, JSON, text or an image",
    params=(
        Param("path", "The file's URI, kestra:///...", required=True),
        Param(
            "maxRows",
            "Rows of a CSV or JSON-lines file shown",
            {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": DEFAULT_ROWS},
        ),
    ),
    replies={
        200: ok(None, "{type: LIST|JSON|TEXT|IMAGE|BINARY, extension, content, truncated}"),
        400: error("No path, or not a kestra:// URI"),
        403: error("The file is not one of this execution"),
        404: error("No such execution or file"),
    },
)
async def preview_file(request: web.Request) -> web.Response:
    uri = await execution_file(request)
    rows = number(request.query, "maxRows", DEFAULT_ROWS, MAX_ROWS)
    storage = request.app[ENGINE].resources.storage
    name = PurePosixPath(uri).name
    try:
        size = await storage.size(uri)
        limit = (IMAGE_LIMIT if _extension(name) in _IMAGES else JSON_LIMIT) + 1
        head = bytearray()
        async for chunk in storage.open(uri):  # only the head is read, whatever the size
            head += chunk
            if len(head) >= limit:
                break
    except NotFound:
        raise HttpError(404, f"Not Found: no file {uri}") from None
    return json_response(await asyncio.to_thread(preview, name, size, bytes(head), rows))


def _extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower().lstrip(".")


def preview(name: str, size: int, start: bytes, rows: int) -> dict[str, Any]:
    """What the UI shows of a file from its first bytes (`start`, at least an image's or a
    JSON document's limit when the file is larger), bounded whatever the file's size."""
    extension = _extension(name)
    out: dict[str, Any] = {"extension": extension, "size": size, "truncated": False}
    if extension in _IMAGES:
        if size > IMAGE_LIMIT:
            return {**out, "type": "BINARY", "content": None, "truncated": True}
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        content = base64.b64encode(start).decode()
        return {**out, "type": "IMAGE", "mimeType": kind, "content": content}
    head = start[: TEXT_LIMIT + 1]
    text = _text(head[:TEXT_LIMIT])
    if text is None:
        return {**out, "type": "BINARY", "content": None}
    truncated = len(head) > TEXT_LIMIT
    if extension in _ROWS:
        lines = text.splitlines()[: rows + 1]
        reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter=_ROWS[extension])
        found = list(reader)[:rows]
        more = truncated or len(text.splitlines()) > rows + 1
        return {**out, "type": "LIST", "content": found, "truncated": more}
    if extension in _LINES:
        parsed = []
        for line in text.splitlines()[:rows]:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                parsed.append(line)
        more = truncated or len(text.splitlines()) > rows
        return {**out, "type": "LIST", "content": parsed, "truncated": more}
    if extension == "json" and size <= JSON_LIMIT:
        try:
            return {**out, "type": "JSON", "content": json.loads(start)}
        except ValueError:
            pass
    return {**out, "type": "TEXT", "content": text, "truncated": truncated}


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:  # a character cut at the limit
            return raw[: exc.start].decode("utf-8")
        return None


_EVAL_REPLIES = {
    200: ok(None, "{result} once rendered, or {error}"),
    404: error("No such execution or task run"),
    413: error("The expression is too long"),
}


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/eval",
    "Render an expression against an execution (its inputs, outputs, vars, labels...)",
    replies=_EVAL_REPLIES,
)
async def evaluate(request: web.Request) -> web.Response:
    return await _evaluate(request, None)


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/eval/{taskRunId}",
    "Render an expression as a task run of the execution saw it (`taskrun` too)",
    replies=_EVAL_REPLIES,
)
async def evaluate_at(request: web.Request) -> web.Response:
    return await _evaluate(request, request.match_info["taskRunId"])


async def _evaluate(request: web.Request, task_run_id: str | None) -> web.Response:
    raw = await bounded(request).read()
    if len(raw) > MAX_EXPRESSION:
        raise HttpError(413, f"Request Entity Too Large: an expression is at most {MAX_EXPRESSION}")
    try:
        expression = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "Bad Request: the expression is not UTF-8 text") from None
    engine = request.app[ENGINE]
    execution = Execution.from_json(await stored_execution(request))
    flow = await engine.catalog.at(execution.namespace, execution.flow_id, execution.flow_revision)
    variables = execution_variables(flow, execution, outputs_of(execution), engine.resources.envs)
    if task_run_id is not None:
        run = next((r for r in execution.task_runs if r.id == task_run_id), None)
        if run is None:
            raise NotFound(f"task run {task_run_id} not found in execution {execution.id}")
        variables["taskrun"] = {
            "id": run.id,
            "startDate": run.state.start_iso,
            "attemptsCount": len(run.attempts),
            "value": run.value,
            "parentId": run.parent_task_run_id,
        }
        variables["task"] = {"id": run.task_id}
    resources = engine.resources
    # No `secret()`: whoever may read the UI must not read secrets through it.
    functions = {
        name: fn
        for name, fn in resources.functions.table(execution.namespace).items()
        if name != "secret"
    }
    try:
        result = await asyncio.to_thread(
            resources.renderer.render, expression, variables, functions
        )
    except TemplateError as exc:
        return json_response({"result": None, "error": str(exc)})
    return json_response({"result": resources.masked(result), "error": None})
