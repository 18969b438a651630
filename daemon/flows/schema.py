"""The JSON Schema of the flow format, generated from the registered plug-in models.

One document (draft-07, as Kestra serves at `/api/v1/plugins/schemas/flow`) describes a
flow: its own properties from the `Flow` model, and wherever a task, trigger or condition
may stand, any of the registered classes, told apart by `type`. Nothing here names a
plug-in: each class's properties, types, enums, defaults and descriptions (the attribute
docstrings under its fields) come from its pydantic model, its title and description from
the class, and an example is written from its required properties unless the class
declares `examples` (YAML snippets) itself. Editors (podium's own, VS Code's YAML
extension) complete and check flow files with it; `podium schema` prints it.
"""

from __future__ import annotations

import ast
import copy
import inspect
import itertools
import sys
import typing
from collections.abc import Hashable, Iterable, Mapping
from functools import cache
from typing import Any, cast

import yaml
from pydantic import AliasChoices, BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from daemon.flows.definition import Flow
from daemon.flows.registry import Plugins, default_plugins
from daemon.sdk.plugin import Condition, Task, Trigger
from daemon.sdk.properties import Deprecated, Dynamic, NewerName

DRAFT = "http://json-schema.org/draft-07/schema#"
REF = "#/definitions/{model}"
# What a templated property may hold besides its own type: text with an expression.
TEMPLATE = {"type": "string", "pattern": r".*\{[{%].*"}
# Where a base class stands in a model, any registered class of its kind may.
KINDS: tuple[tuple[type[BaseModel], str], ...] = (
    (Task, "tasks"),
    (Trigger, "triggers"),
    (Condition, "conditions"),
)
# the loader's, never written in a flow file
_LEAVE_OUT = ("revision", "source", "path", "warnings", "deprecationPaths", "infos")


class _Generator(GenerateJsonSchema):
    """pydantic's generator, plus what a person writing the YAML needs: every accepted
    name of a property, templated properties that may hold `{{ ... }}`, no noise titles."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        properties = json_schema.get("properties")
        if not isinstance(properties, dict):
            return json_schema
        docs = field_docs(cast(Hashable, cls))
        model_fields: dict[str, Any] = cls.model_fields
        for name, field in model_fields.items():
            names = [field.alias or name]
            if isinstance(field.validation_alias, AliasChoices):
                names = [n for n in field.validation_alias.choices if isinstance(n, str)] + names
            elif isinstance(field.validation_alias, str):
                names.insert(0, field.validation_alias)
            key = next((n for n in names if n in properties), None)
            if key is None:
                continue
            found = properties[key]
            found = properties[key] = _simplified(found)
            doc = field.description or docs.get(name)
            if doc and "description" not in found:
                found["description"] = doc
                found["markdownDescription"] = doc
            marker = next((m for m in field.metadata if isinstance(m, Deprecated)), None)
            if marker is not None:  # Kestra still reads it; editors strike it through
                found["deprecated"] = True
                note = f"Deprecated: {marker.message}."
                found["description"] = f"{doc}\n\n{note}" if doc else note
                found["markdownDescription"] = found["description"]
            if "$ref" in found and len(found) > 1:  # draft-07 ignores a $ref's siblings
                found = properties[key] = {"allOf": [{"$ref": found.pop("$ref")}], **found}
            if Dynamic in field.metadata:
                properties[key] = _templated(found)
            newer = {m.name for m in field.metadata if isinstance(m, NewerName)}
            for other in names:
                if other not in properties:
                    older = {} if other in newer else {"deprecated": True}
                    properties[other] = {**properties[key], **older}
        return json_schema


def _templated_models(cls: type[BaseModel]) -> set[type[BaseModel]]:
    """The models a class's templated (`Dynamic`) properties hold, at any depth."""
    found: set[type[BaseModel]] = set()
    for field in cls.model_fields.values():
        if Dynamic in field.metadata:
            found |= _models_in(field.annotation)
    return found


def _models_in(annotation: Any, seen: frozenset[type] = frozenset()) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:  # a model holding itself
            return set()
        inner = {annotation}
        for field in annotation.model_fields.values():
            inner |= _models_in(field.annotation, seen | {annotation})
        return inner
    return set().union(*(_models_in(arg, seen) for arg in typing.get_args(annotation)))


def _refs(schema: Any) -> set[str]:
    """Names of the definitions a schema refers to."""
    if isinstance(schema, dict):
        found = {_name(schema["$ref"])} if isinstance(schema.get("$ref"), str) else set()
        return found.union(*(_refs(v) for k, v in schema.items() if k != "$ref"))
    if isinstance(schema, list):
        return set().union(*(_refs(v) for v in schema))
    return set()


def _template_everywhere(definitions: dict[str, Any], names: set[str]) -> None:
    """Every property of these definitions, and of those they hold, may be an expression."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        properties = definitions[name].get("properties", {})
        for key, value in properties.items():
            todo.extend(_refs(value))
            if not value.get("$dynamic"):
                properties[key] = _templated(dict(value))


@cache
def field_docs(cls: Any) -> dict[str, str]:
    """The docstring under each field of a model and of its bases (a subclass's own first),
    read from the source when a schema is asked for, never when plug-ins load."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not issubclass(klass, BaseModel):
            continue
        node = _class_nodes(klass.__module__).get(klass.__qualname__)
        body = node.body if node is not None else []
        for first, second in itertools.pairwise(body):
            if (
                isinstance(first, ast.AnnAssign)
                and isinstance(first.target, ast.Name)
                and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant)
                and isinstance(second.value.value, str)
            ):
                docs[first.target.id] = inspect.cleandoc(second.value.value)
    return docs


@cache
def _class_nodes(module_name: str) -> dict[str, ast.ClassDef]:
    """Every class statement of a module by qualified name (the module parsed once)."""
    module = sys.modules.get(module_name)
    try:
        tree = ast.parse(inspect.getsource(module)) if module is not None else None
    except (OSError, TypeError, SyntaxError):
        tree = None
    found: dict[str, ast.ClassDef] = {}

    def walk(nodes: list[ast.stmt], prefix: str) -> None:
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                found[prefix + node.name] = node
                walk(node.body, f"{prefix}{node.name}.")

    walk(tree.body if tree is not None else [], "")
    return found


def _simplified(schema: dict[str, Any]) -> dict[str, Any]:
    """No pydantic title, no `null` default, no `null` choice: nobody writes `key: null`
    on purpose, and an editor completes enums best when they are not one choice deep."""
    schema.pop("title", None)
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(options):
            del schema["anyOf"]
            schema = {**kept[0], **schema}
        elif len(kept) < len(options):
            schema["anyOf"] = kept
    return schema


def _templated(schema: dict[str, Any]) -> dict[str, Any]:
    """A property kept as written when it holds an expression: its type, or a template."""
    if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
        return schema
    keep: dict[str, Any] = {
        k: schema.pop(k)
        for k in ("description", "markdownDescription", "default", "examples")
        if k in schema
    }
    options = schema.pop("anyOf", None) or [schema]
    return {"anyOf": [*options, TEMPLATE], **keep, "$dynamic": True}


def flow_schema(plugins: Plugins | None = None) -> dict[str, Any]:
    """The whole document; a new dict each call (callers may change theirs)."""
    return copy.deepcopy(_cached(plugins or default_plugins()))


_CACHE: dict[int, tuple[Plugins, dict[str, Any]]] = {}


def _cached(plugins: Plugins) -> dict[str, Any]:
    found = _CACHE.get(id(plugins))
    if found is None or found[0] is not plugins:
        found = (plugins, _build(plugins))
        _CACHE[id(plugins)] = found
    return found[1]


def _build(plugins: Plugins) -> dict[str, Any]:
    kinds: dict[str, list[type[BaseModel]]] = {
        "tasks": list(plugins.tasks.classes()),
        "triggers": list(plugins.triggers.classes()),
        "conditions": list(plugins.conditions.classes()),
    }
    everything: list[type[BaseModel]] = [
        Flow,
        *(base for base, _ in KINDS),
        *(cls for classes in kinds.values() for cls in classes),
    ]
    # Models held by a templated property: inside them too any value may be an expression
    # (it is rendered with the whole property).
    held = sorted(
        {m for cls in everything for m in _templated_models(cls)} - set(everything),
        key=lambda m: (m.__module__, m.__qualname__),
    )
    keys, document = models_json_schema(
        [(cls, "validation") for cls in [*everything, *held]],
        ref_template=REF,
        schema_generator=_Generator,
    )
    definitions: dict[str, Any] = document.get("$defs", {})
    _template_everywhere(definitions, {_name(keys[(m, "validation")]["$ref"]) for m in held})
    ref_of = {cls: keys[(cls, "validation")]["$ref"] for cls in everything}
    renames: dict[str, str] = {}
    for classes in kinds.values():
        for cls in classes:
            renames[_name(ref_of[cls])] = cls.types[0]  # type: ignore[attr-defined]
    for base, kind in KINDS:
        definitions[_name(ref_of[base])] = {
            "anyOf": [{"$ref": REF.format(model=cls.types[0])} for cls in kinds[kind]]  # type: ignore[attr-defined]
        }
        renames[_name(ref_of[base])] = kind
    for classes in kinds.values():
        for cls in classes:
            _describe_plugin(definitions[_name(ref_of[cls])], cls)
    flow = definitions[_name(ref_of[Flow])]
    for name in _LEAVE_OUT:
        flow.get("properties", {}).pop(name, None)
    flow["title"] = "Flow"
    renames[_name(ref_of[Flow])] = "Flow"
    definitions = {renames.get(k, k): _renamed(v, renames) for k, v in definitions.items()}
    return {
        "$schema": DRAFT,
        "title": "podium flow (Kestra syntax)",
        "$ref": REF.format(model="Flow"),
        "definitions": dict(sorted(definitions.items())),
    }


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _describe_plugin(schema: dict[str, Any], cls: type[Any]) -> None:
    types: tuple[str, ...] = cls.types
    canonical = types[0]
    doc = (cls.__doc__ or "").strip()
    schema["title"] = canonical.rsplit(".", 1)[-1]
    if doc:
        schema["description"] = doc
        schema["markdownDescription"] = doc
    properties = schema.setdefault("properties", {})
    type_schema: dict[str, Any] = {"type": "string", "enum": list(types)}
    if len(types) > 1:
        type_schema["markdownEnumDescriptions"] = [
            doc.split("\n", 1)[0] if name == canonical else f"An older name of `{canonical}`."
            for name in types
        ]
    properties["type"] = type_schema
    properties["pluginDefaultsRef"] = {
        "type": "string",
        "description": "Take the values of the pluginDefaults entry (of the flow, or of the "
        "plugin-defaults setting) with this `ref`, instead of those matched by type.",
    }
    # Any other property may come from the flow's `pluginDefaults`: it is required of the
    # task as it runs, not as it is written, so it is marked rather than demanded.
    for name in schema.get("required", []):
        if name in properties and name not in ("id", "type"):
            properties[name]["$required"] = True
    schema["examples"] = list(_examples(cls, schema))
    schema["required"] = [name for name in ("id", "type") if name in properties]


def _examples(cls: type[Any], schema: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    declared = getattr(cls, "examples", None)
    if isinstance(declared, list | tuple) and declared:
        for text in declared:
            loaded = yaml.safe_load(text) if isinstance(text, str) else text
            if isinstance(loaded, dict):
                yield loaded
        return
    example: dict[str, Any] = {}
    name = cls.types[0].rsplit(".", 1)[-1]
    properties = schema.get("properties", {})
    if "id" in properties:
        example["id"] = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    example["type"] = cls.types[0]
    for key in schema.get("required", []):
        if key not in example:
            example[key] = _placeholder(properties.get(key, {}))
    yield example


def _placeholder(schema: Mapping[str, Any]) -> Any:
    """A value of the property's type for a generated example."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return _placeholder(options[0])
    kind = schema.get("type")
    if kind == "integer" or kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object" or "$ref" in schema:
        return {}
    return "..."


def _renamed(value: Any, renames: Mapping[str, str]) -> Any:
    """Definitions under their new names (plug-ins by type), every `$ref` to them too."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                name = _name(item)
                out[key] = REF.format(model=renames.get(name, name))
            else:
                out[key] = _renamed(item, renames)
        return out
    if isinstance(value, list):
        return [_renamed(item, renames) for item in value]
    return value
