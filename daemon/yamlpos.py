"""YAML parsing that remembers where every value came from.

Errors about a flow must point at file:line:column, so the loader keeps a map
from each property path (("tasks", 2, "type")) to the position of its value.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 core scalars: only true/false are booleans and 14:19 is not a number.

    PyYAML follows YAML 1.1, where `id: off` is False and `14:19:00` is 51540;
    Kestra users write those as text.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                           "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)


class YamlProblem(Exception):
    """A syntax error or duplicate key, with its 1-based position."""

    def __init__(self, message: str, line: int, column: int, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.path = path


class Positions:
    """Property path -> (line, column), 1-based; falls back to the nearest known parent."""

    def __init__(self) -> None:
        self._marks: dict[Path, tuple[int, int]] = {}

    def add(self, path: Path, mark: yaml.Mark) -> None:
        self._marks[path] = (mark.line + 1, mark.column + 1)

    def of(self, path: Path) -> tuple[int, int]:
        while path:
            if path in self._marks:
                return self._marks[path]
            path = path[:-1]
        return self._marks.get((), (1, 1))


def format_path(path: Path) -> str:
    """`tasks[2].then[0].type`, the way users read property paths."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load(text: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain Python values and their positions."""
    positions = Positions()
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions
        return _build(loader, node, (), positions), positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlProblem(f"invalid YAML: {problem}", line, col) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", 1, 1) from None
    finally:
        loader.dispose()


def _build(loader: _Loader, node: yaml.Node, path: Path, positions: Positions) -> Any:
    positions.add(path, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise YamlProblem(
                    "invalid YAML: a mapping key must be a plain value",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    path,
                )
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise YamlProblem(
                    f"duplicate key '{key}'",
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    path + (key,),
                )
            result[key] = _build(loader, value_node, path + (key,), positions)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), positions) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat") and isinstance(node, yaml.ScalarNode):
        # Kestra reads YAML dates as text; keep what the user wrote.
        return node.value
    return value
