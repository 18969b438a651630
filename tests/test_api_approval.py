"""The review of an Approval task through the HTTP API on a real port: Kestra's
`POST /api/v1/executions/{executionId}/actions/review` (the Kestra UI's ReviewDialog sends
the decision APPROVE/DENY for a task run, the dialog's inputs as form fields and the
comment as `kestra_review_comment`), and every request it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.config.settings import BasicAuth, Settings
from daemon.sdk.state import State
from tests.api_helpers import basic, call, form, serving
from tests.harness import Harness, eventually, task_states

APPROVAL = """
id: deploy
namespace: ns
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    inputs:
      - {id: comment, type: STRING, required: false}
      - {id: replicas, type: INT, defaults: 1}
    onWait:
      - {id: notify, type: io.kestra.plugin.core.log.Log, message: review requested}
    onApprove:
      - id: deployed
        type: io.kestra.plugin.core.debug.Return
        format: "x{{ outputs.approval.inputs.replicas }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approval.decision }}"
"""

TWO = """
id: two
namespace: ns
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: first, type: io.kestra.plugin.core.flow.Approval}
      - {id: second, type: io.kestra.plugin.core.flow.Approval}
"""

PAUSE = """
id: pause
namespace: ns
tasks:
  - {id: gate, type: io.kestra.plugin.core.flow.Pause}
"""


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    for source in (APPROVAL, TWO, PAUSE):
        await h.flow(source)
    async with serving(h) as url:
        yield url


async def waiting(api: str, flow: str, count: int = 1) -> dict[str, Any]:
    """Start `flow` and poll the API (bounded) until `count` task runs wait for a review."""
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/{flow}", json={})
    assert status == 200, doc
    async with asyncio.timeout(20):
        while True:
            _, doc, _ = await call("GET", f"{api}/api/v1/executions/{doc['id']}")
            paused = [r for r in doc.get("taskRunList", []) if r["state"]["current"] == "PAUSED"]
            if len(paused) == count:
                return dict(doc)
            await asyncio.sleep(0.01)


async def waits(h: Harness, execution_id: str) -> bool:
    return h.engine.pauses.holds(execution_id)


def review_url(api: str, execution: dict[str, Any], **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    url = f"{api}/api/v1/executions/{execution['id']}/actions/review"
    return f"{url}?{params}" if params else url


def run_of(execution: dict[str, Any], task_id: str) -> str:
    return str(next(r["id"] for r in execution["taskRunList"] if r["taskId"] == task_id))


async def test_approve_with_the_kestra_ui_form(h: Harness, api: str) -> None:
    """The Kestra UI's ReviewDialog (ReviewDialog.spec.ts): the decision and the task run
    in the query, the dialog's inputs as form fields, the comment as
    `kestra_review_comment`; an input may be named `comment` (approval-comment-input)."""
    paused = await waiting(api, "deploy")
    url = review_url(api, paused, decision="APPROVE", taskRunId=run_of(paused, "approval"))
    body = form(replicas="3", comment="an input", kestra_review_comment="ship it")
    status, doc, _ = await call("POST", url, data=body)
    assert status == 200, doc
    assert doc["id"] == paused["id"]
    final = await h.engine.wait(paused["id"])
    assert final.state.current == State.SUCCESS
    runs = {r.task_id: r.outputs for r in final.task_runs}
    assert runs["approval"]["comment"] == "ship it"
    assert runs["approval"]["inputs"] == {"comment": "an input", "replicas": 3}
    assert "by" not in runs["approval"]
    assert (runs["deployed"], runs["after"]) == ({"value": "x3"}, {"value": "APPROVED"})


async def test_deny_with_a_json_body_on_the_tenant_path(h: Harness, api: str) -> None:
    """The same review with `{"decision", "comment", "inputs"}` as JSON, on Kestra 1.x's
    tenant path; the only waiting Approval is found without a taskRunId. The default
    denyBehavior (CANCEL) ends the execution CANCELLED."""
    paused = await waiting(api, "deploy")
    url = f"{api}/api/v1/main/executions/{paused['id']}/actions/review"
    body = {"decision": "DENY", "comment": "not on a Friday", "inputs": {"replicas": 2}}
    status, doc, _ = await call("POST", url, json=body)
    assert status == 200, doc
    final = await h.engine.wait(paused["id"])
    assert final.state.current == State.CANCELLED
    approval = next(r for r in final.task_runs if r.task_id == "approval")
    assert approval.outputs["decision"] == "DENIED"
    assert approval.outputs["comment"] == "not on a Friday"
    assert "after" not in task_states(final)


async def test_the_reviewer_is_the_basic_auth_user(h: Harness) -> None:
    """Approval.Output `by`: the reviewer's user name (Pause.Resumed.by), here the one
    user basic auth lets in."""
    await h.flow(APPROVAL)
    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username="ada", password="pa55word")
    )
    async with serving(h, settings) as api:
        auth = basic("ada", "pa55word")
        status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/deploy", headers=auth)
        assert status == 200, doc
        await eventually(lambda: waits(h, doc["id"]), "the request")
        status, _, _ = await call("POST", review_url(api, doc, decision="APPROVE"))
        assert status == 401
        status, _, _ = await call("POST", review_url(api, doc, decision="approved"), headers=auth)
        assert status == 200
    final = await h.engine.wait(doc["id"])
    assert next(r for r in final.task_runs if r.task_id == "approval").outputs["by"] == "ada"


async def test_malformed_reviews_are_refused_and_the_request_still_waits(
    h: Harness, api: str
) -> None:
    """Each refusal says why and decides nothing (ApprovalTest's IllegalArgumentExceptions:
    a missing comment, a task run that is not waiting)."""
    paused = await waiting(api, "deploy")
    approval, notify = run_of(paused, "approval"), run_of(paused, "notify")
    cases: list[tuple[dict[str, Any], dict[str, Any], int, str]] = [
        ({}, {}, 400, "Bad Request: decision is required (APPROVE or DENY)"),
        (
            {"decision": "MAYBE"},
            {},
            400,
            "Bad Request: decision 'MAYBE' is not one of APPROVE, DENY",
        ),
        (
            {"decision": "APPROVE"},
            {"json": {"decision": "DENY"}},
            400,
            "Bad Request: decision is given twice, with different values",
        ),
        (
            {"decision": "APPROVE"},
            {"json": ["replicas"]},
            400,
            "Bad Request: the JSON body must be an object of inputs, not an array",
        ),
        (
            {"decision": "APPROVE"},
            {"json": {"decision": "APPROVE", "inputs": [1]}},
            400,
            "Bad Request: inputs must be an object, not an array",
        ),
        (
            {"decision": "APPROVE", "taskRunId": "nope"},
            {},
            404,
            f"Not Found: execution {paused['id']} has no task run nope",
        ),
        (
            {"decision": "APPROVE", "taskRunId": notify},
            {},
            409,
            f"Illegal state: task run {notify} is not an Approval waiting for a review",
        ),
        (
            {"decision": "DENY"},
            {},
            422,
            "Invalid entity: a comment is required to deny this request (commentRequired: ON_DENY)",
        ),
        (
            {"decision": "APPROVE"},
            {"data": form(replicas="many")},
            422,
            "Invalid entity: input 'replicas': 'many' is not an INT",
        ),
    ]
    for query, body, expected, message in cases:
        status, doc, _ = await call("POST", review_url(api, paused, **query), **body)
        assert (status, doc["message"]) == (expected, message), (query, body)
    status, doc, _ = await call(
        "POST", f"{api}/api/v1/executions/nope/actions/review?decision=APPROVE"
    )
    assert (status, doc["message"]) == (404, "Not Found: execution nope not found")
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/{paused['id']}/resume")
    assert status == 409
    assert doc["message"] == (
        f"Illegal state: execution {paused['id']} waits for a review of an Approval task: "
        "approve or deny it with POST .../actions/review"
    )
    assert h.engine.pauses.holds(paused["id"], approval)  # nothing was decided
    status, doc, _ = await call(
        "POST", review_url(api, paused, decision="APPROVE", taskRunId=approval)
    )
    assert status == 200, doc
    done = await h.engine.wait(paused["id"])
    assert done.state.current == State.SUCCESS
    status, doc, _ = await call("POST", review_url(api, paused, decision="APPROVE"))
    assert (status, doc["message"]) == (
        409,
        f"Illegal state: execution {paused['id']} is SUCCESS and not waiting for a review",
    )


async def test_several_waiting_approvals_need_a_task_run_id(h: Harness, api: str) -> None:
    """Two Approvals waiting side by side (approval-parallel): a review names its task
    run; a Pause is not reviewed."""
    paused = await waiting(api, "two", count=2)
    status, doc, _ = await call("POST", review_url(api, paused, decision="APPROVE"))
    first, second = run_of(paused, "first"), run_of(paused, "second")
    assert (status, doc["message"]) == (
        400,
        f"Bad Request: several Approvals wait for a review: first ({first}), "
        f"second ({second}); name one as taskRunId",
    )
    for run in (first, second):
        status, doc, _ = await call(
            "POST", review_url(api, paused, decision="APPROVE", taskRunId=run)
        )
        assert status == 200, doc
    assert (await h.engine.wait(paused["id"])).state.current == State.SUCCESS
    pause = await waiting(api, "pause")
    status, doc, _ = await call("POST", review_url(api, pause, decision="APPROVE"))
    assert (status, doc["message"]) == (
        409,
        f"Illegal state: execution {pause['id']} is PAUSED and not waiting for a review",
    )
    assert await h.engine.resume(pause["id"], {})
