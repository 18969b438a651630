"""Flow trigger: start this flow when an execution of another flow ends.

The engine calls listeners synchronously, from whatever changed the execution, so the
listener only filters and queues; conditions, rendering and `emit` happen in `run`.

Three generations of Kestra's syntax load and combine: `conditions` (with the deprecated
MultipleCondition), 1.x `preconditions`, and 2.0's `dependsOn` with `window`, `mode` and
`when`. Each that is set must be met (Kestra's FlowTriggerService evaluates them in turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from daemon.sdk.cache import BoundedCache
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import FlowDisabled, InputError, TemplateError
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.maps import deep_merge
from daemon.sdk.plugin import Condition, ConditionContext, Emit, Trigger, each_holds
from daemon.sdk.properties import Deprecated, has_template
from daemon.sdk.state import State
from triggers.flow_depends import (
    Dependency,
    DependsOn,
    Mode,
    by_flow,
    upstream_variables,
)
from triggers.flow_preconditions import Preconditions, labels_of
from triggers.flow_window import Tally, TimeWindow, Window, WindowRule, tally

__all__ = ["FlowTrigger", "MultipleCondition", "Preconditions", "TimeWindow", "Window"]

# (execution, state) pairs remembered, so that a state published twice starts one execution.
_REMEMBERED = 10_000
CORRELATION_ID = "system.correlationId"


class MultipleCondition(Condition):
    """Kestra's deprecated MultipleCondition (its successor is `preconditions`): each named
    condition met by some ended execution within one time window. Only a Flow trigger keeps
    such a window, so the Flow trigger evaluates it (`FlowTrigger._start`); as a plain
    condition it holds, and Kestra ignores it on other triggers too."""

    types = (
        "io.kestra.plugin.core.condition.MultipleCondition",
        "io.kestra.core.models.conditions.types.MultipleCondition",
    )

    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    conditions: dict[str, Condition] = Field(min_length=1)
    window: Duration | None = None
    window_advance: Duration | None = None
    sla: TimeWindow | None = None
    reset_on_success: bool = True

    def time_window(self) -> TimeWindow:
        """`sla`, with the deprecated `window`/`windowAdvance` over it as Kestra sets them."""
        given = {"window": self.window, "window_advance": self.window_advance}
        return (self.sla or TimeWindow()).model_copy(
            update={key: value for key, value in given.items() if value is not None}
        )

    def test(self, ctx: ConditionContext) -> bool:
        return True


@dataclass(frozen=True)
class _Ended:
    """What the listener keeps of an execution: it may change after the listener returns."""

    doc: dict[str, Any]
    task_outputs: dict[str, Any]

    @classmethod
    def of(cls, execution: Execution) -> _Ended:
        # With its task runs: a condition may read their attempts (HasRetryAttempt).
        return cls(execution.to_json(), _task_outputs(execution.task_runs))


class FlowTrigger(Trigger):
    """Kestra's Flow trigger: start this flow when executions of other flows end.

    One execution per matching ended execution, or once `dependsOn` (or `preconditions`)
    are met within their window. Its `when` renders against the upstream execution
    (`namespace`, `flowId`, `state`, `labels`, `outputs`, `hasRetryAttempt`, and `flow`,
    `execution`, `inputs` as a task of it would see them).

    An execution of this very flow never counts, whatever the conditions: Kestra refuses
    recursive flow triggers too, since each run would start the next.
    """

    types = ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow")

    inputs: dict[str, Any] = Field(default_factory=dict)
    """The inputs of the execution started, rendered with `trigger.outputs`: the outputs of
    the upstream execution (with `dependsOn`, those of every execution that met one, under
    their namespace and flow id)."""
    states: list[State] = Field(
        default_factory=lambda: [s for s in State if s.terminated] + [State.PAUSED]
    )
    """The states of upstream executions the trigger looks at: terminal ones and PAUSED."""
    depends_on: list[Dependency] | None = None
    """Upstream executions to wait for; `mode` says how many must be met in `window`."""
    window: Window | None = None
    """Within what time the `dependsOn` must be met (a day from midnight by default)."""
    mode: Mode = "ALL"
    """ALL, ANY or AT_LEAST `minSatisfied` of `dependsOn` must be met in the window."""
    min_satisfied: int | None = Field(default=None, gt=0)
    """With `mode: AT_LEAST`: how many of `dependsOn` must be met."""
    conditions: Annotated[list[Condition], Deprecated("use 'dependsOn' and 'when'")] = Field(
        default_factory=list
    )
    """Kestra 1.x: conditions the ended execution must meet (MultipleCondition included)."""
    preconditions: Annotated[Preconditions | None, Deprecated("use 'dependsOn'")] = None
    """Kestra 1.x: upstream flows and filters that must all be met within a time window."""

    @model_validator(mode="after")
    def _depends_on_rules(self) -> FlowTrigger:
        """Kestra's FlowTriggerValidator, and one dependency written twice (Kestra keys the
        window by dependency and fails on a repeated one at each evaluation)."""
        count = len(self.depends_on or [])
        if self.mode == "AT_LEAST" and self.min_satisfied is None:
            raise ValueError("'minSatisfied' must be set when mode is AT_LEAST")
        if self.min_satisfied is not None and self.min_satisfied > count:
            raise ValueError(
                f"'minSatisfied' ({self.min_satisfied}) cannot be greater than the number "
                f"of 'dependsOn' conditions ({count})"
            )
        first: dict[str, int] = {}
        for i, dependency in enumerate(self.depends_on or []):
            j = first.setdefault(dependency.key(), i)
            if j != i:
                raise ValueError(f"dependsOn[{i}] is the same dependency as dependsOn[{j}]")
        return self

    def advice(self) -> list[str]:
        """Kestra FlowValidationService.warnings: with nothing to filter on, every ended
        execution of every flow starts this one (`dependsOn` and a `when` filter too, since
        Kestra 2.0, which recommends `dependsOn` over the removed `preconditions`)."""
        filtered = self.conditions or self.preconditions is not None or self.depends_on
        if filtered or (self.when or "true").strip() != "true":
            return []
        return [
            "This flow will be triggered for EVERY execution of EVERY flow on your instance. "
            f"We recommend adding the dependsOn property to the Flow trigger '{self.id}'."
        ]

    def watches(self, namespace: str, flow_id: str) -> bool:
        """The WatchesFlows capability (Kestra's FlowTopologyService.isTriggerChild): may an
        ended execution of that flow start this trigger? Each of `dependsOn`,
        `preconditions` (its flows and its `where` on the flow's id or namespace) and
        `conditions` that is set must allow it. A condition is tried on
        a made-up ended execution of that flow in each final state; one that cannot be
        evaluated on it (a date, an expression) is taken to allow it, as Kestra takes its
        filter conditions."""
        if self.depends_on and not any(
            d.namespace in (None, namespace) and d.flow_id in (None, flow_id)
            for d in self.depends_on
        ):
            return False
        if self.preconditions is not None and not self.preconditions.names(namespace, flow_id):
            return False
        return any(
            all(_may_hold(c, namespace, flow_id, state) for c in self.conditions)
            for state in State
            if state.terminated
        )

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        queue: asyncio.Queue[_Ended] = asyncio.Queue()
        seen: BoundedCache[tuple[str, State], bool] = BoundedCache(_REMEMBERED)
        own = (ctx.flow.namespace, ctx.flow.id)
        states = frozenset(self.states)

        def listener(execution: Execution) -> None:
            state = execution.state.current
            if state not in states or (execution.namespace, execution.flow_id) == own:
                return
            if execution.loop is not None:  # a Loop's iteration: its execution's end counts
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

    async def _start(self, ended: _Ended, emit: Emit, ctx: TriggerContext) -> None:
        doc = ended.doc
        end = doc["state"].get("endDate")
        when = datetime.fromisoformat(end) if end else ctx.clock.now()
        labels = labels_of(doc)
        variables = {
            "executionId": doc["id"],
            "namespace": doc["namespace"],
            "flowId": doc["flowId"],
            "flowRevision": doc["flowRevision"],
            "state": doc["state"]["current"],
            "executionLabels": {k: v for k, v in labels.items() if k != CORRELATION_ID},
            "startDate": doc["state"].get("startDate"),
            "endDate": doc["state"].get("endDate"),
            "outputs": doc.get("outputs") or {},
        }
        render_variables = _render_variables(ended, variables, ctx)
        upstream = upstream_variables(doc, ended.task_outputs)
        # `when` (the base class's) renders against the upstream execution, as Kestra
        # documents it for Flow triggers; 1.x conditions with the trigger's variables.
        holds = ConditionContext(
            ctx.flow.namespace, ctx.flow.id, date=when, execution=doc, render=ctx.render,
            variables=render_variables, when_variables=upstream, logger=ctx.logger,
        )  # fmt: skip
        if not await self.conditions_hold(holds):
            return
        outputs = await self._windows_met(ended, when, holds, upstream, ctx)
        if outputs is None:
            return
        variables["outputs"] = outputs
        inputs = self.inputs
        # Kestra: the triggered execution carries the upstream one's correlation id.
        carried = {CORRELATION_ID: labels[CORRELATION_ID]} if CORRELATION_ID in labels else None
        try:
            if has_template(inputs):
                inputs = await ctx.render_async(inputs, render_variables)
            await emit(inputs, variables, labels=carried)
        except (InputError, TemplateError) as exc:
            # Kestra 2.0 (Flow.evaluate): the event is not dropped, its execution is FAILED.
            where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
            upstream_of = f"execution {doc['id']} of {doc['namespace']}.{doc['flowId']}"
            ctx.logger.warning("%s: invalid inputs after %s, created FAILED: %s",
                               where, upstream_of, exc)  # fmt: skip
            try:
                await emit({}, variables, labels=carried, failed=f"invalid inputs: {exc}")
            except (InputError, FlowDisabled) as refused:
                ctx.logger.error("%s: not started after %s: %s", where, upstream_of, refused)

    async def _windows_met(
        self,
        ended: _Ended,
        when: datetime,
        holds: ConditionContext,
        upstream: dict[str, Any],
        ctx: TriggerContext,
    ) -> dict[str, Any] | None:
        """`trigger.outputs` once every window this trigger keeps is met (the upstream
        execution's own outputs when it keeps none), else None.

        Every window records the execution before any is checked, so that a MultipleCondition,
        `preconditions` and `dependsOn` set together may be met by different executions; the
        trigger fires when all are met and this execution met one of them, and only then are
        those that reset on success emptied.
        """
        doc = ended.doc
        tallies: list[Tally | None] = []
        pre_tally = depends_tally = None
        for multiple in self.conditions:
            if isinstance(multiple, MultipleCondition):
                keys = list(multiple.conditions)
                groups = [[c] for c in multiple.conditions.values()]
                tests = await each_holds(groups, holds, self.id)
                rule = WindowRule(ctx.state_key("multiple", multiple.id), keys, len(keys),
                                  multiple.time_window(), multiple.reset_on_success)  # fmt: skip
                tallies.append(await tally(rule, tests, _flat(doc), when, ctx))
        pre = self.preconditions
        if pre is not None:
            keys = pre.keys()
            rule = WindowRule(ctx.state_key("preconditions", pre.id or "default"), keys,
                              len(keys), pre.time_window, pre.reset_on_success)  # fmt: skip
            tests = pre.tests(doc, ctx, dict(holds.variables))
            pre_tally = await tally(rule, tests, _flat(doc), when, ctx)
            tallies.append(pre_tally)
        if self.depends_on:
            depends = DependsOn(self.depends_on, self.window, self.mode, self.min_satisfied)
            tests = await depends.tests(doc, upstream, ctx, f"trigger {self.id} dependsOn")
            rule = depends.rule(ctx.state_key("depends_on"))
            depends_tally = await tally(rule, tests, by_flow(doc), when, ctx)
            tallies.append(depends_tally)
        outputs: dict[str, Any] = doc.get("outputs") or {}
        if not tallies:
            return outputs
        met = [t for t in tallies if t is not None and t.complete]
        if len(met) < len(tallies) or not any(t.touched for t in met):
            return None
        for t in met:
            await t.reset(ctx)
        if pre_tally is not None:  # preconditions: the matched executions' outputs, merged
            outputs = pre_tally.outputs
        if depends_tally is not None:  # dependsOn: by namespace and flow, over this one's
            outputs = deep_merge(outputs, depends_tally.outputs)
        return outputs


def _may_hold(condition: Condition, namespace: str, flow_id: str, state: State) -> bool:
    """A condition on an ended execution of that flow, in that state, that ran nothing."""
    if isinstance(condition, MultipleCondition):
        inner = condition.conditions.values()
        return any(_may_hold(c, namespace, flow_id, state) for c in inner)
    doc = {
        "id": "", "namespace": namespace, "flowId": flow_id, "flowRevision": 1,
        "state": {"current": state.value, "histories": []}, "labels": [], "taskRunList": [],
    }  # fmt: skip
    try:
        return condition.test(ConditionContext(namespace, flow_id, execution=doc))
    except Exception:  # needs what a made-up execution has not: it may hold
        return True


def _flat(doc: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Fold an execution's outputs into a window's as they are (preconditions)."""
    return lambda window: deep_merge(window, doc.get("outputs") or {})


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
        "labels": labels_of(doc),
    }


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
