"""Kestra 1.x's query filters on searches: `filters[field][OPERATION]=value`.

Kestra's UI and its `kestrapy` SDK narrow a search only this way (`filters[namespace]
[EQUALS]=company.team`, `filters[labels][EQUALS][team]=data`). podium answers the filters
it can apply exactly (on executions, flows and triggers) and refuses any other with a 400
naming the ones it knows: a filter silently ignored would answer what the caller asked to
leave out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from daemon.api.common import HttpError, Param, date_param

_FILTER = re.compile(r"filters\[(\w+)\]\[(\w+)\](?:\[([^\]]+)\])?")

# field -> operations podium applies (the rest of Kestra's QueryFilter is refused).
FLOW_FILTERS = {"q": ("EQUALS",), "namespace": ("EQUALS", "PREFIX")}
TRIGGER_FILTERS = {**FLOW_FILTERS, "flowId": ("EQUALS",), "triggerId": ("EQUALS",)}
EXECUTION_FILTERS = {
    "q": ("EQUALS",),
    "namespace": ("EQUALS", "PREFIX"),
    "flowId": ("EQUALS",),
    "state": ("EQUALS", "IN"),
    "labels": ("EQUALS",),
    "startDate": ("GREATER_THAN_OR_EQUAL_TO", "LESS_THAN"),
}


@dataclass
class ExecutionFilters:
    """What the filters ask, in the store's search terms."""

    q: str | None = None
    namespace: str | None = None
    exact_namespace: bool = False
    flow_id: str | None = None
    states: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    start_after: datetime | None = None
    start_before: datetime | None = None


@dataclass(frozen=True)
class Filter:
    """One `filters[field][OPERATION]=value` query parameter (labels add `[key]`)."""

    field: str
    op: str
    value: str
    key: str | None = None


def parse_filters(
    query: Mapping[str, str], supported: Mapping[str, tuple[str, ...]], resource: str
) -> list[Filter]:
    """The query's Kestra filters, each one `supported` maps (field -> operations) or a 400
    that names what is supported on `resource`."""
    found = []
    for name, value in query.items():
        if not name.startswith("filters["):
            continue
        match = _FILTER.fullmatch(name)
        if match is None:
            raise HttpError(400, f"Bad Request: {name!r} is not filters[field][OPERATION]")
        what, op, key = match.groups()
        if op not in supported.get(what, ()):
            known = "; ".join(f"{f}: {', '.join(ops)}" for f, ops in supported.items())
            raise HttpError(
                400,
                f"Bad Request: podium does not apply the filter {what} {op} on {resource} "
                f"(it applies {known})",
            )
        if (what == "labels") != (key is not None):
            raise HttpError(400, f"Bad Request: {name!r}: only labels take a [key]")
        found.append(Filter(what, op, value, key))
    return found


def execution_filters(query: Mapping[str, str], states: tuple[str, ...]) -> ExecutionFilters:
    found = ExecutionFilters()
    for one in parse_filters(query, EXECUTION_FILTERS, "executions"):
        _apply(found, one.field, one.op, one.key, one.value, states)
    return found


def filter_params(supported: Mapping[str, tuple[str, ...]]) -> list[Param]:
    """The filters as OpenAPI query parameters (labels, keyed by label, are left out)."""
    return [
        Param(f"filters[{name}][{op}]", f"Kestra's query filter {name} {op}")
        for name, ops in supported.items()
        if name != "labels"
        for op in ops
    ]


def in_namespace(namespace: str, wanted: str, op: str) -> bool:
    """Kestra's namespace EQUALS (that one) or PREFIX (it and the ones under it)."""
    return namespace == wanted or (op == "PREFIX" and namespace.startswith(wanted + "."))


def _apply(
    found: ExecutionFilters,
    what: str,
    op: str,
    key: str | None,
    value: str,
    states: tuple[str, ...],
) -> None:
    if what == "q":
        found.q = value
    elif what == "namespace":
        found.namespace, found.exact_namespace = value, op == "EQUALS"
    elif what == "flowId":
        found.flow_id = value
    elif what == "state":
        wanted = value.split(",") if op == "IN" else [value]
        for state in wanted:
            if state not in states:
                raise HttpError(
                    400, f"Bad Request: state {state!r} is not one of {', '.join(states)}"
                )
        found.states = wanted
    elif what == "labels" and key is not None:
        found.labels[key] = value
    elif op == "GREATER_THAN_OR_EQUAL_TO":
        found.start_after = date_param({"startDate": value}, "startDate")
    else:
        found.start_before = date_param({"startDate": value}, "startDate")
