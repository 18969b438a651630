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
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

from daemon.sdk.durations import format_duration


class IonError(ValueError):
    """Text that is not Ion; the message names the line."""


# -- writing -------------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"'}


def _string(text: str) -> str:
    if not any(c in _ESCAPES or c < " " or c == "\x7f" for c in text):
        return '"' + text + '"'
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


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


class _Incomplete(Exception):
    """The text ends inside a value: more lines are needed."""


_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|(?:\d[\d_]*)(?:\.[\d_]*)?(?:[eEdD][+-]?\d+)?)"
)
_TIMESTAMP = re.compile(
    r"(\d{4})(?:-(\d\d)(?:-(\d\d))?)?T"
    r"(?:(\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?(Z|[+-]\d\d:\d\d))?"
    r"|(\d{4})-(\d\d)-(\d\d)(?![\dT])"
)
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_OPERATOR = re.compile(r"[!#%&*+\-./;<=>?@^`|~]+")
_STOPS = set(" \t\r\n,]}):/")
_TYPED_NULL = re.compile(
    r"null\.(?:null|bool|int|float|decimal|timestamp|string|symbol|blob|clob|struct|list|sexp)"
)
_ESCAPE_CHARS = {
    "n": "\n", "t": "\t", "r": "\r", "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
    "\\": "\\", '"': '"', "'": "'", "/": "/", "?": "?",
}  # fmt: skip


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            char = text[self.pos]
            if char in " \t\r\n\v\f":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise _Incomplete
                self.pos = end + 2
            else:
                return

    def peek(self) -> str:
        self.skip()
        if self.pos >= len(self.text):
            raise _Incomplete
        return self.text[self.pos]

    def error(self, what: str) -> IonError:
        return IonError(f"{what} at character {self.pos + 1}")

    def value(self, in_sexp: bool = False) -> Any:
        char = self.peek()
        if char == "{":
            if self.text.startswith("{{", self.pos):
                return self.lob()
            return self.struct()
        if char == "[":
            return self.sequence("]", False)
        if char == "(":
            return self.sequence(")", True)
        if char == '"':
            return self.string()
        if char == "'":
            if self.text.startswith("'''", self.pos):
                return self.long_strings()
            symbol = self.quoted("'")
            return self.annotated(symbol, in_sexp)
        if char.isdigit() or (char in "+-" and self.text[self.pos + 1 : self.pos + 2].isdigit()):
            return self.scalar()
        if char == "-" and self.text.startswith("-inf", self.pos):
            self.pos += 4
            return -math.inf
        if char == "+" and self.text.startswith("+inf", self.pos):
            self.pos += 4
            return math.inf
        match = _IDENT.match(self.text, self.pos)
        if match:
            word = match.group()
            self.pos = match.end()
            if word == "null":
                typed = _TYPED_NULL.match(self.text, match.start())
                if typed:
                    self.pos = typed.end()
                return None
            if word in ("true", "false"):
                return word == "true"
            if word == "nan":
                return math.nan
            return self.annotated(word, in_sexp)
        if in_sexp:
            operator = _OPERATOR.match(self.text, self.pos)
            if operator:
                self.pos = operator.end()
                return operator.group()
        raise self.error(f"unexpected {char!r}")

    def annotated(self, symbol: str, in_sexp: bool) -> Any:
        """`symbol::value` is an annotation, dropped; a bare symbol is its text."""
        self.skip()
        if self.text.startswith("::", self.pos):
            self.pos += 2
            return self.value(in_sexp)
        return symbol

    def scalar(self) -> Any:
        stamp = _TIMESTAMP.match(self.text, self.pos)
        if stamp and stamp.group(0):
            self.pos = stamp.end()
            return _to_timestamp(stamp)
        number = _NUMBER.match(self.text, self.pos)
        if not number or not number.group():
            raise self.error("not a number")
        self.pos = number.end()
        if self.pos < len(self.text) and self.text[self.pos] not in _STOPS:
            raise self.error("malformed number")
        text = number.group().replace("_", "")
        low = text.lower()
        if low.lstrip("+-").startswith(("0x", "0b")):
            return int(text, 0)
        if "e" in low:
            return float(text)
        if "d" in low or "." in low:
            return Decimal(low.replace("d", "e"))
        return int(text)

    def quoted(self, quote: str) -> str:
        text, out = self.text, []
        self.pos += 1
        while True:
            end = self.pos
            while end < len(text) and text[end] not in (quote, "\\"):
                end += 1
            out.append(text[self.pos : end])
            if end >= len(text):
                raise _Incomplete
            if text[end] == quote:
                self.pos = end + 1
                return "".join(out)
            self.pos = end + 1
            out.append(self.escape())

    def escape(self) -> str:
        text = self.text
        if self.pos >= len(text):
            raise _Incomplete
        char = text[self.pos]
        self.pos += 1
        if char in _ESCAPE_CHARS:
            return _ESCAPE_CHARS[char]
        width = {"x": 2, "u": 4, "U": 8}.get(char)
        if width is not None:
            digits = text[self.pos : self.pos + width]
            self.pos += width
            try:
                return chr(int(digits, 16))
            except ValueError:
                raise self.error("bad escape") from None
        if char == "\n":
            return ""
        raise self.error(f"unknown escape \\{char}")

    def string(self) -> str:
        return self.quoted('"')

    def long_strings(self) -> str:
        parts = []
        while True:
            self.pos += 3
            end = self.text.find("'''", self.pos)
            if end < 0:
                raise _Incomplete
            inner = _Parser(self.text[self.pos : end].replace("'", "\\'") + "'")
            inner.pos = -1
            parts.append(inner.quoted("'"))
            self.pos = end + 3
            self.skip()
            if not self.text.startswith("'''", self.pos):
                return "".join(parts)

    def lob(self) -> bytes:
        end = self.text.find("}}", self.pos + 2)
        if end < 0:
            raise _Incomplete
        inside = self.text[self.pos + 2 : end].strip()
        self.pos = end + 2
        if inside.startswith(('"', "'''")):
            clob = _Parser(inside)
            return str(clob.value()).encode("latin-1")
        try:
            return base64.b64decode("".join(inside.split()), validate=True)
        except ValueError:
            raise self.error("bad base64 in a blob") from None

    def sequence(self, close: str, sexp: bool) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            if self.peek() == close:
                self.pos += 1
                return items
            items.append(self.value(in_sexp=sexp))
            if not sexp:
                char = self.peek()
                if char == ",":
                    self.pos += 1
                elif char != close:
                    raise self.error(f"expected ',' or '{close}'")

    def struct(self) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        while True:
            char = self.peek()
            if char == "}":
                self.pos += 1
                return out
            if char == '"':
                name = self.string()
            elif char == "'":
                name = self.quoted("'")
            else:
                match = _IDENT.match(self.text, self.pos)
                if not match:
                    raise self.error("expected a field name")
                name, self.pos = match.group(), match.end()
            if self.peek() != ":":
                raise self.error("expected ':' after a field name")
            self.pos += 1
            out[name] = self.value()
            char = self.peek()
            if char == ",":
                self.pos += 1
            elif char != "}":
                raise self.error("expected ',' or '}'")


def _to_timestamp(match: re.Match[str]) -> datetime | date:
    if match.group(9):  # YYYY-MM-DD without T
        return date(int(match.group(9)), int(match.group(10)), int(match.group(11)))
    year, month, day = int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1)
    if match.group(4) is None:
        return date(year, month, day)
    fraction = match.group(7) or ""
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    offset = match.group(8)
    tz: timezone | None
    if offset == "Z" or offset == "+00:00":
        tz = UTC
    elif offset == "-00:00":
        tz = None
    else:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    return datetime(
        year, month, day, int(match.group(4)), int(match.group(5)), int(match.group(6) or 0),
        micro, tzinfo=tz,
    )  # fmt: skip


def loads(text: str) -> Any:
    """Exactly one Ion value."""
    values = list(_parse_all(text))
    if len(values) != 1:
        raise IonError(f"expected one value, found {len(values)}")
    return values[0]


def _parse_all(text: str) -> Iterator[Any]:
    parser = _Parser(text)
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
            parser = _Parser(pending)
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
