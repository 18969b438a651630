"""Kestra's Approval task (core/.../plugin/core/flow/Approval.java) run through the engine:
onWait, the wait, the decided branch, each behaviour, autoApprove, expiry, the review
form, outputs, and a restart while the request waits. The flows are Kestra's test flows
(core/src/test/resources/flows/valids/approval-*.yaml) unless a test says otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import InputError
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.review import Decision, Review, ReviewRefused
from daemon.sdk.state import State, iso
from tests.harness import Harness, drive, eventually, problems, task_states

APPROVED, DENIED = Decision.APPROVED, Decision.DENIED

BASIC = """
id: approval-basic
namespace: io.kestra.tests
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Approval
    onWait:
      - id: notify
        type: io.kestra.plugin.core.log.Log
        message: "Approval requested"
    onApprove:
      - id: approved
        type: io.kestra.plugin.core.log.Log
        message: "Approved"
    onDeny:
      - id: denied
        type: io.kestra.plugin.core.log.Log
        message: "Denied"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approval.decision }}"
"""


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    clock = FakeClock()
    harness = await Harness.open(tmp_path, clock=clock)
    yield harness, clock
    await harness.close()


async def waiting(h: Harness, ex: Execution, task_id: str = "approval") -> TaskRun:
    """The task run of `task_id` once it waits for a review (bounded, not timed)."""
    async with asyncio.timeout(20):
        while True:
            for run in ex.task_runs:
                if run.task_id == task_id and h.engine.pauses.holds(ex.id, run.id):
                    return run
            await asyncio.sleep(0.01)


async def decide(
    h: Harness,
    ex: Execution,
    decision: Decision,
    comment: str | None = None,
    task_id: str = "approval",
    **inputs: Any,
) -> bool:
    run = await waiting(h, ex, task_id)
    review = Review(decision, h.engine.clock.now(), comment, inputs, None)
    return await h.engine.review(ex.id, run.id, review)


def outputs(ex: Execution, task_id: str = "approval") -> dict[str, Any]:
    return dict(next(tr for tr in ex.task_runs if tr.task_id == task_id).outputs or {})


async def ready(condition: bool) -> bool:
    return condition


def history(ex: Execution) -> list[State]:
    return [state for state, _ in ex.state.histories]


# -- the decisions ---------------------------------------------------------------------------


async def test_approve_runs_on_wait_then_on_approve_and_the_flow_goes_on(h: Harness) -> None:
    """ApprovalTest.shouldRunOnApproveWhenApproved (Suite.decide): onWait ran before the
    execution paused, only onApprove runs, the next task reads the decision; the outputs
    are decision, comment, auto false, `on`, and no `by` (no reviewer identity)."""
    ex = await h.start(BASIC)
    await waiting(h, ex)
    assert ex.state.current == State.PAUSED
    assert task_states(ex) == {"approval": "PAUSED", "notify": "SUCCESS"}
    assert (await h.stored(ex))["state"]["current"] == "PAUSED"
    assert await decide(h, ex, APPROVED, "looks good")
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert task_states(final) == {
        "approval": "SUCCESS",
        "notify": "SUCCESS",
        "approved": "SUCCESS",
        "last": "SUCCESS",
    }
    out = outputs(final)
    assert out.pop("on").endswith("Z")
    assert out == {"decision": "APPROVED", "auto": False, "comment": "looks good", "inputs": {}}
    assert outputs(final, "last") == {"value": "APPROVED"}
    assert history(final) == [
        State.CREATED,
        State.RUNNING,
        State.PAUSED,
        State.RUNNING,
        State.SUCCESS,
    ]
    assert await h.logs(final) == ["Approval requested", "approved", "Approved"]


async def test_deny_runs_on_deny_then_cancels_the_execution_by_default(h: Harness) -> None:
    """ApprovalTest.shouldCancelExecutionOnDenyByDefault (approval-deny-behavior-cancel):
    `denyBehavior` is CANCEL by default: onDeny runs, the next task never does."""
    ex = await h.start(BASIC.replace("  - id: last", "  - id: after"))
    assert await decide(h, ex, DENIED, "needs changes")
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.CANCELLED
    assert task_states(final) == {"approval": "CANCELLED", "notify": "SUCCESS", "denied": "SUCCESS"}
    assert outputs(final)["decision"] == "DENIED"
    assert outputs(final)["comment"] == "needs changes"


@pytest.mark.parametrize(
    ("behavior", "state", "approval", "ran"),
    [
        ("CONTINUE", State.SUCCESS, "SUCCESS", {"after"}),
        ("WARN", State.WARNING, "WARNING", {"after"}),
        ("FAIL", State.FAILED, "FAILED", {"failed"}),
    ],
)
async def test_deny_behaviors_decide_what_becomes_of_the_execution(
    h: Harness, behavior: str, state: State, approval: str, ran: set[str]
) -> None:
    """Approval.applyBehavior: CONTINUE keeps the branch's state, WARN makes it WARNING,
    FAIL fails the task (ApprovalTest.shouldFailTheWholeExecutionThroughFlowLevelErrors...:
    the flow's `errors` run). The Approval's own `errors` are for a failing branch only
    (FlowableUtils.resolveSequentialNexts), so FAIL does not run them."""
    ex = await h.start(f"""
        id: deny-{behavior.lower()}
        namespace: ns
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            denyBehavior: {behavior}
            onDeny:
              - {{id: denied, type: io.kestra.plugin.core.log.Log, message: Denied}}
            errors:
              - {{id: own_errors, type: io.kestra.plugin.core.log.Log, message: own}}
          - {{id: after, type: io.kestra.plugin.core.log.Log, message: after}}
        errors:
          - {{id: failed, type: io.kestra.plugin.core.log.Log, message: cleaning up}}
        """)
    assert await decide(h, ex, DENIED)
    final = await h.engine.wait(ex.id)
    assert final.state.current == state
    assert task_states(final) == {
        "approval": approval,
        "denied": "SUCCESS",
        **dict.fromkeys(ran, "SUCCESS"),
    }
    if behavior == "FAIL":
        assert final.error == "task 'approval': denied, and its behaviour is FAIL"


async def test_approve_behavior_succeed_ends_the_execution_after_the_flow_finally(
    h: Harness,
) -> None:
    """ApprovalTest.shouldSucceedTheWholeExecutionWhenApproveBehaviorIsSucceed and
    approval-flow-finally-succeed.yaml: the execution ends SUCCESS at once, the next task
    never starts, the flow's `finally` still runs."""
    ex = await h.start("""
        id: approval-flow-finally-succeed
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            approveBehavior: SUCCEED
            onApprove:
              - {id: approved, type: io.kestra.plugin.core.log.Log, message: Approved}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
          - {id: fail, type: io.kestra.plugin.core.execution.Fail}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleanup}
        """)
    assert await decide(h, ex, APPROVED)
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert task_states(final) == {
        "approval": "SUCCESS",
        "approved": "SUCCESS",
        "cleanup": "SUCCESS",
    }


async def test_a_failing_branch_is_not_hidden_by_its_behavior(h: Harness) -> None:
    """ApprovalTest.shouldNotHideAFailingBranchBehindTheConfiguredBehavior
    (approval-approve-behavior-succeed-with-failing-onapprove): SUCCEED after a failed
    onApprove leaves the execution FAILED."""
    ex = await h.start("""
        id: approval-approve-behavior-succeed-with-failing-onapprove
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            approveBehavior: SUCCEED
            onApprove:
              - id: fail
                type: io.kestra.plugin.core.execution.Fail
        """)
    assert await decide(h, ex, APPROVED, "ok")
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.FAILED
    assert task_states(final) == {"approval": "FAILED", "fail": "FAILED"}


SIBLING = """
id: approval-deny-behavior-{behavior}-with-running-sibling
namespace: io.kestra.tests
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: sleep
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT30S
      - id: approval
        type: io.kestra.plugin.core.flow.Approval
        denyBehavior: {behavior}
        onDeny:
          - id: denied
            type: io.kestra.plugin.core.log.Log
            message: "Denied"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "never"
"""


async def test_deny_cancel_lets_a_running_sibling_finish(fake: tuple[Harness, FakeClock]) -> None:
    """ApprovalTest.shouldLetARunningSiblingFinishWhenDenyBehaviorIsCancel: the sibling's
    Sleep ends SUCCESS, nothing starts after, the execution ends CANCELLED."""
    h, clock = fake
    ex = await h.start(SIBLING.format(behavior="CANCEL"))
    assert await decide(h, ex, DENIED, "no")
    final = await drive(h, clock, h.engine.wait(ex.id))
    assert final.state.current == State.CANCELLED
    assert task_states(final) == {
        "parallel": "CANCELLED",
        "sleep": "SUCCESS",
        "approval": "CANCELLED",
        "denied": "SUCCESS",
    }


async def test_deny_kill_kills_the_running_siblings(h: Harness) -> None:
    """ApprovalTest.shouldKillRunningSiblingsWhenDenyBehaviorIsKill
    (approval-deny-behavior-kill): onDeny runs, then the execution and its running Sleep
    end KILLED."""
    ex = await h.start(SIBLING.format(behavior="KILL"))
    assert await decide(h, ex, DENIED, "no")
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.KILLED
    states = task_states(final)
    assert (states["sleep"], states["denied"]) == ("KILLED", "SUCCESS")
    assert "after" not in states


# -- autoApprove, onWait ---------------------------------------------------------------------


async def test_auto_approve_skips_on_wait_and_the_wait(h: Harness) -> None:
    """ApprovalTest.shouldSkipWaitAndApproveAutomaticallyWhenAutoApproveIsTrue
    (approval-auto-approve): never paused, onWait not run, onApprove run, `auto: true`."""
    ex = await h.run(
        BASIC.replace("    onWait:", "    autoApprove: true\n    onWait:", 1).replace(
            '"Approval requested"', '"should never run"'
        )
    )
    assert ex.state.current == State.SUCCESS
    assert State.PAUSED not in history(ex)
    assert task_states(ex) == {"approval": "SUCCESS", "approved": "SUCCESS", "last": "SUCCESS"}
    assert outputs(ex) == {"decision": "APPROVED", "auto": True}


async def test_auto_approve_is_rendered_per_execution(h: Harness) -> None:
    """ApprovalTest.shouldRenderAutoApprovePerExecutionNotFromAFirstRenderCache
    (approval-auto-approve-conditional): true approves at once, false waits."""
    flow = await h.flow("""
        id: approval-auto-approve-conditional
        namespace: io.kestra.tests
        inputs:
          - id: autoApprove
            type: BOOL
            defaults: true
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            autoApprove: "{{ inputs.autoApprove }}"
            onApprove:
              - {id: approved, type: io.kestra.plugin.core.log.Log, message: Approved}
        """)
    first = await h.run(flow, {"autoApprove": "true"})
    assert first.state.current == State.SUCCESS
    second = await h.start(flow, {"autoApprove": "false"})
    await waiting(h, second)
    assert second.state.current == State.PAUSED
    assert await decide(h, second, APPROVED)
    assert (await h.engine.wait(second.id)).state.current == State.SUCCESS


async def test_on_wait_sees_the_url_that_stays_in_the_outputs(h: Harness) -> None:
    """ApprovalTest.shouldExposeUrlToOnApproveTasks (approval-url-merge): `url` links to
    the execution's page (Kestra's UriProvider, with the daemon's public URL); onWait can
    send it, onApprove still reads it after the decision."""
    h.engine.options.public_url = "https://podium.example/"
    ex = await h.start("""
        id: approval-url-merge
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            onWait:
              - id: notify
                type: io.kestra.plugin.core.log.Log
                message: "review {{ outputs.approval.url }}"
            onApprove:
              - id: approved
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.approval.url }}"
        """)
    url = f"https://podium.example/ui/executions/io.kestra.tests/approval-url-merge/{ex.id}"
    assert await decide(h, ex, APPROVED)
    final = await h.engine.wait(ex.id)
    assert outputs(final, "approved") == {"value": url}
    assert outputs(final)["url"] == url
    assert (await h.logs(final))[0] == f"review {url}"


async def test_a_failing_on_wait_fails_the_approval_and_runs_finally_once(h: Harness) -> None:
    """ApprovalTest.shouldRunFinallyOnceWhenOnWaitFailsWithoutAllowFailure
    (approval-finally-fail): no pause, no branch, `finally` once."""
    ex = await h.run("""
        id: approval-finally-fail
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            onWait:
              - {id: waitFail, type: io.kestra.plugin.core.execution.Fail}
            onApprove:
              - {id: approved, type: io.kestra.plugin.core.log.Log, message: Approved}
            finally:
              - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: Cleanup}
        """)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"approval": "FAILED", "waitFail": "FAILED", "cleanup": "SUCCESS"}
    assert State.PAUSED not in history(ex)


async def test_a_failing_on_wait_allowed_to_fail_still_waits(h: Harness) -> None:
    """ApprovalTest.shouldPauseAndRunFinallyOnceWhenOnWaitFailsWithAllowFailure
    (approval-finally-allow-failure): it pauses, `finally` runs once after the branch."""
    ex = await h.start("""
        id: approval-finally-allow-failure
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            allowFailure: true
            onWait:
              - {id: waitFail, type: io.kestra.plugin.core.execution.Fail}
            onApprove:
              - {id: approved, type: io.kestra.plugin.core.log.Log, message: Approved}
            finally:
              - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: Cleanup}
        """)
    await waiting(h, ex)
    assert "cleanup" not in task_states(ex)
    assert await decide(h, ex, APPROVED, "ok")
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert [tr.task_id for tr in final.task_runs].count("cleanup") == 1
    assert task_states(final)["approved"] == "SUCCESS"


# -- expiry ---------------------------------------------------------------------------------


async def test_a_request_nobody_decides_expires_with_the_expire_behavior(
    fake: tuple[Harness, FakeClock],
) -> None:
    """ApprovalTest.shouldExpireWithDefaultBehaviorWhenTimeoutElapses (approval-expire):
    past `timeout` the decision is EXPIRED, no branch runs, `finally` runs before the
    Approval ends, the execution ends CANCELLED; `due` is when it paused plus timeout."""
    h, clock = fake
    ex = await h.start("""
        id: approval-expire
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            timeout: PT1H
            onWait:
              - id: notify
                type: io.kestra.plugin.core.log.Log
                message: "due {{ outputs.approval.due ?? 'unknown' }}"
            onApprove:
              - {id: approved, type: io.kestra.plugin.core.log.Log, message: Approved}
            onDeny:
              - {id: denied, type: io.kestra.plugin.core.log.Log, message: Denied}
            finally:
              - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: Cleanup}
        """)
    run = await waiting(h, ex)
    paused_at = next(at for state, at in run.state.histories if state == State.PAUSED)
    due = iso(paused_at + timedelta(hours=1))
    assert run.outputs == {"due": due}
    final = await drive(h, clock, h.engine.wait(ex.id))
    assert final.state.current == State.CANCELLED
    assert task_states(final) == {
        "approval": "CANCELLED",
        "notify": "SUCCESS",
        "cleanup": "SUCCESS",
    }
    assert outputs(final) == {
        "due": due,
        "decision": "EXPIRED",
        "auto": False,
        "on": due,
    }
    runs = {tr.task_id: tr for tr in final.task_runs}
    assert runs["approval"].state.end >= runs["cleanup"].state.end  # type: ignore[operator]
    assert "expired: nobody decided within PT1H" in await h.logs(final)


async def test_expire_behavior_continue_goes_on_and_the_flow_finally_runs(
    fake: tuple[Harness, FakeClock],
) -> None:
    """approval-flow-finally-expire.yaml with `expireBehavior: CONTINUE`: the flow goes on;
    with the default CANCEL the next task never runs and the flow's `finally` does."""
    h, clock = fake
    source = """
        id: approval-flow-finally-expire
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            timeout: PT1S
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleanup}
        """
    ex = await h.start(source.replace("PT1S", "PT1S\n            expireBehavior: CONTINUE"))
    final = await drive(h, clock, h.engine.wait(ex.id))
    assert final.state.current == State.SUCCESS
    assert set(task_states(final)) == {"approval", "after", "cleanup"}
    ex = await h.start(source)
    final = await drive(h, clock, h.engine.wait(ex.id))
    assert final.state.current == State.CANCELLED
    assert task_states(final) == {"approval": "CANCELLED", "cleanup": "SUCCESS"}


# -- the review form ------------------------------------------------------------------------


async def test_review_inputs_are_coerced_into_the_outputs(h: Harness) -> None:
    """ApprovalTest.shouldStoreDecisionInputsInOutputs (approval-inputs): the dialog's
    inputs reach `outputs.<id>.inputs` with their declared types; inputs that do not fit
    are refused and the request still waits."""
    ex = await h.start("""
        id: approval-inputs
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            inputs:
              - {id: reason, type: STRING}
              - {id: replicas, type: INT, defaults: 1}
            onApprove:
              - id: approved
                type: io.kestra.plugin.core.debug.Return
                format: >-
                  {{ outputs.approval.inputs.reason }}
                  x{{ outputs.approval.inputs.replicas + 1 }}
        """)
    with pytest.raises(InputError, match="input 'replicas': 'many' is not an INT"):
        await decide(h, ex, APPROVED, reason="urgent fix", replicas="many")
    with pytest.raises(InputError, match="input 'reason' is required"):
        await decide(h, ex, APPROVED)
    assert await decide(h, ex, APPROVED, reason="urgent fix", replicas="3")
    final = await h.engine.wait(ex.id)
    assert outputs(final)["inputs"] == {"reason": "urgent fix", "replicas": 3}
    assert outputs(final, "approved") == {"value": "urgent fix x4"}


async def test_a_required_comment_is_checked_before_anything_resumes(h: Harness) -> None:
    """ApprovalTest.shouldThrowWhenCommentRequiredAlwaysAndCommentMissing and the
    approval-comment-on-deny tests: ALWAYS needs a comment for both decisions, ON_DENY
    only to deny; a refused review leaves the request waiting."""
    source = """
        id: approval-comment
        namespace: io.kestra.tests
        tasks:
          - id: approval
            type: io.kestra.plugin.core.flow.Approval
            commentRequired: {required}
            denyBehavior: CONTINUE
        """
    ex = await h.start(source.format(required="ALWAYS"))
    for decision in (APPROVED, DENIED):
        with pytest.raises(
            ReviewRefused, match=r"a comment is required .*\(commentRequired: ALWAYS\)"
        ):
            await decide(h, ex, decision, "   ")
    assert await decide(h, ex, DENIED, "not now")
    assert (await h.engine.wait(ex.id)).state.current == State.SUCCESS
    ex = await h.start(source.format(required="ON_DENY"))
    with pytest.raises(ReviewRefused, match="a comment is required to deny this request"):
        await decide(h, ex, DENIED)
    assert await decide(h, ex, APPROVED)
    assert (await h.engine.wait(ex.id)).state.current == State.SUCCESS


async def test_a_second_decision_on_the_same_request_is_refused(h: Harness) -> None:
    """ApprovalTest.shouldRefuseASecondDecisionOnTheSameTaskRun."""
    ex = await h.start(BASIC)
    run = await waiting(h, ex)
    assert await decide(h, ex, APPROVED, "ok")
    again = Review(DENIED, h.engine.clock.now(), "changed my mind")
    assert not await h.engine.review(ex.id, run.id, again)
    assert (await h.engine.wait(ex.id)).state.current == State.SUCCESS


async def test_sibling_approvals_are_decided_apart(h: Harness) -> None:
    """ApprovalTest.shouldPauseSiblingApprovalsIndependently (approval-parallel): each
    request is its own; the execution stays PAUSED while one still waits."""
    ex = await h.start("""
        id: approval-parallel
        namespace: io.kestra.tests
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: approvalA
                type: io.kestra.plugin.core.flow.Approval
                onApprove:
                  - {id: approvedA, type: io.kestra.plugin.core.log.Log, message: Approved A}
              - id: approvalB
                type: io.kestra.plugin.core.flow.Approval
                onApprove:
                  - {id: approvedB, type: io.kestra.plugin.core.log.Log, message: Approved B}
        """)
    await waiting(h, ex, "approvalB")
    assert await decide(h, ex, APPROVED, "ok", task_id="approvalA")
    await eventually(lambda: ready("approvedA" in task_states(ex)), "approvedA to run")
    assert ex.state.current == State.PAUSED
    assert await decide(h, ex, APPROVED, "ok", task_id="approvalB")
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert {"approvedA", "approvedB"} <= set(task_states(final))


async def test_a_pause_and_an_approval_side_by_side(h: Harness) -> None:
    """approval-pause-mix-first.yaml: a resume resumes the Pause only, a review decides the
    Approval only."""
    ex = await h.start("""
        id: approval-pause-mix-first
        namespace: io.kestra.tests
        tasks:
          - id: parallel
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: approval
                type: io.kestra.plugin.core.flow.Approval
              - id: pause
                type: io.kestra.plugin.core.flow.Pause
        """)
    pause = await waiting(h, ex, "pause")
    approval = await waiting(h, ex, "approval")
    refused = Review(APPROVED, h.engine.clock.now())
    assert not await h.engine.review(ex.id, pause.id, refused)
    assert await h.engine.resume(ex.id, {})
    await eventually(lambda: ready(not h.engine.pauses.holds(ex.id, pause.id)), "the resume")
    assert not await h.engine.resume(ex.id, {})  # only the Approval waits now
    assert await h.engine.review(ex.id, approval.id, refused)
    assert (await h.engine.wait(ex.id)).state.current == State.SUCCESS


async def test_an_approval_in_a_loop_is_reviewed_on_its_iteration(h: Harness) -> None:
    """approval-in-loop.yaml: each Loop iteration is an execution of its own; its request
    is reviewed there, and the loop and the flow go on."""
    ex = await h.start("""
        id: approval-in-loop
        namespace: io.kestra.tests
        tasks:
          - id: each_task
            type: io.kestra.plugin.core.flow.Loop
            values: '["a"]'
            tasks:
              - id: approval
                type: io.kestra.plugin.core.flow.Approval
                onApprove:
                  - {id: approved, type: io.kestra.plugin.core.log.Log, message: Approved}
          - {id: last, type: io.kestra.plugin.core.debug.Return, format: done}
        """)
    found: list[dict[str, Any]] = []

    async def iteration_waits() -> bool:
        await h.store.flush()
        docs, _ = await h.store.search_executions(flow_id="approval-in-loop", states=["PAUSED"])
        found[:] = [d for d in docs if d["id"] != ex.id]
        return bool(found) and any(h.engine.pauses.holds(d["id"]) for d in found)

    await eventually(iteration_waits, "the iteration's approval to wait")
    doc = await h.store.get_execution(found[0]["id"])
    assert doc is not None
    run_id = next(tr["id"] for tr in doc["taskRunList"] if tr["taskId"] == "approval")
    review = Review(APPROVED, h.engine.clock.now(), "ok")
    assert await h.engine.review(doc["id"], run_id, review)
    final = await h.engine.wait(ex.id)
    assert final.state.current == State.SUCCESS
    assert task_states(final) == {"each_task": "SUCCESS", "last": "SUCCESS"}


async def test_a_waiting_request_survives_a_restart(tmp_path: Path) -> None:
    """A request waiting when podium stops waits again after it starts (its `due` kept,
    onWait not run twice), and is decided then."""
    source = BASIC.replace("    onWait:", "    timeout: P1D\n    onWait:", 1)
    first = await Harness.open(tmp_path)
    ex = await first.start(source)
    run = await waiting(first, ex)
    due = run.outputs["due"] if run.outputs else None
    await first.engine.close(hand_over=True)
    await first.store.close()
    again = await Harness.open(tmp_path)
    try:
        await again.flow(source)
        assert await again.engine.lifecycle.recover() == 1
        review = Review(APPROVED, again.engine.clock.now(), "after the restart")
        await eventually(lambda: ready(again.engine.pauses.holds(ex.id, run.id)), "the wait")
        assert await again.engine.review(ex.id, run.id, review)
        final = await again.engine.wait(ex.id)
        assert final.state.current == State.SUCCESS
        assert [tr.task_id for tr in final.task_runs].count("notify") == 1
        assert outputs(final)["due"] == due
        assert outputs(final)["comment"] == "after the restart"
        assert task_states(final)["approved"] == "SUCCESS"
    finally:
        await again.close()


# -- malformed flows --------------------------------------------------------------------------


def test_malformed_approvals_are_refused_at_load() -> None:
    """Kestra refuses Enterprise-only properties (ApprovalRequestHandler's Noop validate),
    unknown enum values and bad review inputs."""
    head = "id: f\nnamespace: ns\ntasks:\n  - id: approval\n"
    head += "    type: io.kestra.plugin.core.flow.Approval\n"
    assert problems(head + "    title: Deploy\n") == [
        "f.yaml:4:5: tasks[0]: Approval properties [title] are only available in the "
        "Enterprise Edition"
    ]
    assert problems(head + "    denyBehavior: STOP\n    commentRequired: SOMETIMES\n") == [
        "f.yaml:6:19: tasks[0].denyBehavior: Input should be 'CONTINUE', 'WARN', 'FAIL', "
        "'SUCCEED', 'CANCEL' or 'KILL' (got 'STOP')",
        "f.yaml:7:22: tasks[0].commentRequired: Input should be 'NEVER', 'ALWAYS', 'ON_DENY' "
        "or 'ON_APPROVE' (got 'SOMETIMES')",
    ]
    assert problems(
        head + "    inputs:\n      - {id: n, type: INT}\n      - {id: n, type: INT, defaults: x}\n"
    ) == [
        "f.yaml:4:5: tasks[0]: inputs[1].id: duplicate input id 'n' (already declared by "
        "inputs[0]); inputs[1].defaults: 'x' is not an INT"
    ]
    assert problems(
        head + "    decisions: {approve: Ship, maybe: Later}\n    autoApprove: sure\n"
    ) == [
        "f.yaml:6:39: tasks[0].decisions.maybe: unknown property 'maybe'",
        "f.yaml:7:18: tasks[0].autoApprove: Input should be a valid boolean, unable to "
        "interpret input (got 'sure')",
    ]
