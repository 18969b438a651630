"""Reading execution inputs from a request: multipart (as Kestra's clients send them, files
streamed to disk), JSON or urlencoded — always within the configured body limit.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.api.common import SETTINGS, HttpError, parse_json
from daemon.flows.definition import Flow
from daemon.sdk.errors import InputError

_CHUNK = 256 * 1024
# Bytes of an uploaded file's name as saved: file systems refuse names past 255.
_MAX_NAME = 200


def bounded(request: web.Request) -> web.Request:
    """Refuse a declared length over the limit before reading; bound what is read after.

    The limit comes from the live settings, so the clone carries it to `request.read()`.
    """
    limit = request.app[SETTINGS].webhook_max_body
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return request.clone(client_max_size=limit)


async def read_inputs(request: web.Request, uploads: Uploads) -> dict[str, Any]:
    """Multipart as Kestra sends it; JSON and urlencoded bodies for people with curl."""
    ctype = request.content_type
    if ctype == "multipart/form-data":
        try:
            return await _multipart_inputs(request, uploads)
        except HttpProcessingError as exc:
            raise HttpError(
                400, f"Bad Request: the multipart body is malformed ({type(exc).__name__})"
            ) from None
    if ctype == "application/json" or ctype.endswith("+json"):
        body = await request.read()
        if not body.strip():
            return {}
        data = parse_json(body)
        if not isinstance(data, dict):
            raise HttpError(
                400,
                f"Bad Request: the JSON body must be an object of inputs, not {json_kind(data)}",
            )
        return data
    if ctype == "application/x-www-form-urlencoded":
        try:
            return _grouped((await request.post()).items())
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"Bad Request: the form is not UTF-8: {exc}") from None
    if await request.read():
        raise HttpError(
            415,
            "Unsupported Media Type: send inputs as multipart/form-data, "
            f"application/json or application/x-www-form-urlencoded, not {ctype}",
        )
    return {}


async def _multipart_inputs(request: web.Request, uploads: Uploads) -> dict[str, Any]:
    limit = request.app[SETTINGS].webhook_max_body
    try:
        reader = await request.multipart()
    except ValueError:  # aiohttp's "boundary missed"
        raise HttpError(
            400,
            "Bad Request: a multipart/form-data body needs a boundary parameter in its "
            "Content-Type (multipart/form-data; boundary=...)",
        ) from None
    fields: list[tuple[str, Any]] = []
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise HttpError(400, "Bad Request: nested multipart bodies are not supported")
        if not part.name:
            raise HttpError(400, "Bad Request: a multipart part has no name")
        if part.filename is not None:
            path, size = await uploads.save(part, limit - total)
            total += size
            fields.append((part.name, path))
            continue
        data = bytearray()
        while chunk := await part.read_chunk(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=total)
            data.extend(chunk)
        try:
            fields.append((part.name, data.decode(part.get_charset(default="utf-8"))))
        except (LookupError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"Bad Request: field {part.name!r} is not text: {exc}") from None
    return _grouped(fields)


def _grouped(fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A field given several times (a MULTISELECT from a form) becomes a list."""
    grouped: dict[str, list[Any]] = {}
    for name, value in fields:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return kinds.get(type(value), type(value).__name__)


def refuse_server_paths(flow: Flow, inputs: Mapping[str, Any], uploads: Uploads) -> None:
    """A FILE input over HTTP is an upload or a kestra:// URI, never a path on this machine.

    `Engine.submit` copies any local path it is given into storage: from a remote caller
    that would read arbitrary files of the daemon.
    """
    problems = [
        f"input '{spec.id}': a FILE input takes a file part or a kestra:// URI, "
        f"not a path on the server"
        for spec in flow.inputs
        if spec.type == "FILE"
        and isinstance(inputs.get(spec.id), str)
        and not inputs[spec.id].startswith("kestra://")
        and not uploads.holds(inputs[spec.id])
    ]
    if problems:
        raise InputError(problems)


class Uploads:
    """File parts saved off the loop under the data directory, removed once submitted."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._folder: Path | None = None
        self._saved: set[str] = set()

    async def __aenter__(self) -> Uploads:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._folder is not None:
            await asyncio.to_thread(shutil.rmtree, self._folder, True)

    def holds(self, path: str) -> bool:
        return path in self._saved

    async def save(self, part: BodyPartReader, budget: int) -> tuple[str, int]:
        """Stream one file part to disk; its own folder keeps the client's file name."""
        if self._folder is None:
            await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
            self._folder = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._root))
        folder = self._folder / str(len(self._saved))
        await asyncio.to_thread(folder.mkdir)
        target = folder / _file_name(part.filename or "")
        size = 0
        handle = await asyncio.to_thread(target.open, "wb")
        try:
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > budget:
                    raise web.HTTPRequestEntityTooLarge(max_size=budget, actual_size=size)
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)
        self._saved.add(str(target))
        return str(target), size


def _file_name(name: str) -> str:
    """The client's name, made safe to create: no folder, no NUL, no lone surrogate, and
    short enough, its extension kept when it is cut."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    base = base.encode("utf-8", "replace").decode("utf-8")
    if base in ("", ".", ".."):
        return "upload"
    if len(base.encode()) <= _MAX_NAME:
        return base
    stem, dot, suffix = base.rpartition(".")
    tail = dot + suffix if stem and len(suffix.encode()) <= 16 else ""
    head = base[: len(base) - len(tail)].encode()[: _MAX_NAME - len(tail.encode())]
    return head.decode("utf-8", "ignore") + tail
