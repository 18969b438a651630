"""What a plug-in's properties are made of: the YAML base model, templated (`Dynamic`)
properties kept as written at load and rendered per run, and Kestra's label shapes."""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from daemon.sdk.errors import TaskFailed

ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"
_UNIONS = (Union, types.UnionType)


def has_template(value: Any) -> bool:
    """True when a value (or anything inside it) holds a Jinja/Pebble expression."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    return False


def _defer_templates(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    if info.context and info.context.get("defer_templates") and has_template(value):
        return value
    return handler(value)


# Marks a property as templated: kept as written at load, rendered and type-checked per run.
Dynamic = WrapValidator(_defer_templates)


@dataclass(frozen=True)
class Expression:
    """Marks a property that is one expression evaluated apart, when its moment comes (a
    trigger's or a check's `when`): its syntax is checked when the flow loads, as a
    `Dynamic` property's, but it is never rendered along with those."""


EXPRESSION = Expression()


@dataclass(frozen=True)
class Deprecated:
    """Marks a property Kestra still accepts in a deprecated form: a flow that sets it loads,
    with a warning saying what to write instead (`podium validate` prints it, the API shows
    it). `message` completes "'<property>' is deprecated; ...", e.g. "use 'id'"."""

    message: str


@dataclass(frozen=True)
class NewerName:
    """Another name a property is written with that is not an older one (Kestra's `when`,
    `runIf` by a newer name): the JSON Schema lists it without striking it through."""

    name: str


def _json_if_text(value: Any) -> Any:
    """Rendered expressions are text; a list or map property parses them as JSON."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


JsonText = BeforeValidator(_json_if_text)

M = TypeVar("M", bound=BaseModel)


def templated_values(model: BaseModel) -> dict[str, Any]:
    """The `Dynamic` properties of a model that hold expressions (`runIf` is rendered apart)."""
    cls = type(model)
    names: tuple[str, ...] | None = cls.__dict__.get("_podium_dynamic")
    if names is None:
        names = tuple(
            name
            for name, f in cls.model_fields.items()
            if Dynamic in f.metadata and name != "run_if"
        )
        setattr(cls, "_podium_dynamic", names)  # noqa: B010 - per-class cache, set once
    values = {name: getattr(model, name) for name in names}
    return {n: v for n, v in values.items() if v is not None and has_template(v)}


def with_rendered(model: M, rendered: Mapping[str, Any], where: str = "") -> M:
    """`model` again with its rendered values, type-checked now that they are known."""
    if not rendered:
        return model
    fields = type(model).model_fields
    data = {**{n: getattr(model, n) for n in fields}, **rendered}
    try:
        return type(model).model_validate(data)
    except ValidationError as exc:
        # named as the flow writes it (`onChildFailure`), not as the model field
        aliases = {name: f.alias or name for name, f in fields.items()}
        problems = "; ".join(
            f"{where}{'.'.join(str(aliases.get(str(p), p)) for p in e['loc'][:1])}"
            f"{''.join(f'.{p}' for p in e['loc'][1:])}: "
            f"{e['msg'].removeprefix('Value error, ')} (got {e['input']!r})"
            for e in exc.errors(include_url=False)
        )
        raise TaskFailed(f"invalid property after rendering: {problems}") from None


class Model(BaseModel):
    """Base for everything users write in YAML: camelCase aliases, typos are errors.

    A property written as `null` is a property not set, as Kestra (Jackson) reads it:
    `defaults: null`, `labels: null` and the like take their default.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        defer_build=True,  # schemas are built on first use: start-up pays only for what a flow uses
        # `message: 42`, `format: 1.5`, `- id: 1` are text, as Jackson reads a number given
        # to a String property (a property that also takes numbers keeps the number).
        coerce_numbers_to_str=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or all(v is not None for v in data.values()):
            return data
        # A required property keeps its null (and is reported, or accepted as None).
        required = {
            key
            for name, field in cls.model_fields.items()
            if field.is_required()
            for key in (name, field.alias)
        }
        return {k: v for k, v in data.items() if v is not None or k in required}

    @model_validator(mode="before")
    @classmethod
    def _booleans_as_text(cls, data: Any) -> Any:
        """`message: true` or `commands: [false]` are the texts "true" and "false", as
        Jackson reads a boolean given to a String property; a property that also takes a
        boolean keeps it."""
        if not isinstance(data, dict):
            return data
        scalars, lists = _text_fields(cls)
        changed: dict[str, Any] = {}
        for key, value in data.items():
            if (value is True or value is False) and key in scalars:
                changed[key] = _text(value)
            elif type(value) is list and key in lists and any(map(_is_bool, value)):
                changed[key] = [_text(v) if _is_bool(v) else v for v in value]
        return {**data, **changed} if changed else data


def _is_bool(value: Any) -> bool:
    return value is True or value is False


def _text(value: bool) -> str:
    return "true" if value else "false"


def _text_fields(cls: type[BaseModel]) -> tuple[frozenset[str], frozenset[str]]:
    """The keys (names and aliases) of `cls`'s properties that take text and not a
    boolean: as a scalar, and as the items of a list. Computed once per class."""
    cached: tuple[frozenset[str], frozenset[str]] | None = cls.__dict__.get("_podium_text")
    if cached is not None:
        return cached
    scalars: set[str] = set()
    lists: set[str] = set()
    for name, field in cls.model_fields.items():
        members = get_args(field.annotation) if get_origin(field.annotation) in _UNIONS else ()
        kinds = members or (field.annotation,)
        if bool in kinds or Any in kinds:
            continue
        keys = {name, field.alias or name}
        if str in kinds:
            scalars |= keys
        if any(get_origin(k) is list and get_args(k) == (str,) for k in kinds):
            lists |= keys
    found = (frozenset(scalars), frozenset(lists))
    setattr(cls, "_podium_text", found)  # noqa: B010 - per-class cache, set once
    return found


def _labels(value: Any) -> Any:
    """Kestra accepts labels as a map or as a list of {key, value}; a number or a boolean
    value is read as its text (`year: 2025`, Kestra PR #5726); an empty key or value is
    refused (Kestra PR #11317), and so is a NUL (PostgreSQL cannot store it)."""
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or set(item) != {"key", "value"}:
                raise ValueError("each label in a list must be a mapping with 'key' and 'value'")
            out[str(item["key"])] = item["value"]
        value = out
    if not isinstance(value, dict):
        return value
    labels: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float) and not has_template(item):
            item = str(item)
        if isinstance(item, str) and not item.strip():
            raise ValueError(f"label '{key}' has an empty value; give it a value or remove it")
        if isinstance(key, str) and not key.strip():
            raise ValueError("a label has an empty key")
        if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
            raise ValueError(
                f"label {str(key)!r} contains the NUL character, which cannot be stored"
            )
        labels[key] = item
    return labels


_LABELS_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"type": "string"}},
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "value"],
                "additionalProperties": False,
                "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
            },
        },
    ]
}

Labels = Annotated[
    dict[str, str], BeforeValidator(_labels), WithJsonSchema(_LABELS_SCHEMA, mode="validation")
]
