"""Kestra's ConcurrencyLimitController: the flows with a `concurrency` limit and how many of
their executions hold a slot (`running`), and setting that count, which Kestra offers to
mend a counter gone wrong; the queued executions whose turn it then is start.

podium counts the slots of the executions this process runs (daemon/engine/admission.py):
a cluster node answers for its own.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    Body,
    HttpError,
    Reply,
    Routes,
    error,
    json_response,
    parse_json,
)
from daemon.api.tenant import TENANT
from daemon.flows.definition import Flow

routes = Routes("Flows")

_LIMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tenantId", "namespace", "flowId"],
    "properties": {
        "tenantId": {"type": "string"},
        "namespace": {"type": "string"},
        "flowId": {"type": "string"},
        "running": {"type": "integer"},
    },
}
_LIMIT = Reply("Kestra's ConcurrencyLimit", "application/json", _LIMIT_SCHEMA)
_NO_LIMIT = error("No loaded flow with a concurrency limit by that namespace and id")


def _limit(request: web.Request, flow: Flow) -> dict[str, Any]:
    return {
        "tenantId": TENANT,
        "namespace": flow.namespace,
        "flowId": flow.id,
        "running": request.app[ENGINE].local.admission.active(flow),
    }


def _limited(request: web.Request, namespace: str, flow_id: str) -> Flow:
    flow = request.app[ENGINE].catalog.get(namespace, flow_id)
    if flow is None or flow.concurrency is None:
        raise HttpError(404, f"Not Found: flow {namespace}.{flow_id} has no concurrency limit")
    return flow


@routes.operation(
    "GET",
    "/api/v1/concurrency-limit/search",
    "The flows with a concurrency limit, and how many executions hold a slot",
    replies={
        200: Reply(
            "Kestra's PagedResults of ConcurrencyLimit",
            "application/json",
            {
                "type": "object",
                "required": ["results", "total"],
                "properties": {
                    "results": {"type": "array", "items": _LIMIT_SCHEMA},
                    "total": {"type": "integer"},
                },
            },
        )
    },
)
async def search_concurrency_limits(request: web.Request) -> web.Response:
    flows = sorted(request.app[ENGINE].catalog, key=lambda f: f.uid)
    found = [_limit(request, flow) for flow in flows if flow.concurrency is not None]
    return json_response({"results": found, "total": len(found)})


@routes.operation(
    "GET",
    "/api/v1/concurrency-limit/{namespace}/{flowId}",
    "A flow's concurrency limit count",
    replies={200: _LIMIT, 404: _NO_LIMIT},
)
async def concurrency_limit(request: web.Request) -> web.Response:
    flow = _limited(request, request.match_info["namespace"], request.match_info["flowId"])
    return json_response(_limit(request, flow))


@routes.operation(
    "PUT",
    "/api/v1/concurrency-limit/{namespace}/{flowId}",
    "Set how many executions of a flow hold its concurrency slots (Kestra reads the flow "
    "from the body); the queued ones whose turn it then is start",
    body=Body(("application/json",), _LIMIT_SCHEMA),
    replies={200: _LIMIT, 400: error("A malformed body"), 404: _NO_LIMIT},
)
async def update_concurrency_limit(request: web.Request) -> web.Response:
    data = parse_json(await request.read())
    if not isinstance(data, dict):
        raise HttpError(400, "Bad Request: the body must be a ConcurrencyLimit object")
    namespace, flow_id, running = data.get("namespace"), data.get("flowId"), data.get("running")
    if not isinstance(namespace, str) or not isinstance(flow_id, str):
        raise HttpError(400, "Bad Request: namespace and flowId must be strings")
    if running is None:
        running = 0
    if isinstance(running, bool) or not isinstance(running, int) or not 0 <= running < 2**31:
        raise HttpError(400, f"Bad Request: running must be a count from 0, not {running!r}")
    flow = _limited(request, namespace, flow_id)
    request.app[ENGINE].local.recount(flow, running)
    return json_response(_limit(request, flow))
