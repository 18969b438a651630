"""Kestra's Pebble operators where Jinja has none or reads them differently.

`a contains b` (Pebble's `ContainsExpression`), `a..b` and `range(a, b)` (Pebble's inclusive
ranges) are rewritten by `daemon.expr.pebble` into calls of the functions here; `a in b` and
`a not in b` are Jinja syntax with Python's meaning, so the parsed template's comparisons are
turned into calls of Kestra's `InExpression` (`InOperators`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.visitor import NodeTransformer

from daemon.expr.conversions import to_text
from daemon.expr.limits import MAX_RANGE
from daemon.sdk.errors import TemplateError

# Names the rewritten templates call; a leading underscore keeps them out of the way of a
# flow's own variables.
CONTAINS = "_pebble_contains"
RANGE = "_pebble_range"
IN = "_pebble_in"


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _same(a: Any, b: Any) -> bool:
    """Java's `equals` between two JSON-ish values: a boolean is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    try:
        return bool(a == b)
    except Exception:  # values that refuse comparing are not equal
        return False


def contains(left: Any, right: Any) -> bool:
    """Pebble's `contains`: a list holds an item (or every item of a list), a map holds a
    key, a text holds a piece of text; null holds nothing."""
    left, right = _defined(left), _defined(right)
    if left is None:
        return False
    if isinstance(left, Mapping):
        return any(_same(key, right) for key in left)
    if isinstance(left, list | tuple | set | frozenset):
        wanted = right if isinstance(right, list | tuple | set | frozenset) else [right]
        return all(any(_same(item, w) for item in left) for w in wanted)
    if isinstance(left, str):
        return to_text(right) in left
    raise TemplateError(
        "Contains operator can only be used on Collections, Maps and arrays. "
        f"Actual type was: {type(left).__name__}"
    )


def is_in(left: Any, right: Any) -> bool:
    """Kestra's `in`: compared as text, so `1 in ['1']` holds; a map counts its keys and its
    values; anything that is not a list or a map holds nothing (not even a text)."""
    left, right = _defined(left), _defined(right)
    if left is None or right is None:
        return False
    wanted = to_text(left)
    if isinstance(right, Mapping):
        return any(to_text(k) == wanted or to_text(v) == wanted for k, v in right.items())
    if isinstance(right, str | bytes) or not isinstance(right, Iterable):
        return False
    return any(to_text(item) == wanted for item in right)


def pebble_range(start: Any = None, end: Any = None, increment: Any = 1) -> list[Any]:
    """Pebble's `range(start, end, increment)`: both ends included; numbers, or single
    characters (`range('a', 'e')`). Pebble has no one-argument form; podium reads `range(n)`
    as n numbers from 0, as Jinja and Python do."""
    start, end, increment = _defined(start), _defined(end), _defined(increment)
    if end is None:
        if isinstance(start, bool) or not isinstance(start, int):
            raise TemplateError("range() takes a start and an end, both included: range(0, 3)")
        return list(_bounded(0, start - 1, 1))
    if isinstance(increment, bool) or not isinstance(increment, int | float):
        raise TemplateError(f"the increment of range() must be a number, got {increment!r}")
    step = int(increment)
    if step == 0:
        raise TemplateError("the increment of range() must be different than 0")
    if isinstance(start, str) and isinstance(end, str):
        if len(start) != 1 or len(end) != 1:
            raise TemplateError("range() takes numbers, or texts of one character")
        return [chr(c) for c in _bounded(ord(start), ord(end), step)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end)):
        raise TemplateError("range() takes numbers, or texts of one character")
    return list(_bounded(int(start), int(end), step))


def _bounded(start: int, end: int, step: int) -> range:
    numbers = range(start, end + (1 if step > 0 else -1), step)
    count = max(0, -(-(numbers.stop - numbers.start) // step))
    if count > MAX_RANGE:
        raise TemplateError(f"range of {count} items is over the limit of {MAX_RANGE}")
    return numbers


class InOperators(NodeTransformer):
    """`a in b` / `a not in b` as calls of Kestra's `in` (`is_in`)."""

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        if len(node.ops) != 1 or node.ops[0].op not in ("in", "notin"):
            return node
        operand = node.ops[0]
        call = nodes.Call(
            nodes.Name(IN, "load", lineno=node.lineno),
            [node.expr, operand.expr],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return nodes.Not(call, lineno=node.lineno) if operand.op == "notin" else call


GLOBALS = {CONTAINS: contains, RANGE: pebble_range, IN: is_in}
