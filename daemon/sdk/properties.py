"""What a plug-in's properties are made of: the YAML base model, templated (`Dynamic`)
properties kept as written at load and rendered per run, and Kestra's label shapes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

from daemon.sdk.errors import TaskFailed

ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"


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
    data = {**{n: getattr(model, n) for n in type(model).model_fields}, **rendered}
    try:
        return type(model).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}{'.'.join(str(p) for p in e['loc'])}: "
            f"{e['msg'].removeprefix('Value error, ')} (got {e['input']!r})"
            for e in exc.errors(include_url=False)
        )
        raise TaskFailed(
            f"invalid property after rendering: {problems}", non_retryable=True
        ) from None


class Model(BaseModel):
    """Base for everything users write in YAML: camelCase aliases, typos are errors."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        defer_build=True,  # schemas are built on first use: start-up pays only for what a flow uses
    )


def _labels(value: Any) -> Any:
    """Kestra accepts labels as a map or as a list of {key, value}."""
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or set(item) != {"key", "value"}:
                raise ValueError("each label in a list must be a mapping with 'key' and 'value'")
            out[str(item["key"])] = item["value"]
        return out
    return value


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
