"""Kestra's namespace files API (its NamespaceFileController): a namespace's file tree,
read and written in chunks, under `/api/v1/namespaces/{namespace}/files` (and, as every API
route, under the `main` tenant: `/api/v1/main/...`), as Kestra 1.x serves them.

Contents stream both ways: an upload goes from the multipart part into the store chunk by
chunk, a download from the store to the socket; a `.zip` upload is unpacked into files
(as Kestra's UI import does) and `/files/export` packs them, through a temporary file.
Paths under `/_flows` are refused: flows are written through the flows API.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.api.common import ENGINE, Body, HttpError, Param, Reply, Routes, error, json_response
from daemon.engine.core import Engine
from daemon.flows.definition import NAMESPACE_PATTERN
from daemon.sdk.errors import NotFound
from daemon.sdk.nsfiles import (
    CHUNK_SIZE,
    FileConflict,
    NamespaceFileError,
    NamespaceFileInfo,
    normalize_path,
    parent_of,
)
from daemon.store.namespace_files import NamespaceFileTable

routes = Routes("Files")

_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_FORBIDDEN = re.compile(r"^/_flows(/.*)?$")
_PATH = Param("path", "The file's path in the namespace, e.g. /scripts/etl.py")
_BAD = error("A malformed namespace or path, or a missing parameter")
_REFUSED = error("A path Kestra forbids (/_flows) or that leaves the namespace")
_ATTRIBUTES = {
    "type": "object",
    "properties": {
        "fileName": {"type": "string"},
        "lastModifiedTime": {"type": "integer"},
        "creationTime": {"type": "integer"},
        "type": {"type": "string", "enum": ["File", "Directory"]},
        "size": {"type": "integer"},
        "metadata": {"type": "object"},
    },
}
Handler = Callable[[web.Request], Any]


def route(method: str, suffix: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
    """An operation on `/api/v1/namespaces/{namespace}/files<suffix>` (its `/api/v1/main`
    twin comes with every API route: daemon/api/tenant.py)."""
    return routes.operation(
        method, f"/api/v1/namespaces/{{namespace}}/files{suffix}", summary, **options
    )


def _files(request: web.Request) -> tuple[NamespaceFileTable, str]:
    namespace = request.match_info["namespace"]
    if not _NAMESPACE.match(namespace):
        raise HttpError(400, f"Bad Request: namespace {namespace!r} must match {NAMESPACE_PATTERN}")
    engine: Engine = request.app[ENGINE]
    return engine.store.namespace_files, namespace


def _path(request: web.Request, name: str = "path", *, required: bool = True) -> str:
    raw = request.query.get(name)
    if raw is None or (required and not raw.strip()):
        if required:
            raise HttpError(400, f"Bad Request: Required QueryValue [{name}] not specified")
        return "/"
    try:
        path = normalize_path(raw)
    except NamespaceFileError as exc:
        raise HttpError(422, f"Invalid path: {exc}") from None
    if _FORBIDDEN.match(path):
        raise HttpError(422, f"Forbidden path: {path} (flows are written through /api/v1/flows)")
    return path


def attributes(info: NamespaceFileInfo) -> dict[str, Any]:
    """Kestra's FileAttributes of an entry (times in epoch milliseconds)."""
    return {
        "fileName": info.name or "_files",
        "lastModifiedTime": _millis(info.updated),
        "creationTime": _millis(info.created),
        "type": "Directory" if info.is_directory else "File",
        "size": info.size,
        "metadata": {},
    }


def _millis(text: str) -> int:
    return (
        int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) if text else 0
    )


async def _refusals(job: Any) -> Any:
    """A store refusal as the HTTP answer Kestra gives it."""
    try:
        return await job
    except FileConflict as exc:
        raise HttpError(409, f"Conflict: {exc}") from None
    except NamespaceFileError as exc:
        raise HttpError(422, f"Invalid path: {exc}") from None


@route(
    "GET",
    "",
    "A file's content",
    params=(Param("path", _PATH.description, required=True),),
    replies={
        200: Reply(
            "The content", "application/octet-stream", {"type": "string", "format": "binary"}
        ),
        400: _BAD,
        404: error("No such file"),
        422: _REFUSED,
    },
)
async def get_file(request: web.Request) -> web.StreamResponse:
    files, namespace = _files(request)
    path = _path(request)
    info = await files.stat(namespace, path)
    if info is None or info.is_directory:
        raise NotFound(f"namespace file {path} not found in namespace {namespace}")
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-cache"}
    )
    response.content_length = info.size
    await response.prepare(request)
    async for chunk in files.read(namespace, path):
        await response.write(chunk)
    await response.write_eof()
    return response


@route(
    "GET",
    "/stats",
    "A file's or a directory's size, dates and type (the namespace root without a path)",
    params=(_PATH,),
    replies={
        200: Reply("FileAttributes", "application/json", _ATTRIBUTES),
        400: _BAD,
        404: error("No such file"),
        422: _REFUSED,
    },
)
async def file_stats(request: web.Request) -> web.Response:
    files, namespace = _files(request)
    path = _path(request, required=False)
    info = await files.stat(namespace, path)
    if info is None:
        raise NotFound(f"namespace file {path} not found in namespace {namespace}")
    return json_response(attributes(info))


@route(
    "GET",
    "/directory",
    "The entries of a directory (the namespace root without a path)",
    params=(_PATH,),
    replies={
        200: Reply("FileAttributes", "application/json", {"type": "array", "items": _ATTRIBUTES}),
        400: _BAD,
        404: error("No such directory"),
        422: _REFUSED,
    },
)
async def list_directory(request: web.Request) -> web.Response:
    files, namespace = _files(request)
    path = _path(request, required=False)
    entries = await _refusals(files.list(namespace, path))
    return json_response([attributes(entry) for entry in entries])


@route(
    "POST",
    "/directory",
    "Make a directory (and its parents)",
    params=(Param("path", _PATH.description, required=True),),
    replies={200: Reply("Made"), 400: _BAD, 409: error("A file is in the way"), 422: _REFUSED},
)
async def make_directory(request: web.Request) -> web.Response:
    files, namespace = _files(request)
    await _refusals(files.make_directory(namespace, _path(request)))
    return web.Response(status=200)


@route(
    "GET",
    "/search",
    "The paths of the files whose path contains `q`",
    params=(Param("q", "Text the path contains", required=True),),
    replies={
        200: Reply("Paths", "application/json", {"type": "array", "items": {"type": "string"}}),
        400: _BAD,
    },
)
async def search_files(request: web.Request) -> web.Response:
    files, namespace = _files(request)
    text = request.query.get("q")
    if text is None:
        raise HttpError(400, "Bad Request: Required QueryValue [q] not specified")
    entries = await files.list(namespace, "/", recursive=True)
    return json_response([e.path for e in entries if not e.is_directory and text in e.path])


@route(
    "POST",
    "",
    "Upload a file (multipart part `fileContent`); a .zip is unpacked under the namespace",
    params=(Param("path", _PATH.description, required=True),),
    body=Body(
        ("multipart/form-data",),
        {
            "type": "object",
            "properties": {"fileContent": {"type": "string", "format": "binary"}},
            "required": ["fileContent"],
        },
    ),
    replies={
        200: Reply("Stored"),
        400: _BAD,
        409: error("A directory is in the way"),
        415: error("Not multipart/form-data"),
        422: _REFUSED,
    },
)
async def upload_file(request: web.Request) -> web.Response:
    files, namespace = _files(request)
    path = _path(request)
    if request.content_type != "multipart/form-data":
        raise HttpError(415, "Unsupported Media Type: send the file as multipart/form-data")
    try:
        reader, part = await _file_part(request)
        chunks = _part_chunks(reader, part)
        if (part.filename or "").lower().endswith(".zip"):
            await _unzip(request, files, namespace, chunks)
        else:
            await _refusals(files.write(namespace, path, chunks))
    except (HttpProcessingError, ValueError) as exc:
        raise HttpError(400, f"Bad Request: the multipart body is malformed ({exc})") from None
    return web.Response(status=200)


async def _file_part(request: web.Request) -> tuple[MultipartReader, BodyPartReader]:
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            raise HttpError(400, "Bad Request: Required Part [fileContent] not specified")
        if not isinstance(part, BodyPartReader):
            raise HttpError(400, "Bad Request: nested multipart bodies are not supported")
        if part.name == "fileContent":
            return reader, part
        await part.release()


async def _part_chunks(reader: MultipartReader, part: BodyPartReader) -> AsyncIterator[bytes]:
    """The part's content; the rest of the body is read to its closing boundary before
    the last chunk is handed over, so that a truncated upload stores nothing."""
    while chunk := await part.read_chunk(CHUNK_SIZE):
        yield chunk
    while (rest := await reader.next()) is not None:
        await rest.release()


async def _unzip(
    request: web.Request, files: NamespaceFileTable, namespace: str, chunks: AsyncIterator[bytes]
) -> None:
    """Kestra's import: each file of the archive under its own path (folders implied)."""
    engine: Engine = request.app[ENGINE]
    spool = await _spool(engine, chunks)
    try:
        try:
            archive = await asyncio.to_thread(zipfile.ZipFile, spool)
        except zipfile.BadZipFile as exc:
            raise HttpError(400, f"Bad Request: the .zip file cannot be read ({exc})") from None
        try:
            for entry in archive.infolist():
                if entry.is_dir():
                    continue
                target = normalize_path(entry.filename)
                if _FORBIDDEN.match(target):
                    raise HttpError(422, f"Forbidden path in the archive: {target}")
                handle = await asyncio.to_thread(archive.open, entry)
                try:
                    await _refusals(files.write(namespace, target, _handle_chunks(handle)))
                finally:
                    await asyncio.to_thread(handle.close)
        finally:
            await asyncio.to_thread(archive.close)
    except NamespaceFileError as exc:
        raise HttpError(422, f"Invalid path in the archive: {exc}") from None
    finally:
        await asyncio.to_thread(spool.unlink, missing_ok=True)


async def _handle_chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
        yield chunk


async def _spool(engine: Engine, chunks: AsyncIterator[bytes]) -> Path:
    """A temporary file under the data directory holding `chunks`."""
    directory = engine.data_dir / "tmp"
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=directory, suffix=".zip")
    handle = await asyncio.to_thread(os.fdopen, fd, "wb")
    try:
        async for chunk in chunks:
            await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(Path(name).unlink, missing_ok=True)
        raise
    await asyncio.to_thread(handle.close)
    return Path(name)


@route(
    "GET",
    "/export",
    "Every file of the namespace in one ZIP archive",
    replies={
        200: Reply(
            "The archive", "application/octet-stream", {"type": "string", "format": "binary"}
        ),
        400: _BAD,
    },
)
async def export_files(request: web.Request) -> web.StreamResponse:
    files, namespace = _files(request)
    engine: Engine = request.app[ENGINE]
    directory = engine.data_dir / "tmp"
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=directory, suffix=".zip")
    await asyncio.to_thread(os.close, fd)
    spool = Path(name)
    try:
        archive = await asyncio.to_thread(zipfile.ZipFile, spool, "w", zipfile.ZIP_DEFLATED)
        try:
            for entry in await files.list(namespace, "/", recursive=True):
                if entry.is_directory:
                    continue
                writer = await asyncio.to_thread(archive.open, entry.path.lstrip("/"), "w")
                try:
                    async for chunk in files.read(namespace, entry.path):
                        await asyncio.to_thread(writer.write, chunk)
                finally:
                    await asyncio.to_thread(writer.close)
        finally:
            await asyncio.to_thread(archive.close)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{namespace}_files.zip"',
                "Cache-Control": "no-cache",
            }
        )
        response.content_length = (await asyncio.to_thread(spool.stat)).st_size
        await response.prepare(request)
        handle = await asyncio.to_thread(spool.open, "rb")
        try:
            async for chunk in _handle_chunks(handle):
                await response.write(chunk)
        finally:
            await asyncio.to_thread(handle.close)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(spool.unlink, missing_ok=True)


@route(
    "PUT",
    "",
    "Move (rename) a file or a directory",
    params=(
        Param("from", "The path to move", required=True),
        Param("to", "The path it takes", required=True),
    ),
    replies={
        200: Reply("Moved"),
        400: _BAD,
        404: error("No such file"),
        409: error("Something is already at `to`"),
        422: _REFUSED,
    },
)
async def move_file(request: web.Request) -> web.Response:
    files, namespace = _files(request)
    source, target = _path(request, "from"), _path(request, "to")
    await _refusals(files.move(namespace, source, target))
    return web.Response(status=200)


@route(
    "DELETE",
    "",
    "Delete a file or a directory with everything below it (and folders left empty)",
    params=(Param("path", _PATH.description, required=True),),
    replies={200: Reply("Deleted"), 400: _BAD, 404: error("No such file"), 422: _REFUSED},
)
async def delete_file(request: web.Request) -> web.Response:
    """Kestra NamespaceFileControllerTest.delete: a folder left empty by the deletion goes
    too (its parents likewise), never the namespace root."""
    files, namespace = _files(request)
    path = _path(request)
    if path == "/" or await files.stat(namespace, path) is None:
        raise NotFound(f"namespace file {path} not found in namespace {namespace}")
    target = path
    parent = parent_of(target)
    while parent not in ("", "/") and [e.path for e in await files.list(namespace, parent)] == [
        target
    ]:
        target, parent = parent, parent_of(parent)
    await _refusals(files.delete(namespace, target))
    return web.Response(status=200)
