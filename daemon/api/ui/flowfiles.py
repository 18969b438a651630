"""Flows and the files that define them, for the UI: which file defines a flow, which
files no longer validate (their flow keeps its previous revision), and a flow file's text
as it is on disk now, so that the editor can ask before saving over a change made there.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web

from daemon.api.common import ENGINE, FLOWS, json_response
from daemon.api.middleware import problem_json
from daemon.flows.directory import FlowDirectory
from daemon.sdk import yamlpos
from daemon.sdk.errors import NotFound

routes = web.RouteTableDef()


def _shown(flows: FlowDirectory, path: Path) -> str:
    """A file's path relative to the flows directory, as a person finds it there."""
    try:
        return str(path.relative_to(flows.root))
    except ValueError:
        return str(path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _named(text: str | None) -> tuple[str, str] | None:
    """(namespace, id) a file that does not validate means to define, when readable."""
    if text is None:
        return None
    try:
        raw, _ = yamlpos.load(text)
    except yamlpos.YamlProblem:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("namespace"), str):
        if isinstance(raw.get("id"), str):
            return raw["namespace"], raw["id"]
    return None


@routes.get("/ui/api/flows/files")
async def flow_files(request: web.Request) -> web.Response:
    """Every loaded flow's file, and every file that does not validate with its problems
    and the flow it defines (by its last good reading, else by its id and namespace)."""
    flows = request.app[FLOWS]
    if flows is None:
        return json_response({"flows": [], "invalid": []})
    loaded = [
        {"namespace": f.namespace, "id": f.id, "file": _shown(flows, path)}
        for f in request.app[ENGINE].catalog
        if (path := flows.path_of(f.uid)) is not None
    ]
    invalid: list[dict[str, Any]] = []
    for path, problems in sorted(flows.invalid.items()):
        uid = flows.defined_by(path) or _named(await asyncio.to_thread(_read, path))
        invalid.append(
            {
                "file": _shown(flows, path),
                "namespace": uid[0] if uid else None,
                "id": uid[1] if uid else None,
                "errors": [problem_json(p) for p in problems],
            }
        )
    return json_response({"flows": loaded, "invalid": invalid})


@routes.get("/ui/api/flows/{namespace}/{id}/file")
async def flow_file(request: web.Request) -> web.Response:
    """The file defining a flow, its text on disk now (and a hash of it), and its problems
    when it no longer validates."""
    flows = request.app[FLOWS]
    uid = (request.match_info["namespace"], request.match_info["id"])
    path = flows.path_of(uid) if flows is not None else None
    if flows is None or path is None:
        raise NotFound(f"flow {uid[0]}.{uid[1]} is not defined by a file of the flows directory")
    text = await asyncio.to_thread(_read, path)
    problems = flows.invalid.get(path, [])
    return json_response(
        {
            "file": _shown(flows, path),
            "text": text,
            "sha256": hashlib.sha256(text.encode()).hexdigest() if text is not None else None,
            "errors": [problem_json(p) for p in problems],
        }
    )
