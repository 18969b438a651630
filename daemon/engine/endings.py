"""What happens once an execution's tasks have run: its flow outputs, a flow-level retry
as a new execution, the deprecated `listeners` and `afterExecution`.

None of the tasks run here changes the final state (Kestra: "results of listeners will not
change the execution status"); a failure among them is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.engine.contexts import ExecutionLog
from daemon.engine.retries import new_execution_policy
from daemon.engine.variables import Scope, execution_variables
from daemon.sdk.capabilities import DeclaredOutput
from daemon.sdk.errors import ExitRequested, TemplateError
from daemon.sdk.plugin import ConditionContext, Task
from daemon.sdk.retry import RetryPolicy
from daemon.sdk.state import State, iso
from daemon.store.base import StoreError

if TYPE_CHECKING:
    from daemon.engine.executor import ExecutionRunner

log = logging.getLogger(__name__)


class Endings:
    """The end of one execution's run, for its runner."""

    def __init__(self, runner: ExecutionRunner) -> None:
        self._runner = runner
        self._resources = runner.resources

    async def flow_outputs(
        self, state: State, declared: Sequence[DeclaredOutput] | None = None
    ) -> State:
        """The flow's `outputs` (or those `declared`: a Loop's, for one of its iterations),
        rendered now. A required one that fails fails the execution; an optional one
        (`required: false`) that fails is logged and left out (Kestra PR #10840)."""
        runner, resources = self._runner, self._resources
        variables = execution_variables(
            runner.flow,
            runner.execution,
            runner.state.outputs,
            resources.envs,
            globals_=resources.options.globals,
            url=resources.options.public_url,
        )
        variables.update(runner.state.variables)
        out: dict[str, Any] = {}
        logger = ExecutionLog(resources, runner.execution, None)
        for output in runner.flow.outputs if declared is None else declared:
            try:
                out[output.id] = await self._render(output.value, variables)
            except TemplateError as exc:
                message = f"flow output '{output.id}': {exc}"
                if not output.required:
                    logger.warning(f"{message}; it is optional and left out")
                    continue
                runner.state.first_failure = message
                logger.error(message)
                return State.FAILED
        runner.execution.outputs = out
        return state

    async def _render(self, value: Any, variables: dict[str, Any]) -> Any:
        resources, namespace = self._resources, self._runner.execution.namespace
        return await resources.render_async(value, variables, namespace)

    def retried(self, state: State) -> State:
        """RETRIED instead of FAILED when the flow's `retry` (CREATE_NEW_EXECUTION) allows
        another execution; the engine then starts it after the policy's delay."""
        runner = self._runner
        model = new_execution_policy(runner.flow)
        if model is None or state != State.FAILED:
            return state
        ex = runner.execution
        metadata = ex.metadata or {}
        attempt = int(metadata.get("attemptNumber", 1))
        first = metadata.get("originalCreatedDate") or ex.state.start_iso
        elapsed = self._resources.clock.now() - datetime.fromisoformat(first)
        delay = RetryPolicy.from_model(model).next_delay(attempt, elapsed)
        if delay is None:
            return state
        ex.metadata = {**metadata, "attemptNumber": attempt, "originalCreatedDate": first,
                       "retryDelay": delay}  # fmt: skip
        ExecutionLog(self._resources, ex, None).warning(
            f"execution failed (attempt {attempt}); the flow's retry starts a new execution "
            f"in {delay:g}s"
        )
        return State.RETRIED

    async def listeners(self, final: State) -> None:
        """Kestra's deprecated `listeners`: each whose conditions all hold on the ended
        execution runs its tasks in it."""
        runner = self._runner
        ex = runner.execution
        doc = ex.to_json()  # with task runs: a condition may read their attempts
        when = self._resources.clock.now()
        for listener in runner.flow.listeners:
            context = ConditionContext(ex.namespace, ex.flow_id, date=when, execution=doc,
                                       render=self._render_condition)  # fmt: skip
            try:
                holds = all(condition.test(context) for condition in listener.conditions)
            except Exception as exc:  # a condition that cannot decide runs nothing
                ExecutionLog(self._resources, ex, None).warning(f"a listener's condition: {exc}")
                continue
            if holds:
                await self.run_after(listener.tasks, final, "a listener's task")

    def _render_condition(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """A listener's expression condition renders with the ended execution's variables."""
        runner, resources = self._runner, self._resources
        own = execution_variables(runner.flow, runner.execution, runner.state.outputs,
                                  resources.envs, globals_=resources.options.globals)  # fmt: skip
        return resources.render(value, {**own, **variables}, None)

    async def run_after(self, tasks: Sequence[Task], final: State, what: str) -> None:
        """Tasks run once the final state is known (`afterExecution`, listeners): they see
        it as `execution.state`, and never change it."""
        runner = self._runner
        ex = runner.execution
        try:
            result = await runner.run_list(tasks, Scope(handling=True))
        except ExitRequested:
            result = State.SUCCESS  # the execution has ended already: nothing left to exit
        except StoreError as exc:
            log.error(
                "execution %s of %s.%s: %s stopped, the store refused a write: %s",
                ex.id, ex.namespace, ex.flow_id, what, exc,
            )  # fmt: skip
            runner.state.unsaved = True
            result = State.FAILED
        except asyncio.CancelledError:
            if not self._resources.options.handing_over:
                await asyncio.shield(runner.save_final())
            raise
        if ex.state.current != final:  # a Pause in there moved it; the final state stands
            ex.state.set(final, self._resources.clock.now())
        if result.failed:
            log.warning(
                "execution %s of %s.%s: %s failed; the execution stays %s",
                ex.id, ex.namespace, ex.flow_id, what, final.value,
            )  # fmt: skip


def retry_metadata(metadata: dict[str, Any] | None, now: Any) -> dict[str, Any]:
    """The metadata of the execution replacing a RETRIED one: the next attempt number."""
    metadata = metadata or {}
    return {
        "attemptNumber": int(metadata.get("attemptNumber", 1)) + 1,
        "originalCreatedDate": metadata.get("originalCreatedDate") or iso(now),
    }
