"""The deprecated forms a loaded flow uses, each with what to write instead.

Kestra keeps loading flows written for its older releases (input `name`, Pause `tasks`,
flow `listeners`, `io.kestra.core.tasks.*` type names...) and its editor flags them; podium
loads them too and says so: these warnings are what `podium validate` prints after a flow
that loads, and what the API returns with the flow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from daemon.flows.definition import Flow, Path
from daemon.sdk.plugin import Condition, Task, Trigger
from daemon.sdk.properties import Deprecated

# Type names of Kestra's releases before 0.17, still accepted as aliases of the current ones.
LEGACY_TYPE_PREFIX = "io.kestra.core."


def deprecations(flow: Flow) -> list[tuple[Path, str]]:
    """(property path, message) for every deprecated form the flow uses, in file order."""
    return list(_walk(flow, ()))


def deprecations_in(model: BaseModel, path: Path) -> list[tuple[Path, str]]:
    """`deprecations` of one part of a flow (a task, an input) found at `path`."""
    return list(_walk(model, path))


def _walk(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, BaseModel):
        yield from _model(value, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, path + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,))


def _model(model: BaseModel, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(model, Task | Trigger | Condition):
        written, current = model.type, type(model).types[0] if type(model).types else model.type
        superseded = getattr(type(model), "superseded_by", None)
        if superseded:
            yield path + ("type",), f"type '{written}' is deprecated; {superseded}"
        elif written != current and written.startswith(LEGACY_TYPE_PREFIX):
            yield path + ("type",), f"type '{written}' is deprecated; use '{current}'"
    if isinstance(model, Task) and model.wrote_run_if:
        yield path + ("runIf",), "'runIf' is deprecated; use 'when'"
    fields = type(model).model_fields
    for name in model.model_fields_set:
        field = fields.get(name)
        if field is None:
            continue
        key = field.alias or name
        for marker in field.metadata:
            if isinstance(marker, Deprecated):
                yield path + (key,), f"'{key}' is deprecated; {marker.message}"
        yield from _walk(getattr(model, name), path + (key,))


def raw_deprecations(
    cls: type[BaseModel], raw: Mapping[str, Any], path: Path
) -> list[tuple[Path, str]]:
    """The deprecated forms of a part that did not build (another of its properties is
    wrong), read from the mapping as written: its type name and its own properties."""
    found: list[tuple[Path, str]] = []
    written = raw.get("type")
    if issubclass(cls, Task | Trigger | Condition) and isinstance(written, str) and cls.types:
        if written != cls.types[0] and written.startswith(LEGACY_TYPE_PREFIX):
            found.append(
                (path + ("type",), f"type '{written}' is deprecated; use '{cls.types[0]}'")
            )
    for name, field in cls.model_fields.items():
        key = field.alias or name
        if key not in raw and name not in raw:
            continue
        for marker in field.metadata:
            if isinstance(marker, Deprecated):
                found.append((path + (key,), f"'{key}' is deprecated; {marker.message}"))
    return found
