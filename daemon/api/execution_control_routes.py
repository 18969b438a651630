"""Kestra's state-changing calls on one execution beyond kill, restart, replay and resume:
pause, change-status, force-run, unqueue, and a task run's state (ExecutionController's
pauseExecution, updateExecutionStatus, forceRunExecution, unqueueExecution,
updateTaskRunState).

Kestra answers a state that does not allow the call with a 422 (its
IllegalArgumentException), a missing or unknown state name with a 400, an unknown
execution with a 404. Declared before the create route `/{namespace}/{flowId}`, which
`/{executionId}/pause` would match too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiMapping

from daemon.api.common import (
    ENGINE,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    json_response,
    kestra_execution,
    ok,
)
from daemon.api.execution_routes import create_for, json_body
from daemon.api.uploads import bounded, json_kind
from daemon.engine.controls import UNQUEUE_STATES
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

routes = Routes("Executions")

STATE_NAMES = [state.value for state in State]
_NOT_FOUND = error("No such execution")
_REFUSED = error("The execution's state does not allow this, or a state that does not fit")
_NOWHERE = error("The execution runs (or waits) on no node that could do this")


def state_param(query: MultiMapping[str], name: str, default: State | None = None) -> State:
    """A Kestra State.Type query parameter: a 400 when it is missing (without a default)
    or names no state, as Kestra's binding answers."""
    value = query.get(name)
    if value is None:
        if default is None:
            raise HttpError(400, f"Bad Request: Required QueryValue [{name}] not specified")
        return default
    if value not in State.__members__:
        raise HttpError(
            400, f"Bad Request: {name} {value!r} is not one of {', '.join(STATE_NAMES)}"
        )
    return State(value)


async def flow_named(request: web.Request, word: str) -> web.Response | None:
    """`POST /executions/ns/pause` is also the create call of a flow `pause` of namespace
    `ns`: when no execution has that id and the flow exists, the flow's execution is created,
    as before these routes existed (Kestra's router gives the literal route the call)."""
    engine = request.app[ENGINE]
    namespace = request.match_info["executionId"]
    if await engine.store.get_execution(namespace) is not None:
        return None
    try:
        await engine.catalog.find(namespace, word)
    except NotFound:
        return None
    return await create_for(request, namespace, word)


def _answer(execution: Execution) -> web.Response:
    return json_response(kestra_execution(execution.to_json()))


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/pause",
    "Pause a RUNNING execution: what runs finishes, nothing else starts until it is resumed",
    replies={200: Reply("Paused"), 404: _NOT_FOUND, 409: _NOWHERE, 422: _REFUSED},
)
async def pause_execution(request: web.Request) -> web.Response:
    """Kestra's pauseExecution answers 200 with no body."""
    if (created := await flow_named(request, "pause")) is not None:
        return created
    await request.app[ENGINE].controls.pause(request.match_info["executionId"])
    return web.Response(status=200)


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/change-status",
    "Change an ended execution's state to another ended state; its task runs stay as they are",
    params=(
        Param(
            "status",
            "The new state (an ended one)",
            {"type": "string", "enum": STATE_NAMES},
            required=True,
        ),
    ),
    replies={
        200: ok("Execution"),
        400: error("No status, or not a state"),
        404: _NOT_FOUND,
        422: _REFUSED,
    },
)
async def change_status(request: web.Request) -> web.Response:
    if (created := await flow_named(request, "change-status")) is not None:
        return created
    status = state_param(request.query, "status")
    controls = request.app[ENGINE].controls
    return _answer(await controls.change_status(request.match_info["executionId"], status))


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/force-run",
    "Run a waiting execution now: a QUEUED one leaves its queue, a PAUSED one is resumed",
    replies={200: ok("Execution"), 404: _NOT_FOUND, 422: _REFUSED},
)
async def force_run(request: web.Request) -> web.Response:
    if (created := await flow_named(request, "force-run")) is not None:
        return created
    return _answer(await request.app[ENGINE].controls.force_run(request.match_info["executionId"]))


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/unqueue",
    "Take a QUEUED execution out of its queue: run it now, or end it CANCELLED or FAILED",
    params=(
        Param(
            "state",
            "Where it goes (RUNNING when absent)",
            {"type": "string", "enum": [s.value for s in UNQUEUE_STATES]},
        ),
    ),
    replies={
        200: ok("Execution"),
        400: error("Not a state"),
        404: _NOT_FOUND,
        409: _NOWHERE,
        422: _REFUSED,
    },
)
async def unqueue(request: web.Request) -> web.Response:
    if (created := await flow_named(request, "unqueue")) is not None:
        return created
    state = state_param(request.query, "state", State.RUNNING)
    controls = request.app[ENGINE].controls
    return _answer(await controls.unqueue(request.match_info["executionId"], state))


_STATE_REQUEST = {
    "type": "object",
    "required": ["taskRunId", "state"],
    "properties": {
        "taskRunId": {"type": "string"},
        "state": {"type": "string", "enum": STATE_NAMES},
    },
}


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/state",
    "Set one task run of an ended execution to an ended state; the execution runs on from it",
    body=Body(("application/json",), _STATE_REQUEST),
    replies={
        200: ok("Execution", "The execution, RESTARTED"),
        400: error("Not a JSON object with a taskRunId and a state"),
        404: error("No such execution, or its flow revision is gone"),
        409: error("The execution has not ended"),
        415: error("Not JSON"),
        422: error("No such task run, a flowable task's run, or a state that has not ended"),
    },
)
async def update_task_run_state(request: web.Request) -> web.Response:
    """Kestra's updateTaskRunState (ExecutionService.markAs)."""
    if (created := await flow_named(request, "state")) is not None:
        return created
    task_run_id, state = _state_request(await json_body(bounded(request), "the state request"))
    lifecycle = request.app[ENGINE].lifecycle
    return _answer(await lifecycle.mark(request.match_info["executionId"], task_run_id, state))


def _state_request(data: Any) -> tuple[str, State]:
    shape = 'the body must be {"taskRunId": "...", "state": "..."}'
    if not isinstance(data, dict):
        raise HttpError(400, f"Bad Request: {shape}, not {json_kind(data)}")
    task_run_id, state = data.get("taskRunId"), data.get("state")
    if not isinstance(task_run_id, str) or not task_run_id:
        raise HttpError(400, f"Bad Request: {shape}; taskRunId is {json_kind(task_run_id)}")
    if not isinstance(state, str) or state not in State.__members__:
        raise HttpError(
            400, f"Bad Request: {shape}; state {state!r} is not one of {', '.join(STATE_NAMES)}"
        )
    return task_run_id, State(state)
