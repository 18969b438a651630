"""Paused executions of this process: where a Pause or an Approval task waits, and how it
is resumed.

A Pause task holds its task run PAUSED on a future; `resume` completes it with the values
of the inputs the task declares (coerced here, so bad values are refused before anything
resumes). An Approval task waits the same way for `review`, which also checks the
reviewer's comment against the task's form. A timer may end either wait instead. Each
waiting task run has its own point: two approvals of one execution are decided apart.

A person may also pause a RUNNING execution (Kestra's manual pause, `POST .../pause`): it
is *held*. What runs finishes; no task starts and the execution does not end until it is
resumed (or killed). Its runner waits at `until_unheld` before each task and before its end.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.flows.definition import Flow
from daemon.sdk.capabilities import Resumable, Reviewable
from daemon.sdk.clock import Clock
from daemon.sdk.inputs import InputSpec, coerce_inputs
from daemon.sdk.review import Review, ReviewForm
from daemon.sdk.state import State


@dataclass
class _Point:
    task_run_id: str
    inputs: Sequence[InputSpec]
    form: ReviewForm | None  # an Approval's; None for a Pause
    future: asyncio.Future[Any]


class Pauses:
    def __init__(self) -> None:
        # execution id -> the points where its task runs wait, oldest first
        self._waiting: dict[str, list[_Point]] = {}
        # executions a person paused, each with the event its resume sets
        self._held: dict[str, asyncio.Event] = {}

    def point(
        self,
        execution_id: str,
        task_run_id: str,
        inputs: Sequence[InputSpec],
        form: ReviewForm | None = None,
    ) -> asyncio.Future[Any]:
        """Where a task run waits: `resume` (a Pause) or `review` (with a `form`) completes
        it. Removed with `release`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(execution_id, []).append(_Point(task_run_id, inputs, form, future))
        return future

    def release(self, execution_id: str, task_run_id: str) -> None:
        points = [p for p in self._waiting.get(execution_id, []) if p.task_run_id != task_run_id]
        if points:
            self._waiting[execution_id] = points
        else:
            self._waiting.pop(execution_id, None)

    def holds(self, execution_id: str, task_run_id: str | None = None) -> bool:
        """Whether a task run of the execution (this one, when given) waits here."""
        return any(
            task_run_id in (None, p.task_run_id) for p in self._waiting.get(execution_id, [])
        )

    def hold(self, execution_id: str) -> None:
        """From now on the execution starts no task and does not end (a manual pause)."""
        self._held.setdefault(execution_id, asyncio.Event())

    def held(self, execution_id: str) -> bool:
        return execution_id in self._held

    def unhold(self, execution_id: str) -> bool:
        """End a manual pause; False when the execution was not held."""
        event = self._held.pop(execution_id, None)
        if event is None:
            return False
        event.set()
        return True

    async def until_unheld(self, execution_id: str) -> None:
        """Return at once unless the execution is held; else once it is no longer."""
        while (event := self._held.get(execution_id)) is not None:
            await event.wait()

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        """Resume the Pause waiting here under that execution (the first, when several);
        False when none waits, InputError (nothing resumed) when the inputs do not fit."""
        point = next(
            (
                p
                for p in self._waiting.get(execution_id, [])
                if p.form is None and not p.future.done()
            ),
            None,
        )
        if point is None:
            return False
        values = await asyncio.to_thread(coerce_inputs, point.inputs, inputs)
        if not point.future.done():
            point.future.set_result(values)
        return True

    async def review(self, execution_id: str, task_run_id: str, review: Review) -> bool:
        """Decide the request of the task run waiting here for a review; False when it does
        not wait here. ReviewRefused or InputError (nothing decided) when the review does
        not fit its form; the inputs reach the task coerced."""
        point = next(
            (
                p
                for p in self._waiting.get(execution_id, [])
                if p.task_run_id == task_run_id and p.form is not None and not p.future.done()
            ),
            None,
        )
        if point is None or point.form is None:
            return False
        point.form.check_comment(review.decision, review.comment)
        values = await asyncio.to_thread(coerce_inputs, point.inputs, review.inputs)
        if not point.future.done():
            point.future.set_result(dataclasses.replace(review, inputs=values))
        return True


async def until_done(future: asyncio.Future[Any], seconds: float | None, clock: Clock) -> Any:
    """The future's result, or None once `seconds` passed on the clock (never, for None)."""
    if seconds is None:
        return await future
    timer: asyncio.Future[Any] = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait([future, timer], return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return future.result() if future.done() else None


def _paused_runs(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [tr for tr in doc.get("taskRunList", []) if tr["state"]["current"] == State.PAUSED.value]


def resume_inputs(flow: Flow, doc: Mapping[str, Any]) -> Sequence[InputSpec]:
    """The inputs the Pause task that holds a stored execution PAUSED declares for its
    resume."""
    for paused in _paused_runs(doc):
        task = flow.task_by_id(paused["taskId"])
        if isinstance(task, Resumable):
            return task.resume_inputs()
    return []


def waiting_reviews(flow: Flow, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The task runs of a stored execution that wait for a review (PAUSED Approvals)."""
    return [tr for tr in _paused_runs(doc) if isinstance(flow.task_by_id(tr["taskId"]), Reviewable)]
