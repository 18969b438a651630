"""ISO-8601 durations (PT15S, P1DT2H, PT0.5S) as Kestra writes them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_NUM = r"\d+(?:[.,]\d+)?"
_DURATION = re.compile(
    rf"^(?P<sign>[-+])?P(?:(?P<weeks>{_NUM})W)?(?:(?P<days>{_NUM})D)?"
    rf"(?:T(?:(?P<hours>{_NUM})H)?(?:(?P<minutes>{_NUM})M)?(?:(?P<seconds>{_NUM})S)?)?$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration; raise ValueError with the expected form otherwise."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO-8601 duration (expected e.g. PT15S, PT1H30M, P1D)"
        )
    parts = {
        k: float(v.replace(",", ".")) for k, v in match.groupdict().items() if v and k != "sign"
    }
    delta = timedelta(**parts)
    return -delta if match.group("sign") == "-" else delta


def format_duration(delta: timedelta) -> str:
    """The canonical ISO form: PT15S, PT1H30M, P1DT2H."""
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}P"
    if days:
        out += f"{int(days)}D"
    time = ""
    if hours:
        time += f"{int(hours)}H"
    if minutes:
        time += f"{int(minutes)}M"
    if seconds or not (days or hours or minutes):
        time += f"{seconds:g}S"
    return out + ("T" + time if time else "")


def _coerce(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"{value!r} is not an ISO-8601 duration (expected e.g. PT15S)")


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
]
