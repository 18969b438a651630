"""Flow trigger: start this flow when an execution of another flow ends.

The engine calls listeners synchronously, from whatever changed the execution, so the
listener only filters and queues; conditions, rendering and `emit` happen in `run`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from daemon.sdk.cache import BoundedCache
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import InputError, TemplateError
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.plugin import Condition, ConditionContext, Emit, Trigger, each_holds
from daemon.sdk.properties import Model, has_template
from daemon.sdk.state import State

# (execution, state) pairs remembered, so that a state published twice starts one execution.
_REMEMBERED = 10_000
CORRELATION_ID = "system.correlationId"


class UpstreamFlow(Model):
    """One entry of `preconditions.flows`: which ended executions count."""

    namespace: str | None = None
    flow_id: str | None = None
    states: list[State] | None = None
    labels: dict[str, Any] = Field(default_factory=dict)

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.namespace is not None and doc["namespace"] != self.namespace:
            return False
        if self.flow_id is not None and doc["flowId"] != self.flow_id:
            return False
        if self.states is not None and doc["state"]["current"] not in self.states:
            return False
        labels = _labels(doc)
        return all(labels.get(key) == _text(value) for key, value in self.labels.items())


class Filter(Model):
    """One test of a `where` entry on a field of the ended execution."""

    field: Literal["FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION"]
    type: Literal[
        "EQUAL_TO", "NOT_EQUAL_TO", "IN", "NOT_IN", "IS_TRUE", "IS_FALSE", "IS_NULL",
        "IS_NOT_NULL", "STARTS_WITH", "ENDS_WITH", "REGEX", "CONTAINS",
    ]  # fmt: skip
    value: str | None = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _operands(self) -> Filter:
        if self.type in ("IN", "NOT_IN") and self.values is None:
            raise ValueError(f"a {self.type} filter needs 'values'")
        needs_value = ("EQUAL_TO", "NOT_EQUAL_TO", "STARTS_WITH", "ENDS_WITH", "REGEX", "CONTAINS")
        if self.type in needs_value and self.value is None:
            raise ValueError(f"a {self.type} filter needs 'value'")
        if self.field == "EXPRESSION" and self.value is None:
            raise ValueError("an EXPRESSION filter needs 'value' (the expression)")
        return self

    def test(self, field: str | None) -> bool:
        value, kind = self.value or "", self.type
        if kind in ("IN", "NOT_IN"):
            return (field in (self.values or [])) == (kind == "IN")
        if kind in ("IS_TRUE", "IS_FALSE"):
            return _truthy(field) == (kind == "IS_TRUE")
        if kind in ("IS_NULL", "IS_NOT_NULL"):
            return (field is None) == (kind == "IS_NULL")
        if kind == "EQUAL_TO":
            return field == value
        if kind == "NOT_EQUAL_TO":
            return field != value
        if field is None:
            return False
        if kind == "STARTS_WITH":
            return field.startswith(value)
        if kind == "ENDS_WITH":
            return field.endswith(value)
        if kind == "REGEX":
            return re.fullmatch(value, field) is not None
        return value in field  # CONTAINS


class ExecutionFilter(Model):
    """One entry of `preconditions.where`: filters joined by `operand`."""

    id: str = Field(min_length=1)
    operand: Literal["AND", "OR"] = "AND"
    filters: list[Filter] = Field(min_length=1)


class TimeWindow(Model):
    """Within what time all the preconditions must be met (Kestra's TimeWindow)."""

    type: Literal[
        "DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_DEADLINE", "DAILY_TIME_WINDOW"
    ] = "DURATION_WINDOW"
    window: Duration | None = None
    window_advance: Duration | None = None
    deadline: time | None = None
    start_time: time | None = None
    end_time: time | None = None

    @model_validator(mode="after")
    def _bounds(self) -> TimeWindow:
        if self.type == "DAILY_TIME_DEADLINE" and self.deadline is None:
            raise ValueError("a DAILY_TIME_DEADLINE window needs 'deadline'")
        if self.type == "DAILY_TIME_WINDOW" and (self.start_time is None or self.end_time is None):
            raise ValueError("a DAILY_TIME_WINDOW needs 'startTime' and 'endTime'")
        return self

    def bounds(self, when: datetime) -> tuple[datetime, datetime] | None:
        """The window `when` falls in (UTC), or None when it is outside every window."""
        when = when.astimezone(UTC)
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        size = self.window or timedelta(days=1)
        if self.type == "SLIDING_WINDOW":
            return when - size, when
        if self.type == "DAILY_TIME_DEADLINE":
            assert self.deadline is not None
            end = datetime.combine(midnight.date(), self.deadline, UTC)
            return (midnight, end) if when <= end else None
        if self.type == "DAILY_TIME_WINDOW":
            assert self.start_time is not None and self.end_time is not None
            start = datetime.combine(midnight.date(), self.start_time, UTC)
            end = datetime.combine(midnight.date(), self.end_time, UTC)
            return (start, end) if start <= when <= end else None
        start = midnight + (self.window_advance or timedelta(0))
        while start > when:
            start -= size
        while start + size <= when:
            start += size
        return start, start + size


class Preconditions(Model):
    """Kestra 1.x's `preconditions`: upstream flows and execution filters that must all be
    met within a time window; once they are, one execution starts (and, with
    `resetOnSuccess`, they must all be met again for the next)."""

    id: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    time_window: TimeWindow = Field(default_factory=TimeWindow)
    reset_on_success: bool = True
    flows: list[UpstreamFlow] = Field(default_factory=list)
    where: list[ExecutionFilter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_where_ids(self) -> Preconditions:
        seen: set[str] = set()
        for entry in self.where:
            if entry.id in seen:
                raise ValueError(f"duplicate precondition id '{entry.id}' in 'where'")
            seen.add(entry.id)
        return self

    def keys(self) -> list[str]:
        """Kestra's condition keys: `condition_<n>` per flow, `condition_<n>_<id>` per where."""
        count = len(self.flows)
        return [f"condition_{i + 1}" for i in range(count)] + [
            f"condition_{count + i + 1}_{entry.id}" for i, entry in enumerate(self.where)
        ]


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

    async def _start(self, ended: _Ended, emit: Emit, ctx: TriggerContext) -> None:
        doc = ended.doc
        end = doc["state"].get("endDate")
        when = datetime.fromisoformat(end) if end else ctx.clock.now()
        labels = _labels(doc)
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
        holds = ConditionContext(
            ctx.flow.namespace, ctx.flow.id, date=when, execution=doc, render=ctx.render,
            variables=render_variables,
        )  # fmt: skip
        if not await self.conditions_hold(holds):
            return
        for multiple in self.conditions:
            if isinstance(multiple, MultipleCondition):
                keys = list(multiple.conditions)
                groups = [[c] for c in multiple.conditions.values()]
                tests = await each_holds(groups, holds, self.id)
                state = ctx.state_key("multiple", multiple.id)
                window = multiple.time_window()
                if await _window_met(state, keys, tests, window, multiple.reset_on_success,
                                     ended, when, ctx) is None:  # fmt: skip
                    return
        pre = self.preconditions
        if pre is not None:
            state = ctx.state_key("preconditions", pre.id or "default")
            tests = self._tests(pre, ended.doc, ctx, render_variables)
            outputs = await _window_met(state, pre.keys(), tests, pre.time_window,
                                        pre.reset_on_success, ended, when, ctx)  # fmt: skip
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

    def _tests(
        self,
        pre: Preconditions,
        doc: dict[str, Any],
        ctx: TriggerContext,
        variables: dict[str, Any],
    ) -> list[bool]:
        tests = [flow.matches(doc) for flow in pre.flows]
        for entry in pre.where:
            results = [_field_test(f, doc, ctx, variables) for f in entry.filters]
            tests.append(all(results) if entry.operand == "AND" else any(results))
        return tests


async def _window_met(
    state_key: str,
    keys: list[str],
    tests: list[bool],
    time_window: TimeWindow,
    reset_on_success: bool,
    ended: _Ended,
    when: datetime,
    ctx: TriggerContext,
) -> dict[str, Any] | None:
    """Record which of `keys` this execution meets (`tests`) in the current time window
    (kept in the trigger's durable state); the merged outputs once they are all met, else
    None (Kestra's MultipleConditionWindow)."""
    met = [key for key, holds in zip(keys, tests, strict=True) if holds]
    window = time_window.bounds(when)
    if not met or window is None:
        return None
    start, end = window
    saved = await ctx.state.get(state_key) or {}
    sliding = time_window.type == "SLIDING_WINDOW"
    same_window = sliding or (saved.get("start") == start.isoformat())
    results: dict[str, str] = dict(saved.get("results") or {}) if same_window else {}
    outputs: dict[str, Any] = dict(saved.get("outputs") or {}) if same_window else {}
    if sliding:
        results = {k: at for k, at in results.items() if datetime.fromisoformat(at) >= start}
    for name in met:
        results[name] = when.isoformat()
    outputs = _deep_merge(outputs, ended.doc.get("outputs") or {})
    complete = all(name in results for name in keys)
    if complete and reset_on_success:
        await ctx.state.set(state_key, {"start": start.isoformat(), "results": {}, "outputs": {}})
    else:
        await ctx.state.set(state_key, {"start": start.isoformat(), "end": end.isoformat(),
                                        "results": results, "outputs": outputs})  # fmt: skip
    return outputs if complete else None


def _field_test(
    test: Filter, doc: dict[str, Any], ctx: TriggerContext, variables: dict[str, Any]
) -> bool:
    if test.field == "EXPRESSION":
        try:
            field: str | None = str(ctx.render(test.value or "", variables))
        except TemplateError as exc:
            ctx.logger.warning("precondition expression %r: %s", test.value, exc)
            return False
    else:
        field = {"FLOW_ID": doc["flowId"], "NAMESPACE": doc["namespace"],
                 "STATE": doc["state"]["current"]}[test.field]  # fmt: skip
    return test.test(field)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "false", "0", "null")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _deep_merge(into: dict[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for key, value in more.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


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
