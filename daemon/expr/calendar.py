"""Kestra's calendar functions: `dayOfWeek`, `dayOfMonth`, `monthOfYear`, `hourOfDay`,
`isWeekend`, `isDayWeekInMonth`, `isLastWorkingDay`, `isPublicHoliday`, `isDateBefore`,
`isDateAfter` and `isDateBetween`, which
flows use to route on the calendar (skip a weekend run, act on the first Monday of the
month, only within a campaign's dates).

As Kestra's, they read the date as it is written, in its own offset: no conversion to UTC
("2025-01-06T00:30:00+02:00" is a Monday). A date may be a `datetime`/`date` (as
`trigger.date` is) or ISO-8601 text, with a `[Zone/Id]` suffix as Java prints it.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jinja2 import Undefined

from daemon.sdk.errors import TemplateError
from daemon.sdk.public_holidays import UnknownCountry, is_public_holiday

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
POSITIONS = ("FIRST", "SECOND", "THIRD", "FOURTH", "LAST")


def _given(function: str, name: str, value: Any) -> Any:
    if value is None or isinstance(value, Undefined):
        raise TemplateError(f"The '{function}()' function expects a '{name}' argument.")
    return value


def _moment(function: str, value: Any, *, with_time: bool) -> date | datetime:
    """The date (or date-time, when `with_time`) the argument names, as written."""
    value = _given(function, "date", value)
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        if with_time:
            raise TemplateError(
                f"The '{function}()' function needs a date-time, not the date {value}"
            )
        return value
    text = str(value).strip()
    text = text.split("[", 1)[0] if text.endswith("]") else text
    if "T" in text or not with_time:
        try:
            return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
        except ValueError:
            pass
    elif _is_date(text):
        raise TemplateError(f"The '{function}()' function needs a date-time, not the date {text}")
    kind = "date-time" if with_time else "date or date-time"
    raise TemplateError(
        f"The '{function}()' function could not parse 'date': {str(value)!r} is not an "
        f"ISO-8601 {kind}"
    )


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _day(function: str, value: Any) -> date:
    moment = _moment(function, value, with_time=False)
    return moment.date() if isinstance(moment, datetime) else moment


def day_of_week(date: Any = None) -> str:
    return DAYS[_day("dayOfWeek", date).weekday()]


def day_of_month(date: Any = None) -> int:
    return _day("dayOfMonth", date).day


def month_of_year(date: Any = None) -> int:
    return _day("monthOfYear", date).month


def hour_of_day(date: Any = None) -> int:
    moment = _moment("hourOfDay", date, with_time=True)
    assert isinstance(moment, datetime)
    return moment.hour


def is_weekend(date: Any = None) -> bool:
    return _day("isWeekend", date).weekday() >= 5


def is_day_week_in_month(date: Any = None, dayOfWeek: Any = None, position: Any = None) -> bool:
    """Whether `date` is the FIRST..FOURTH or LAST `dayOfWeek` of its month."""
    day = _day("isDayWeekInMonth", date)
    weekday = str(_given("isDayWeekInMonth", "dayOfWeek", dayOfWeek)).upper()
    if weekday not in DAYS:
        raise TemplateError(
            f"The 'isDayWeekInMonth()' function received an invalid 'dayOfWeek' value: "
            f"'{dayOfWeek}'. Expected one of: {', '.join(DAYS)}."
        )
    where = str(_given("isDayWeekInMonth", "position", position)).upper()
    if where not in POSITIONS:
        raise TemplateError(
            f"The 'isDayWeekInMonth()' function received an invalid 'position' value: "
            f"'{position}'. Expected one of: {', '.join(POSITIONS)}."
        )
    target = DAYS.index(weekday)
    if where == "LAST":
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        wanted = last - timedelta(days=(last.weekday() - target) % 7)
    else:
        first = day.replace(day=1)
        wanted = first + timedelta(days=(target - first.weekday()) % 7 + 7 * POSITIONS.index(where))
    return wanted == day


def is_last_working_day(date: Any = None, workingDays: Any = None) -> bool:
    """Whether `date` is the last working day of its month: Monday to Friday, or the days
    `workingDays` names (comma-separated text, as Kestra documents it, or a list)."""
    day = _day("isLastWorkingDay", date)
    working = _working_days(workingDays)
    last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    while DAYS[last.weekday()] not in working:
        last -= timedelta(days=1)
        if last.month != day.month:
            return False  # no working day in the month at all
    return last == day


def _working_days(value: Any) -> frozenset[str]:
    if value is None or isinstance(value, Undefined):
        return frozenset(DAYS[:5])
    names = value.split(",") if isinstance(value, str) else list(value)
    days = frozenset(str(name).strip().upper() for name in names)
    wrong = sorted(days - set(DAYS))
    if wrong or not days:
        raise TemplateError(
            f"The 'isLastWorkingDay()' function received an invalid 'workingDays' value: "
            f"'{value}'. Expected day names among: {', '.join(DAYS)}."
        )
    return days


def is_public_holiday_function(
    date: Any = None, countryCode: Any = None, subDivision: Any = None
) -> bool:
    """Whether `date` is a public holiday in the country `countryCode` (required, no locale
    fallback, as Kestra's function), in `subDivision` when given (blank: the country)."""
    day = _day("isPublicHoliday", date)
    country = str(_given("isPublicHoliday", "countryCode", countryCode))
    region = None if subDivision is None or isinstance(subDivision, Undefined) else subDivision
    try:
        return is_public_holiday(day, country, str(region) if region is not None else None)
    except UnknownCountry as exc:
        raise TemplateError(f"The 'isPublicHoliday()' function: {exc}") from None


def _instant(function: str, name: str, value: Any, *, offset_required: bool) -> datetime:
    """An instant to compare: a date-time, or ISO-8601 text. isDateBefore/isDateAfter (Kestra's
    DateUtils.parseInstant) take a plain date or a date-time without offset as UTC;
    isDateBetween (TypeConverter.toZonedDateTime) needs the offset."""
    value = _given(function, name, value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        text = text.split("[", 1)[0] if text.endswith("]") else text
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise TemplateError(
                f"The '{function}()' function could not parse '{name}': {str(value)!r} is not "
                "an ISO-8601 date or date-time"
            ) from None
    if moment.tzinfo is None:
        if offset_required:
            raise TemplateError(
                f"The '{function}()' function could not parse '{name}': {str(value)!r} has no "
                "time zone offset"
            )
        moment = moment.replace(tzinfo=UTC)
    return moment


def is_date_before(date: Any = None, reference: Any = None) -> bool:
    """Strictly before, compared as instants."""
    moment = _instant("isDateBefore", "date", date, offset_required=False)
    return moment < _instant("isDateBefore", "reference", reference, offset_required=False)


def is_date_after(date: Any = None, reference: Any = None) -> bool:
    """Strictly after, compared as instants."""
    moment = _instant("isDateAfter", "date", date, offset_required=False)
    return moment > _instant("isDateAfter", "reference", reference, offset_required=False)


def is_date_between(date: Any = None, after: Any = None, before: Any = None) -> bool:
    """Strictly after `after` and strictly before `before`, compared as instants."""
    moment = _instant("isDateBetween", "date", date, offset_required=True)
    low = _instant("isDateBetween", "after", after, offset_required=True)
    return low < moment < _instant("isDateBetween", "before", before, offset_required=True)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isDateBefore": is_date_before,
    "isDateAfter": is_date_after,
    "isDateBetween": is_date_between,
    "dayOfWeek": day_of_week,
    "dayOfMonth": day_of_month,
    "monthOfYear": month_of_year,
    "hourOfDay": hour_of_day,
    "isWeekend": is_weekend,
    "isDayWeekInMonth": is_day_week_in_month,
    "isLastWorkingDay": is_last_working_day,
    "isPublicHoliday": is_public_holiday_function,
}
