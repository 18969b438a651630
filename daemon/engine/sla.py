"""Kestra's flow `sla`: a maximum duration, or an assertion on the execution, checked while
it runs (Kestra's SLA, MaxDurationSLA, ExecutionAssertionSLA, SLAService).

A violation adds the SLA's labels to the execution and logs why; with `behavior: FAIL` or
`CANCEL` the running tasks are stopped and the execution ends FAILED or CANCELLED, with
`NONE` it goes on. An assertion is evaluated each time a task run ends; one that cannot be
evaluated is logged and ignored, as Kestra 1.x does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from daemon.engine.contexts import ExecutionLog
from daemon.engine.variables import execution_variables
from daemon.flows.definition import SLA
from daemon.sdk.durations import format_duration
from daemon.sdk.errors import ExitRequested, PodiumError
from daemon.sdk.state import State

if TYPE_CHECKING:
    from daemon.engine.executor import ExecutionRunner

_TRUE = frozenset({"true", "1", "yes"})


class SlaWatch:
    """The SLAs of one execution while its tasks run."""

    def __init__(self, runner: ExecutionRunner) -> None:
        self._runner = runner
        self._resources = runner.resources
        self._violated: set[str] = set()
        self._ending: State | None = None
        self._inner: asyncio.Task[State] | None = None

    async def guard(self, tasks: Coroutine[Any, Any, State]) -> State:
        """Run the execution's tasks under its SLAs; ExitRequested(FAILED or CANCELLED) when
        one with that behaviour is violated."""
        runner = self._runner
        inner = asyncio.ensure_future(tasks)
        self._inner = inner
        runner.state.changed = self._assertions
        timers = [
            asyncio.ensure_future(self._deadline(sla))
            for sla in runner.flow.sla
            if sla.type == "MAX_DURATION"
        ]
        try:
            state = await inner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._ending is None or (current is not None and current.cancelling()):
                raise
            raise ExitRequested(self._ending) from None
        finally:
            runner.state.changed = None
            for timer in timers:
                timer.cancel()
        if self._ending is not None:  # violated as the last task ended
            raise ExitRequested(self._ending)
        return state

    async def _deadline(self, sla: SLA) -> None:
        assert sla.duration is not None
        ex = self._runner.execution
        elapsed = self._resources.clock.now() - ex.state.start
        await self._resources.clock.sleep(max((sla.duration - elapsed).total_seconds(), 0.0))
        if not ex.state.current.terminated:
            reason = f"execution duration exceeded the maximum of {format_duration(sla.duration)}"
            if self._violate(sla, reason) and self._inner is not None:
                self._inner.cancel()  # the running tasks stop where they are

    def _assertions(self) -> None:
        runner = self._runner
        resources = self._resources
        variables = execution_variables(
            runner.flow,
            runner.execution,
            runner.state.outputs,
            resources.envs,
            globals_=resources.options.globals,
        )
        for sla in runner.flow.sla:
            if sla.type != "EXECUTION_ASSERTION" or sla.id in self._violated:
                continue
            try:
                rendered = resources.render(sla.assert_, variables, runner.execution.namespace)
            except PodiumError as exc:
                self._log().error(f"Ignoring SLA '{sla.id}' because of the error: {exc}")
                continue
            if str(rendered).strip().lower() not in _TRUE:
                if self._violate(sla, f"assertion is false: {sla.assert_}.") and self._ending:
                    # Raised from the task run that just ended: nothing after it starts.
                    raise ExitRequested(self._ending)

    def _violate(self, sla: SLA, reason: str) -> bool:
        """Label and log a violation; True when it ends the execution (FAIL, CANCEL)."""
        if sla.id in self._violated:
            return False
        self._violated.add(sla.id)
        runner = self._runner
        runner.execution.labels.update(sla.labels)
        self._log().warning(f"SLA '{sla.id}' violated: {reason}")
        if sla.behavior == "NONE" or self._ending is not None:
            return False
        self._ending = State.FAILED if sla.behavior == "FAIL" else State.CANCELLED
        if self._ending == State.FAILED:
            runner.state.first_failure = f"SLA '{sla.id}' violated: {reason}"
        return True

    def _log(self) -> ExecutionLog:
        return ExecutionLog(self._resources, self._runner.execution, None)
