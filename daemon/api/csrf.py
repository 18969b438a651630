"""Cross-site request forgery: a page on another site must not change anything here.

A browser that holds the operator's Basic credentials (or reaches an API without any, on
loopback) sends them with whatever another site's page submits: an auto-submitted form, a
`no-cors` fetch with a text/plain body. Such requests need no CORS preflight, so the
answer being unreadable does not stop the execution they start. Every state-changing
request (anything but GET/HEAD/OPTIONS), webhooks excepted (their key is their
credential, and they are meant to be called from anywhere), must therefore:

- not come from another site: `Sec-Fetch-Site` (sent by current browsers) is
  `same-origin` or `none` (typed by the user); without it, `Origin`, when sent, names
  this server (its Host, or the public `url` setting behind a proxy);
- from a browser, not carry a body a cross-site form can make (text/plain, url-encoded,
  or untyped) unless it also carries `X-Requested-With`, a header no form can add and a
  script on another site cannot send without a preflight this server never grants: this
  covers browsers too old to send Origin or Sec-Fetch-Site. JSON, YAML and multipart
  bodies pass (Kestra's clients: the UI, `kestra`'s Flow client, kestrapy).

A request is from a browser when it carries what every browser sends and API clients
(curl, requests, kestrapy, aiohttp) do not: a `Mozilla/` User-Agent, or an Origin,
Sec-Fetch-*, Referer or Cookie header. So `curl -H 'Content-Type: text/plain' -d ...`
(kestrapy's KV call) keeps working; the UI sends `X-Requested-With` on every call.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from daemon.api.common import SETTINGS, json_response
from daemon.engine.webhooks import Handler

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CUSTOM_HEADER = "X-Requested-With"
# Bodies a cross-site <form> or no-cors fetch sends without a preflight; multipart is the
# fourth, accepted for Kestra's clients (the origin checks above guard it in browsers).
_FORM_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Referer", "Cookie")


def same_site_only(exempt: frozenset[str]) -> Middleware:
    """The middleware, with the canonical paths of the routes it leaves alone."""

    @web.middleware
    async def same_site(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if request.method in SAFE_METHODS or (
            resource is not None and resource.canonical in exempt
        ):
            return await handler(request)
        problem = _cross_site(request) or _form_body(request)
        if problem is not None:
            return json_response({"message": f"Forbidden: {problem}"}, 403)
        return await handler(request)

    return same_site


def _cross_site(request: web.Request) -> str | None:
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site.lower() in ("same-origin", "none"):
            return None
        return (
            f"a {fetch_site} request (Sec-Fetch-Site) cannot change anything here; "
            "use podium's own pages or an API client"
        )
    origin = request.headers.get("Origin")
    if origin is None or _is_this_server(origin, request):
        return None
    return (
        f"a request from {origin} (Origin) cannot change anything here; "
        "use podium's own pages or an API client"
    )


def _form_body(request: web.Request) -> str | None:
    if not request.body_exists or CUSTOM_HEADER in request.headers or not _browser(request):
        return None
    content_type = request.headers.get("Content-Type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in _FORM_TYPES:
        return None
    shown = kind or "untyped"
    return (
        f"a {shown} body needs the header {CUSTOM_HEADER} (protection against requests "
        "forged by other sites); send application/json or multipart/form-data, or add "
        f"{CUSTOM_HEADER}: XMLHttpRequest"
    )


def _browser(request: web.Request) -> bool:
    headers = request.headers
    return headers.get("User-Agent", "").startswith("Mozilla/") or any(
        name in headers for name in _BROWSER_HEADERS
    )


def _is_this_server(origin: str, request: web.Request) -> bool:
    """`Origin` names the host the request was sent to (or the configured public URL)."""
    theirs = _host_port(origin)
    if theirs is None:
        return False  # "null" (a sandboxed frame, a file:// page) or garbage
    here = _host_port(f"{theirs[2]}://{request.host}")
    if here is not None and here[:2] == theirs[:2]:
        return True
    public = request.app[SETTINGS].url
    return public is not None and _host_port(public) == theirs


def _host_port(url: str) -> tuple[str, int, str] | None:
    """(host, port, scheme) of an origin or URL, the port defaulted from the scheme."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], scheme
