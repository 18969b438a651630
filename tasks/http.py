"""HTTP tasks: Download (streamed into storage) and Request (the body as an output).

The request itself (properties, options, errors) is daemon.sdk.httpclient's, which the
polling HTTP Trigger shares. Error messages name the URL without its user:password part:
they end up in stored logs.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from daemon.sdk.context import RunContext, TaskLogger
from daemon.sdk.errors import TaskFailed
from daemon.sdk.httpclient import CHUNK, HttpRequestSpec, response_headers
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic

if TYPE_CHECKING:
    import aiohttp

FLUSH = 1024 * 1024  # bytes gathered before one write in a worker thread
PROGRESS_MIN = 10 * 1024 * 1024  # smaller known-size bodies are not worth progress lines
PROGRESS_STEP_UNKNOWN = 50 * 1024 * 1024


class _Http(HttpRequestSpec, Task):
    """What Download and Request share: Kestra's AbstractHttp properties."""

    # Kestra's deprecated top-level form of options.allowFailed
    allow_failed: Annotated[bool, Dynamic] = False

    @property
    def failures_allowed(self) -> bool:
        return self.allow_failed or self.options.allow_failed


class _Progress:
    """Log lines while a large body arrives: every 10% of a known size, else every 50 MB."""

    def __init__(self, logger: TaskLogger, shown: str, total: int | None) -> None:
        self.logger = logger
        self.shown = shown
        self.total = total
        if total is None:
            self.step = PROGRESS_STEP_UNKNOWN
        else:
            self.step = total // 10 if total >= PROGRESS_MIN else 0
        self.next = self.step

    def update(self, size: int) -> None:
        if not self.step or size < self.next:
            return
        while self.next <= size:
            self.next += self.step
        if self.total:
            self.logger.info(
                f"downloaded {_mib(size)} of {_mib(self.total)} "
                f"({size * 100 // self.total}%) from {self.shown}"
            )
        else:
            self.logger.info(f"downloaded {_mib(size)} from {self.shown}")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _file_name(response: aiohttp.ClientResponse, url: Any) -> str:
    """Content-Disposition's file name, else the last path segment; never a path."""
    disposition = response.content_disposition
    name = disposition.filename if disposition is not None else None
    if not name:
        name = url.name
    return _base_name(name or "")


def _base_name(name: str) -> str:
    """The last segment of a path-like name: a download never writes outside its directory."""
    name = re.split(r"[/\\]", name)[-1]
    return name if name not in ("", ".", "..") else "download"


class Download(_Http):
    """Stream a response body into storage, chunk by chunk: memory stays flat at any size."""

    types = ("io.kestra.plugin.core.http.Download", "io.kestra.plugin.fs.http.Download")

    fail_on_empty_response: Annotated[bool, Dynamic] = True
    save_as: Annotated[str | None, Dynamic] = None  # the stored file's name

    async def run(self, ctx: RunContext) -> Output:
        import aiohttp

        prepared = await self.prepare(ctx.secrets, ctx.files)
        shown = prepared.shown
        try:
            async with (
                self.session() as session,
                session.request(self.method, prepared.url, **prepared.kwargs) as response,
            ):
                if self.refused(response.status, self.allow_failed):
                    raise await self.status_error(response, shown, ctx.secrets)
                name = (
                    _base_name(self.save_as) if self.save_as else _file_name(response, prepared.url)
                )
                path = (await ctx.working_dir()) / name
                size = await self._save(response, path, ctx, shown)
                code, headers = response.status, response_headers(response)
        except aiohttp.ClientError as exc:
            raise self.failure(exc, shown) from None
        finally:
            await prepared.close()
        if size == 0:
            if self.fail_on_empty_response and not self.failures_allowed:
                raise TaskFailed(
                    f"no content from {shown}: the response body is empty "
                    "(failOnEmptyResponse is true)"
                )
            ctx.logger.warning(f"file '{shown}' is empty")
        uri = await ctx.put_file(path, name)
        ctx.metric("response.length", "counter", size)
        ctx.logger.debug(f"file '{shown}' downloaded, {size} bytes")
        return {"uri": uri, "code": code, "length": size, "headers": headers}

    async def _save(
        self, response: aiohttp.ClientResponse, path: Path, ctx: RunContext, shown: str
    ) -> int:
        # A compressed body is decoded on the fly: its Content-Length is not our size.
        expected = None if response.headers.get("Content-Encoding") else response.content_length
        progress = _Progress(ctx.logger, shown, expected)
        size = 0
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            buffer = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK):
                buffer += chunk
                if len(buffer) >= FLUSH:
                    await asyncio.to_thread(handle.write, buffer)
                    size += len(buffer)
                    buffer = bytearray()
                    progress.update(size)
            if buffer:
                await asyncio.to_thread(handle.write, buffer)
                size += len(buffer)
                progress.update(size)
        finally:
            await asyncio.to_thread(handle.close)
        if expected is not None and self.method != "HEAD" and size != expected:
            raise TaskFailed(
                f"invalid size from {shown}: got {size} bytes, expected {expected} (Content-Length)"
            )
        return size


class Request(_Http):
    """Send one HTTP request; the response body (text) becomes `outputs.<id>.body`."""

    types = ("io.kestra.plugin.core.http.Request", "io.kestra.plugin.fs.http.Request")

    async def run(self, ctx: RunContext) -> Output:
        return await self.fetch_text(ctx.secrets, ctx.files, allow_failed=self.allow_failed)
