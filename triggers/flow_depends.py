"""The Flow trigger's `dependsOn` (Kestra 2.0, Flow.java's Dependency and
DependsOnMultipleCondition): upstream executions to wait for, of which ALL, ANY or AT_LEAST
`minSatisfied` must have ended as asked within a `window`, and the `when` expressions that
gate a trigger or one dependency, rendered against the upstream execution."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import field_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import TemplateError
from daemon.sdk.properties import Model, has_template
from daemon.sdk.state import State
from daemon.sdk.truth import truthy
from triggers.flow_preconditions import ended_matches, label_text, labels_of
from triggers.flow_window import TimeWindow, Window, WindowRule

Mode = Literal["ALL", "ANY", "AT_LEAST"]


def as_expression(value: Any) -> Any:
    """A `when` written as a YAML boolean is its text, as Jackson reads it into a String."""
    return label_text(value) if isinstance(value, bool) else value


class Dependency(Model):
    """One entry of `dependsOn`: which ended executions meet it. A field left out matches
    any execution."""

    namespace: str | None = None
    """The upstream flow's namespace (exactly)."""
    flow_id: str | None = None
    """The upstream flow's id."""
    states: list[State] | None = None
    """The states the upstream execution must be in."""
    labels: dict[str, Any] | None = None
    """Labels the upstream execution must carry, each with this value."""
    when: str = "true"
    """An expression rendered against the upstream execution (`flow`, `execution`,
    `labels`, `outputs`); the dependency is met only when it is truthy."""

    @field_validator("when", mode="before")
    @classmethod
    def _when_as_text(cls, value: Any) -> Any:
        return as_expression(value)

    def key(self) -> str:
        """Where the window remembers this dependency: a digest of what it asks, so that
        reordering `dependsOn` keeps what was met (Kestra hashes the same parts)."""
        parts = [
            self.namespace or "", "_", self.flow_id or "", self.when,
            ",".join(sorted(self.states or [])),
            ",".join(f"{k}:{label_text(v)}" for k, v in sorted((self.labels or {}).items())),
        ]  # fmt: skip
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]

    def selects(self, doc: Mapping[str, Any]) -> bool:
        """Namespace, flow, states and labels: everything but `when`."""
        return ended_matches(doc, self.namespace, self.flow_id, self.states, self.labels)


@dataclass(frozen=True)
class DependsOn:
    """The Flow trigger's `dependsOn` with the properties that say how it is met."""

    dependencies: list[Dependency]
    window: Window | None
    mode: Mode
    min_satisfied: int | None

    def rule(self, state_key: str) -> WindowRule:
        """How many dependencies must be met, in which window, reset or not: without a
        `window`, within a day and reset once met (Kestra's DependsOnMultipleCondition)."""
        keys = [d.key() for d in self.dependencies]
        needed = {"ALL": len(keys), "ANY": 1}.get(self.mode, self.min_satisfied or len(keys))
        window = self.window
        return WindowRule(
            state_key=state_key,
            keys=keys,
            needed=needed,
            time_window=window.time_window() if window else TimeWindow(),
            reset_on_success=window.fire_once if window else True,
        )

    async def tests(
        self, doc: Mapping[str, Any], upstream: dict[str, Any], ctx: TriggerContext, where: str
    ) -> list[bool]:
        """Which dependencies the ended execution `doc` meets; `upstream` is what their
        `when` renders with."""
        return [
            d.selects(doc) and await expression_holds(d.when, upstream, ctx, f"{where}[{i}].when")
            for i, d in enumerate(self.dependencies)
        ]


def upstream_variables(doc: Mapping[str, Any], task_outputs: dict[str, Any]) -> dict[str, Any]:
    """What a `when` renders with: the upstream execution, as Kestra documents it (the 2.0
    migration guide's "when expression context": `namespace`, `flowId`, `state`, `labels`,
    `outputs` its task outputs, `hasRetryAttempt` whether a task run of it was attempted
    again; and Flow.java's examples: `flow` is the upstream flow, `execution` the upstream
    execution with its flow outputs under `execution.outputs`)."""
    state = doc["state"]
    retried = any(len(run.get("attempts") or []) > 1 for run in doc.get("taskRunList") or [])
    return {
        "namespace": doc["namespace"],
        "flowId": doc["flowId"],
        "state": state["current"],
        "hasRetryAttempt": retried,
        "flow": {
            "id": doc["flowId"],
            "namespace": doc["namespace"],
            "revision": doc["flowRevision"],
        },
        "execution": {
            "id": doc["id"],
            "namespace": doc["namespace"],
            "flowId": doc["flowId"],
            "state": state["current"],
            "startDate": state.get("startDate"),
            "endDate": state.get("endDate"),
            "outputs": doc.get("outputs") or {},
        },
        "labels": labels_of(dict(doc)),
        "inputs": doc.get("inputs") or {},
        "outputs": task_outputs,
    }


async def expression_holds(
    expression: str, variables: dict[str, Any], ctx: TriggerContext, where: str
) -> bool:
    """A `when` is truthy (Kestra's TruthUtils). One that cannot be rendered is this flow's
    misconfiguration: logged as an error, and it does not hold."""
    if not has_template(expression):
        return truthy(expression)
    try:
        return truthy(await ctx.render_async(expression, variables))
    except TemplateError as exc:
        flow = ctx.flow
        ctx.logger.error("%s.%s %s: %r cannot be rendered, counted false: %s",
                         flow.namespace, flow.id, where, expression, exc)  # fmt: skip
        return False


def by_flow(doc: Mapping[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Keep the ended execution's flow outputs in the window under its namespace and flow
    id, in place of an earlier execution's of the same flow (Kestra's withOutputs)."""
    outputs = doc.get("outputs") or {}

    def add(window: dict[str, Any]) -> dict[str, Any]:
        if not outputs:
            return window
        namespace = dict(window.get(doc["namespace"]) or {})
        namespace[doc["flowId"]] = outputs
        return {**window, doc["namespace"]: namespace}

    return add
