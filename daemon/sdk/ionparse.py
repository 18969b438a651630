"""The Ion text parser behind `daemon.sdk.ion` (its reading side)."""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any


class IonError(ValueError):
    """Text that is not Ion; the message names the line."""


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


class Parser:
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
            inner = Parser(self.text[self.pos : end].replace("'", "\\'") + "'")
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
            clob = Parser(inside)
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
