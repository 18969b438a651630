"""JSON <-> Ion with Kestra's properties (kestra-io/plugin-serdes json.JsonToIon, IonToJson).

`newLine: true` (the default) reads and writes JSON lines, one document per line;
`false` reads one JSON document (an array is read element by element, streamed) and
writes a JSON array. IonToJson writes compact JSON (`{"a":1}`), so compact JSON lines
come back byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from daemon.sdk.ion import dumps, iter_values
from tasks.serdes.base import Convert, TextFormats


class JsonToIon(Convert):
    """Kestra's JsonToIon."""

    types = ("io.kestra.plugin.serdes.json.JsonToIon", "io.kestra.plugin.serdes.json.JsonReader")

    charset: str = "UTF-8"
    new_line: bool = True

    def convert(self, source: Path, target: Path) -> int:
        count = 0
        with source.open(encoding=self.charset) as text, target.open("w", encoding="utf-8") as out:
            for value in _lines(text) if self.new_line else _document(text):
                out.write(dumps(value) + "\n")
                count += 1
        return count


def _lines(text: Any) -> Iterator[Any]:
    for number, line in enumerate(text, 1):
        if line.strip():
            try:
                yield json.loads(line, parse_float=Decimal)
            except ValueError as exc:
                raise ValueError(f"line {number} is not JSON: {exc}") from None


def _document(text: Any) -> Iterator[Any]:
    """One JSON document; an array's elements one by one."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    buffer, position, started = "", 0, False
    while True:
        chunk = text.read(1 << 20)
        buffer = buffer[position:] + chunk
        position = 0
        if not started:
            stripped = buffer.lstrip()
            if not stripped and not chunk:
                return
            if stripped[:1] != "[":
                yield json.loads(buffer + text.read(), parse_float=Decimal)
                return
            position = len(buffer) - len(stripped) + 1
            started = True
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n,":
                position += 1
            if position < len(buffer) and buffer[position] == "]":
                return
            try:
                value, end = decoder.raw_decode(buffer, position)
            except ValueError:
                if not chunk:
                    raise ValueError("the JSON array is not complete") from None
                break
            yield value
            position = end


def _plain(value: Any, formats: TextFormats) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, formats) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, formats) for v in value]
    if isinstance(value, date | time):
        return formats.text(value)
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return value


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return float(o)
        return super().default(o)


def _json(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_json(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, cls=_Encoder)


class IonToJson(Convert):
    """Kestra's IonToJson."""

    types = ("io.kestra.plugin.serdes.json.IonToJson", "io.kestra.plugin.serdes.json.JsonWriter")
    suffix = ".jsonl"

    charset: str = "UTF-8"
    new_line: bool = True
    date_format: str = "yyyy-MM-dd"
    time_format: str = "HH:mm:ss[XXX]"
    date_time_format: str = "yyyy-MM-dd'T'HH:mm:ss.SSS[XXX]"
    time_zone_id: str | None = None

    def convert(self, source: Path, target: Path) -> int:
        formats = TextFormats(self.date_format, self.time_format, self.date_time_format)
        count = 0
        with target.open("w", encoding=self.charset) as out:
            if not self.new_line:
                out.write("[")
            for value in iter_values(source):
                text = _json(_plain(value, formats))
                if self.new_line:
                    out.write(text + "\n")
                else:
                    out.write(("," if count else "") + text)
                count += 1
            if not self.new_line:
                out.write("]")
        return count
