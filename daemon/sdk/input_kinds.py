"""How each input type reads a raw value: parse, bound, dump as JSON, with every problem
of one value (each bad item of a list, each bad cell of a table) reported at once.

`inputs.py` holds the declarations (`InputSpec`) and what is done with a whole set of
values; this module is the per-type half both of them use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import TYPE_CHECKING, Any

from daemon.sdk.durations import format_duration
from daemon.sdk.input_parsers import (
    as_text,
    check_storable,
    dump_datetime,
    parse_date,
    parse_datetime,
    parse_duration_value,
    parse_email,
    parse_file_uri,
    parse_float,
    parse_int,
    parse_json,
    parse_structured,
    parse_time,
    parse_uri,
    parse_yaml,
    show_value,
)

if TYPE_CHECKING:
    from daemon.sdk.inputs import InputSpec

# (where inside the value: a list index or an OBJECT/TABLE field id, message)
Problems = list[tuple[tuple[int | str, ...], str]]


class Invalid(Exception):
    """Every problem with one value, so that a list reports all of its bad items."""

    def __init__(self, problems: Problems) -> None:
        super().__init__(problems)
        self.problems = problems


def _bool(value: Any, spec: InputSpec) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"is not a {spec.type} (expected true or false)")


def _string(value: Any, spec: InputSpec) -> str:
    if not isinstance(value, bool | int | float | str | date | time):
        raise ValueError(f"is not a {spec.type}")
    text = str(as_text(value))
    if spec.validator is not None and not re.fullmatch(spec.validator, text):
        raise ValueError(f"does not match the validator {spec.validator!r}")
    return text


def _choice(value: Any, spec: InputSpec) -> str:
    """Values computed by `expression` are only known to the renderer, so any text passes."""
    text = as_text(value)
    if not isinstance(text, str):
        raise ValueError("is not text")
    open_ended = spec.allow_custom_value or (spec.values is None and spec.expression is not None)
    if not open_ended and text not in spec.choices:
        shown = ", ".join(spec.choices[:10]) + (", ..." if len(spec.choices) > 10 else "")
        raise ValueError(f"is not one of {shown}")
    return text


def _list(value: Any, spec: InputSpec) -> list[Any]:
    """A list, or text holding one: JSON/YAML (`[1, 2]`), or `a, b` for a MULTISELECT.

    Each item is coerced as an input of its own (a MULTISELECT item is a SELECT value),
    and every bad item is reported with its index.
    """
    items = value
    if isinstance(value, str):
        if spec.type == "MULTISELECT" and not value.strip().startswith("["):
            items = [part.strip() for part in value.split(",") if part.strip()]
        else:
            items = parse_structured(value)
    if not isinstance(items, list | tuple):
        raise ValueError(
            f"is not {'a MULTISELECT' if spec.type == 'MULTISELECT' else 'an ARRAY'} "
            "(expected a list or a JSON array)"
        )
    item_type = "SELECT" if spec.type == "MULTISELECT" else spec.item_type
    item_spec = spec.model_copy(update={"type": item_type, "item_type": None})
    problems: Problems = []
    out = []
    for i, each in enumerate(items):
        try:
            out.append(coerce_value(item_spec, each))
        except Invalid as bad:
            problems.extend(((i, *sub), message) for sub, message in bad.problems)
    if problems:
        raise Invalid(problems)
    return out


def _record(fields: list[InputSpec], raw: Mapping[Any, Any], problems: Problems) -> dict[str, Any]:
    """One record (an OBJECT, a TABLE row) coerced field by field, as Kestra's
    FlowInputOutput.parseRecord: a field is a regular input read from one key, a missing
    optional one is null, keys no field declares are left out, every bad field reported."""
    record: dict[str, Any] = {}
    for field in fields:
        value = raw.get(field.id)
        if is_missing(field, value):
            record[field.id] = None
            if field.required:
                problems.append(((field.id,), "a value is required"))
            continue
        try:
            record[field.id] = coerce_value(field, value)
        except Invalid as bad:
            problems.extend(((field.id, *sub), message) for sub, message in bad.problems)
    return record


def _object(value: Any, spec: InputSpec) -> dict[str, Any]:
    """A mapping, or text holding one (JSON, else YAML): Kestra's ObjectInput."""
    raw = parse_structured(value) if isinstance(value, str) else value
    if not isinstance(raw, Mapping):
        raise ValueError("is not an OBJECT (expected a mapping or a JSON object)")
    problems: Problems = []
    record = _record(spec.properties or [], raw, problems)
    if problems:
        raise Invalid(problems)
    return record


def _table(value: Any, spec: InputSpec) -> list[dict[str, Any]]:
    """A list of mappings, or text holding one: Kestra's TableInput, each row typed against
    `columns` and the row count against `rows`."""
    rows = parse_structured(value) if isinstance(value, str) else value
    if not isinstance(rows, list | tuple):
        raise ValueError("is not a TABLE (expected a list of objects or a JSON array)")
    problems: Problems = []
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            problems.append(((i,), f"{show_value(row)} is not an object (a row of the table)"))
            continue
        found: Problems = []
        out.append(_record(spec.columns or [], row, found))
        problems.extend(((i, *sub), message) for sub, message in found)
    bounds = spec.rows
    if bounds is not None and bounds.min is not None and len(rows) < bounds.min:
        problems.append(((), f"has {_rows(len(rows))}; it must have at least {_rows(bounds.min)}"))
    if bounds is not None and bounds.max is not None and len(rows) > bounds.max:
        problems.append(((), f"has {_rows(len(rows))}; it must have at most {_rows(bounds.max)}"))
    if problems:
        raise Invalid(problems)
    return out


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Kind:
    """How one input type reads a raw value, bounds it and writes it as JSON."""

    parse: Callable[[Any, InputSpec], Any]
    dump: Callable[[Any], Any] = lambda value: value
    parse_bound: Callable[[Any], Any] | None = None
    empty_is_value: bool = False  # "" from a form means "not given", except for text


def _bounded(parse: Callable[[Any], Any], dump: Callable[[Any], Any] = lambda v: v) -> Kind:
    return Kind(parse=lambda value, _spec: parse(value), dump=dump, parse_bound=parse)


def _simple(parse: Callable[[Any], Any]) -> Kind:
    return Kind(parse=lambda value, _spec: parse(value))


KINDS: dict[str, Kind] = {
    "STRING": Kind(_string, empty_is_value=True),
    "SECRET": Kind(_string, empty_is_value=True),
    "INT": _bounded(parse_int),
    "FLOAT": _bounded(parse_float),
    "BOOLEAN": Kind(_bool),
    "BOOL": Kind(_bool),
    "DATETIME": _bounded(parse_datetime, dump_datetime),
    "DATE": _bounded(parse_date, date.isoformat),
    "TIME": _bounded(parse_time, time.isoformat),
    "DURATION": _bounded(parse_duration_value, format_duration),
    "SELECT": Kind(_choice),
    "ENUM": Kind(_choice),
    "MULTISELECT": Kind(_list),
    "ARRAY": Kind(_list),
    "JSON": _simple(parse_json),
    "YAML": _simple(parse_yaml),
    "URI": _simple(parse_uri),
    "EMAIL": _simple(parse_email),
    "FILE": _simple(parse_file_uri),
    "OBJECT": Kind(_object),
    "TABLE": Kind(_table),
}

# (lower bound, upper bound, words for a value below / above them)
_BOUNDS = (
    ("min", "max", "less than", "greater than"),
    ("after", "before", "earlier than", "later than"),
)


def coerce_value(spec: InputSpec, value: Any) -> Any:
    """Parse, bound and dump one value; a step's ValueError("is not an INT") names the value."""
    kind = KINDS[spec.type]
    try:
        parsed = kind.parse(value, spec)
        for low, high, below, above in _BOUNDS:
            lowest, highest = getattr(spec, low), getattr(spec, high)  # normalised at load
            if kind.parse_bound and lowest is not None and parsed < kind.parse_bound(lowest):
                raise ValueError(f"is {below} {lowest} ({low})")
            if kind.parse_bound and highest is not None and parsed > kind.parse_bound(highest):
                raise ValueError(f"is {above} {highest} ({high})")
        dumped = kind.dump(parsed)
        check_storable(dumped)
    except ValueError as exc:
        secret = "SECRET" in (spec.type, spec.item_type)
        raise Invalid([((), f"{show_value(value, secret)} {exc}")]) from None
    return dumped


def is_missing(spec: InputSpec, value: Any) -> bool:
    return value is None or (value == "" and not KINDS[spec.type].empty_is_value)


def where(input_id: str, sub: tuple[int | str, ...]) -> str:
    """`disks[1].size_gb`: an index of a list, a field of an OBJECT or a TABLE row."""
    return input_id + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in sub)
