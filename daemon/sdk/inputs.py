"""Flow inputs: the `inputs:` declarations and the coercion of raw values against them.

Kestra refuses an execution whose inputs do not fit their declarations, so a bad
value never reaches a task. podium does the same before the execution exists, and
reports every bad input at once so that a person fixes a form in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from daemon.sdk.errors import InputError
from daemon.sdk.input_kinds import KINDS, Invalid, Problems, coerce_value, is_missing, where
from daemon.sdk.input_parsers import as_text, show_value
from daemon.sdk.properties import Deprecated, Model, has_template

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
    "OBJECT",
    "TABLE",
]

Path = tuple[str | int, ...]
StoreFile = Callable[[str, Any], str]
_NOT_ITEM_TYPES = ("ARRAY", "MULTISELECT", "SELECT", "ENUM", "FILE", "OBJECT", "TABLE")
# Kestra's RecordFieldsValidator: the types an OBJECT property or a TABLE column may have
# (BOOLEAN and ENUM are podium's names of BOOL and SELECT from Kestra's older releases).
RECORD_FIELD_TYPES = (
    "STRING", "INT", "FLOAT", "BOOL", "BOOLEAN", "DATE", "DATETIME", "TIME", "DURATION",
    "EMAIL", "URI", "SELECT", "ENUM", "MULTISELECT",
)  # fmt: skip
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
    "properties": ("OBJECT",),
    "columns": ("TABLE",),
    "rows": ("TABLE",),
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


class Rows(Model):
    """How many rows a TABLE input may have (Kestra's TableInput.Rows)."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)


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
    # OBJECT: its typed keys; TABLE: the typed keys of every row. Each is an input of its
    # own kind (INT with min/max, STRING with a validator...) read from one key.
    properties: list[InputSpec] | None = None
    columns: list[InputSpec] | None = None
    rows: Rows | None = None

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
        parse_bound = KINDS[kind].parse_bound
        if name in ("min", "max", "after", "before") and parse_bound and value is not None:
            try:
                return KINDS[kind].dump(parse_bound(value))
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
        fields = "properties" if self.type == "OBJECT" else "columns"
        if self.type in ("OBJECT", "TABLE") and not getattr(self, fields):
            article = "an" if self.type == "OBJECT" else "a"
            raise _spec_error(f"{article} {self.type} input needs '{fields}' (at least one)")
        if self.rows and self.rows.min is not None and self.rows.max is not None:
            if self.rows.min > self.rows.max:
                raise _spec_error("'rows.min' cannot be greater than 'rows.max'")
        return self

    @property
    def record_fields(self) -> list[InputSpec]:
        """An OBJECT's properties or a TABLE's columns."""
        return self.properties or self.columns or []

    @property
    def choices(self) -> list[str]:
        """The values a SELECT/MULTISELECT accepts, labels left out."""
        return [v if isinstance(v, str) else v.value for v in self.values or []]


def _store(spec: InputSpec, value: Any, store_file: StoreFile | None, store: bool) -> str | None:
    """Checks a FILE value; stores it only when `store`, so refused executions leave no file."""
    if isinstance(value, str) and value.startswith("kestra://"):
        return _check_extension(spec, value, value)
    if store_file is None:
        shown = show_value(value)
        message = f"FILE input needs a file (an upload or a kestra:// URI), not {shown}"
        raise Invalid([((), message)])
    name = value if isinstance(value, str) else getattr(value, "filename", None)
    if isinstance(name, str):
        _check_extension(spec, name, value)
    if not store:
        return None
    try:
        uri = store_file(spec.id, value)
    except (OSError, ValueError) as exc:
        raise Invalid([((), f"cannot store {show_value(value)}: {exc}")]) from None
    return _check_extension(spec, uri, value)


def _check_extension(spec: InputSpec, name: str, value: Any) -> str:
    allowed = [e.lower() for e in spec.allowed_file_extensions or []]
    if allowed and not any(urlsplit(name).path.lower().endswith(e) for e in allowed):
        raise Invalid(
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


def _messages(input_id: str, problems: Problems) -> list[str]:
    return [f"input '{where(input_id, sub)}': {message}" for sub, message in problems]


def coerce_inputs(
    specs: Sequence[InputSpec], raw: Mapping[str, Any], *, store_file: StoreFile | None = None
) -> dict[str, Any]:
    """Turn raw values (CLI text, form fields, JSON) into every declared input's JSON value;
    values given for no declared input are left out (see `undeclared_inputs`).

    Files are stored last, and only when every other input is good, because a stored
    upload of an execution that is then refused would be an orphan in storage.
    """
    messages: list[str] = []
    values: dict[str, Any] = {}
    files: list[tuple[InputSpec, Any]] = []
    for spec in specs:
        value = raw.get(spec.id)
        if is_missing(spec, value):
            value = _default(spec)
        if is_missing(spec, value):
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
                values[spec.id] = coerce_value(spec, value)
        except Invalid as bad:
            messages.extend(_messages(spec.id, bad.problems))
    for spec, value in [] if messages else files:
        try:
            values[spec.id] = _store(spec, value, store_file, store=True)
        except Invalid as bad:
            messages.extend(_messages(spec.id, bad.problems))
    if messages:
        raise InputError(messages)
    return values


def undeclared_inputs(specs: Sequence[InputSpec], raw: Mapping[str, Any]) -> list[str]:
    """The values given for no declared input: Kestra drops them with a warning
    (FlowInputOutput.readExecutionInputs, "Input {} was provided for workflow {}.{} but
    isn't declared in the workflow inputs"); `coerce_inputs` leaves them out."""
    declared = {spec.id for spec in specs}
    return [key for key in raw if key not in declared]


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
            value = getattr(spec, prop)
            if prop == "defaults" and has_template(value):
                continue  # a Property in Kestra: rendered when an execution is created
            try:
                if value is not None:
                    coerce_value(spec, value)
            except Invalid as bad:
                problems.extend(((i, prop, *sub), message) for sub, message in bad.problems)
        problems.extend(((i, *sub), message) for sub, message in _record_field_problems(spec))
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


def _record_field_problems(spec: InputSpec) -> list[tuple[Path, str]]:
    """Kestra's RecordFieldsValidator: an OBJECT property or a TABLE column is a plain value
    read from one key of a record, so it has a flat id, a scalar type, and nothing that
    needs other inputs or a default of its own."""
    name = "properties" if spec.type == "OBJECT" else "columns"
    noun = "property" if spec.type == "OBJECT" else "column"
    problems: list[tuple[Path, str]] = []
    first: dict[str, int] = {}
    for j, field in enumerate(spec.record_fields):
        where_: Path = (name, j)
        if field.id in first:
            message = (
                f"duplicate {noun} id '{field.id}' (already declared by {name}[{first[field.id]}])"
            )
            problems.append(((*where_, "id"), message))
        first.setdefault(field.id, j)
        if "." in field.id:
            problems.append(((*where_, "id"), f"a {noun} id cannot contain a dot ('{field.id}')"))
        if field.type not in RECORD_FIELD_TYPES:
            problems.append(
                (
                    (*where_, "type"),
                    f"a {noun} cannot be of type {field.type} "
                    f"(only {', '.join(RECORD_FIELD_TYPES)})",
                )
            )
        for prop in ("depends_on", "defaults", "prefill", "expression"):
            if getattr(field, prop) is not None:
                alias = InputSpec.model_fields[prop].alias or prop
                problems.append(((*where_, alias), f"a {noun} cannot declare '{alias}'"))
    return problems
