"""Kestra's bulk execution calls: kill, delete, restart, replay, resume, pause, labels,
change-status, force-run and unqueue, each `/by-ids` (a JSON list of execution ids) and
`/by-query` (the executions `/executions/search` would find with the same parameters).

As Kestra's ExecutionController, every execution is checked before any is touched: one
unknown, or in a state the call does not apply to, refuses the whole batch with a 400
BulkErrorResponse `{"message": "invalid bulk <verb>", "invalids": [...]}` listing each
(Kestra declares a 422 in its OpenAPI document but answers `HttpResponse.badRequest`, and
its ExecutionControllerTest expects BAD_REQUEST). Otherwise each goes through the same
engine operation as the single call, and the answer is `{"count": n}`, n the executions
acted on. An id given twice is acted on once.

Declared before the create route `/{namespace}/{flowId}` and `/{executionId}`, which
`/restart/by-ids` and `DELETE /by-ids` would match too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    MAX_SIZE,
    Body,
    HttpError,
    Param,
    Reply,
    Routes,
    error,
    flag,
    json_response,
    ok,
    settable_labels,
)
from daemon.api.execution_control_routes import STATE_NAMES, state_param
from daemon.api.execution_routes import (
    DELETE_FLAGS,
    delete_flags,
    json_body,
    label_list,
    search_terms,
)
from daemon.api.query_filters import EXECUTION_FILTERS, filter_params
from daemon.api.uploads import bounded, json_kind
from daemon.engine.controls import PAUSABLE, UNQUEUE_STATES
from daemon.engine.core import Engine
from daemon.engine.lifecycle import ControlRefused, RestartRefused
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

routes = Routes("Executions")

# Why an execution does not fit a call (Kestra's messages), or None when it does.
Check = Callable[[Execution, Mapping[str, Any]], str | None]
# The call on one execution; False when it turned out not to apply after all.
Act = Callable[[Engine, Execution, Mapping[str, Any]], Awaitable[bool]]
Options = Callable[[web.Request, bool], Awaitable[dict[str, Any]]]


_IDS = Body(("application/json",), {"type": "array", "items": {"type": "string"}})


@dataclass(frozen=True)
class Bulk:
    verb: str  # Kestra's word in "invalid bulk <verb>"
    method: str
    path: str  # without /by-ids or /by-query
    summary: str
    check: Check
    act: Act
    options: Options | None = None  # what the request asks besides the executions
    params: tuple[Param, ...] = ()  # both variants'
    ids_params: tuple[Param, ...] = ()  # by-ids only
    query_params: tuple[Param, ...] = ()  # by-query only
    ids_body: Body = _IDS  # by-ids' body
    query_body: Body | None = None  # by-query's body, when it takes one


async def bulk(
    spec: Bulk, request: web.Request, ids: list[str], options: dict[str, Any]
) -> web.Response:
    engine: Engine = request.app[ENGINE]
    found: list[Execution] = []
    invalids: list[dict[str, Any]] = []
    for execution_id in dict.fromkeys(ids):
        doc = await engine.store.get_execution(execution_id)
        execution = None if doc is None else Execution.from_json(doc)
        why = "execution not found" if execution is None else spec.check(execution, options)
        if why is None and execution is not None:
            found.append(execution)
        else:
            invalids.append(
                {"message": why, "invalidValue": execution_id, "propertyPath": "execution"}
            )
    if invalids:
        return json_response({"message": f"invalid bulk {spec.verb}", "invalids": invalids}, 400)
    count = 0
    for execution in found:
        try:
            count += await spec.act(engine, execution, options)
        except RestartRefused:  # it changed meanwhile (ended, left its queue): not acted on
            continue
    return json_response({"count": count})


async def id_list(request: web.Request) -> list[str]:
    """Kestra's `List<String>` body of execution ids."""
    return string_list(await json_body(bounded(request), "the execution ids"))


def string_list(data: Any) -> list[str]:
    if not isinstance(data, list):
        raise HttpError(
            400,
            f"Bad Request: the body must be a JSON array of execution ids, not {json_kind(data)}",
        )
    for index, item in enumerate(data):
        if not isinstance(item, str):
            raise HttpError(
                400, f"Bad Request: execution id {index} is {json_kind(item)}, not a string"
            )
    return data


async def matching(request: web.Request) -> list[str]:
    """The ids of every execution the search parameters find (Kestra's getExecutionIds)."""
    terms = search_terms(request.query)
    store = request.app[ENGINE].store
    ids: list[str] = []
    page = 1
    while True:
        results, total = await store.search_executions(**terms, page=page, size=MAX_SIZE)
        ids += [doc["id"] for doc in results]
        if not results or len(ids) >= total:
            return ids
        page += 1


_BULK = ok("BulkResponse", "How many executions it was done to")
_REPLIES = {
    200: _BULK,
    400: Reply(
        "An execution unknown or in a state that does not allow it (none was touched), or "
        "a malformed request",
        "application/json",
        {"$ref": "#/components/schemas/BulkErrorResponse"},
    ),
    404: error("A flow revision an execution needs is gone"),
    409: error("An execution changed while the batch ran"),
    422: error("A parameter that does not fit, or inputs a Pause task refuses"),
}
_SEARCH = (
    Param("namespace", "Executions in this namespace and the ones under it"),
    Param("flowId", "Executions of this flow"),
    Param("q", "Text found in the id, the namespace or the flow id"),
    Param(
        "state",
        "Executions in these states",
        {"type": "string", "enum": STATE_NAMES},
        repeated=True,
    ),
    Param("labels", "Labels as key:value", repeated=True),
    Param("startDate", "Started at or after", {"type": "string", "format": "date-time"}),
    Param("endDate", "Started before", {"type": "string", "format": "date-time"}),
    *filter_params(EXECUTION_FILTERS),
)


def register(spec: Bulk) -> None:
    async def by_ids(request: web.Request) -> web.StreamResponse:
        options = await spec.options(request, False) if spec.options else {}
        ids = options.pop("ids", None)
        return await bulk(spec, request, await id_list(request) if ids is None else ids, options)

    async def by_query(request: web.Request) -> web.StreamResponse:
        options = await spec.options(request, True) if spec.options else {}
        return await bulk(spec, request, await matching(request), options)

    name = spec.verb.replace(" ", "_")
    by_ids.__name__, by_query.__name__ = f"{name}_by_ids", f"{name}_by_query"
    routes.operation(
        spec.method,
        f"{spec.path}/by-ids",
        f"{spec.summary}: the executions whose ids the body lists",
        params=spec.params + spec.ids_params,
        body=spec.ids_body,
        replies=_REPLIES,
    )(by_ids)
    routes.operation(
        spec.method,
        f"{spec.path}/by-query",
        f"{spec.summary}: the executions a search with these parameters finds",
        params=_SEARCH + spec.params + spec.query_params,
        body=spec.query_body,
        replies=_REPLIES,
    )(by_query)


# -- each call: which executions it applies to, and what it does to one -------------------


def _unless_ended(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return "execution already finished" if execution.state.current.terminated else None


async def _kill(engine: Engine, execution: Execution, _: Mapping[str, Any]) -> bool:
    return await engine.kill(execution.id)


async def _delete_options(request: web.Request, _: bool) -> dict[str, Any]:
    return {
        **delete_flags(request.query),
        "unfinished": flag(request.query, "includeNonTerminated"),
    }


def _deletable(execution: Execution, options: Mapping[str, Any]) -> str | None:
    """Kestra says "not found" of an unfinished execution too (without includeNonTerminated)."""
    ended = execution.state.current.terminated
    return None if ended or options["unfinished"] else "execution not found"


async def _delete(engine: Engine, execution: Execution, options: Mapping[str, Any]) -> bool:
    await engine.controls.delete(execution.id, **options)
    return True


def _failed(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return None if execution.state.current == State.FAILED else "execution not in state FAILED"


async def _restart(engine: Engine, execution: Execution, _: Mapping[str, Any]) -> bool:
    await engine.restart(execution.id)
    return True


def _any(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return None


async def _replay_options(request: web.Request, _: bool) -> dict[str, Any]:
    return {"latest": flag(request.query, "latestRevision")}


async def _replay(engine: Engine, execution: Execution, options: Mapping[str, Any]) -> bool:
    await engine.replay(execution.id, latest=options["latest"])
    return True


def _paused(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return None if execution.state.current == State.PAUSED else "execution not in state PAUSED"


async def _resume(engine: Engine, execution: Execution, _: Mapping[str, Any]) -> bool:
    return await engine.resume(execution.id, {})


def _running(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return None if execution.state.current in PAUSABLE else "execution not in state RUNNING"


async def _pause(engine: Engine, execution: Execution, _: Mapping[str, Any]) -> bool:
    await engine.controls.pause(execution.id)
    return True


async def _label_options(request: web.Request, by_query: bool) -> dict[str, Any]:
    """by-query: the labels (`List<Label>`); by-ids: Kestra's SetLabelsByIdsRequest,
    `{"executionsId": [...], "executionLabels": [...]}`."""
    data = await json_body(bounded(request), "labels")
    if by_query:
        return {"labels": settable_labels(label_list(data))}
    if not isinstance(data, dict) or set(data) - {"executionsId", "executionLabels"}:
        raise HttpError(
            400,
            'Bad Request: the body must be {"executionsId": [...], "executionLabels": [...]}, '
            f"not {json_kind(data) if not isinstance(data, dict) else 'other fields'}",
        )
    labels = settable_labels(label_list(data.get("executionLabels", [])))
    return {"ids": string_list(data.get("executionsId", [])), "labels": labels}


def _ended(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return None if execution.state.current.terminated else "execution is not terminated"


async def _set_labels(engine: Engine, execution: Execution, options: Mapping[str, Any]) -> bool:
    await engine.controls.set_labels(execution.id, options["labels"])
    return True


async def _status_options(request: web.Request, _: bool) -> dict[str, Any]:
    status = state_param(request.query, "newStatus")
    if not status.terminated:
        raise ControlRefused(
            f"{status} is not an ended state: an execution's state can only be changed to an "
            "ended one"
        )
    return {"status": status}


def _ended_for_status(execution: Execution, _: Mapping[str, Any]) -> str | None:
    ended = execution.state.current.terminated
    return None if ended else "execution not in a terminated state"


async def _change_status(engine: Engine, execution: Execution, options: Mapping[str, Any]) -> bool:
    await engine.controls.change_status(execution.id, options["status"])
    return True


def _unfinished(execution: Execution, _: Mapping[str, Any]) -> str | None:
    ended = execution.state.current.terminated
    return "execution in a terminated state" if ended else None


async def _force_run(engine: Engine, execution: Execution, _: Mapping[str, Any]) -> bool:
    await engine.controls.force_run(execution.id)
    return True


async def _unqueue_options(request: web.Request, by_query: bool) -> dict[str, Any]:
    """by-ids names the target `state`; by-query `newState` (there `state` filters)."""
    state = state_param(request.query, "newState" if by_query else "state", State.RUNNING)
    if state not in UNQUEUE_STATES:
        raise ControlRefused(
            f"an unqueued execution goes to RUNNING, CANCELLED or FAILED, not {state}"
        )
    return {"state": state}


def _queued(execution: Execution, _: Mapping[str, Any]) -> str | None:
    return None if execution.state.current == State.QUEUED else "execution not in state QUEUED"


async def _unqueue(engine: Engine, execution: Execution, options: Mapping[str, Any]) -> bool:
    await engine.controls.unqueue(execution.id, options["state"])
    return True


_EXECUTIONS = "/api/v1/executions"
_BOOL = {"type": "boolean", "default": False}
_TARGET = {"type": "string", "enum": [s.value for s in UNQUEUE_STATES]}
_LABELS = {"type": "array", "items": {"$ref": "#/components/schemas/Label"}}
_LABELS_BY_IDS = {
    "type": "object",
    "properties": {
        "executionsId": {"type": "array", "items": {"type": "string"}},
        "executionLabels": _LABELS,
    },
}

for _spec in (
    Bulk(
        "kill", "DELETE", f"{_EXECUTIONS}/kill", "Kill unfinished executions", _unless_ended, _kill
    ),
    Bulk(
        "delete",
        "DELETE",
        _EXECUTIONS,
        "Delete executions with their logs, metrics and files",
        _deletable,
        _delete,
        _delete_options,
        (*DELETE_FLAGS, Param("includeNonTerminated", "Kill and delete unfinished ones", _BOOL)),
    ),
    Bulk(
        "restart", "POST", f"{_EXECUTIONS}/restart", "Restart FAILED executions", _failed, _restart
    ),
    Bulk(
        "replay",
        "POST",
        f"{_EXECUTIONS}/replay",
        "Replay executions as new ones",
        _any,
        _replay,
        _replay_options,
        (Param("latestRevision", "Of the flow's latest revision", _BOOL),),
    ),
    Bulk("resume", "POST", f"{_EXECUTIONS}/resume", "Resume PAUSED executions", _paused, _resume),
    Bulk("pause", "POST", f"{_EXECUTIONS}/pause", "Pause RUNNING executions", _running, _pause),
    Bulk(
        "set labels",
        "POST",
        f"{_EXECUTIONS}/labels",
        "Add labels to ended executions",
        _ended,
        _set_labels,
        _label_options,
        ids_body=Body(("application/json",), _LABELS_BY_IDS),
        query_body=Body(("application/json",), _LABELS),
    ),
    Bulk(
        "change executions state",
        "POST",
        f"{_EXECUTIONS}/change-status",
        "Change ended executions' state",
        _ended_for_status,
        _change_status,
        _status_options,
        (
            Param(
                "newStatus",
                "The new (ended) state",
                {"type": "string", "enum": STATE_NAMES},
                required=True,
            ),
        ),
    ),
    Bulk(
        "force run",
        "POST",
        f"{_EXECUTIONS}/force-run",
        "Run waiting executions now",
        _unfinished,
        _force_run,
    ),
    Bulk(
        "unqueue",
        "POST",
        f"{_EXECUTIONS}/unqueue",
        "Take QUEUED executions out of their queue",
        _queued,
        _unqueue,
        _unqueue_options,
        ids_params=(Param("state", "Where they go (RUNNING when absent)", _TARGET),),
        query_params=(Param("newState", "Where they go (RUNNING when absent)", _TARGET),),
    ),
):
    register(_spec)
