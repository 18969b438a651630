"""Kestra's Approval: hold the execution until a reviewer approves or denies it, then run
the tasks for that decision; what then becomes of the execution is the decision's
behaviour (Kestra's core/.../plugin/core/flow/Approval.java).

The task goes through rounds of children: `onWait` (a notification carrying
`outputs.<id>.url`), the wait itself (PAUSED until `POST .../actions/review`, or until
`timeout` passes: EXPIRED), then the decided branch. The decision is in the task run's
outputs before its branch starts, so a podium that restarts goes straight on to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from daemon.sdk.capabilities import Chart
from daemon.sdk.context import RunContext
from daemon.sdk.durations import format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.inputs import InputSpec, validate_input_specs
from daemon.sdk.plugin import Branch, Children, FlowableTask, Output, Task, Then
from daemon.sdk.properties import Dynamic, Model
from daemon.sdk.review import CommentRequired, Decision, Review, ReviewForm
from daemon.sdk.state import State, iso

Behavior = Literal["CONTINUE", "WARN", "FAIL", "SUCCEED", "CANCEL", "KILL"]
# The execution's state after a decision whose behaviour ends it (KILL kills it instead).
_ENDS = {"SUCCEED": State.SUCCESS, "CANCEL": State.CANCELLED}
# Kestra Enterprise's properties: refused with Kestra's own message (NoopApprovalRequestHandler).
_ENTERPRISE = ("title", "assignment", "case", "inAppNotification")


class Decisions(Model):
    """The names of the two decisions in the review dialog (e.g. Continue and Stop)."""

    approve: Annotated[str, Dynamic] = "Approve"
    deny: Annotated[str, Dynamic] = "Deny"


class Approval(FlowableTask):
    """Pause the flow until a reviewer approves or denies it: `onWait` runs first, then the
    execution waits (UI, or `POST /api/v1/executions/{id}/actions/review`) until
    `onApprove` or `onDeny` runs; `approveBehavior`, `denyBehavior` and `expireBehavior`
    (past `timeout`) decide the execution's fate. With `autoApprove` nothing waits."""

    types = ("io.kestra.plugin.core.flow.Approval",)

    inputs: list[InputSpec] = Field(default_factory=list)
    """Fields of the review dialog, in the shape of flow inputs."""
    decisions: Decisions = Field(default_factory=Decisions)
    """Names of the two decisions in the review dialog."""
    comment_required: Annotated[CommentRequired, Dynamic] = CommentRequired.NEVER
    """Whether the reviewer has to comment: NEVER, ALWAYS, ON_DENY, ON_APPROVE."""
    auto_approve: Annotated[bool, Dynamic] = False
    """Approve at once, with `auto: true` in the outputs: no onWait, no wait."""
    approve_behavior: Annotated[Behavior, Dynamic] = "CONTINUE"
    """What happens to the execution after `onApprove`."""
    deny_behavior: Annotated[Behavior, Dynamic] = "CANCEL"
    """What happens to the execution after `onDeny`."""
    expire_behavior: Annotated[Behavior, Dynamic] = "CANCEL"
    """What happens to the execution when `timeout` passes without a decision."""
    on_wait: list[Task] = Field(default_factory=list)
    """Tasks run before the execution pauses."""
    on_approve: list[Task] = Field(default_factory=list)
    """Tasks run after an approval."""
    on_deny: list[Task] = Field(default_factory=list)
    """Tasks run after a denial."""
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    @model_validator(mode="before")
    @classmethod
    def _community_edition(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = [name for name in _ENTERPRISE if name in data]
            if found:
                raise ValueError(
                    f"Approval properties [{', '.join(found)}] are only available in the "
                    "Enterprise Edition"
                )
        return data

    @model_validator(mode="after")
    def _review_inputs(self) -> Approval:
        problems = [
            "inputs"
            + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            + f": {message}"
            for path, message in validate_input_specs(self.inputs)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def chart(self) -> Chart:
        """Kestra's Approval.tasksTree: a CHOICE between the wait, approve and deny tasks."""
        branches = {"wait": self.on_wait, "approve": self.on_approve, "deny": self.on_deny}
        return Chart("CHOICE", "choice", branches=branches, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    def review_form(self) -> ReviewForm:
        """The Reviewable capability: the dialog as written."""
        comment = self.comment_required
        literal = isinstance(comment, CommentRequired)  # else an expression, as written
        return ReviewForm(self.inputs, comment if literal else CommentRequired.NEVER)

    async def children(self, ctx: RunContext) -> Children:
        recorded = dict(ctx.task_run.outputs or {})
        url = self._url(ctx)
        if recorded.get("decision"):  # decided before podium restarted: on to its branch
            return self._decided(ctx, recorded)
        if self.auto_approve:
            ctx.logger.info("approved automatically (autoApprove)")
            return self._decided(ctx, _outputs(url, Decision.APPROVED, auto=True))
        waiting = _outputs(url)
        if recorded.get("due"):  # waiting when podium restarted: its deadline stands
            waiting["due"] = recorded["due"]

        async def after_wait(state: State) -> Children | Output:
            if state.failed and not self.allow_failure:
                raise TaskFailed(f"the onWait tasks of {self.id} failed")
            if self.timeout and "due" not in waiting:
                waiting["due"] = iso(ctx.clock.now() + self.timeout)
            return self._round([], waiting, self._await_review(ctx))

        return self._round([Branch(self.on_wait)] if self.on_wait else [], waiting, after_wait)

    def _await_review(self, ctx: RunContext) -> Then:
        async def wait(state: State) -> Children | Output:
            waiting = dict(ctx.task_run.outputs or {})
            form = ReviewForm(self.inputs, CommentRequired(self.comment_required))
            review = await ctx.reviews.wait(self._remaining(ctx, waiting.get("due")), form)
            if review is None:
                waited = format_duration(self.timeout) if self.timeout else ""
                ctx.logger.warning(f"expired: nobody decided within {waited}")
                review = Review(Decision.EXPIRED, ctx.clock.now())
            else:
                who = f" by {review.by}" if review.by else ""
                ctx.logger.info(f"{review.decision.value.lower()}{who}")
            return self._decided(ctx, {**waiting, **_reviewed(review)})

        return wait

    def _decided(self, ctx: RunContext, outputs: dict[str, Any]) -> Children:
        """The round of the decided branch (none when the request expired), its behaviour
        applied once the branch ended without failing."""
        decision = Decision(outputs["decision"])
        behavior, branch = {
            Decision.APPROVED: (self.approve_behavior, self.on_approve),
            Decision.DENIED: (self.deny_behavior, self.on_deny),
            Decision.EXPIRED: (self.expire_behavior, []),
        }[decision]

        async def after_branch(state: State) -> Children | Output:
            if state.failed:  # a failure inside the branch is never hidden by a behaviour
                return outputs
            if behavior == "WARN":
                ctx.warning = True
            elif behavior == "KILL":
                ctx.logger.info(f"{decision.value.lower()}: killing the execution")
                await ctx.control.kill(ctx.execution.id)
            elif behavior == "FAIL":

                async def fail(state: State) -> Children | Output:
                    raise TaskFailed(f"{decision.value.lower()}, and its behaviour is FAIL")

                return Children([], finally_=self.finally_, then=fail)
            return outputs

        return Children(
            [Branch(branch)] if branch else [],
            errors=self.errors,
            finally_=self.finally_,
            outputs=outputs,
            then=after_branch,
            ends_execution=_ENDS.get(behavior),
        )

    def _round(self, branches: list[Branch], outputs: dict[str, Any], then: Then) -> Children:
        return Children(
            branches, errors=self.errors, finally_=self.finally_, outputs=outputs, then=then
        )

    def _url(self, ctx: RunContext) -> str | None:
        """A link to the execution's page (Kestra's UriProvider), with a public URL set."""
        if not ctx.public_url:
            return None
        ex = ctx.execution
        return f"{ctx.public_url.rstrip('/')}/ui/executions/{ex.namespace}/{ex.flow_id}/{ex.id}"

    def _remaining(self, ctx: RunContext, due: str | None) -> float | None:
        """Seconds until `due` (what is left of `timeout`, less after podium restarted)."""
        if due is None:
            return None
        left = datetime.fromisoformat(due) - ctx.clock.now()
        return max(left, timedelta(0)).total_seconds()


def _outputs(
    url: str | None, decision: Decision | None = None, *, auto: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {} if url is None else {"url": url}
    if decision is not None:
        out.update(decision=decision.value, auto=auto)
    return out


def _reviewed(review: Review) -> dict[str, Any]:
    """Kestra's Approval.Output of a decision: unset properties left out, as Kestra does."""
    out: dict[str, Any] = {"decision": review.decision.value, "auto": False, "on": iso(review.on)}
    if review.by:
        out["by"] = review.by
    if review.comment:
        out["comment"] = review.comment
    if review.decision != Decision.EXPIRED:
        out["inputs"] = dict(review.inputs)
    return out
