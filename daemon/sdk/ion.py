"""Amazon Ion text, the format of Kestra's stored files: one value (a row) per line.

Every file of rows podium stores (DuckDB and PostgreSQL `fetchType: STORE`, the broker
tasks' and triggers' message files, serdes' `*ToIon`) is written by `dumps`, and every
such file a task reads (serdes' `IonTo*`, the broker tasks' `from`) goes through
`iter_values`, so that podium writes one format and reads both its own files and the ones
Kestra wrote.

`dumps` writes field names as quoted strings and numbers the way JSON writes them where
Ion and JSON agree, so that most lines are JSON too: `iter_values` reads those with the
JSON parser (a number with a fraction is a decimal, with an exponent a float, as in Ion)
and hands only the others (timestamps, blobs, decimals with exponents, Kestra's
unquoted field names...) to the Ion parser below. Types map to Python as: null (any
typed null) -> None, int -> int, decimal -> Decimal, float -> float, timestamp ->
datetime (a date when it has no time part), string and symbol -> str, blob and clob ->
bytes, list and sexp -> list, struct -> dict; annotations are dropped.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

from daemon.sdk.durations import format_duration
from daemon.sdk.ionparse import IonError as IonError
from daemon.sdk.ionparse import Parser, _Incomplete

# -- writing -------------------------------------------------------------------------------


def _string(text: str) -> str:
    """JSON's string escapes (\\n, \\", \\uXXXX...) are Ion's too: the C encoder does it."""
    return _encode_string(text)


_encode_string = json.encoder.encode_basestring


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat() + "-00:00"  # Ion's "unknown offset"
    offset = value.utcoffset() or timedelta()
    text = value.replace(tzinfo=None).isoformat()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def dumps(value: Any) -> str:
    """One value as Ion text on one line."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "+inf" if value > 0 else "-inf"
        text = repr(value)
        return text if "e" in text else text + "e0"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return dumps(float(value))
        text = str(value).replace("E", "d")
        return text if "." in text or "d" in text else text + "."
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "{{" + base64.b64encode(bytes(value)).decode() + "}}"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_string(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, time):
        return _string(value.isoformat())
    if isinstance(value, timedelta):
        return _string(format_duration(value))
    if isinstance(value, UUID):
        return _string(str(value))
    return _string(str(value))


def write_values(out: BinaryIO, values: Iterator[Any] | list[Any]) -> int:
    """Write values one per line; returns how many."""
    count = 0
    for value in values:
        out.write((dumps(value) + "\n").encode())
        count += 1
    return count


# -- reading -------------------------------------------------------------------------------


def loads(text: str) -> Any:
    """Exactly one Ion value."""
    values = list(_parse_all(text))
    if len(values) != 1:
        raise IonError(f"expected one value, found {len(values)}")
    return values[0]


def _parse_all(text: str) -> Iterator[Any]:
    parser = Parser(text)
    while True:
        try:
            parser.skip()
            if parser.pos >= len(text):
                return
            yield parser.value()
        except _Incomplete:
            raise IonError("the text ends inside a value") from None


def _ion_number(text: str) -> float | Decimal:
    """A JSON number with a fraction is an Ion decimal, unless it has an exponent (a float)."""
    return float(text) if "e" in text or "E" in text else Decimal(text)


_json_line = json.JSONDecoder(parse_float=_ion_number).decode


def iter_values(path: Path) -> Iterator[Any]:
    """The top-level values of an Ion text file, read line by line (bounded memory).

    Blocking: iterate it off the event loop. Raises IonError naming the line.
    """
    with path.open("r", encoding="utf-8", newline="\n") as lines:
        pending, first = "", 0
        for number, line in enumerate(lines, 1):
            if not pending:
                if not line.strip() or line.lstrip().startswith("$ion_1_0"):
                    continue
                if line[0] in "{[":
                    try:
                        yield _json_line(line)
                        continue
                    except ValueError:
                        pass
                first = number
            pending += line
            parser = Parser(pending)
            values: list[Any] = []
            start = 0
            try:
                while True:
                    parser.skip()
                    if parser.pos >= len(pending):
                        break
                    start = parser.pos
                    if pending.startswith("$ion_1_0", start):
                        parser.pos += len("$ion_1_0")
                        continue
                    values.append(parser.value())
            except _Incomplete:
                pending = pending[start:]
                yield from values
                continue
            except IonError as exc:
                raise IonError(f"line {first}: {exc}") from None
            yield from values
            pending = ""
        if pending.strip():
            raise IonError(f"line {first}: the file ends inside a value")
