"""The daemon's HTTP API: health, Kestra's execution and log endpoints, the webhook route.

Routes are grouped per area in `RouteTableDef`s that `create_app` applies explicitly, so the
full API and the UI can add their own tables to the same app. Errors answer Kestra's JSON
shape, `{"message": "Reason: detail"}`, which Kestra's clients already know how to show.

Everything but `/health` and the webhook route needs the configured basic-auth credentials.
The webhook key is a secret: it is masked wherever a path is logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from daemon.config import Settings
from daemon.errors import FlowError, InputError, NotFound, PodiumError, TemplateError
from daemon.flow import Flow
from daemon.runtime import FlowDisabled, Runtime
from daemon.store.base import LEVELS, StoreError
from daemon.webhooks import Handler, WebhookRegistry

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/executions/webhook/{namespace}/{flowId}/{key}"
WEBHOOK_NOT_FOUND = "Not Found: webhook not found"
_WEBHOOK_PREFIX = "/api/v1/executions/webhook/"
_OPEN_PATHS = frozenset({"/health", WEBHOOK_PATH})
_CHUNK = 256 * 1024

RUNTIME = web.AppKey("runtime", Runtime)
SETTINGS = web.AppKey("settings", Settings)
WEBHOOKS = web.AppKey("webhooks", WebhookRegistry)
READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")


class HttpError(Exception):
    """A request podium refuses: the status and the Kestra-style message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(runtime: Runtime, settings: Settings, webhooks: WebhookRegistry, *,
               ready: Callable[[], bool] = lambda: True) -> web.Application:
    """The API application; run it with `web.AppRunner(app, access_log=None)`.

    aiohttp's own access log would print webhook keys in clear: this app logs each
    request itself, key masked. `settings` is read per request, so a reload of the
    credentials or of the body limit takes effect at once.
    """
    app = web.Application(middlewares=[_access_log, _errors, _basic_auth],
                          client_max_size=settings.webhook_max_body)
    app[RUNTIME] = runtime
    app[SETTINGS] = settings
    app[WEBHOOKS] = webhooks
    app[READY] = ready
    for table in (health_routes, execution_routes, log_routes, webhook_routes):
        app.add_routes(table)
    return app


def json_response(data: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    """orjson, because execution documents may hold dates that the json module refuses."""
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json", headers=headers)


# -- health ---------------------------------------------------------------------------------

health_routes = web.RouteTableDef()


@health_routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """UP once the flows are loaded; load balancers and `systemctl` scripts poll this."""
    runtime = request.app[RUNTIME]
    up = request.app[READY]()
    body = {"status": "UP" if up else "DOWN", "name": "podium",
            "version": await asyncio.to_thread(_version),
            "runningExecutions": runtime.running, "flows": len(runtime.flows)}
    return json_response(body, 200 if up else 503)


@cache
def _version() -> str:
    try:
        return metadata.version("podium")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- executions -----------------------------------------------------------------------------

execution_routes = web.RouteTableDef()


@execution_routes.post("/api/v1/executions/{namespace}/{flowId}")
async def create_execution(request: web.Request) -> web.Response:
    """Kestra's create call: inputs as form fields (files as file parts), labels and wait."""
    runtime = request.app[RUNTIME]
    request = _bounded(request)
    flow = await runtime.find_flow(request.match_info["namespace"], request.match_info["flowId"])
    if flow.disabled:
        raise FlowDisabled(f"flow {flow.namespace}.{flow.id} is disabled")
    labels = _labels(request.query.getall("labels", []))
    wait = _flag(request.query, "wait")
    async with _Uploads(runtime.data_dir / "uploads") as uploads:
        inputs = await _read_inputs(request, uploads)
        _refuse_server_paths(flow, inputs, uploads)
        execution = await runtime.submit(flow, inputs, labels=labels)
    if wait:
        execution = await runtime.wait(execution.id)
    return json_response(execution.to_json())


@execution_routes.get("/api/v1/executions/{executionId}")
async def get_execution(request: web.Request) -> web.Response:
    return json_response(await _stored_execution(request))


async def _stored_execution(request: web.Request) -> dict[str, Any]:
    execution_id = request.match_info["executionId"]
    doc = await request.app[RUNTIME].store.get_execution(execution_id)
    if doc is None:
        raise NotFound(f"execution {execution_id} not found")
    return doc


def _labels(raw: Iterable[str]) -> dict[str, str]:
    """`labels=key:value`, repeatable, as Kestra; `system.` labels are Kestra's own."""
    labels: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise HttpError(400, f"Bad Request: label {item!r} is not key:value")
        if key.startswith("system.") and key != "system.correlationId":
            raise HttpError(400, f"Bad Request: label {key!r}: system labels are set by podium")
        labels[key] = value
    return labels


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise HttpError(400, f"Bad Request: {name} must be true or false, not {value!r}")
    return value == "true"


def _bounded(request: web.Request) -> web.Request:
    """Refuse a declared length over the limit before reading; bound what is read after.

    The limit comes from the live settings, so the clone carries it to `request.read()`.
    """
    limit = request.app[SETTINGS].webhook_max_body
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return request.clone(client_max_size=limit)


async def _read_inputs(request: web.Request, uploads: _Uploads) -> dict[str, Any]:
    """Multipart as Kestra sends it; JSON and urlencoded bodies for people with curl."""
    ctype = request.content_type
    if ctype == "multipart/form-data":
        return await _multipart_inputs(request, uploads)
    if ctype == "application/json" or ctype.endswith("+json"):
        body = await request.read()
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except ValueError as exc:  # UnicodeDecodeError included
            raise HttpError(400, f"Bad Request: the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HttpError(400, "Bad Request: the JSON body must be an object of inputs, "
                                 f"not {_json_kind(data)}")
        return data
    if ctype == "application/x-www-form-urlencoded":
        try:
            return _grouped((await request.post()).items())
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"Bad Request: the form is not UTF-8: {exc}") from None
    if await request.read():
        raise HttpError(415, "Unsupported Media Type: send inputs as multipart/form-data, "
                             f"application/json or application/x-www-form-urlencoded, not {ctype}")
    return {}


async def _multipart_inputs(request: web.Request, uploads: _Uploads) -> dict[str, Any]:
    limit = request.app[SETTINGS].webhook_max_body
    reader = await request.multipart()
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


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array"}
    return kinds.get(type(value), type(value).__name__)


def _refuse_server_paths(flow: Flow, inputs: Mapping[str, Any], uploads: _Uploads) -> None:
    """A FILE input over HTTP is an upload or a kestra:// URI, never a path on this machine.

    `Runtime.submit` copies any local path it is given into storage: from a remote caller
    that would read arbitrary files of the daemon.
    """
    problems = [f"input '{spec.id}': a FILE input takes a file part or a kestra:// URI, "
                f"not a path on the server"
                for spec in flow.inputs
                if spec.type == "FILE" and isinstance(inputs.get(spec.id), str)
                and not inputs[spec.id].startswith("kestra://")
                and not uploads.holds(inputs[spec.id])]
    if problems:
        raise InputError(problems)


class _Uploads:
    """File parts saved off the loop under the data directory, removed once submitted."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._folder: Path | None = None
        self._saved: set[str] = set()

    async def __aenter__(self) -> _Uploads:
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
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base if base not in ("", ".", "..") else "upload"


# -- logs -----------------------------------------------------------------------------------

log_routes = web.RouteTableDef()


@log_routes.get("/api/v1/logs/{executionId}")
async def list_logs(request: web.Request) -> web.Response:
    return json_response(await _logs(request))


@log_routes.get("/api/v1/logs/{executionId}/download")
async def download_logs(request: web.Request) -> web.Response:
    """Kestra's download format: `timestamp LEVEL message`, one line per log."""
    lines = await _logs(request)
    text = "\n".join(f"{line.get('timestamp')} {line.get('level')} {line.get('message')}"
                     for line in lines)
    name = request.match_info["executionId"]
    return web.Response(text=text, content_type="text/plain",
                        headers={"Content-Disposition": f'attachment; filename="{name}.log"'})


async def _logs(request: web.Request) -> list[dict[str, Any]]:
    """Filters as Kestra: minLevel, taskRunId, taskId, attempt."""
    execution = await _stored_execution(request)
    query = request.query
    min_level = query.get("minLevel")
    if min_level is not None and min_level not in LEVELS:
        raise HttpError(400, f"Bad Request: minLevel {min_level!r} is not one of "
                             f"{', '.join(LEVELS)}")
    attempt = query.get("attempt")
    if attempt is not None and not (attempt.isascii() and attempt.isdigit()):
        raise HttpError(400, f"Bad Request: attempt must be a number, not {attempt!r}")
    store = request.app[RUNTIME].store
    await store.flush()  # lines queued by running tasks become readable
    lines = await store.logs(execution["id"], task_run_id=query.get("taskRunId"),
                             min_level=min_level)
    task_id = query.get("taskId")
    return [line for line in lines
            if (task_id is None or line.get("taskId") == task_id)
            and (attempt is None or line.get("attemptNumber") == int(attempt))]


# -- webhooks -------------------------------------------------------------------------------

webhook_routes = web.RouteTableDef()


@webhook_routes.route("GET", WEBHOOK_PATH)
@webhook_routes.route("POST", WEBHOOK_PATH)
@webhook_routes.route("PUT", WEBHOOK_PATH)
async def webhook(request: web.Request) -> web.StreamResponse:
    """Hand the request to the Webhook trigger attached for this flow and key.

    No attached trigger (wrong flow, wrong key, disabled flow or trigger) and a flow
    disabled meanwhile all answer the same 404, so that keys cannot be probed. The
    handler may raise `InputError` (422); it answers only once the execution is stored.
    """
    match = request.match_info
    handler = request.app[WEBHOOKS].find(match["namespace"], match["flowId"], match["key"])
    if handler is None:
        raise HttpError(404, WEBHOOK_NOT_FOUND)
    try:
        return await handler(_bounded(request))
    except FlowDisabled:
        raise HttpError(404, WEBHOOK_NOT_FOUND) from None


# -- middlewares ----------------------------------------------------------------------------

def loggable_path(path: str) -> str:
    """The path without the webhook key (everything after the flow id is masked)."""
    if not path.startswith(_WEBHOOK_PREFIX):
        return path
    parts = path[len(_WEBHOOK_PREFIX):].split("/", 2)
    return _WEBHOOK_PREFIX + "/".join([*parts[:2], "***"]) if len(parts) > 2 else path


@web.middleware
async def _access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (key masked, no query string), status, time."""
    started = time.perf_counter()
    status: int | str = "-"
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        level = logging.DEBUG if request.path == "/health" else logging.INFO
        log.log(level, "%s %s %s %.1fms", request.method, loggable_path(request.rel_url.raw_path),
                status, (time.perf_counter() - started) * 1000)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as Kestra-like JSON; anything unexpected is a 500 with a logged traceback."""
    try:
        return await handler(request)
    except HttpError as exc:
        return json_response({"message": exc.message}, exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            limit = request.app[SETTINGS].webhook_max_body
            return json_response({"message": "Request Entity Too Large: the request body is "
                                              f"larger than {limit} bytes"}, 413)
        kept = {k: v for k, v in exc.headers.items() if k not in ("Content-Type",
                                                                   "Content-Length")}
        detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else None
        message = f"{exc.reason}: {detail}" if detail else exc.reason
        return json_response({"message": message}, exc.status, kept)
    except InputError as exc:
        return json_response({"message": f"Invalid entity: {exc}",
                              "_embedded": {"errors": [{"message": m} for m in exc.messages]}},
                             422)
    except NotFound as exc:
        return json_response({"message": f"Not Found: {exc}"}, 404)
    except FlowDisabled as exc:
        return json_response({"message": f"Illegal state: {exc}"}, 409)
    except (TemplateError, FlowError) as exc:
        return json_response({"message": f"Invalid entity: {exc}"}, 422)
    except StoreError as exc:
        log.error("%s %s: %s", request.method, loggable_path(request.path), exc)
        return json_response({"message": "Service Unavailable: the store is unavailable"}, 503)
    except PodiumError as exc:
        return json_response({"message": f"Bad Request: {exc}"}, 400)
    except Exception:
        log.exception("%s %s failed", request.method, loggable_path(request.path))
        return json_response({"message": "Internal server error"}, 500)


@web.middleware
async def _basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With credentials configured, all but /health and webhooks need them (compared in
    constant time, user and password both, so that neither leaks by timing)."""
    credentials = request.app[SETTINGS].basic_auth
    resource = request.match_info.route.resource
    if credentials is None or (resource is not None and resource.canonical in _OPEN_PATHS):
        return await handler(request)
    given = _credentials(request.headers.get("Authorization", ""))
    if given is not None:
        user_ok = hmac.compare_digest(given[0], credentials.username.encode())
        password_ok = hmac.compare_digest(given[1], credentials.password.encode())
        if user_ok & password_ok:
            return await handler(request)
    return json_response({"message": "Unauthorized"}, 401,
                         {"WWW-Authenticate": 'Basic realm="podium"'})


def _credentials(header: str) -> tuple[bytes, bytes] | None:
    """(user, password) of a `Basic` header, as bytes: compared as sent, UTF-8 or not."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    return (user, password) if sep else None
