"""Kestra's isDateBefore / isDateAfter / isDateBetween (core/src/main/java/io/kestra/core/
runners/pebble/functions/IsDate{Before,After,Between}Function.java): instants compared
strictly, whatever their offsets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from daemon.expr.renderer import Renderer
from daemon.sdk.errors import TemplateError


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ isDateBefore('2025-01-01', '2025-01-02') }}", "true"),
        ("{{ isDateBefore('2025-01-02', '2025-01-02') }}", "false"),  # strictly
        # instants: 10:00+02:00 is 08:00Z, before 09:00Z
        ("{{ isDateBefore('2025-01-01T10:00:00+02:00', '2025-01-01T09:00:00Z') }}", "true"),
        # naive date-times and plain dates are UTC
        ("{{ isDateBefore('2025-01-01T23:00:00', '2025-01-02') }}", "true"),
        ("{{ isDateAfter('2025-01-03', '2025-01-02T23:59:59Z') }}", "true"),
        ("{{ isDateAfter(date='2025-01-02', reference='2025-01-02') }}", "false"),
        ("{{ isDateAfter(now(), '2000-01-01') }}", "true"),
        # IsDateBetweenFunction's usage line, with trigger.date a date-time
        (
            "{{ isDateBetween(d, '2025-12-31T23:59:59Z', '2026-06-30T23:59:59Z') }}",
            "true",
        ),
        (
            "{{ isDateBetween('2026-01-01T00:00:00-03:00', '2026-01-01T03:00:00Z', "
            "'2026-01-02T00:00:00Z') }}",
            "false",
        ),
        (
            "{{ isDateBetween(date='2026-01-01T03:00:01Z', after='2026-01-01T00:00:00-03:00', "
            "before='2026-01-02T00:00:00Z') }}",
            "true",
        ),
    ],
)
def test_date_comparisons(r: Renderer, template: str, expected: str) -> None:
    variables: dict[str, Any] = {"d": datetime(2026, 3, 1, tzinfo=UTC)}
    assert r.render(template, variables) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ isDateBefore('2025-01-01') }}",
         "The 'isDateBefore()' function expects a 'reference' argument."),
        ("{{ isDateAfter('soon', '2025-01-01') }}",
         "The 'isDateAfter()' function could not parse 'date': 'soon' is not an ISO-8601 date "
         "or date-time"),
        ("{{ isDateBetween('2026-01-01T00:00:00', '2025-01-01T00:00:00Z', "
         "'2027-01-01T00:00:00Z') }}",
         "The 'isDateBetween()' function could not parse 'date': '2026-01-01T00:00:00' has no "
         "time zone offset"),
    ],
)  # fmt: skip
def test_date_comparison_errors_name_the_argument(r: Renderer, template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        r.render(template, {})
    assert message in str(caught.value)
