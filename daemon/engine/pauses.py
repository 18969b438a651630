"""Paused executions of this process: where a Pause task waits, and how it is resumed.

A Pause task holds its execution PAUSED on a future; `resume` completes it with the
values of the inputs the task declares (coerced here, so bad values are refused before
anything resumes), or a timer ends the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from daemon.flows.definition import Flow
from daemon.sdk.capabilities import Resumable
from daemon.sdk.inputs import InputSpec, coerce_inputs
from daemon.sdk.state import State


class Pauses:
    def __init__(self) -> None:
        # execution id -> the inputs its Pause task expects, and the future `resume` completes
        self._waiting: dict[str, tuple[Sequence[InputSpec], asyncio.Future[dict[str, Any]]]] = {}

    def point(
        self, execution_id: str, on_resume: Sequence[InputSpec]
    ) -> asyncio.Future[dict[str, Any]]:
        """Where a Pause task waits; `resume` completes it. Removed with `release`."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[execution_id] = (on_resume, future)
        return future

    def release(self, execution_id: str) -> None:
        self._waiting.pop(execution_id, None)

    def holds(self, execution_id: str) -> bool:
        return execution_id in self._waiting

    async def resume(self, execution_id: str, inputs: Mapping[str, Any]) -> bool:
        """Resume an execution paused here; False when none waits under that id, InputError
        (nothing resumed) when the inputs do not fit."""
        waiting = self._waiting.get(execution_id)
        if waiting is None or waiting[1].done():
            return False
        specs, future = waiting
        values = await asyncio.to_thread(coerce_inputs, specs, inputs)
        if not future.done():
            future.set_result(values)
        return True


def resume_inputs(flow: Flow, doc: Mapping[str, Any]) -> Sequence[InputSpec]:
    """The inputs the task that holds a stored execution PAUSED declares for its resume."""
    paused = next(
        (tr for tr in doc.get("taskRunList", []) if tr["state"]["current"] == State.PAUSED.value),
        None,
    )
    if paused is None:
        return []
    task = flow.task_by_id(paused["taskId"])
    return task.resume_inputs() if isinstance(task, Resumable) else []
