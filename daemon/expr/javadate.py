"""Java `DateTimeFormatter` patterns and `ChronoUnit` arithmetic, as Kestra's date filters use them.

Flows written for Kestra format dates with Java pattern letters (`yyyy-MM-dd'T'HH:mm`), not
strftime codes, and shift them with `ChronoUnit` names; this module gives those the same
meaning in Python. Names (months, days, AM/PM) are English only, as with Java's default
locale. Everything raises `ValueError` with a message fit to show to the flow's author.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Part(NamedTuple):
    """One piece of a compiled pattern: a field (`letter` repeated `width` times) or `text`."""

    letter: str
    width: int = 0
    text: str = ""


_MONTHS = [calendar.month_name[m] for m in range(1, 13)]
_DAYS = [calendar.day_name[d] for d in range(7)]
# Most letters of each field Java accepts; more is "Too many pattern letters".
_MAX_COUNT = {
    "G": 5,
    "u": 19,
    "y": 19,
    "Y": 19,
    "Q": 5,
    "q": 5,
    "M": 5,
    "L": 5,
    "w": 2,
    "d": 2,
    "D": 3,
    "E": 5,
    "a": 1,
    "h": 2,
    "K": 2,
    "k": 2,
    "H": 2,
    "m": 2,
    "s": 2,
    "S": 9,
    "n": 19,
    "V": 2,
    "z": 3,
    "O": 4,
    "X": 5,
    "x": 5,
    "Z": 5,
}
_STRPTIME = {
    ("M", 1): "%m",
    ("M", 2): "%m",
    ("M", 3): "%b",
    ("M", 4): "%B",
    ("d", 1): "%d",
    ("d", 2): "%d",
    ("H", 1): "%H",
    ("H", 2): "%H",
    ("h", 1): "%I",
    ("h", 2): "%I",
    ("m", 1): "%M",
    ("m", 2): "%M",
    ("s", 1): "%S",
    ("s", 2): "%S",
    ("a", 1): "%p",
    ("E", 4): "%A",
    ("D", 1): "%j",
    ("D", 2): "%j",
    ("D", 3): "%j",
    ("z", 1): "%Z",
    ("z", 2): "%Z",
    ("z", 3): "%Z",
}
# In nanoseconds; Python keeps microseconds, so NANOS are rounded down to them.
_TIME_UNITS = {
    "NANOS": 1,
    "MICROS": 1_000,
    "MILLIS": 1_000_000,
    "SECONDS": 1_000_000_000,
    "MINUTES": 60_000_000_000,
    "HOURS": 3_600_000_000_000,
    "HALF_DAYS": 43_200_000_000_000,
}
_DAY_UNITS = {"DAYS": 1, "WEEKS": 7}
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STRPTIME_FIELD = re.compile(r"%(.)")


def zone(name: str | None) -> tzinfo:
    """A `ZoneId.of` equivalent; UTC when none is given, where Kestra uses the JVM's zone."""
    if name is None or name == "Z":
        return UTC
    offset = re.fullmatch(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?", name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone "{name}"') from None


def to_datetime(value: object, tz: tzinfo, existing_format: str | None = None) -> datetime:
    """Read any date-like value the way Kestra's filters accept it, then view it in `tz`.

    A value without a zone is taken to be in `tz`; a date alone means noon, as in Kestra.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(12))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {value} is out of range") from None
    elif isinstance(value, str):
        moment = parse(value, existing_format)
    else:
        raise ValueError(f"a {type(value).__name__} is not a date")
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def parse(text: str, existing_format: str | None = None) -> datetime:
    """Parse ISO-8601 (with `Z`, an offset, a `[Zone]` suffix or no zone) or a Java pattern."""
    if existing_format is None or existing_format in _NAMED:
        try:
            return datetime.fromisoformat(re.sub(r"\[[^\]]*\]$", "", text.strip()))
        except ValueError:
            raise ValueError(
                f'cannot parse "{text}" as a date (expected ISO-8601; give existingFormat'
                " for other layouts)"
            ) from None
    layout = _strptime_pattern(existing_format)
    fields = _STRPTIME_FIELD.findall(layout.replace("%%", ""))
    if len(set(fields)) < len(fields):  # strptime fails on these with a regex error
        raise ValueError(
            f'pattern "{existing_format}" cannot be used to read dates (a field appears twice)'
        )
    try:
        return datetime.strptime(text, layout)
    except ValueError:
        raise ValueError(f'cannot parse "{text}" with pattern "{existing_format}"') from None


def format_date(moment: datetime, pattern: str) -> str:
    """Format with a named Kestra format (`iso`, `sql`, `iso_date`…) or a Java pattern."""
    named = _NAMED.get(pattern)
    if named is not None:
        return named(moment)
    return "".join(
        _field(moment, part.letter, part.width) if part.letter else part.text
        for part in compile_pattern(pattern)
        if part.letter not in ("[", "]")
    )


def add(moment: datetime, amount: int, unit: str) -> datetime:
    """`ZonedDateTime.plus(amount, ChronoUnit.valueOf(unit))`: time units on the timeline,
    days and up on the calendar (a month after January 31st is the end of February)."""
    try:
        return _plus(moment, amount, unit)
    except OverflowError:
        raise ValueError(
            f"{amount} {unit} from {moment.isoformat()} is out of range (years 1 to 9999)"
        ) from None


def _plus(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in _TIME_UNITS:
        tz = moment.tzinfo
        delta = timedelta(microseconds=amount * _TIME_UNITS[unit] // 1000)
        return (moment.astimezone(UTC) + delta).astimezone(tz)
    if unit in _DAY_UNITS:
        return moment + timedelta(days=amount * _DAY_UNITS[unit])
    if unit in _MONTH_UNITS:
        months = moment.year * 12 + moment.month - 1 + amount * _MONTH_UNITS[unit]
        year, month = divmod(months, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)
    units = ", ".join([*_TIME_UNITS, *_DAY_UNITS, *_MONTH_UNITS])
    raise ValueError(f'unknown unit "{unit}" (expected one of {units})')


def epoch(moment: datetime, unit: timedelta) -> int:
    """Whole `unit`s since 1970-01-01T00:00Z, exact (no float rounding)."""
    return (moment - _EPOCH) // unit


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> tuple[Part, ...]:
    """Split a Java pattern into fields and literals, refusing what Java refuses."""
    tokens: list[Part] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            while end != -1 and pattern[end + 1 : end + 2] == "'":
                end = pattern.find("'", end + 2)
            if end == -1:
                raise ValueError(f'invalid date pattern "{pattern}": unterminated quote')
            text = "'" if end == i + 1 else pattern[i + 1 : end].replace("''", "'")
            tokens.append(Part("", text=text))
            i = end + 1
        elif char.isascii() and char.isalpha():
            count = len(pattern[i:]) - len(pattern[i:].lstrip(char))
            if char not in _MAX_COUNT:
                raise ValueError(f"invalid date pattern \"{pattern}\": unknown letter '{char}'")
            if count > _MAX_COUNT[char] or (char == "V" and count != 2):
                raise ValueError(
                    f"invalid date pattern \"{pattern}\": too many letters '{char * count}'"
                )
            tokens.append(Part(char, count))
            i += count
        elif char in "#{}":
            raise ValueError(f"invalid date pattern \"{pattern}\": reserved character '{char}'")
        else:
            tokens.append(Part(char) if char in "[]" else Part("", text=char))
            i += 1
    return tuple(tokens)


def _field(moment: datetime, letter: str, count: int) -> str:
    """One pattern field of `moment`, printed as `DateTimeFormatter` prints it."""
    if letter in "uy":
        return f"{moment.year % 100:02d}" if count == 2 else f"{moment.year:0{count}d}"
    if letter == "Y":
        year = moment.isocalendar().year
        return f"{year % 100:02d}" if count == 2 else f"{year:0{count}d}"
    if letter in "ML":
        return _text_or_number(moment.month, _MONTHS[moment.month - 1], count)
    if letter in "Qq":
        quarter = (moment.month - 1) // 3 + 1
        names = {3: f"Q{quarter}", 4: f"{quarter}{['st', 'nd', 'rd', 'th'][quarter - 1]} quarter"}
        return names.get(count, f"{quarter:0{count}d}")
    if letter == "E":
        name = _DAYS[moment.weekday()]
        return {4: name, 5: name[0]}.get(count, name[:3])
    if letter == "G":
        return {4: "Anno Domini", 5: "A"}.get(count, "AD")
    if letter == "a":
        return "AM" if moment.hour < 12 else "PM"
    if letter == "S":
        return f"{moment.microsecond:06d}000"[:count]
    if letter in "VzOXxZ":
        return _zone_field(moment, letter, count)
    numbers = {
        "d": moment.day,
        "D": moment.timetuple().tm_yday,
        "w": moment.isocalendar().week,
        "H": moment.hour,
        "m": moment.minute,
        "s": moment.second,
        "h": (moment.hour - 1) % 12 + 1,
        "K": moment.hour % 12,
        "k": moment.hour or 24,
        "n": moment.microsecond * 1000,
    }
    return f"{numbers[letter]:0{count}d}"


def _text_or_number(number: int, name: str, count: int) -> str:
    return {3: name[:3], 4: name, 5: name[0]}.get(count, f"{number:0{count}d}")


def _zone_field(moment: datetime, letter: str, count: int) -> str:
    offset = moment.utcoffset() or timedelta(0)
    if letter == "V":
        return getattr(moment.tzinfo, "key", None) or _offset(offset, colon=True, zulu=True)
    if letter == "z":
        return moment.tzname() or _offset(offset, colon=True, zulu=True)
    if letter == "O" or (letter == "Z" and count == 4):
        return _gmt(offset, long=count == 4)
    if letter == "Z":
        return _offset(offset, colon=count == 5, zulu=count == 5)
    zulu = letter == "X"
    if count == 1:
        minutes = int(offset.total_seconds()) // 60 % 60
        text = _offset(offset, colon=False, zulu=zulu)
        return text if text == "Z" or minutes else text[:3]
    return _offset(offset, colon=count in (3, 5), zulu=zulu, seconds=count >= 4)


def _offset(offset: timedelta, *, colon: bool, zulu: bool, seconds: bool = False) -> str:
    total = int(offset.total_seconds())
    if total == 0 and zulu:
        return "Z"
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, secs = divmod(rest, 60)
    sep = ":" if colon else ""
    text = f"{sign}{hours:02d}{sep}{minutes:02d}"
    return f"{text}{sep}{secs:02d}" if seconds and secs else text


def _gmt(offset: timedelta, *, long: bool) -> str:
    total = int(offset.total_seconds())
    if total == 0:
        return "GMT"
    if long:
        return "GMT" + _offset(offset, colon=True, zulu=False, seconds=True)
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    return f"GMT{sign}{hours}" + (f":{rest // 60:02d}" if rest else "")


def _strptime_pattern(pattern: str) -> str:
    """The strptime format reading what `pattern` writes, for `existingFormat`."""
    out = []
    for letter, count, text in compile_pattern(pattern):
        if not letter:
            out.append(text.replace("%", "%%"))
        elif letter in "uy":
            out.append("%y" if count == 2 else "%Y")
        elif letter == "S" and count <= 6:
            out.append("%f")
        elif letter == "E" and count <= 3:
            out.append("%a")
        elif letter in "XxZ" and count != 4:
            out.append("%z")
        elif (letter, count) in _STRPTIME:
            out.append(_STRPTIME[(letter, count)])
        else:
            shown = letter * count if letter not in "[]" else letter
            raise ValueError(f"pattern \"{pattern}\" cannot be used to read dates ('{shown}')")
    return "".join(out)


def _fraction(moment: datetime, group: int = 1) -> str:
    """Java's ISO fraction: omitted when zero, else only the digits needed (in `group`s)."""
    if not moment.microsecond:
        return ""
    digits = f"{moment.microsecond:06d}".rstrip("0")
    width = -(-len(digits) // group) * group
    return "." + digits.ljust(width, "0")


def _local_time(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S") + _fraction(moment)


def _offset_id(moment: datetime) -> str:
    return _offset(moment.utcoffset() or timedelta(0), colon=True, zulu=True, seconds=True)


def _zoned(moment: datetime) -> str:
    key = getattr(moment.tzinfo, "key", None)
    text = f"{moment.date().isoformat()}T{_local_time(moment)}{_offset_id(moment)}"
    return f"{text}[{key}]" if key else text


def _rfc_1123(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    zone_text = "GMT" if not offset else _offset(offset, colon=False, zulu=False)
    return (
        f"{_DAYS[moment.weekday()][:3]}, {moment.day} {_MONTHS[moment.month - 1][:3]} "
        f"{moment.year} {moment.strftime('%H:%M:%S')} {zone_text}"
    )


def _week_date(moment: datetime) -> str:
    year, week, day = moment.isocalendar()
    return f"{year}-W{week:02d}-{day}{_offset_id(moment)}"


def _instant(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc.date().isoformat()}T{utc.strftime('%H:%M:%S')}{_fraction(utc, 3)}Z"


_NAMED: dict[str, Callable[[datetime], str]] = {
    "iso": lambda m: format_date(m, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"),
    "iso_sec": lambda m: format_date(m, "yyyy-MM-dd'T'HH:mm:ssXXX"),
    "sql": lambda m: format_date(m, "yyyy-MM-dd HH:mm:ss.SSSSSS"),
    "sql_seq": lambda m: format_date(m, "yyyy-MM-dd HH:mm:ss"),
    "iso_date_time": _zoned,
    "iso_zoned_date_time": _zoned,
    "iso_offset_date_time": lambda m: f"{m.date().isoformat()}T{_local_time(m)}{_offset_id(m)}",
    "iso_local_date_time": lambda m: f"{m.date().isoformat()}T{_local_time(m)}",
    "iso_date": lambda m: m.date().isoformat() + _offset_id(m),
    "iso_local_date": lambda m: m.date().isoformat(),
    "iso_time": lambda m: _local_time(m) + _offset_id(m),
    "iso_offset_time": lambda m: _local_time(m) + _offset_id(m),
    "iso_local_time": _local_time,
    "iso_instant": _instant,
    "iso_ordinal_date": lambda m: f"{m.year}-{m.timetuple().tm_yday:03d}{_offset_id(m)}",
    "iso_week_date": _week_date,
    "rfc_1123_date_time": _rfc_1123,
}
