"""Kestra's flow export and import (FlowController, HasSource): a ZIP of YAML sources out,
by ids or by query; a multi-document YAML or a ZIP of YAML files in.

Import writes each flow through the flows directory under `FLOW_LOCK`, as a create or an
update; what does not validate is not imported and is named in the answer (a document by
its index, a ZIP entry by its name), and with `failOnError` the answer is then a 422
naming them (the others imported, as Kestra does).
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.api.common import (
    ENGINE,
    SETTINGS,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    flag,
    flows_dir,
    json_response,
)
from daemon.api.flow_bulk_routes import ids_body, loaded
from daemon.api.flow_query import QUERY_PARAMS, matching_flows
from daemon.api.flow_writes import FLOW_LOCK, put, validated
from daemon.flows.definition import Flow
from daemon.sdk.errors import FlowError

routes = Routes("Flows")

_ZIP = Reply("A ZIP archive of the flows' YAML sources", "application/octet-stream", {})
_YAML_SUFFIXES = (".yaml", ".yml")
_SEPARATOR = re.compile(r"(?m)^---\s*$")
_CHUNK = 256 * 1024


def _zipped(flows: list[Flow], name: str) -> bytes:
    """HasSource.asZipFile: one entry per flow, its source as written."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for flow in flows:
            archive.writestr(name.format(ns=flow.namespace, id=flow.id), flow.source)
    return buffer.getvalue()


async def _archive(flows: list[Flow], name: str) -> web.Response:
    body = await asyncio.to_thread(_zipped, flows, name)
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="flows.zip"'},
    )


@routes.operation(
    "POST",
    "/api/v1/flows/export/by-ids",
    "Export flows as a ZIP archive of YAML sources (`<namespace>.<id>.yaml`)",
    body=Body(
        ("application/json",),
        {"type": "array", "items": {"type": "object"}},
    ),
    replies={200: _ZIP, 400: error("A malformed body"), 404: error("An id names no flow")},
)
async def export_flows_by_ids(request: web.Request) -> web.Response:
    return await _archive(loaded(request, await ids_body(request)), "{ns}.{id}.yaml")


@routes.operation(
    "GET",
    "/api/v1/flows/export/by-query",
    "Export the flows the query selects as a ZIP archive (`<namespace>-<id>.yml`)",
    params=QUERY_PARAMS,
    replies={200: _ZIP, 400: error("A malformed filter")},
)
async def export_flows_by_query(request: web.Request) -> web.Response:
    return await _archive(matching_flows(request), "{ns}-{id}.yml")


@routes.operation(
    "POST",
    "/api/v1/flows/import",
    "Import flows from a multi-document YAML or a ZIP of YAML files (multipart part "
    "`fileUpload`); answers what could not be imported",
    params=(
        Param(
            "failOnError",
            "Answer 422 when a flow could not be imported",
            {"type": "boolean", "default": False},
        ),
    ),
    body=Body(
        ("multipart/form-data",),
        {
            "type": "object",
            "properties": {"fileUpload": {"type": "string", "format": "binary"}},
            "required": ["fileUpload"],
        },
    ),
    replies={
        200: Reply(
            "Indexes (YAML) or entry names (ZIP) of what was not imported",
            "application/json",
            {"type": "array", "items": {"type": "string"}},
        ),
        400: error("A malformed multipart body"),
        409: error("No flows directory"),
        415: error("Not multipart/form-data"),
        422: error("Not a YAML or ZIP file, or (failOnError) flows not imported"),
    },
)
async def import_flows(request: web.Request) -> web.Response:
    fail_on_error = flag(request.query, "failOnError")
    flows_dir(request)
    if request.content_type != "multipart/form-data":
        raise HttpError(415, "Unsupported Media Type: send the file as multipart/form-data")
    name, content = await _upload(request)
    sources = await asyncio.to_thread(_sources, name, content, request.app[SETTINGS].max_flow_size)
    wrong = await _import(request, sources)
    if fail_on_error and wrong:
        raise HttpError(
            422,
            "Illegal argument: Following invalid flows were not imported: " + ", ".join(wrong),
        )
    return json_response(wrong)


async def _upload(request: web.Request) -> tuple[str, bytes]:
    """The `fileUpload` part: its file name and content (within the body limit)."""
    limit = request.app[SETTINGS].webhook_max_body
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise HttpError(400, "Bad Request: nested multipart bodies are not supported")
            if part.name != "fileUpload":
                await part.release()
                continue
            data = bytearray()
            while chunk := await part.read_chunk(_CHUNK):
                data.extend(chunk)
                if len(data) > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
            return part.filename or "", bytes(data)
    except (HttpProcessingError, ValueError) as exc:
        raise HttpError(400, f"Bad Request: the multipart body is malformed ({exc})") from None
    raise HttpError(400, "Bad Request: Required Part [fileUpload] not specified")


def _sources(name: str, content: bytes, max_size: int) -> list[tuple[str, str | None]]:
    """HasSource.readSourceFile: (name, source or None when unreadable) of each flow of a
    YAML file (named by index) or of each YAML entry of a ZIP file (named by entry)."""
    lower = name.lower()
    if lower.endswith(_YAML_SUFFIXES):
        text = _text(content)
        if text is None:
            return [("0", None)]
        return [
            (str(i), source)
            for i, source in enumerate(_SEPARATOR.split(text))
            if source.strip()  # a blank document is no flow (Kestra would fail on it)
        ]
    if lower.endswith(".zip"):
        return _entries(content, max_size)
    kind = name[name.rfind(".") :] if "." in name else name or "without a name"
    raise HttpError(422, f"Illegal argument: Cannot import file of type {kind}")


def _entries(content: bytes, max_size: int) -> list[tuple[str, str | None]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise HttpError(400, f"Bad Request: the ZIP file cannot be read ({exc})") from None
    found: list[tuple[str, str | None]] = []
    with archive:
        for entry in archive.infolist():
            if entry.is_dir() or not entry.filename.lower().endswith(_YAML_SUFFIXES):
                continue
            if entry.file_size > max_size:
                found.append((entry.filename, None))
                continue
            try:
                with archive.open(entry) as handle:
                    data = handle.read(max_size + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
                found.append((entry.filename, None))
                continue
            found.append((entry.filename, _text(data) if len(data) <= max_size else None))
    return found


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def _import(request: web.Request, sources: list[tuple[str, str | None]]) -> list[str]:
    """FlowService.importFlow for each source: created, or updated (a new revision when it
    changed); the names of those that could not be."""
    engine = request.app[ENGINE]
    limit = request.app[SETTINGS].max_flow_size
    wrong: list[str] = []
    async with request.app[FLOW_LOCK]:
        for name, source in sources:
            if source is None or len(source.encode()) > limit:
                wrong.append(name)
                continue
            try:
                await put(request, await validated(engine, source.strip() + "\n"))
            except (FlowError, HttpError):
                wrong.append(name)
    return wrong
