"""Changing flows through the API: every write is a file of the flows directory, written
whole, then loaded from there as if a person had saved it (new revision, triggers
restarted, the catalog reloaded); a delete removes the file. Callers hold `FLOW_LOCK`, so
that two requests never interleave their writes.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from aiohttp import web

from daemon.api.common import ENGINE, SETTINGS, HttpError, flows_dir
from daemon.engine.core import Engine
from daemon.flows.definition import Flow
from daemon.flows.directory import FlowDirectory
from daemon.flows.loader import load_flow, too_large

FLOW_LOCK = web.AppKey("flow_lock", asyncio.Lock)
YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")


async def yaml_body(request: web.Request) -> str:
    """The request's YAML text, within the flow size limit."""
    if request.content_type not in YAML_TYPES:
        raise HttpError(
            415,
            "Unsupported Media Type: send the flow as application/x-yaml, "
            f"not {request.content_type}",
        )
    return decoded(await limited_body(request))


async def limited_body(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].max_flow_size
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, f"Payload Too Large: {too_large(request.content_length, limit)}")
    body = await request.read()
    if len(body) > limit:
        raise HttpError(413, f"Payload Too Large: {too_large(len(body), limit)}")
    return body


def decoded(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"Bad Request: the body is not UTF-8 text: {exc}") from None


async def validated(engine: Engine, text: str) -> Flow:
    """The flow `text` defines, as the flows directory would load it (FlowError if not),
    refused when it would start itself through the loaded flows."""
    flow = await asyncio.to_thread(
        load_flow, text, "<request>", engine.resources.plugins, engine.catalog.plugin_defaults
    )
    engine.catalog.check(flow)
    return flow


def file_of(flows: FlowDirectory, flow: Flow) -> Path | None:
    """The file of the flows directory that defines `flow`, if it came from one."""
    path = Path(flow.path) if flow.path else None
    return path if path is not None and path.is_relative_to(flows.root) else None


def _write(path: Path, text: str) -> None:
    """Whole or not at all: the watcher ignores the temporary name (not .yaml)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(text.encode("utf-8"))
    os.replace(partial, path)


async def save(request: web.Request, flow: Flow, path: Path) -> Flow:
    """Write a validated flow to `path` and load it from there: the flow as loaded."""
    engine = request.app[ENGINE]
    await asyncio.to_thread(_write, path, flow.source)
    await flows_dir(request).reload(path)
    loaded = engine.catalog.get(*flow.uid)
    if loaded is None or loaded.source != flow.source:
        raise HttpError(
            409,
            f"Illegal state: {path} was written but the flows directory did "
            f"not load {flow.namespace}.{flow.id}; see the daemon's log",
        )
    return loaded


def target(request: web.Request, flow: Flow) -> Path:
    """Where `put` writes a flow: the file that defines it now, else
    `<flows>/<namespace>/<id>.yaml`, unless that file defines another flow (409)."""
    flows = flows_dir(request)
    current = request.app[ENGINE].catalog.get(*flow.uid)
    path = file_of(flows, current) if current is not None else None
    if path is None:
        path = flows.root / flow.namespace / f"{flow.id}.yaml"
        owner = flows.defined_by(path)
        if owner is not None and owner != flow.uid:
            raise HttpError(409, f"Illegal state: {path} already defines {owner[0]}.{owner[1]}")
    return path


async def put(request: web.Request, flow: Flow) -> Flow:
    """Create or update a validated flow in its file (`target`). The same source as the
    loaded flow changes nothing: no write, no new revision (Kestra's save)."""
    path = target(request, flow)
    current = request.app[ENGINE].catalog.get(*flow.uid)
    if (
        current is not None
        and current.source == flow.source
        and file_of(flows_dir(request), current)
    ):
        return current
    return await save(request, flow, path)


async def remove(request: web.Request, flow: Flow) -> None:
    """Delete a flow: its file goes and the flows directory unloads it (409 when no file
    of the flows directory defines it)."""
    flows = flows_dir(request)
    path = file_of(flows, flow)
    if path is None:
        raise HttpError(
            409,
            f"Illegal state: flow {flow.namespace}.{flow.id} is not defined by "
            "a file of the flows directory",
        )
    await asyncio.to_thread(path.unlink, True)
    await flows.reload(path)


_DISABLED = {
    disabled: re.compile(rf"^disabled\s*:\s*{'false' if disabled else 'true'}\s*", re.MULTILINE)
    for disabled in (True, False)
}


def with_disabled(source: str, disabled: bool) -> str:
    """Kestra's FlowService.injectDisabled: the top-level `disabled:` set in the text, the
    rest of the source (comments, layout) kept."""
    wanted = f"disabled: {'true' if disabled else 'false'}"
    pattern = _DISABLED[disabled]
    if pattern.search(source):
        return pattern.sub(wanted + "\n", source)
    return source + ("" if source.endswith("\n") else "\n") + wanted + "\n"
