"""What the cluster's workers owe: the task runs waiting for a worker group that no live
node serves (issue #17). Read from the shared task queue, so any node answers for the
whole cluster; a single daemon runs every task run itself and answers an empty list.

Kestra's enterprise edition shows such task runs in its Instance > Workers page; the
route's document is podium's own.
"""

from __future__ import annotations

from aiohttp import web

from daemon.api.common import ENGINE, Reply, Routes, json_response

routes = Routes("Workers")

_WAITING = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "executionId": {"type": "string"},
                    "taskRunId": {"type": "string"},
                    "taskId": {"type": "string"},
                    "workerGroup": {"type": "string"},
                    "since": {"type": "string", "format": "date-time"},
                },
            },
        },
        "total": {"type": "integer"},
    },
}


@routes.operation(
    "GET",
    "/api/v1/workers/waiting",
    "Task runs waiting for a worker group with no live node, oldest first",
    replies={200: Reply("The waiting task runs", "application/json", _WAITING)},
)
async def waiting(request: web.Request) -> web.Response:
    found = await request.app[ENGINE].resources.workers.waiting()
    return json_response({"results": found, "total": len(found)})
