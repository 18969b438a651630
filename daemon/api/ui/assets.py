"""The UI's templates and static files, read off the event loop once and kept in memory."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from daemon.sdk.cache import BoundedCache

HERE = Path(__file__).parent
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_GRAPH_CACHE_SIZE = 64


class Assets:
    """Templates and static files, read off the event loop once and kept in memory."""

    def __init__(self) -> None:
        # Our own templates only; values from outside are data, escaped on output.
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
        )
        self.templates: dict[str, jinja2.Template] = {}
        self.static: dict[str, tuple[bytes, str, str]] = {}
        self.graphs: BoundedCache[tuple[str, str, int], dict[str, Any]] = BoundedCache(
            _GRAPH_CACHE_SIZE
        )

    async def page(self, name: str, status: int = 200, **context: Any) -> web.Response:
        if not self.templates:
            self.templates = await asyncio.to_thread(self._load_templates)
        return web.Response(
            text=self.templates[name].render(**context),
            status=status,
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    def _load_templates(self) -> dict[str, jinja2.Template]:
        """All at once: a page's `extends` and `include` then come from Jinja's cache, with
        no file read (no auto-reload) while rendering in the loop."""
        return {name: self.env.get_template(name) for name in self.env.list_templates()}

    async def asset(self, name: str) -> tuple[bytes, str, str]:
        found = self.static.get(name)
        if found is None:
            path = HERE / "static" / name
            kind = STATIC_TYPES.get(path.suffix)
            if kind is None or "/" in name or name.startswith("."):
                raise web.HTTPNotFound()
            try:
                body = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                raise web.HTTPNotFound() from None
            found = (body, kind, hashlib.sha256(body).hexdigest()[:16])
            self.static[name] = found
        return found


ASSETS = web.AppKey("ui_assets", Assets)
