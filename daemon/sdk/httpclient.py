"""HTTP requests as Kestra's core HTTP plug-ins make them (its AbstractHttp and
HttpConfiguration): the properties a flow writes, one request built from them, a session
with their timeouts, one readable line for what aiohttp raised, and a response body read
as text under a size limit. The Request and Download tasks and the polling HTTP Trigger
share it.

aiohttp is imported when a request is made, so that flows without HTTP never pay for it.
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
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.properties import Deprecated, Dynamic, JsonText, Model
from daemon.sdk.services import Files, Secrets

if TYPE_CHECKING:
    import aiohttp

Method = Literal["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"]

DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=30)
DEFAULT_READ_IDLE_TIMEOUT = timedelta(minutes=5)  # Kestra's readIdleTimeout default
REQUEST_MAX_BODY = 10 * 1024 * 1024  # Kestra's Request limit unless options.maxContentLength
CHUNK = 256 * 1024
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
    """How long to wait for the connection (30 s by default)."""
    read_idle_timeout: Duration | None = None
    """How long the server may send nothing before the request fails (5 min by default)."""


class HttpAuth(Model):
    type: Literal["BASIC", "BEARER"]
    username: str | None = None
    password: str | None = None
    token: str | None = None


class HttpSsl(Model):
    insecure_trust_all_certificates: bool = False
    """Accept any server certificate (self-signed, expired, another host's)."""


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
class PreparedRequest:
    """One request ready to send, and the files it holds open (multipart uploads)."""

    url: Any  # yarl.URL
    shown: str
    kwargs: dict[str, Any]
    files: list[IO[bytes]] = field(default_factory=list)

    async def close(self) -> None:
        for handle in self.files:
            await asyncio.to_thread(handle.close)


class HttpRequestSpec(Model):
    """The request a flow describes (Kestra's AbstractHttp properties), and sending it."""

    uri: Annotated[str, Dynamic]
    """The absolute http:// or https:// URL; user:password in it become basic auth."""
    method: Annotated[Method, Dynamic] = "GET"
    """The HTTP method."""
    body: Annotated[str | None, Dynamic] = None
    """The request body, sent as `contentType` (application/json by default)."""
    form_data: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None
    """Form fields, URL-encoded; with `contentType: multipart/form-data`, a `kestra://` value
    (or `{name, content}`) uploads that stored file."""
    content_type: Annotated[str | None, Dynamic] = None
    """The Content-Type of `body` or of a request without one."""
    headers: Annotated[dict[str, str] | None, Dynamic, BeforeValidator(_text_values), JsonText] = (
        None
    )
    """Request headers."""
    options: Annotated[HttpOptions, Dynamic] = Field(default_factory=HttpOptions)
    """Timeouts, authentication, TLS, redirects, accepted status codes, charset, size limit."""
    ssl_options: Annotated[HttpSsl | None, Deprecated("use 'options.ssl'")] = None
    """Kestra's older place of `options.ssl`."""

    async def prepare(self, secrets: Secrets, files: Files) -> PreparedRequest:
        """The request, checked: an invalid URL is a TaskFailed that a retry cannot mend."""
        from yarl import URL

        text = self.uri.strip().replace(" ", "%20")
        shown = secrets.mask(safe_url(text))
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
        prepared = PreparedRequest(bare, secrets.mask(str(bare)), kwargs)
        if self.form_data:
            kwargs["data"] = await self._form(files, prepared)
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
        ssl = self.options.ssl or self.ssl_options
        if ssl is not None and ssl.insecure_trust_all_certificates:
            kwargs["ssl"] = False
        return prepared

    def _authorization(self, url: Any) -> str | None:
        """options.auth, else the deprecated basicAuthUser, else the URL's user:password."""
        auth = self.options.auth
        if auth is not None and auth.type == "BEARER":
            return f"Bearer {auth.token or ''}"
        if auth is not None:
            return basic(auth.username or "", auth.password or "")
        if self.options.basic_auth_user is not None:
            return basic(self.options.basic_auth_user, self.options.basic_auth_password or "")
        if url.user is not None and not any(
            k.lower() == "authorization" for k in self.headers or {}
        ):
            return basic(url.user, url.password or "")
        return None

    async def _form(self, files: Files, prepared: PreparedRequest) -> Any:
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
            path = await files.path(uri)
            handle = await asyncio.to_thread(path.open, "rb")
            prepared.files.append(handle)
            form.add_field(key, handle, filename=name or path.name)
        return form

    def session(self) -> aiohttp.ClientSession:
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.options.connect.total_seconds(),
            sock_read=self.options.read_idle.total_seconds(),
        )
        return aiohttp.ClientSession(timeout=timeout)

    def failure(self, exc: Exception, shown: str) -> TaskFailed:
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
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return TaskFailed(f"cannot connect to {shown}: {exc.certificate_error}")
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

    def refused(self, status: int, allow_failed: bool) -> bool:
        """The status fails the request: >= 400, or not in options.allowedResponseCodes."""
        if allow_failed or self.options.allow_failed:
            return False
        allowed = self.options.allowed_response_codes
        return status not in allowed if allowed is not None else status >= 400

    async def status_error(
        self, response: aiohttp.ClientResponse, shown: str, secrets: Secrets
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
        return TaskFailed(secrets.mask(message))

    async def fetch_text(
        self, secrets: Secrets, files: Files, *, allow_failed: bool = False
    ) -> dict[str, Any]:
        """Send the request and read the whole body as text: Kestra's Request outputs
        `uri` (without credentials), `code`, `headers` (lists of values) and `body`
        (None when empty). TaskFailed for a refused status, a failed connection, a body
        over `options.maxContentLength` (10 MiB by default) or one that is not text."""
        import aiohttp

        prepared = await self.prepare(secrets, files)
        shown = prepared.shown
        limit = self.options.max_content_length
        limit = REQUEST_MAX_BODY if limit is None else limit
        try:
            async with (
                self.session() as session,
                session.request(self.method, prepared.url, **prepared.kwargs) as response,
            ):
                if self.refused(response.status, allow_failed):
                    raise await self.status_error(response, shown, secrets)
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
                code, headers = response.status, response_headers(response)
        except aiohttp.ClientError as exc:
            raise self.failure(exc, shown) from None
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


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def response_headers(response: aiohttp.ClientResponse) -> dict[str, list[str]]:
    """Kestra's headers output: each name with the list of its values."""
    out: dict[str, list[str]] = {}
    for key, value in response.headers.items():
        out.setdefault(key, []).append(value)
    return out
