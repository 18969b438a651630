"""Amazon Ion text, as far as Kestra's files use it: `fromIon()` reads what a JDBC `STORE`
(or any Ion-writing task) produced, `toIon` writes a value.

Read: structs, lists, strings (short and long), symbols, numbers (int, decimal, float,
`nan`/`inf`), booleans, typed nulls, timestamps (kept as their ISO text), blobs and clobs
(base64 text); annotations are dropped. S-expressions are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<space>(?:\s|//[^\n]*|/\*.*?\*/)+)
  | (?P<long>'''(?:[^'\\]|\\.|'(?!''))*''')
  | (?P<quoted>'(?:[^'\\\n]|\\.)*')
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<blob>\{\{.*?\}\})
  | (?P<timestamp>\d{4}-\d{2}-\d{2}(?:T(?:\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?)?
        |\d{4}(?:-\d{2})?T)
  | (?P<number>[+-]inf|-?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+
        |\d[\d_]*(?:\.[\d_]*)?(?:[eEdD][+-]?\d+)?|\.\d+))
  | (?P<symbol>[A-Za-z_$][A-Za-z0-9_$]*(?:\.[a-z]+)?)
  | (?P<punct>::|[{}\[\](),:])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "v": "\v",
            "a": "\a", "\\": "\\", "'": "'", '"': '"', "/": "/", "?": "?"}  # fmt: skip
_UNICODE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


class IonError(ValueError):
    """Text that is not Ion podium can read."""


def loads(text: str | bytes, all_rows: bool = False) -> Any:
    """The first value of the Ion text (every value, as a list, with `all_rows`)."""
    if isinstance(text, bytes):
        if text.startswith(b"\xe0\x01\x00\xea"):
            raise IonError("binary Ion is not supported; write Ion text")
        text = text.decode("utf-8")
    reader = _Reader(text)
    values = []
    while not reader.at_end():
        values.append(reader.value())
        if not all_rows:
            break
    if all_rows:
        return values
    return values[0] if values else None


def dumps(value: Any) -> str:
    """A value as Ion text (maps as structs, lists, strings, numbers, booleans, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "+inf" if value > 0 else "-inf"
        text = repr(value)
        return text if "e" in text else text + "e0"
    if isinstance(value, Decimal):
        text = str(value).replace("E", "d")
        return text if "." in text or "d" in text else text + "."
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        fields = ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + fields + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(str(value))


class _Reader:
    def __init__(self, text: str) -> None:
        self._tokens = [
            (m.lastgroup or "", m.group()) for m in _tokens(text) if m.lastgroup != "space"
        ]
        self._at = 0

    def at_end(self) -> bool:
        return self._at >= len(self._tokens)

    def _next(self) -> tuple[str, str]:
        if self.at_end():
            raise IonError("the Ion text ends in the middle of a value")
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _peek(self) -> tuple[str, str] | None:
        return None if self.at_end() else self._tokens[self._at]

    def value(self) -> Any:
        kind, text = self._next()
        while (following := self._peek()) is not None and following[1] == "::":
            self._at += 1  # an annotation: dropped
            kind, text = self._next()
        if kind == "punct":
            if text == "{":
                return self._struct()
            if text == "[":
                return self._list()
            raise IonError(f"unexpected {text!r} in the Ion text (s-expressions are not read)")
        return _scalar(kind, text)

    def _struct(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            kind, text = self._next()
            if text == "}":
                return out
            if text == ",":
                continue
            name = _scalar(kind, text) if kind in ("string", "quoted", "long") else text
            if self._next()[1] != ":":
                raise IonError(f"expected ':' after the field {name!r}")
            out[str(name)] = self.value()

    def _list(self) -> list[Any]:
        out: list[Any] = []
        while True:
            following = self._peek()
            if following is not None and following[1] == "]":
                self._at += 1
                return out
            if following is not None and following[1] == ",":
                self._at += 1
                continue
            out.append(self.value())


def _tokens(text: str) -> list[re.Match[str]]:
    found, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise IonError(f"cannot read the Ion text at {text[at : at + 20]!r}")
        found.append(match)
        at = match.end()
    return found


def _scalar(kind: str, text: str) -> Any:
    if kind == "string":
        return _unescape(text[1:-1])
    if kind == "quoted":
        return _unescape(text[1:-1])
    if kind == "long":
        return _unescape(text[3:-3])
    if kind == "blob":
        return text[2:-2].strip()
    if kind == "timestamp":
        return text
    if kind == "number":
        return _number(text)
    if kind == "symbol":
        if text == "true" or text == "false":
            return text == "true"
        if text == "null" or text.startswith("null."):
            return None
        if text == "nan":
            return math.nan
        return text
    raise IonError(f"unexpected {text!r} in the Ion text")


def _number(text: str) -> Any:
    clean = text.replace("_", "")
    if clean in ("+inf", "-inf"):
        return math.inf if clean[0] == "+" else -math.inf
    lower = clean.lower()
    if lower.startswith(("0x", "-0x")):
        return int(clean, 16)
    if lower.startswith(("0b", "-0b")):
        return int(clean, 2)
    if "e" in lower:
        return float(clean)
    if "d" in lower or "." in clean:
        mantissa = lower.split("d")[0]
        value = Decimal(lower.replace("d", "e").replace(".e", "e").rstrip("."))
        whole = mantissa.endswith(".") or "." not in mantissa
        return int(value) if whole and value == value.to_integral_value() else float(value)
    return int(clean)


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code == "\n":
            return ""  # a line continuation
        return _ESCAPES.get(code, code)

    return _UNICODE.sub(one, text)


__all__ = ["IonError", "dumps", "loads"]
