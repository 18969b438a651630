"""Values as Pebble shows and reads them: text, JSON, numbers and dates (Kestra's `date`,
`dateAdd` and `timestamp` filters on Java date patterns)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from jinja2 import Undefined

from daemon.expr import javadate

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_TYPES: dict[str, Callable[[str], int | float | Decimal]] = {
    "INT": int,
    "LONG": int,
    "BIGINTEGER": int,
    "FLOAT": float,
    "DOUBLE": float,
    "BIGDECIMAL": Decimal,
}


def to_text(value: Any) -> str:
    """How Pebble prints a value: null as nothing, `true`/`false`, maps and lists as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return to_json(value)
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept, dates as ISO-8601; a missing value inside fails loudly."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def from_json(text: Any) -> Any:
    """Parsed JSON; a value that is already structured (or null) is returned as it is."""
    return json.loads(text) if isinstance(text, str | bytes) else text


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Mapping):  # a lazily built map (the `tasks` variable)
        return dict(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _iso(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def to_moment(
    value: Any, time_zone: str | None, existing_format: str | None, locale: str | None = None
) -> datetime:
    if locale is not None and not locale.lower().startswith("en"):
        raise ValueError(f'locale "{locale}" is not supported (names are in English)')
    return javadate.to_datetime(value, javadate.zone(time_zone), existing_format)


def date_filter(
    value: Any,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str | None:
    if value is None:
        return None
    return javadate.format_date(to_moment(value, timeZone, existingFormat, locale), format)


def date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str | None:
    if value is None:
        return None
    moment = javadate.add(to_moment(value, timeZone, existingFormat, locale), amount, unit)
    return javadate.format_date(moment, format)


def timestamp(unit: timedelta, scale: int = 1) -> Callable[..., int | None]:
    def timestamp(
        value: Any, timeZone: str | None = None, existingFormat: str | None = None
    ) -> int | None:
        if value is None:
            return None
        return javadate.epoch(to_moment(value, timeZone, existingFormat), unit) * scale

    return timestamp


# -- structured data --------------------------------------------------------------------


def number(value: Any, type: str | None = None) -> int | float | Decimal:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and type is None:
        return value
    text = to_text(value).strip()
    kind = (type or ("INT" if _INTEGER.fullmatch(text) else "DOUBLE")).upper()
    if kind not in _NUMBER_TYPES:
        raise ValueError(f'unknown type "{type}" (expected one of {", ".join(_NUMBER_TYPES)})')
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f'cannot parse "{text}" as a number')
    convert = _NUMBER_TYPES[kind]
    if convert is int and not _INTEGER.fullmatch(text):
        raise ValueError(f'"{text}" is not an integer')
    return convert(text)
