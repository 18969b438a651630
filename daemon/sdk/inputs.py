"""Flow inputs: the `inputs:` declarations and the coercion of raw values against them.

Kestra refuses an execution whose inputs do not fit their declarations, so a bad
value never reaches a task. podium does the same before the execution exists, and
reports every bad input at once so that a person fixes a form in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from daemon.sdk.durations import format_duration
from daemon.sdk.errors import InputError
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
from daemon.sdk.properties import Deprecated, Model

# Kestra's id rule; a dot makes a nested input (`nested.string` -> inputs.nested.string).
INPUT_ID_PATTERN = r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$"


InputType = Literal[
    "STRING",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "BOOL",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "SELECT",
    "MULTISELECT",
    "ENUM",
    "ARRAY",
    "JSON",
    "YAML",
    "URI",
    "EMAIL",
    "FILE",
    "SECRET",
]

Path = tuple[str | int, ...]
StoreFile = Callable[[str, Any], str]
Problems = list[tuple[tuple[int, ...], str]]  # (index path inside the value, message)
_NOT_ITEM_TYPES = ("ARRAY", "MULTISELECT", "SELECT", "ENUM", "FILE")
# Type-specific properties and the types they belong to; anywhere else they are a mistake.
_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "validator": ("STRING", "SECRET"),
    "min": ("INT", "FLOAT", "DURATION"),
    "max": ("INT", "FLOAT", "DURATION"),
    "after": ("DATE", "TIME", "DATETIME"),
    "before": ("DATE", "TIME", "DATETIME"),
    "values": ("SELECT", "MULTISELECT", "ENUM"),
    "expression": ("SELECT", "MULTISELECT"),
    "allow_custom_value": ("SELECT", "MULTISELECT"),
    "auto_select_first": ("SELECT", "MULTISELECT"),
    "is_radio": ("SELECT",),
    "item_type": ("ARRAY", "MULTISELECT"),
    "allowed_file_extensions": ("FILE",),
}


def _spec_error(message: str) -> PydanticCustomError:
    """A load-time error whose text reaches the user as written (no "Value error, ")."""
    return PydanticCustomError("input_spec", message)


class ValueOption(Model):
    """A choice whose label in the UI differs from the value the flow receives."""

    value: str
    label: str | None = None


class DependsOn(Model):
    """Kestra's conditional inputs: shown once `inputs` are set and `condition` holds."""

    inputs: list[str] = Field(default_factory=list)
    condition: str | None = None


class InputSpec(Model):
    """One entry of a flow's `inputs:`, with Kestra's property names."""

    id: str = Field(pattern=INPUT_ID_PATTERN)
    type: InputType
    # Kestra before 0.15 named inputs by `name`; it is read as the `id` it became.
    name: Annotated[str | None, Deprecated("use 'id'")] = Field(default=None, exclude=True)
    defaults: Any = None
    prefill: Any = None  # a UI suggestion only: never used as a value here
    required: bool = True
    description: str | None = None
    display_name: str | None = None
    depends_on: DependsOn | None = None
    validator: str | None = None
    min: int | float | str | None = None
    max: int | float | str | None = None
    after: str | None = None
    before: str | None = None
    values: list[Annotated[str | ValueOption, BeforeValidator(as_text)]] | None = None
    expression: str | None = None
    allow_custom_value: bool = False
    auto_select_first: bool = False
    is_radio: bool = False
    item_type: InputType | None = None
    allowed_file_extensions: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_is_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data and isinstance(data.get("name"), str):
            return {**data, "id": data["name"]}
        return data

    @field_validator(*_ONLY_FOR, mode="before")
    @classmethod
    def _fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        kind, name = info.data.get("type"), info.field_name or ""
        if kind is None:
            return value
        if kind not in _ONLY_FOR[name]:
            raise _spec_error(
                f"'{cls.model_fields[name].alias}' does not apply to {kind} inputs "
                f"(only to {', '.join(_ONLY_FOR[name])})"
            )
        if name == "validator" and isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise _spec_error(f"{value!r} is not a regular expression ({exc})") from None
        if name == "item_type" and value in _NOT_ITEM_TYPES:
            raise _spec_error(f"itemType cannot be {', '.join(_NOT_ITEM_TYPES)}")
        parse_bound = _KINDS[kind].parse_bound
        if name in ("min", "max", "after", "before") and parse_bound and value is not None:
            try:
                return _KINDS[kind].dump(parse_bound(value))
            except ValueError as exc:
                raise _spec_error(f"{show_value(value)} {exc}") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> InputSpec:
        if self.type in _ONLY_FOR["values"] and self.values is None and self.expression is None:
            also = "" if self.type == "ENUM" else " or 'expression'"
            raise _spec_error(f"a {self.type} input needs 'values'{also}")
        if self.type == "ARRAY" and self.item_type is None:
            raise _spec_error("an ARRAY input needs 'itemType'")
        if self.defaults is not None and self.prefill is not None:
            raise _spec_error("'prefill' and 'defaults' cannot both be set")
        return self

    @property
    def choices(self) -> list[str]:
        """The values a SELECT/MULTISELECT accepts, labels left out."""
        return [v if isinstance(v, str) else v.value for v in self.values or []]


class _Invalid(Exception):
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
            out.append(_coerce(item_spec, each))
        except _Invalid as bad:
            problems.extend(((i, *sub), message) for sub, message in bad.problems)
    if problems:
        raise _Invalid(problems)
    return out


@dataclass(frozen=True)
class _Kind:
    """How one input type reads a raw value, bounds it and writes it as JSON."""

    parse: Callable[[Any, InputSpec], Any]
    dump: Callable[[Any], Any] = lambda value: value
    parse_bound: Callable[[Any], Any] | None = None
    empty_is_value: bool = False  # "" from a form means "not given", except for text


def _bounded(parse: Callable[[Any], Any], dump: Callable[[Any], Any] = lambda v: v) -> _Kind:
    return _Kind(parse=lambda value, _spec: parse(value), dump=dump, parse_bound=parse)


def _simple(parse: Callable[[Any], Any]) -> _Kind:
    return _Kind(parse=lambda value, _spec: parse(value))


_KINDS: dict[str, _Kind] = {
    "STRING": _Kind(_string, empty_is_value=True),
    "SECRET": _Kind(_string, empty_is_value=True),
    "INT": _bounded(parse_int),
    "FLOAT": _bounded(parse_float),
    "BOOLEAN": _Kind(_bool),
    "BOOL": _Kind(_bool),
    "DATETIME": _bounded(parse_datetime, dump_datetime),
    "DATE": _bounded(parse_date, date.isoformat),
    "TIME": _bounded(parse_time, time.isoformat),
    "DURATION": _bounded(parse_duration_value, format_duration),
    "SELECT": _Kind(_choice),
    "ENUM": _Kind(_choice),
    "MULTISELECT": _Kind(_list),
    "ARRAY": _Kind(_list),
    "JSON": _simple(parse_json),
    "YAML": _simple(parse_yaml),
    "URI": _simple(parse_uri),
    "EMAIL": _simple(parse_email),
    "FILE": _simple(parse_file_uri),
}
# (lower bound, upper bound, words for a value below / above them)


_BOUNDS = (
    ("min", "max", "less than", "greater than"),
    ("after", "before", "earlier than", "later than"),
)


def _coerce(spec: InputSpec, value: Any) -> Any:
    """Parse, bound and dump one value; a step's ValueError("is not an INT") names the value."""
    kind = _KINDS[spec.type]
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
        raise _Invalid([((), f"{show_value(value, secret)} {exc}")]) from None
    return dumped


def _store(spec: InputSpec, value: Any, store_file: StoreFile | None, store: bool) -> str | None:
    """Checks a FILE value; stores it only when `store`, so refused executions leave no file."""
    if isinstance(value, str) and value.startswith("kestra://"):
        return _check_extension(spec, value, value)
    if store_file is None:
        shown = show_value(value)
        message = f"FILE input needs a file (an upload or a kestra:// URI), not {shown}"
        raise _Invalid([((), message)])
    name = value if isinstance(value, str) else getattr(value, "filename", None)
    if isinstance(name, str):
        _check_extension(spec, name, value)
    if not store:
        return None
    try:
        uri = store_file(spec.id, value)
    except (OSError, ValueError) as exc:
        raise _Invalid([((), f"cannot store {show_value(value)}: {exc}")]) from None
    return _check_extension(spec, uri, value)


def _check_extension(spec: InputSpec, name: str, value: Any) -> str:
    allowed = [e.lower() for e in spec.allowed_file_extensions or []]
    if allowed and not any(urlsplit(name).path.lower().endswith(e) for e in allowed):
        raise _Invalid(
            [
                (
                    (),
                    f"{show_value(value)} has none of the extensions {', '.join(allowed)} "
                    "(allowedFileExtensions)",
                )
            ]
        )
    return name


def _default(spec: InputSpec) -> Any:
    if spec.defaults is None and spec.auto_select_first and spec.choices:
        return [spec.choices[0]] if spec.type == "MULTISELECT" else spec.choices[0]
    return spec.defaults


def _missing(spec: InputSpec, value: Any) -> bool:
    return value is None or (value == "" and not _KINDS[spec.type].empty_is_value)


def _messages(input_id: str, problems: Problems) -> list[str]:
    return [
        f"input '{input_id}{''.join(f'[{i}]' for i in sub)}': {message}"
        for sub, message in problems
    ]


def coerce_inputs(
    specs: Sequence[InputSpec], raw: Mapping[str, Any], *, store_file: StoreFile | None = None
) -> dict[str, Any]:
    """Turn raw values (CLI text, form fields, JSON) into every declared input's JSON value.

    Files are stored last, and only when every other input is good, because a stored
    upload of an execution that is then refused would be an orphan in storage.
    """
    declared = {spec.id: spec for spec in specs}
    messages: list[str] = []
    values: dict[str, Any] = {}
    files: list[tuple[InputSpec, Any]] = []
    for spec in specs:
        value = raw.get(spec.id)
        if _missing(spec, value):
            value = _default(spec)
        if _missing(spec, value):
            # A conditional input may be hidden, and only the renderer knows its condition.
            if spec.required and not (spec.depends_on and spec.depends_on.condition):
                messages.append(f"input '{spec.id}' is required")
            values[spec.id] = None
            continue
        try:
            if spec.type == "FILE":
                _store(spec, value, store_file, store=False)
                files.append((spec, value))
            else:
                values[spec.id] = _coerce(spec, value)
        except _Invalid as bad:
            messages.extend(_messages(spec.id, bad.problems))
    known = f"the flow declares: {', '.join(declared)}" if declared else "the flow has no inputs"
    messages.extend(f"unknown input '{key}'; {known}" for key in raw if key not in declared)
    for spec, value in [] if messages else files:
        try:
            values[spec.id] = _store(spec, value, store_file, store=True)
        except _Invalid as bad:
            messages.extend(_messages(spec.id, bad.problems))
    if messages:
        raise InputError(messages)
    return values


def validate_input_specs(specs: Sequence[InputSpec]) -> list[tuple[Path, str]]:
    """Load-time checks that need a coercion or the whole list: defaults, prefill, ids, dependsOn.

    Returns (path inside the inputs list, message) so the loader can point at file:line:col.
    """
    problems: list[tuple[Path, str]] = []
    first: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.id in first:
            problems.append(
                (
                    (i, "id"),
                    f"duplicate input id '{spec.id}' "
                    f"(already declared by inputs[{first[spec.id]}])",
                )
            )
        first.setdefault(spec.id, i)
        for prop in ("defaults", "prefill"):
            try:
                if getattr(spec, prop) is not None:
                    _coerce(spec, getattr(spec, prop))
            except _Invalid as bad:
                problems.extend(((i, prop, *sub), message) for sub, message in bad.problems)
    for i, spec in enumerate(specs):
        for j, other in enumerate(spec.depends_on.inputs if spec.depends_on else []):
            if other not in first or other == spec.id:
                problems.append(
                    (
                        (i, "dependsOn", "inputs", j),
                        f"dependsOn names '{other}', which is not another input of "
                        f"this flow ({', '.join(first)})",
                    )
                )
    return problems
