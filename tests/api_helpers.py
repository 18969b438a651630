"""Serving the API on a real port for tests, and the small client calls the API tests share."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from daemon.api.server import create_app
from daemon.config.settings import Settings
from daemon.engine.supervisor import TriggerSupervisor
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.directory import FlowDirectory
from tests.harness import Harness


@asynccontextmanager
async def serving(
    h: Harness,
    settings: Settings | None = None,
    webhooks: WebhookRegistry | None = None,
    ready: Callable[[], bool] = lambda: True,
    flows: FlowDirectory | None = None,
    supervisor: TriggerSupervisor | None = None,
) -> AsyncIterator[str]:
    """The app on 127.0.0.1 and a free port, as the daemon runs it; yields the base URL."""
    settings = settings or Settings(data_dir=h.engine.data_dir)
    app = create_app(
        h.engine,
        settings,
        webhooks or WebhookRegistry(),
        flows=flows,
        supervisor=supervisor,
        ready=ready,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@dataclass
class FlowServer:
    """The API with a live flows directory (and its triggers), as `podium serve` runs it."""

    h: Harness
    url: str
    flows: FlowDirectory
    root: Path
    settings: Settings
    webhooks: WebhookRegistry = field(default_factory=WebhookRegistry)


@asynccontextmanager
async def flow_server(
    h: Harness, root: Path, settings: Settings | None = None
) -> AsyncIterator[FlowServer]:
    settings = settings or Settings(data_dir=h.engine.data_dir, flows_dir=root)
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    webhooks = WebhookRegistry()
    triggers = h.engine.supervisor(webhooks, settings.allowed_paths)
    await triggers.restore()
    h.engine.catalog.listen(triggers.flow_changed)
    flows = FlowDirectory(root, h.engine.catalog, h.engine.resources.plugins)
    await flows.load_all()
    try:
        async with serving(h, settings, webhooks, flows=flows, supervisor=triggers) as url:
            yield FlowServer(h, url, flows, root, settings, webhooks)
    finally:
        await triggers.stop_all()


async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def form(**fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        if isinstance(value, tuple):
            data.add_field(name, value[1], filename=value[0], content_type="text/plain")
        else:
            data.add_field(name, str(value))
    return data


def yaml_body(text: str) -> dict[str, Any]:
    return {"data": text.encode(), "headers": {"Content-Type": "application/x-yaml"}}


@dataclass
class Event:
    """One server-sent event."""

    data: Any
    id: str | None = None
    event: str | None = None


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Server-sent events as they arrive (heartbeat comments skipped), until the stream ends."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield Event(json.loads(fields["data"]), fields.get("id"), fields.get("event"))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
