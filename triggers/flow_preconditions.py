"""Kestra 1.x `preconditions` of the Flow trigger: upstream flows and execution filters that
must all be met within a time window (Flow.java's Preconditions, FilterCondition)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import TemplateError
from daemon.sdk.properties import Model
from daemon.sdk.state import State
from triggers.flow_window import TimeWindow


def labels_of(doc: dict[str, Any]) -> dict[str, str]:
    """An execution document's labels as a map."""
    return {label["key"]: label["value"] for label in doc.get("labels") or []}


def label_text(value: Any) -> str:
    """A label value as Kestra compares it (String.valueOf): true, not True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class UpstreamFlow(Model):
    """One entry of `preconditions.flows`: which ended executions count."""

    namespace: str | None = None
    flow_id: str | None = None
    states: list[State] | None = None
    labels: dict[str, Any] = Field(default_factory=dict)

    def matches(self, doc: dict[str, Any]) -> bool:
        return ended_matches(doc, self.namespace, self.flow_id, self.states, self.labels)


def ended_matches(
    doc: Mapping[str, Any],
    namespace: str | None,
    flow_id: str | None,
    states: list[State] | None,
    labels: Mapping[str, Any] | None,
) -> bool:
    """An ended execution (its stored document) against the upstream-flow fields shared by
    `preconditions.flows` and `dependsOn`; a field left out (None) matches any."""
    if namespace is not None and doc["namespace"] != namespace:
        return False
    if flow_id is not None and doc["flowId"] != flow_id:
        return False
    if states is not None and doc["state"]["current"] not in states:
        return False
    carried = labels_of(dict(doc))
    return all(carried.get(key) == label_text(value) for key, value in (labels or {}).items())


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

    def names(self, namespace: str, flow_id: str) -> bool:
        """Kestra's FlowTopologyService.validatePreconditions: one of `flows` (if any) names
        that flow and every `where` entry holds for it; a test on the run (state,
        expression) is taken as met."""
        upstream = not self.flows or any(
            u.namespace in (None, namespace) and u.flow_id in (None, flow_id) for u in self.flows
        )
        fields = {"FLOW_ID": flow_id, "NAMESPACE": namespace}
        return upstream and all(
            (all if entry.operand == "AND" else any)(
                f.test(fields[f.field]) if f.field in fields else True for f in entry.filters
            )
            for entry in self.where
        )

    def tests(
        self, doc: dict[str, Any], ctx: TriggerContext, variables: dict[str, Any]
    ) -> list[bool]:
        """Which of `keys` the ended execution `doc` meets."""
        tests = [flow.matches(doc) for flow in self.flows]
        for entry in self.where:
            results = [_field_test(f, doc, ctx, variables) for f in entry.filters]
            tests.append(all(results) if entry.operand == "AND" else any(results))
        return tests


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
