"""Flow trigger: start this flow when an execution of another flow ends.

The engine calls listeners synchronously, from whatever changed the execution, so the
listener only filters and queues; conditions, rendering and `emit` happen in `run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from daemon.sdk.cache import BoundedCache
from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import InputError, TemplateError
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.plugin import ConditionContext, Emit, Trigger
from daemon.sdk.properties import Model, has_template
from daemon.sdk.state import State

# (execution, state) pairs remembered, so that a state published twice starts one execution.
_REMEMBERED = 10_000


class UpstreamFlow(Model):
    """One entry of `preconditions.flows`: which ended executions count."""

    namespace: str | None = None
    flow_id: str | None = None
    states: list[State] | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.namespace is not None and doc["namespace"] != self.namespace:
            return False
        if self.flow_id is not None and doc["flowId"] != self.flow_id:
            return False
        if self.states is not None and doc["state"]["current"] not in self.states:
            return False
        labels = _labels(doc)
        return all(labels.get(key) == value for key, value in self.labels.items())


class Preconditions(Model):
    """Kestra 1.x's `preconditions`, with one upstream flow.

    Several flows mean "all of them within a time window", which needs windows kept in
    the store; podium refuses that at load rather than firing on each flow alone.
    """

    id: str | None = None
    flows: list[UpstreamFlow] = Field(min_length=1)

    @field_validator("flows")
    @classmethod
    def _one_flow(cls, value: list[UpstreamFlow]) -> list[UpstreamFlow]:
        if len(value) > 1:
            raise ValueError(
                "preconditions on several flows (all of them within a time "
                "window) are not supported yet: list one flow"
            )
        return value


@dataclass(frozen=True)
class _Ended:
    """What the listener keeps of an execution: it may change after the listener returns."""

    doc: dict[str, Any]
    task_outputs: dict[str, Any]

    @classmethod
    def of(cls, execution: Execution) -> _Ended:
        return cls(execution.to_json(task_runs=False), _task_outputs(execution.task_runs))


class FlowTrigger(Trigger):
    """Kestra's Flow trigger: one execution of this flow per matching ended execution.

    An execution of this very flow never counts, whatever the conditions: Kestra refuses
    recursive flow triggers too, since each run would start the next.
    """

    types = ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow")

    inputs: dict[str, Any] = Field(default_factory=dict)
    states: list[State] = Field(default_factory=lambda: [s for s in State if s.terminated])
    preconditions: Preconditions | None = None

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        queue: asyncio.Queue[_Ended] = asyncio.Queue()
        seen: BoundedCache[tuple[str, State], bool] = BoundedCache(_REMEMBERED)
        own = (ctx.flow.namespace, ctx.flow.id)
        states = frozenset(self.states)

        def listener(execution: Execution) -> None:
            state = execution.state.current
            if state not in states or (execution.namespace, execution.flow_id) == own:
                return
            if seen.add((execution.id, state), True):
                queue.put_nowait(_Ended.of(execution))

        detach = ctx.watch_executions(listener)
        try:
            while True:
                ended = await queue.get()
                # Shielded: a trigger stopped while starting an execution still finishes it.
                await asyncio.shield(self._start(ended, emit, ctx))
        finally:
            detach()

    def _accepts(self, ended: _Ended, ctx: TriggerContext) -> bool:
        doc = ended.doc
        end = doc["state"].get("endDate")
        when = datetime.fromisoformat(end) if end else ctx.clock.now()
        if not self.conditions_hold(
            ConditionContext(ctx.flow.namespace, ctx.flow.id, date=when, execution=doc)
        ):
            return False
        return self.preconditions is None or self.preconditions.flows[0].matches(doc)

    async def _start(self, ended: _Ended, emit: Emit, ctx: TriggerContext) -> None:
        if not self._accepts(ended, ctx):
            return
        doc = ended.doc
        variables = {
            "executionId": doc["id"],
            "namespace": doc["namespace"],
            "flowId": doc["flowId"],
            "flowRevision": doc["flowRevision"],
            "state": doc["state"]["current"],
            "executionLabels": _labels(doc),
            "startDate": doc["state"].get("startDate"),
            "endDate": doc["state"].get("endDate"),
            "outputs": doc.get("outputs") or {},
        }
        inputs = self.inputs
        try:
            if has_template(inputs):
                inputs = ctx.render(inputs, _render_variables(ended, variables, ctx))
            await emit(inputs, variables)
        except (InputError, TemplateError) as exc:
            ctx.logger.error(
                "%s.%s trigger %s: not started after execution %s of %s.%s: %s",
                ctx.flow.namespace,
                ctx.flow.id,
                self.id,
                doc["id"],
                doc["namespace"],
                doc["flowId"],
                exc,
            )


def _render_variables(
    ended: _Ended, trigger: dict[str, Any], ctx: TriggerContext
) -> dict[str, Any]:
    """What the trigger's `inputs` render with, as in Kestra: this flow, the ended execution.

    The ended execution's values are variables here, never templates: only the flow
    author's `inputs` are rendered.
    """
    doc = ended.doc
    return {
        "trigger": trigger,
        "flow": {"id": ctx.flow.id, "namespace": ctx.flow.namespace},
        "execution": {
            "id": doc["id"],
            "startDate": doc["state"].get("startDate"),
            "state": doc["state"]["current"],
        },
        "inputs": doc.get("inputs") or {},
        "outputs": ended.task_outputs,
        "labels": _labels(doc),
    }


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    return {label["key"]: label["value"] for label in doc.get("labels") or []}


def _task_outputs(task_runs: Sequence[TaskRun]) -> dict[str, Any]:
    """`outputs.<taskId>` (and `outputs.<taskId>.<value>` inside ForEach) of an execution."""
    outputs: dict[str, Any] = {}
    for tr in task_runs:
        if not tr.outputs:
            continue
        if tr.value is None:
            outputs[tr.task_id] = tr.outputs
        else:
            outputs.setdefault(tr.task_id, {})[tr.value] = tr.outputs
    return outputs
