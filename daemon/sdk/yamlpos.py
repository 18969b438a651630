"""YAML parsing that remembers where every value came from.

Errors about a flow must point at file:line:column, so the loader keeps a map
from each property path (("tasks", 2, "type")) to the position of its value.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

try:  # libyaml, which PyYAML's wheels carry; without it everything is read in Python
    from yaml._yaml import CParser as _CParser
except ImportError:  # a PyYAML built without libyaml
    _CParser = None  # type: ignore[assignment,misc]

Path = tuple[str | int, ...]
# Deeper than any flow is written; PyYAML's own recursion gives out a few hundred levels down.
MAX_DEPTH = 100
# Values that aliases may add beyond the nodes written: a flow reuses a few blocks, an
# alias bomb ("billion laughs") reaches this limit long before it fills memory.
MAX_ALIAS_VALUES = 100_000


class _BoundedComposer(yaml.composer.Composer):
    """PyYAML's composer with nesting bounded where it recurses, so that a deep document
    is an error at its position rather than a RecursionError."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested more than {MAX_DEPTH} levels deep",
                self.peek_event().start_mark,  # type: ignore[attr-defined]  # the parser's
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _SafeLoader(_BoundedComposer, yaml.SafeLoader):
    """PyYAML's safe loader, all in Python, with nesting bounded."""


class _Loader(_SafeLoader):
    """YAML 1.2 core scalars: only true/false are booleans and 14:19 is not a number.

    PyYAML follows YAML 1.1, where `id: off` is False and `14:19:00` is 51540;
    Kestra users write those as text.
    """


Loader = type[_SafeLoader] | type["_CLoader"]

if _CParser is not None:

    class _CLoader(
        _BoundedComposer,
        _CParser,
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """`_Loader` with libyaml reading the text into events: its scanner and parser in C
        compose a 1 MB flow 6x faster than PyYAML's own (bench/flow_size.py: validating it,
        2.6 s -> 1.2 s); the composer, bounds, positions and constructors are `_Loader`'s.

        libyaml keeps closer to the YAML spec than PyYAML in a few places (a tab inside a
        plain scalar, `a?b` in a flow sequence, the `!` tag): it reads those where PyYAML
        refused them; a text it refuses is read again by `_Loader`, for PyYAML's errors."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


def _core_schema(cls: Loader) -> None:
    cls.yaml_implicit_resolvers = {
        first: [
            (tag, rx)
            for tag, rx in resolvers
            if tag
            not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    cls.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    cls.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    )
    cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    )
    cls.add_constructor("tag:yaml.org,2002:int", _int)


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text)


_core_schema(_Loader)
if _CParser is not None:
    _core_schema(_CLoader)


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


_PLAIN = (
    # (what PyYAML says, in its problem and context, -> what it means to a person)
    ("expected ',' or ']'", "a list opened with '[' at {context} is not closed with ']'"),
    ("expected ',' or '}'", "a mapping opened with '{{' at {context} is not closed with '}}'"),
    ("found character '\\t' that cannot start any token", "a tab: YAML indents with spaces only"),
    (
        "mapping values are not allowed here",
        "a ':' where a value was expected: quote a value that contains ': '",
    ),
    ("could not find expected ':'", "a line that is neither 'key: value' nor '- item' here"),
    (
        "expected <block end>, but found",
        "this line is indented differently from the lines it belongs with",
    ),
    ("found unexpected end of stream", "a quoted string that starts at {context} is not closed"),
    ("did not find expected key", "this line is indented differently from the keys above it"),
    (
        "did not find expected '-' indicator",
        "this line is indented differently from the list items above it",
    ),
    ("found undefined alias", "an alias (*name) with no anchor (&name) defined before it"),
)


def plain_words(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's message as a person reads it: what is wrong, and where it began when that
    is elsewhere; PyYAML's own words (in parentheses) for anything not listed."""
    problem = exc.problem or str(exc)
    start = exc.context_mark
    context = f"line {start.line + 1}, column {start.column + 1}" if start else "an earlier line"
    said = f"{problem} ({exc.context})" if exc.context else problem
    for pattern, meaning in _PLAIN:
        if pattern in said:
            return meaning.format(context=context)
    return said


def load(text: str, *, core_schema: bool = True) -> tuple[Any, Positions]:
    """Parse one YAML document into plain Python values and their positions; without
    `core_schema`, scalars are read as YAML 1.1 (`yes` is true), as input values always were."""
    if core_schema and _CParser is not None:
        try:
            return _parse(_CLoader, text)
        except yaml.YAMLError:
            # libyaml words its errors differently: the text is read again in Python, for
            # the messages (and the plain words over them) that podium gives.
            pass
    try:
        return _parse(_Loader if core_schema else _SafeLoader, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlProblem(f"invalid YAML: {plain_words(exc)}", line, col) from None
    except yaml.reader.ReaderError as exc:
        line, col = _line_column(text, exc.position)
        raise YamlProblem(
            f"invalid YAML: character U+{exc.character:04X} is not allowed", line, col
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", 1, 1) from None


def _parse(loader_class: Loader, text: str) -> tuple[Any, Positions]:
    positions = Positions()
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions
        return _Builder(loader, positions).build(node, ()), positions
    finally:
        loader.dispose()


def _line_column(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


class _Builder:
    """Turns composed nodes into values, refusing what would not terminate or fit in memory:
    an alias inside itself, aliases that multiply the document ("billion laughs"), and
    nesting deeper than any flow needs."""

    def __init__(self, loader: _SafeLoader | _CLoader, positions: Positions) -> None:
        self.loader = loader
        self.positions = positions
        self.open: set[int] = set()  # nodes being built: meeting one again is a cycle
        self.distinct: set[int] = set()
        self.built = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.positions.add(path, node.start_mark)
        self._count(node, path)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self.open:
                raise _problem("an alias refers to a value that contains it", node, path)
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        value = self._construct(node, path)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if hasattr(value, "isoformat"):
            # Kestra reads YAML dates as text; keep what the user wrote.
            return node.value
        return value

    def _count(self, node: yaml.Node, path: Path) -> None:
        if len(path) > MAX_DEPTH:
            raise _problem(f"nested more than {MAX_DEPTH} levels deep", node, path)
        self.built += 1
        self.distinct.add(id(node))
        if self.built - len(self.distinct) > MAX_ALIAS_VALUES:
            raise _problem(f"aliases expand to more than {MAX_ALIAS_VALUES} values", node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        self.loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._construct(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool):
                raise _problem(
                    "a mapping key must be a plain value", key_node, path, prefix="invalid YAML: "
                )
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise _problem(f"duplicate key '{key}'", key_node, path + (key,))
            result[key] = self.build(value_node, path + (key,))
        return result

    def _construct(self, node: yaml.Node, path: Path) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, AttributeError):
            # PyYAML's scalar constructors raise plain errors for `!!int abc`,
            # `!!timestamp x`, or an integer with more digits than Python converts.
            shown = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            raise _problem(
                f"cannot read {shown!r} as {node.tag.rsplit(':', 1)[-1]}",
                node,
                path,
                prefix="invalid YAML: ",
            ) from None


def _problem(message: str, node: yaml.Node, path: Path, prefix: str = "") -> YamlProblem:
    mark = node.start_mark
    return YamlProblem(prefix + message, mark.line + 1, mark.column + 1, path)
