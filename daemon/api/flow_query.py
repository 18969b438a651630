"""Which loaded flows a Kestra flow query selects: `GET /flows/search` and the by-query
bulk endpoints (delete, disable, enable, export) share it, as Kestra's FlowController
shares `mapLegacyQueryParamsToNewFilters`.

The filters (`filters[q][EQUALS]`, `filters[namespace][EQUALS|PREFIX]`,
`filters[labels][EQUALS][key]`) and their legacy forms (`q`, `namespace` as a prefix,
`labels=key:value`, `scope`) narrow the loaded flows; anything else is refused with a 400,
since a filter silently ignored by a bulk delete would delete what the caller meant to
keep. With none, every flow is selected, as Kestra selects them.
"""

from __future__ import annotations

from aiohttp import web

from daemon.api.common import ENGINE, HttpError, Param, label_pairs
from daemon.api.query_filters import FLOW_FILTERS, filter_params, in_namespace, parse_filters
from daemon.flows.definition import Flow

FLOW_QUERY = {**FLOW_FILTERS, "labels": ("EQUALS",)}
_SCOPES = ("USER", "SYSTEM")

QUERY_PARAMS = (
    Param("namespace", "This namespace and the ones under it (legacy form)"),
    Param("q", "Text found in the id, namespace or description, any case (legacy form)"),
    Param("labels", "Labels the flow carries, `key:value` (legacy form)", repeated=True),
    Param("scope", "USER or SYSTEM flows (podium has user flows only)", repeated=True),
    *filter_params(FLOW_QUERY),
)


def matching_flows(request: web.Request) -> list[Flow]:
    """The loaded flows the request's query selects, by namespace then id."""
    query = request.query
    namespace, ns_op = query.get("namespace"), "PREFIX"
    text = query.get("q", "")
    labels = label_pairs(query.getall("labels", []))
    for one in parse_filters(query, FLOW_QUERY, "flows"):
        if one.field == "namespace":
            namespace, ns_op = one.value, one.op
        elif one.field == "labels" and one.key is not None:
            labels[one.key] = one.value
        else:
            text = one.value
    scopes = query.getall("scope", [])
    for scope in scopes:
        if scope not in _SCOPES:
            raise HttpError(400, f"Bad Request: scope must be USER or SYSTEM, not {scope!r}")
    if scopes and "USER" not in scopes:
        return []  # Kestra's system flows: podium has none
    text = text.lower()
    if text == "*":
        text = ""  # Kestra's match-all query
    return [
        flow
        for flow in sorted(request.app[ENGINE].catalog, key=lambda f: f.uid)
        if (namespace is None or in_namespace(flow.namespace, namespace, ns_op))
        and (not text or any(text in (v or "").lower() for v in _searched(flow)))
        and all(flow.labels.get(key) == value for key, value in labels.items())
    ]


def _searched(flow: Flow) -> tuple[str | None, ...]:
    return flow.id, flow.namespace, flow.description
