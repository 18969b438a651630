"""Public holidays of a country (and of one of its subdivisions), for the PublicHoliday
condition and the `isPublicHoliday()` function.

Kestra answers both from the Jollyday library; podium from python-holidays, which covers
the same countries and more, by ISO 3166-1 alpha-2 code. Two behaviours follow Jollyday's:
a subdivision the calendar does not know is not an error, the country's holidays answer
(Kestra's own test asks France's `IDF`); and a condition without a country takes it from
the machine's locale, as Java's default locale gives it (`LANG=fr_FR.UTF-8`: France).
The calendars load only when a flow asks (the library is ~1.7 MB of data modules), and
are kept per country and subdivision, a few at most.
"""

from __future__ import annotations

import os
import re
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holidays import HolidayBase

_LOCALE = re.compile(r"^[A-Za-z]{2,3}_([A-Za-z]{2})(?:[.@]|$)")


class UnknownCountry(ValueError):
    """No holiday calendar for this country code."""


def is_public_holiday(day: date, country: str, subdivision: str | None = None) -> bool:
    """Whether `day` is a public holiday in `country` (ISO 3166-1 alpha-2, any case), in
    `subdivision` (ISO 3166-2, with or without the `FR-` prefix) when given and known."""
    code = country.strip().upper()
    region = (subdivision or "").strip().upper()
    region = region.removeprefix(f"{code}-")
    return day in _calendar(code, region or None)


def check_country(country: str) -> str:
    """The code, upper-cased, or `UnknownCountry` saying so."""
    code = country.strip().upper()
    _calendar(code, None)
    return code


def locale_country() -> str | None:
    """The country of the machine's locale (LC_ALL, then LC_TIME, then LANG), as Java's
    default locale has it; None for C, POSIX or a locale without one."""
    for name in ("LC_ALL", "LC_TIME", "LANG"):
        value = os.environ.get(name)
        if value:
            match = _LOCALE.match(value)
            return match.group(1).upper() if match else None
    return None


@lru_cache(maxsize=16)
def _calendar(country: str, subdivision: str | None) -> HolidayBase:
    import holidays  # here: its data modules load only when a flow asks

    try:
        if subdivision is not None:
            try:
                return holidays.country_holidays(country, subdiv=subdivision)
            except NotImplementedError:
                if country not in holidays.list_supported_countries():
                    raise
                # Jollyday's answer for a region it does not know: the country's holidays
        return holidays.country_holidays(country)
    except NotImplementedError:
        raise UnknownCountry(
            f"no public holiday calendar for country {country!r}: expected an ISO 3166-1 "
            "alpha-2 code such as FR, US or DE"
        ) from None
