"""JSONata transforms, as kestra-io/plugin-transform's plugin-transform-json documents and
tests them (TransformValue and TransformItems, their @Example flows, TransformItemsTest's
explodeArray cases, Transform's maxDepth bound and its error messages)."""

from __future__ import annotations

import json

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.ion import iter_values
from daemon.sdk.state import State
from tests.harness import Harness

ORDER = {
    "order_id": "ABC123",
    "first_name": "John",
    "last_name": "Doe",
    "address": {"city": "Paris", "country": "France"},
    "items": [
        {"product_id": "001", "name": "Apple", "quantity": 5, "price_per_unit": 0.5},
        {"product_id": "002", "name": "Banana", "quantity": 3, "price_per_unit": 0.3},
        {"product_id": "003", "name": "Orange", "quantity": 2, "price_per_unit": 0.4},
    ],
}
PRODUCTS = {
    "products": [
        {"title": "Phone", "brand": "Apple", "price": 549, "discountPercentage": 10},
        {"title": "Laptop", "brand": "Dell", "price": 1000, "discountPercentage": 20},
    ]
}


def flow(tasks: str) -> str:
    return f"id: jsonata\nnamespace: company.team\ntasks:\n{tasks}"


def write(content: str, task_id: str = "file") -> str:
    """A Write task storing `content` (indented for a YAML block scalar)."""
    body = "\n".join("      " + line for line in content.splitlines())
    return (
        f"  - id: {task_id}\n    type: io.kestra.plugin.core.storage.Write\n"
        f"    extension: .json\n    content: |\n{body}\n"
    )


async def items(h: Harness, uri: str) -> list[object]:
    return list(iter_values(await h.engine.resources.storage.path(uri)))


async def test_transform_value_runs_kestras_example(h: Harness) -> None:
    """TransformValue's @Example: an order reshaped, with a sum over its items."""
    expression = (
        '{"order_id": order_id, "customer_name": first_name & \' \' & last_name, '
        "\"address\": address.city & ', ' & address.country, "
        '"total_price": $sum(items.(quantity * price_per_unit))}'
    )
    ex = await h.run(
        flow(
            "  - id: transform_json\n"
            "    type: io.kestra.plugin.transform.jsonata.TransformValue\n"
            f"    from: {json.dumps(json.dumps(ORDER))}\n"
            f"    expression: {json.dumps(expression)}\n"
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    value = (ex.task_runs[0].outputs or {})["value"]
    assert value == {
        "order_id": "ABC123",
        "customer_name": "John Doe",
        "address": "Paris, France",
        "total_price": pytest.approx(4.2),
    }


async def test_transform_items_explodes_arrays_unless_told_not_to(h: Harness) -> None:
    """TransformItems' @Example over a downloaded JSON document (pretty-printed over many
    lines: one value), and explodeArray (TransformItemsTest)."""
    ex = await h.run(
        flow(
            write(json.dumps(PRODUCTS, indent=2))
            + """
  - id: names
    type: io.kestra.plugin.transform.jsonata.TransformItems
    from: "{{ outputs.file.uri }}"
    expression: products.(title & ' by ' & brand)
  - id: names_as_one
    type: io.kestra.plugin.transform.jsonata.TransformItems
    from: "{{ outputs.file.uri }}"
    expression: products.(title & ' by ' & brand)
    explodeArray: false
  - id: total
    type: io.kestra.plugin.transform.jsonata.TransformItems
    from: "{{ outputs.file.uri }}"
    expression: "$sum(products.(price-(price*discountPercentage/100)))"
"""
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    out = {tr.task_id: tr.outputs or {} for tr in ex.task_runs}
    assert await items(h, out["names"]["uri"]) == ["Phone by Apple", "Laptop by Dell"]
    assert out["names"]["processedItemsTotal"] == 2
    assert await items(h, out["names_as_one"]["uri"]) == [["Phone by Apple", "Laptop by Dell"]]
    assert out["names_as_one"]["processedItemsTotal"] == 1
    (total,) = await items(h, out["total"]["uri"])
    assert float(total) == pytest.approx(549 * 0.9 + 1000 * 0.8)  # type: ignore[arg-type]


async def test_transform_items_maps_each_item_of_an_ion_file(h: Harness) -> None:
    """One result per item of a file of Ion lines (Kestra's own format, unquoted names)."""
    ex = await h.run(
        flow(
            write('{name: "a", n: 1}\n{name: "b", n: 2}\n')
            + """
  - id: doubled
    type: io.kestra.plugin.transform.jsonata.TransformItems
    from: "{{ outputs.file.uri }}"
    expression: '{"who": name, "twice": n * 2}'
"""
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    out = ex.task_runs[1].outputs or {}
    assert await items(h, out["uri"]) == [{"who": "a", "twice": 2}, {"who": "b", "twice": 4}]


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (
            "    type: io.kestra.plugin.transform.jsonata.TransformValue\n"
            "    from: '{\"a\": 1}'\n    expression: 'a.('\n",
            "Invalid JSONata expression. Error: ",
        ),
        (
            "    type: io.kestra.plugin.transform.jsonata.TransformValue\n"
            "    from: 'not json'\n    expression: a\n",
            "Failed to parse the JSON object passed through the `from` property",
        ),
        (
            "    type: io.kestra.plugin.transform.jsonata.TransformValue\n"
            "    from: '{\"a\": 1}'\n    maxDepth: 10\n"
            "    expression: '($f := function($n){ $n <= 1 ? 1 : $n + $f($n - 1) }; $f(500))'\n",
            "Failed to evaluate expression: ",
        ),
        (
            "    type: io.kestra.plugin.transform.jsonata.TransformItems\n"
            "    from: /etc/passwd\n    expression: a\n",
            "'/etc/passwd' is not a storage URI",
        ),
    ],
)
async def test_failures_say_what_failed(h: Harness, task: str, error: str) -> None:
    ex = await h.run(flow(f"  - id: t\n{task}"))
    assert ex.state.current == State.FAILED
    assert (ex.error or "").startswith(f"task 't': {error}"), ex.error


@pytest.mark.parametrize(
    "task",
    [
        "    type: io.kestra.plugin.transform.jsonata.TransformValue\n    from: '{}'\n",
        "    type: io.kestra.plugin.transform.jsonata.TransformItems\n    expression: a\n",
        "    type: io.kestra.plugin.transform.jsonata.TransformValue\n    from: '{}'\n"
        "    expression: a\n    maxDepth: 0\n",
    ],
)
def test_malformed_tasks_are_refused_when_the_flow_loads(task: str) -> None:
    with pytest.raises(FlowError):
        load_flow(flow(f"  - id: t\n{task}"))
