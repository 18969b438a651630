"""HTTP tasks: Download (streamed into storage) and Request (the body as an output).

Both speak aiohttp, imported inside `run` so that flows without HTTP never pay for it.
Error messages name the URL without its user:password part: they end up in stored logs.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import errno
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from daemon.sdk.context import RunContext, TaskLogger
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model

if TYPE_CHECKING:
    import aiohttp

Method = Literal["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"]

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=30)
DEFAULT_READ_IDLE_TIMEOUT = timedelta(minutes=5)  # Kestra's readIdleTimeout default
REQUEST_MAX_BODY = 10 * 1024 * 1024  # Kestra's Request limit unless options.maxContentLength
CHUNK = 256 * 1024
FLUSH = 1024 * 1024  # bytes gathered before one write in a worker thread
PROGRESS_MIN = 10 * 1024 * 1024  # smaller known-size bodies are not worth progress lines
PROGRESS_STEP_UNKNOWN = 50 * 1024 * 1024
SNIPPET = 1024  # how much of a failed response's body goes into the error
_USERINFO = re.compile(r"(?<=//)[^/@?#]*@")


def _text_values(value: Any) -> Any:
    """Header values written as YAML numbers or booleans are sent as their text."""
    if isinstance(value, Mapping):
        return {
            k: (json.dumps(v) if isinstance(v, bool) else str(v)) if v is not None else ""
            for k, v in value.items()
        }
    return value


class HttpTimeouts(Model):
    connect_timeout: Duration | None = None
    read_idle_timeout: Duration | None = None


class HttpAuth(Model):
    type: Literal["BASIC", "BEARER"]
    username: str | None = None
    password: str | None = None
    token: str | None = None


class HttpSsl(Model):
    insecure_trust_all_certificates: bool = False


class HttpOptions(Model):
    """Kestra's `options:` (HttpConfiguration), with its deprecated flat names still read."""

    timeout: HttpTimeouts | None = None
    follow_redirects: bool = True
    allow_failed: bool = False
    allowed_response_codes: list[int] | None = None
    default_charset: str = "UTF-8"
    auth: HttpAuth | None = None
    ssl: HttpSsl | None = None
    max_content_length: int | None = Field(default=None, ge=0)
    connect_timeout: Duration | None = None
    read_timeout: Duration | None = None
    read_idle_timeout: Duration | None = None
    # Kestra ignores it too; accepted so that its documented examples load.
    connection_pool_idle_timeout: Duration | None = None
    basic_auth_user: str | None = None
    basic_auth_password: str | None = None

    @field_validator("default_charset")
    @classmethod
    def _known_charset(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown charset '{value}'") from None
        return value

    @property
    def connect(self) -> timedelta:
        given = self.timeout.connect_timeout if self.timeout else None
        return given or self.connect_timeout or DEFAULT_CONNECT_TIMEOUT

    @property
    def read_idle(self) -> timedelta:
        given = self.timeout.read_idle_timeout if self.timeout else None
        return given or self.read_timeout or self.read_idle_timeout or DEFAULT_READ_IDLE_TIMEOUT


def safe_url(url: str) -> str:
    """The URL as it may appear in logs and outputs: without credentials."""
    return _USERINFO.sub("", url, count=1)


@dataclass
class _Prepared:
    """One request ready to send, and the files it holds open (multipart uploads)."""

    url: Any  # yarl.URL
    shown: str
    kwargs: dict[str, Any]
    files: list[IO[bytes]] = field(default_factory=list)

    async def close(self) -> None:
        for handle in self.files:
            await asyncio.to_thread(handle.close)


class _Http(Task):
    """What Download and Request share: Kestra's AbstractHttp properties."""

    uri: Annotated[str, Dynamic]
    method: Annotated[Method, Dynamic] = "GET"
    body: Annotated[str | None, Dynamic] = None
    form_data: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None
    content_type: Annotated[str | None, Dynamic] = None
    headers: Annotated[dict[str, str] | None, Dynamic, BeforeValidator(_text_values), JsonText] = (
        None
    )
    options: Annotated[HttpOptions, Dynamic] = Field(default_factory=HttpOptions)
    # Kestra's deprecated top-level form of options.allowFailed
    allow_failed: Annotated[bool, Dynamic] = False

    @property
    def failures_allowed(self) -> bool:
        return self.allow_failed or self.options.allow_failed

    async def _prepare(self, ctx: RunContext) -> _Prepared:
        from yarl import URL

        text = self.uri.strip().replace(" ", "%20")
        shown = ctx.secrets.mask(safe_url(text))
        try:
            url = URL(text)
        except ValueError as exc:
            raise TaskFailed(f"invalid uri '{shown}': {exc}", non_retryable=True) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise TaskFailed(
                f"invalid uri '{shown}': expected an absolute http:// or https:// URL",
                non_retryable=True,
            )
        headers: dict[str, str] = {}
        kwargs: dict[str, Any] = {}
        bare = url.with_user(None)  # URL credentials become a header, never shown
        prepared = _Prepared(bare, ctx.secrets.mask(str(bare)), kwargs)
        if self.form_data:
            kwargs["data"] = await self._form(ctx, prepared)
        elif self.body is not None:
            kwargs["data"] = self.body.encode(self.options.default_charset)
            headers["Content-Type"] = self.content_type or "application/json"
        elif self.content_type:
            headers["Content-Type"] = self.content_type
        headers.update(self.headers or {})
        authorization = self._authorization(url)
        if authorization is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = authorization
        kwargs["headers"] = headers
        kwargs["allow_redirects"] = self.options.follow_redirects
        if self.options.ssl is not None and self.options.ssl.insecure_trust_all_certificates:
            kwargs["ssl"] = False
        return prepared

    def _authorization(self, url: Any) -> str | None:
        """options.auth, else the deprecated basicAuthUser, else the URL's user:password."""
        auth = self.options.auth
        if auth is not None and auth.type == "BEARER":
            return f"Bearer {auth.token or ''}"
        if auth is not None:
            return _basic(auth.username or "", auth.password or "")
        if self.options.basic_auth_user is not None:
            return _basic(self.options.basic_auth_user, self.options.basic_auth_password or "")
        if url.user is not None and not any(
            k.lower() == "authorization" for k in self.headers or {}
        ):
            return _basic(url.user, url.password or "")
        return None

    async def _form(self, ctx: RunContext, prepared: _Prepared) -> Any:
        """Form fields; in a multipart form, `kestra://` values and {name, content} are files."""
        import aiohttp

        assert self.form_data is not None
        if self.content_type != "multipart/form-data":
            return {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in self.form_data.items()
            }
        form = aiohttp.FormData()
        for key, value in self.form_data.items():
            name, uri = None, None
            if isinstance(value, str) and value.startswith("kestra://"):
                uri = value
            elif isinstance(value, Mapping) and {"name", "content"} <= set(value):
                name, uri = str(value["name"]), str(value["content"])
            if uri is None:
                form.add_field(key, value if isinstance(value, str) else json.dumps(value))
                continue
            path = await ctx.file_path(uri)
            handle = await asyncio.to_thread(path.open, "rb")
            prepared.files.append(handle)
            form.add_field(key, handle, filename=name or path.name)
        return form

    def _session(self) -> aiohttp.ClientSession:
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.options.connect.total_seconds(),
            sock_read=self.options.read_idle.total_seconds(),
        )
        return aiohttp.ClientSession(timeout=timeout)

    def _failure(self, exc: Exception, shown: str) -> TaskFailed:
        """One readable line for what aiohttp raised (connection, timeouts, protocol)."""
        import aiohttp

        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return TaskFailed(
                f"cannot connect to {shown}: no connection within "
                f"{format_duration(self.options.connect)}"
            )
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return TaskFailed(
                f"{self.method} {shown}: no data received for "
                f"{format_duration(self.options.read_idle)}"
            )
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return TaskFailed(f"cannot connect to {shown}: cannot resolve host '{exc.host}'")
        if isinstance(exc, aiohttp.ClientConnectorError):
            os_error = exc.os_error
            reason = (
                "connection refused"
                if os_error.errno == errno.ECONNREFUSED
                else (os_error.strerror or str(os_error))
            )
            return TaskFailed(f"cannot connect to {shown}: {reason}")
        detail = str(exc) or type(exc).__name__
        return TaskFailed(f"{self.method} {shown} failed: {detail}")

    def _refused(self, status: int) -> bool:
        if self.failures_allowed:
            return False
        allowed = self.options.allowed_response_codes
        return status not in allowed if allowed is not None else status >= 400

    async def _status_error(
        self, response: aiohttp.ClientResponse, shown: str, ctx: RunContext
    ) -> TaskFailed:
        snippet = bytearray()
        while len(snippet) <= SNIPPET:
            chunk = await response.content.read(SNIPPET + 1 - len(snippet))
            if not chunk:
                break
            snippet += chunk
        text = snippet[:SNIPPET].decode("utf-8", errors="replace")
        if len(snippet) > SNIPPET:
            text += "…"
        message = f"{self.method} {shown} failed with response code {response.status}"
        if text:
            message += f" and body:\n{text}"
        return TaskFailed(ctx.secrets.mask(message))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _headers(response: aiohttp.ClientResponse) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in response.headers.items():
        out.setdefault(key, []).append(value)
    return out


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

        prepared = await self._prepare(ctx)
        shown = prepared.shown
        try:
            async with (
                self._session() as session,
                session.request(self.method, prepared.url, **prepared.kwargs) as response,
            ):
                if self._refused(response.status):
                    raise await self._status_error(response, shown, ctx)
                name = (
                    _base_name(self.save_as) if self.save_as else _file_name(response, prepared.url)
                )
                path = (await ctx.working_dir()) / name
                size = await self._save(response, path, ctx, shown)
                code, headers = response.status, _headers(response)
        except aiohttp.ClientError as exc:
            raise self._failure(exc, shown) from None
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
        import aiohttp

        prepared = await self._prepare(ctx)
        shown = prepared.shown
        limit = self.options.max_content_length
        limit = REQUEST_MAX_BODY if limit is None else limit
        try:
            async with (
                self._session() as session,
                session.request(self.method, prepared.url, **prepared.kwargs) as response,
            ):
                if self._refused(response.status):
                    raise await self._status_error(response, shown, ctx)
                raw = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    raw += chunk
                    if len(raw) > limit:
                        raise TaskFailed(
                            f"the response of {shown} is larger than {limit} bytes "
                            "(options.maxContentLength); use io.kestra.plugin.core.http."
                            "Download for large bodies",
                            non_retryable=True,
                        )
                charset = response.charset or self.options.default_charset
                code, headers = response.status, _headers(response)
        except aiohttp.ClientError as exc:
            raise self._failure(exc, shown) from None
        finally:
            await prepared.close()
        try:
            body = raw.decode(charset) if raw else None
        except (UnicodeDecodeError, LookupError):
            raise TaskFailed(
                f"the response body of {shown} is not {charset} text; use "
                "io.kestra.plugin.core.http.Download for binary content",
                non_retryable=True,
            ) from None
        return {"uri": shown, "code": code, "headers": headers, "body": body}
