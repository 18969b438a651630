"""The middlewares every request goes through: access log, errors as JSON, basic auth.

The access log masks the webhook key (a secret) and never prints a query string or a
header; the auth check compares user and password in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time

from aiohttp import web

from daemon.api.common import SETTINGS, HttpError, json_response
from daemon.api.tenant import tenant_path
from daemon.engine.lifecycle import ControlRefused, RestartRefused
from daemon.engine.webhooks import Handler
from daemon.sdk.errors import (
    FlowDisabled,
    FlowError,
    InputError,
    NotFound,
    PodiumError,
    Problem,
    TemplateError,
)
from daemon.sdk.files import StorageError
from daemon.sdk.services import WEBHOOK_SUBPATH
from daemon.store.base import StoreError

# One logger for the whole API, named as the module was before it became a package.
log = logging.getLogger("daemon.api")
# Requests on their own logger, quiet unless the daemon logs at DEBUG (daemon/app/logsetup.py).
access = logging.getLogger("daemon.api.access")

WEBHOOK_PATH = "/api/v1/executions/webhook/{namespace}/{flowId}/{key}"
# Kestra's `{/path}` after the key (one segment: a slash in it is sent as %2F).
WEBHOOK_SUBPATH_PATH = WEBHOOK_PATH + "/{" + WEBHOOK_SUBPATH + "}"
WEBHOOK_PATHS = frozenset(
    {
        WEBHOOK_PATH,
        tenant_path(WEBHOOK_PATH),
        WEBHOOK_SUBPATH_PATH,
        tenant_path(WEBHOOK_SUBPATH_PATH),
    }
)
_OPEN_PATHS = frozenset({"/health", *WEBHOOK_PATHS})
# A webhook path, with or without a tenant (any tenant: a wrong one still sent its key).
_WEBHOOK = re.compile(r"(/api/v1/(?:[^/]+/)?executions/webhook/[^/]*/[^/]*/).*", re.DOTALL)


def loggable_path(path: str) -> str:
    """The path without the webhook key (everything after the flow id is masked)."""
    match = _WEBHOOK.fullmatch(path)
    return match.group(1) + "***" if match else path


def problem_text(problem: Problem) -> str:
    """A flow problem without its file name: API callers sent the text, not a file."""
    where = f"{problem.line}:{problem.column}"
    return (
        f"{where}: {problem.path}: {problem.message}"
        if problem.path
        else f"{where}: {problem.message}"
    )


def problem_json(problem: Problem) -> dict[str, object]:
    return {
        "line": problem.line,
        "column": problem.column,
        "path": problem.path,
        "message": problem.message,
    }


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (key masked, no query string), status, time."""
    started = time.perf_counter()
    status: int | str = "-"
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        level = logging.DEBUG if request.path == "/health" else logging.INFO
        access.log(
            level,
            "%s %s %s %.1fms",
            request.method,
            loggable_path(request.rel_url.raw_path),
            status,
            (time.perf_counter() - started) * 1000,
        )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
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
            return json_response(
                {
                    "message": "Request Entity Too Large: the request body is "
                    f"larger than {limit} bytes"
                },
                413,
            )
        kept = {k: v for k, v in exc.headers.items() if k not in ("Content-Type", "Content-Length")}
        detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else None
        message = f"{exc.reason}: {detail}" if detail else exc.reason
        return json_response({"message": message}, exc.status, kept)
    except InputError as exc:
        return json_response(
            {
                "message": f"Invalid entity: {exc}",
                "_embedded": {"errors": [{"message": m} for m in exc.messages]},
            },
            422,
        )
    except FlowError as exc:
        return json_response(
            {
                "message": "Invalid entity: " + "; ".join(problem_text(p) for p in exc.problems),
                "_embedded": {"errors": [problem_json(p) for p in exc.problems]},
            },
            422,
        )
    except NotFound as exc:
        return json_response({"message": f"Not Found: {exc}"}, 404)
    except (FlowDisabled, RestartRefused) as exc:
        return json_response({"message": f"Illegal state: {exc}"}, 409)
    except ControlRefused as exc:
        return json_response({"message": f"Illegal argument: {exc}"}, 422)
    except TemplateError as exc:
        return json_response({"message": f"Invalid entity: {exc}"}, 422)
    except StoreError as exc:
        log.error("%s %s: %s", request.method, loggable_path(request.path), exc)
        return json_response({"message": "Service Unavailable: the store is unavailable"}, 503)
    except StorageError as exc:  # an upload the storage cannot take: full, read-only...
        log.error("%s %s: %s", request.method, loggable_path(request.path), exc)
        return json_response({"message": f"Insufficient Storage: {exc}"}, 507)
    except PodiumError as exc:
        return json_response({"message": f"Bad Request: {exc}"}, 400)
    except Exception:
        log.exception("%s %s failed", request.method, loggable_path(request.path))
        return json_response({"message": "Internal server error"}, 500)


@web.middleware
async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
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
    return json_response(
        {"message": "Unauthorized"}, 401, {"WWW-Authenticate": 'Basic realm="podium"'}
    )


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
