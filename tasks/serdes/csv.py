"""CSV <-> Ion with Kestra's properties (kestra-io/plugin-serdes csv.CsvToIon, IonToCsv).

CsvToIon gives each row as a map of header -> text (or a list without `header`), `\\N`
as null, as Kestra does; IonToCsv writes a map's keys as the header and quotes only what
needs quoting (`quoteMode: REQUIRED`), so CSV -> Ion -> CSV gives back the same bytes for
a file written that way.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from daemon.sdk.ion import dumps, iter_values
from tasks.serdes import fast
from tasks.serdes.base import Convert, TextFormats

# Files smaller than this convert in Python: DuckDB's start costs more than it saves.
FAST_FROM_BYTES = 1 << 20

OnBadLines = Literal["ERROR", "WARN", "SKIP"]


# Rows of texts and nulls: their JSON is their Ion, and the C encoder writes it.
text_row = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _char(value: str, name: str) -> str:
    if len(value) != 1:
        raise ValueError(f"{name} must be one character, got {value!r}")
    return value


class CsvToIon(Convert):
    """Kestra's CsvToIon."""

    types = ("io.kestra.plugin.serdes.csv.CsvToIon", "io.kestra.plugin.serdes.csv.CsvReader")

    header: bool = True
    field_separator: str = ","
    text_delimiter: str = '"'
    skip_empty_rows: bool = False
    on_bad_lines: OnBadLines = "ERROR"
    error_on_different_field_count: bool | None = None
    skip_rows: int = Field(default=0, ge=0)
    charset: str = "UTF-8"
    max_buffer_size: int | None = None
    allow_extra_chars_after_closing_quote: bool = False
    max_field_size: int = 16 * 1024 * 1024

    def convert(self, source: Path, target: Path) -> int:
        plain = (
            self.header
            and self.charset.upper().replace("_", "-") in ("UTF-8", "UTF8")
            and not (self.skip_rows or self.skip_empty_rows)
            and self.on_bad_lines == "ERROR"
            and self.error_on_different_field_count is None
            and not self.allow_extra_chars_after_closing_quote
        )
        if plain and (source.stat().st_size > FAST_FROM_BYTES):
            count = fast.csv_to_ion(source, target, self.field_separator, self.text_delimiter)
            if count is not None:
                return count
        csv.field_size_limit(self.max_field_size)
        count, skipped = 0, 0
        bad = self.on_bad_lines
        if self.error_on_different_field_count is False:
            bad = "SKIP"
        with (
            source.open(encoding=self.charset, newline="") as text,
            target.open("w", encoding="utf-8") as out,
        ):
            reader = csv.reader(
                text,
                delimiter=_char(self.field_separator, "fieldSeparator"),
                quotechar=_char(self.text_delimiter, "textDelimiter"),
                strict=not self.allow_extra_chars_after_closing_quote,
            )
            names: list[str] | None = None
            write = out.write
            for row in reader:
                if not row and self.skip_empty_rows:
                    continue
                if self.header and names is None:
                    names = row
                    continue
                if skipped < self.skip_rows:
                    skipped += 1
                    continue
                values = [None if field == "\\N" else field for field in row]
                if names is not None:
                    if len(values) != len(names):
                        message = (
                            f"line {reader.line_num}: expected {len(names)} fields, "
                            f"got {len(values)}"
                        )
                        if bad == "ERROR":
                            raise ValueError(message)
                        continue
                    write(text_row(dict(zip(names, values, strict=True))) + "\n")
                else:
                    write(text_row(values) + "\n")
                count += 1
        return count


def _cell(value: Any, formats: TextFormats) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float | int | Decimal | str):
        return str(value)
    if isinstance(value, dict | list):
        return dumps(value)
    return str(formats.text(value))


class IonToCsv(Convert):
    """Kestra's IonToCsv."""

    types = ("io.kestra.plugin.serdes.csv.IonToCsv", "io.kestra.plugin.serdes.csv.CsvWriter")
    suffix = ".csv"

    header: bool = True
    field_separator: str = ","
    text_delimiter: str = '"'
    line_delimiter: str = "\n"
    always_delimit_text: bool = False
    quote_mode: Literal["ALWAYS", "REQUIRED", "NON_NUMERIC"] | None = None
    charset: str = "UTF-8"
    date_format: str = "yyyy-MM-dd"
    time_format: str = "HH:mm:ss[XXX]"
    date_time_format: str = "yyyy-MM-dd'T'HH:mm:ss.SSS[XXX]"
    time_zone_id: str | None = None

    def convert(self, source: Path, target: Path) -> int:
        mode = self.quote_mode or ("ALWAYS" if self.always_delimit_text else "REQUIRED")
        quoting = {
            "ALWAYS": csv.QUOTE_ALL,
            "REQUIRED": csv.QUOTE_MINIMAL,
            "NON_NUMERIC": csv.QUOTE_NONNUMERIC,
        }[mode]
        formats = TextFormats(self.date_format, self.time_format, self.date_time_format)
        count = 0
        with target.open("w", encoding=self.charset, newline="") as out:
            writer = csv.writer(
                out,
                delimiter=_char(self.field_separator, "fieldSeparator"),
                quotechar=_char(self.text_delimiter, "textDelimiter"),
                lineterminator=self.line_delimiter,
                quoting=quoting,
            )
            first = True
            for row in iter_values(source):
                if isinstance(row, dict):
                    if first and self.header:
                        writer.writerow(row.keys())
                    cells = [_cell(v, formats) for v in row.values()]
                elif isinstance(row, list):
                    if self.header:
                        raise ValueError("a row is a list, which has no header (set header: false)")
                    cells = [_cell(v, formats) for v in row]
                else:
                    raise ValueError(f"a row is a {type(row).__name__}, not a map or a list")
                if mode == "NON_NUMERIC":
                    writer.writerow([_number(c) for c in cells])
                else:
                    writer.writerow(cells)
                first = False
                count += 1
        return count


def _number(cell: str) -> Any:
    """NON_NUMERIC quotes all but numbers: hand the csv module numbers as numbers."""
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return Decimal(cell) if cell and cell.strip() == cell and "e" not in cell.lower() else cell
    except ArithmeticError:
        return cell
