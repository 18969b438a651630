"""daemon.sdk.ion: the one Ion text format podium writes and reads, checked against
Amazon's own Ion library (amazon-ion, which tasks/items.py reads with): what podium writes
reads back the same there, and what that library (as Kestra's ion-java) writes reads the
same here. Kestra writes its stored files with ion-java's text writer (FileSerde)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from amazon.ion import simpleion  # type: ignore[import-untyped]

from daemon.sdk.ion import IonError, dumps, iter_values, loads

VALUES = [
    {"id": 1, "name": 'é "q" \n\t', "price": Decimal("12.50"), "ratio": 0.25},
    {"when": datetime(2024, 1, 31, 10, 0, 0, 123000, tzinfo=UTC), "day": date(2024, 1, 31)},
    {"offset": datetime(2024, 1, 31, 10, 0, tzinfo=timezone(timedelta(hours=-5)))},
    {"nested": {"list": [1, None, True, "x"], "empty": {}}, "raw": b"\x00\x01binary"},
    {"big": 12345678901234567890, "neg": -3, "exp": Decimal("1.5E+3"), "null": None},
]


def plain(value: object) -> object:
    """amazon-ion's values as plain Python ones."""
    if type(value).__name__ == "IonPyNull":
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Decimal):
        return Decimal(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return date(value.year, value.month, value.day)  # a date-precision timestamp
        return datetime.fromisoformat(value.isoformat())
    return value


@pytest.mark.parametrize("value", VALUES)
def test_amazon_ion_reads_what_podium_writes(value: dict[str, object]) -> None:
    assert plain(simpleion.loads(dumps(value))) == value


@pytest.mark.parametrize("value", [v for v in VALUES if "day" not in v])
def test_podium_reads_what_amazon_ion_writes(value: dict[str, object]) -> None:
    text = simpleion.dumps(value, binary=False, omit_version_marker=True)
    assert loads(text) == value


def test_special_floats_and_kestra_forms() -> None:
    """Kestra's files: unquoted field names, symbols, annotations, typed nulls, long
    strings, comments."""
    found = loads("ann::{a:nan, b:+inf, c:sym, d:null.int, e:'''lo''' '''ng''', /* c */ f:'x y'}")
    assert math.isnan(found["a"]) and found["b"] == math.inf
    assert {k: found[k] for k in "cdef"} == {"c": "sym", "d": None, "e": "long", "f": "x y"}


def test_files_of_values_one_per_line_or_spanning_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.ion"
    path.write_text('$ion_1_0\n{"a":1}\n{b:2,\n c:[3,\n 4]}\n\n{d:2024-01-31T}\n')
    assert list(iter_values(path)) == [{"a": 1}, {"b": 2, "c": [3, 4]}, {"d": date(2024, 1, 31)}]


@pytest.mark.parametrize("text", ["{a:1", "{a 1}", "12abc", '"x', "{a:1,,}", "[1 2]"])
def test_malformed_ion_is_an_error(text: str) -> None:
    with pytest.raises(IonError):
        loads(text)


def test_a_malformed_line_in_a_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.ion"
    path.write_text('{"a":1}\n{"a":2}\n{a:}\n')
    with pytest.raises(IonError, match="line 3"):
        list(iter_values(path))
