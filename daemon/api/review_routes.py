"""Kestra's review of an Approval task: `POST /api/v1/executions/{executionId}/actions/review`.

The decision (`APPROVE` or `DENY`, as Kestra's UI sends it; `APPROVED`/`DENIED` too) and
the task run it decides come in the query string; the review dialog's inputs come as the
body, as for a resume, with the reviewer's comment in the field the Kestra UI names
`kestra_review_comment` (an input may well be called `comment`). A JSON body may instead
be `{"decision": ..., "comment": ..., "inputs": {...}, "taskRunId": ...}`.

Everything is checked before anything resumes: the execution waits for a review, the
task run is one of its waiting Approvals, the decision is known, a required comment came,
the inputs fit. The answer is the execution as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from daemon.api.common import (
    ENGINE,
    SETTINGS,
    Body,
    HttpError,
    Param,
    Routes,
    error,
    json_response,
    kestra_execution,
    ok,
    stored_execution,
)
from daemon.api.uploads import Uploads, bounded, json_kind, read_inputs
from daemon.engine.pauses import waiting_reviews
from daemon.sdk.execution import Execution
from daemon.sdk.review import Review, ReviewRefused, sent_decision

routes = Routes("Executions")

COMMENT_FIELD = "kestra_review_comment"
_STRUCTURED = frozenset({"decision", "comment", "inputs", "taskRunId"})


@routes.operation(
    "POST",
    "/api/v1/executions/{executionId}/actions/review",
    "Approve or deny the request of an Approval task the execution waits on",
    params=(
        Param(
            "decision",
            "The reviewer's decision",
            {"type": "string", "enum": ["APPROVE", "DENY"]},
            required=True,
        ),
        Param("taskRunId", "The Approval's task run; needed when several wait"),
        Param("comment", f"The reviewer's comment (or the `{COMMENT_FIELD}` form field)"),
    ),
    body=Body(
        ("multipart/form-data", "application/json", "application/x-www-form-urlencoded"),
        {"type": "object", "additionalProperties": {}},
        required=False,
    ),
    replies={
        200: ok("Execution", "Decided: the execution as stored"),
        400: error("No decision or an unknown one, several Approvals wait and none is named"),
        404: error("No such execution or task run"),
        409: error("The execution or task run does not wait for a review"),
        422: error("A required comment is missing, or the inputs do not fit"),
    },
)
async def review_execution(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    doc = await stored_execution(request)
    async with Uploads(engine.data_dir / "uploads") as uploads:
        body = await read_inputs(bounded(request), uploads)
        sent = _sent(request.query, body)
        try:
            decision = sent_decision(_text(sent, "decision", required=True) or "")
        except ReviewRefused as exc:
            raise HttpError(400, f"Bad Request: {exc}") from None
        task_run_id = await _waiting_task_run(request, doc, _text(sent, "taskRunId"))
        inputs = sent.get("inputs", {})
        if not isinstance(inputs, dict):
            raise HttpError(400, f"Bad Request: inputs must be an object, not {json_kind(inputs)}")
        credentials = request.app[SETTINGS].basic_auth
        review = Review(
            decision,
            engine.clock.now(),
            _text(sent, "comment"),
            inputs,
            credentials.username if credentials else None,
        )
        try:
            decided = await engine.review(doc["id"], task_run_id, review)
        except ReviewRefused as exc:
            raise HttpError(422, f"Invalid entity: {exc}") from None
    if not decided:
        raise HttpError(409, f"Illegal state: task run {task_run_id} is not waiting in this daemon")
    return json_response(kestra_execution(await stored_execution(request)))


def _sent(query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """What the reviewer sent, from the query string and the body, in one shape."""
    structured = (
        bool(body) and set(body) <= _STRUCTURED and ("decision" in body or "inputs" in body)
    )
    if structured:
        sent = dict(body)
    else:
        inputs = dict(body)
        sent = {"inputs": inputs}
        if COMMENT_FIELD in inputs:
            sent["comment"] = inputs.pop(COMMENT_FIELD)
    for name in ("decision", "taskRunId", "comment"):
        if name not in query:
            continue
        if name in sent and sent[name] != query[name]:
            raise HttpError(400, f"Bad Request: {name} is given twice, with different values")
        sent[name] = query[name]
    return sent


def _text(sent: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = sent.get(name)
    if value is None or value == "":
        if required:
            raise HttpError(400, f"Bad Request: {name} is required (APPROVE or DENY)")
        return None
    if not isinstance(value, str):
        raise HttpError(400, f"Bad Request: {name} must be a string, not {json_kind(value)}")
    return value


async def _waiting_task_run(request: web.Request, doc: dict[str, Any], wanted: str | None) -> str:
    """The Approval task run the review decides: the one named, else the only one waiting."""
    stored = Execution.from_json(doc)
    flow = await request.app[ENGINE].catalog.at(
        stored.namespace, stored.flow_id, stored.flow_revision
    )
    waiting = waiting_reviews(flow, doc)
    if wanted is not None:
        if not any(tr["id"] == wanted for tr in doc.get("taskRunList", [])):
            raise HttpError(404, f"Not Found: execution {doc['id']} has no task run {wanted}")
        if not any(tr["id"] == wanted for tr in waiting):
            raise HttpError(
                409, f"Illegal state: task run {wanted} is not an Approval waiting for a review"
            )
        return wanted
    if not waiting:
        raise HttpError(
            409,
            f"Illegal state: execution {doc['id']} is {doc['state']['current']} "
            "and not waiting for a review",
        )
    if len(waiting) > 1:
        named = ", ".join(f"{tr['taskId']} ({tr['id']})" for tr in waiting)
        raise HttpError(
            400, f"Bad Request: several Approvals wait for a review: {named}; name one as taskRunId"
        )
    return str(waiting[0]["id"])
