"""Kestra's `sort` query parameter on lists podium pages in memory: `field:asc` or
`field:desc` (ascending when the direction is left out), repeatable, the first one leading."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from daemon.api.common import HttpError, Param

SORT = Param("sort", "field:asc or field:desc", repeated=True)


def sorted_by(
    items: list[Any], orders: list[str], keys: Mapping[str, Callable[[Any], Any]]
) -> list[Any]:
    """`items` in the order the `sort` values ask, by the fields `keys` knows (a missing
    value last, either way); a 400 naming those fields for any other."""
    for order in reversed(orders):
        field, _, direction = order.partition(":")
        key = keys.get(field)
        if key is None or direction.lower() not in ("", "asc", "desc"):
            raise HttpError(
                400,
                f"Bad Request: sort {order!r} is not field:asc or field:desc with a field "
                f"among {', '.join(keys)}",
            )
        descending = direction.lower() == "desc"
        present = [item for item in items if key(item) is not None]
        missing = [item for item in items if key(item) is None]
        items = sorted(present, key=key, reverse=descending) + missing
    return items
