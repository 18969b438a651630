"""A reviewer's decision on a task that waits for one (Kestra's Approval): the decisions,
what the waiting task accepts, and what the reviewer sent.

The API and the engine check a review against the waiting task's `ReviewForm` before
anything resumes, so a refused review (a comment missing, an input that does not fit)
leaves the request waiting and tells the caller why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from daemon.sdk.errors import PodiumError
from daemon.sdk.inputs import InputSpec


class Decision(StrEnum):
    """Kestra's Approval.Decision.Type: what became of a request."""

    APPROVED = "APPROVED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"


class CommentRequired(StrEnum):
    """Kestra's Approval.CommentRequired: when the reviewer has to comment."""

    NEVER = "NEVER"
    ALWAYS = "ALWAYS"
    ON_DENY = "ON_DENY"
    ON_APPROVE = "ON_APPROVE"


# What a reviewer may send: the UI's APPROVE/DENY, and the decision's own names.
_SENT = {
    "APPROVE": Decision.APPROVED,
    "DENY": Decision.DENIED,
    "APPROVED": Decision.APPROVED,
    "DENIED": Decision.DENIED,
}


class ReviewRefused(PodiumError):
    """A review the waiting task does not accept (a comment missing, no such request)."""


def sent_decision(text: str) -> Decision:
    """The decision a reviewer sent, any case; ReviewRefused naming the valid ones."""
    decision = _SENT.get(text.strip().upper())
    if decision is None:
        raise ReviewRefused(f"decision {text!r} is not one of APPROVE, DENY")
    return decision


@dataclass(frozen=True)
class ReviewForm:
    """What a waiting task accepts: the inputs of its review dialog and when a comment
    is required."""

    inputs: Sequence[InputSpec] = ()
    comment_required: CommentRequired = CommentRequired.NEVER

    def check_comment(self, decision: Decision, comment: str | None) -> None:
        """ReviewRefused when this decision needs a comment and none (or a blank) came."""
        needed = (
            self.comment_required == CommentRequired.ALWAYS
            or (
                self.comment_required == CommentRequired.ON_APPROVE
                and decision == Decision.APPROVED
            )
            or (self.comment_required == CommentRequired.ON_DENY and decision == Decision.DENIED)
        )
        if needed and not (comment or "").strip():
            verb = "approve" if decision == Decision.APPROVED else "deny"
            raise ReviewRefused(
                f"a comment is required to {verb} this request "
                f"(commentRequired: {self.comment_required.value})"
            )


@dataclass(frozen=True)
class Review:
    """A reviewer's decision as the waiting task receives it: the inputs coerced to their
    declared types, `by` the reviewer's user name when the daemon knows it."""

    decision: Decision
    on: datetime
    comment: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    by: str | None = None
