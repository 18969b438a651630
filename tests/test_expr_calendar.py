"""Kestra's calendar functions (docs: expressions > functions > "Date and Calendar
Functions"), each from Kestra's own test of it in
core/src/test/java/io/kestra/core/runners/pebble/functions/."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from daemon.expr.renderer import Renderer
from daemon.sdk.errors import TemplateError


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer()


def render(r: Renderer, template: str, **variables: Any) -> str:
    return r.render(template, variables)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # IsWeekendFunctionTest
        ("{{ isWeekend('2025-01-04') }}", "true"),
        ("{{ isWeekend('2025-01-05') }}", "true"),
        ("{{ isWeekend('2025-01-06') }}", "false"),
        ("{{ isWeekend('2025-01-04T15:30:00+05:00') }}", "true"),
        # DayOfWeekFunctionTest: the date as written, no conversion to UTC
        ("{{ dayOfWeek('2025-01-06') }}", "MONDAY"),
        ("{{ dayOfWeek('2025-01-06T00:30:00+02:00') }}", "MONDAY"),
        ("{{ dayOfWeek('2025-01-05T23:30:00Z') }}", "SUNDAY"),
        ("{{ dayOfWeek('2025-01-06T10:00+01:00[Europe/Paris]') }}", "MONDAY"),
        # DayOfMonthFunctionTest, MonthOfYearFunctionTest
        ("{{ dayOfMonth('2025-03-31') }}", "31"),
        ("{{ dayOfMonth('2025-03-31T23:00:00-05:00') + 1 }}", "32"),
        ("{{ monthOfYear('2025-12-01') }}", "12"),
        # HourOfDayFunctionTest: with or without an offset, the hour as written
        ("{{ hourOfDay('2025-01-06T14:30:00Z') }}", "14"),
        ("{{ hourOfDay('2025-01-06T14:30:00+02:00') }}", "14"),
        ("{{ hourOfDay('2025-01-06T09:05:00') }}", "9"),
        # IsDayWeekInMonthFunctionTest: 2025-01-06 is the first Monday of January 2025
        ("{{ isDayWeekInMonth('2025-01-06', 'MONDAY', 'FIRST') }}", "true"),
        ("{{ isDayWeekInMonth('2025-01-13', 'monday', 'second') }}", "true"),
        ("{{ isDayWeekInMonth('2025-01-13', 'MONDAY', 'FIRST') }}", "false"),
        ("{{ isDayWeekInMonth('2025-01-27', 'MONDAY', 'FOURTH') }}", "true"),
        ("{{ isDayWeekInMonth('2025-01-27', 'MONDAY', 'LAST') }}", "true"),
        ("{{ isDayWeekInMonth('2025-01-31', 'FRIDAY', 'LAST') }}", "true"),
        ("{{ isDayWeekInMonth('2025-01-24', 'FRIDAY', 'LAST') }}", "false"),
        ("{{ isDayWeekInMonth(date='2025-01-06', dayOfWeek='MONDAY', position='FIRST') }}", "true"),
        # isLastWorkingDay (docs expressions > functions > dates; the 2.0 migration guide's
        # "New Pebble helper functions"): Monday to Friday by default. May 2025 ends on a
        # Saturday, so its last working day is Friday the 30th.
        ("{{ isLastWorkingDay('2025-05-30') }}", "true"),
        ("{{ isLastWorkingDay('2025-05-31') }}", "false"),
        ("{{ isLastWorkingDay('2025-05-29T18:00:00+02:00') }}", "false"),
        ("{{ isLastWorkingDay('2025-06-30') }}", "true"),
        ("{{ isLastWorkingDay('2025-05-29', 'MONDAY,TUESDAY,WEDNESDAY,THURSDAY') }}", "true"),
        ("{{ isLastWorkingDay('2025-05-31', 'monday, saturday') }}", "true"),
        ("{{ isLastWorkingDay('2025-05-26', ['MONDAY']) }}", "true"),
    ],
)
def test_calendar_functions_answer_as_kestra_s(r: Renderer, template: str, expected: str) -> None:
    assert render(r, template) == expected


def test_dates_from_the_context_are_read_in_their_own_offset(r: Renderer) -> None:
    """`trigger.date` and `execution.startDate` reach expressions as date-times."""
    late = datetime(2025, 1, 5, 23, 30, tzinfo=UTC)
    assert render(r, "{{ dayOfWeek(d) }} {{ hourOfDay(d) }}", d=late) == "SUNDAY 23"
    assert render(r, "{{ isWeekend(d) }} {{ monthOfYear(d) }}", d=date(2025, 2, 1)) == "true 2"
    assert render(r, "{{ isWeekend(trigger.date) }}", trigger={"date": late}) == "true"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # IsPublicHolidayFunctionTest: Christmas and the Armistice in France, a Tuesday not
        ("{{ isPublicHoliday('2024-12-25', 'FR') }}", "true"),
        ("{{ isPublicHoliday('2024-03-12', 'FR') }}", "false"),
        ("{{ isPublicHoliday('2024-12-25T10:00:00Z', 'FR') }}", "true"),
        # a subdivision the calendar does not know (Jollyday's answer): the country's days
        ("{{ isPublicHoliday('2024-11-11', 'FR', 'IDF') }}", "true"),
        ("{{ isPublicHoliday('2024-11-11', 'FR', '') }}", "true"),
        # a subdivision's own holiday: Epiphany in Bavaria, not in Germany as a whole
        ("{{ isPublicHoliday('2024-01-06', 'DE', 'BY') }}", "true"),
        ("{{ isPublicHoliday('2024-01-06', 'DE', 'DE-BY') }}", "true"),
        ("{{ isPublicHoliday('2024-01-06', 'DE') }}", "false"),
        ("{{ isPublicHoliday(date='2024-07-04', countryCode='us') }}", "true"),
        ("{{ isPublicHoliday(trigger.date, 'US') }}", "true"),
    ],
)
def test_is_public_holiday(r: Renderer, template: str, expected: str) -> None:
    """Kestra's IsPublicHolidayFunctionTest (core/src/test/java/io/kestra/core/runners/pebble/
    functions/), plus a subdivision that has holidays of its own and a `trigger.date`."""
    moment = datetime(2024, 7, 4, 9, 30, tzinfo=UTC)
    assert render(r, template, trigger={"date": moment}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ isPublicHoliday() }}", "The 'isPublicHoliday()' function expects a 'date' argument."),
        (
            "{{ isPublicHoliday('2024-12-25') }}",
            "The 'isPublicHoliday()' function expects a 'countryCode' argument.",
        ),
        (
            "{{ isPublicHoliday('not-a-date', 'FR') }}",
            "The 'isPublicHoliday()' function could not parse 'date'",
        ),
        (
            "{{ isPublicHoliday('2024-12-25', 'XX') }}",
            "no public holiday calendar for country 'XX': expected an ISO 3166-1 alpha-2 code",
        ),
    ],
)
def test_is_public_holiday_refuses_what_kestra_refuses(
    r: Renderer, template: str, message: str
) -> None:
    """IsPublicHolidayFunctionTest's missingDateThrows, missingCountryCodeThrows,
    invalidDateFormatThrows and invalidCountryCodeThrows."""
    with pytest.raises(TemplateError) as raised:
        render(r, template)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ isWeekend() }}", "The 'isWeekend()' function expects a 'date' argument."),
        ("{{ dayOfWeek(nothing) }}", "The 'dayOfWeek()' function expects a 'date' argument."),
        (
            "{{ isWeekend('not-a-date') }}",
            "The 'isWeekend()' function could not parse 'date': 'not-a-date' is not an "
            "ISO-8601 date or date-time",
        ),
        (
            "{{ hourOfDay('2025-01-06') }}",
            "The 'hourOfDay()' function needs a date-time, not the date 2025-01-06",
        ),
        (
            "{{ hourOfDay('noon') }}",
            "The 'hourOfDay()' function could not parse 'date': 'noon' is not an ISO-8601 "
            "date-time",
        ),
        (
            "{{ isDayWeekInMonth('2025-01-06', 'MONTAG', 'FIRST') }}",
            "invalid 'dayOfWeek' value: 'MONTAG'. Expected one of: MONDAY, TUESDAY",
        ),
        (
            "{{ isDayWeekInMonth('2025-01-06', 'MONDAY', 'FIFTH') }}",
            "invalid 'position' value: 'FIFTH'. Expected one of: FIRST, SECOND, THIRD, "
            "FOURTH, LAST.",
        ),
        (
            "{{ isLastWorkingDay('2025-05-30', 'MONDAY,FUNDAY') }}",
            "invalid 'workingDays' value: 'MONDAY,FUNDAY'. Expected day names among: MONDAY",
        ),
        ("{{ isLastWorkingDay() }}", "The 'isLastWorkingDay()' function expects a 'date'"),
        (
            "{{ isDayWeekInMonth('2025-01-06', 'MONDAY') }}",
            "The 'isDayWeekInMonth()' function expects a 'position' argument.",
        ),
    ],
)
def test_a_missing_or_malformed_argument_is_a_clear_error(
    r: Renderer, template: str, message: str
) -> None:
    with pytest.raises(TemplateError) as raised:
        render(r, template)
    assert message in str(raised.value)
