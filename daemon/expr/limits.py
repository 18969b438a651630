"""Bounds on what one expression may build, so a slip such as `range(10**9)` or `'-' * 10**9`
is an error naming the limit instead of a daemon that stops answering or runs out of memory.

Jinja's sandbox refuses unsafe attributes but does not bound work. These limits count what a
template makes (items, characters, digits, loop turns), not time, so a render fails the same
way on every machine (a backtracking regular expression, which only time can stop, is
`expr_filters`' business). What multiplies a size (repetition, padding, powers, widths) is
checked before it runs: a 1 GB string refused once it exists has already done the harm. What
only adds (`~`, a filter's result) is checked after, which bounds it to a small multiple.

Counting alone cannot stop a million loop turns that each copy 10 MB, so a render also has a
deadline, checked wherever a template can spend time (each loop turn, call, filter and
operator; each of these is itself bounded in size, so the time between two checks is short).
A render started on the event loop gets a deadline of a few milliseconds and no jq: when it
needs more it stops with `OffLoop`, and the async caller runs it again in a thread with the
full deadline (`daemon.expr.renderer.Renderer.render_value_async`).
"""

from __future__ import annotations

import itertools
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextvars import ContextVar
from functools import wraps
from typing import Any

from jinja2 import Environment, nodes
from jinja2.filters import make_attrgetter
from jinja2.utils import pass_environment
from jinja2.visitor import NodeTransformer

from daemon.sdk.errors import TemplateError

MAX_RANGE = 100_000  # items of one range(), as Jinja's sandbox allows
MAX_LENGTH = 10_000_000  # characters or items of one value an operator or filter makes
MAX_OUTPUT = 50_000_000  # characters of one rendered text; outside values pass through it
MAX_INT_DIGITS = 4_300  # Python's own limit on printing an int
MAX_LOOP_TURNS = 1_000_000  # `{% for %}` iterations of one render, nested render() included
MAX_WRAP = 1_000_000  # characters `wordwrap` takes: Python's textwrap is ~1 s per MB
# Seconds one render may run: in a thread (where the async call sites render), and on the
# event loop, first for a try (then in a thread), then for a sync call that cannot leave it.
RENDER_SECONDS = 10.0
INLINE_SECONDS = 0.02
ON_LOOP_SECONDS = 1.0

# Node names that templates cannot spell (the parser reads filter names as identifiers).
CHECK_LENGTH = "podium:length"
COUNT_TURNS = "podium:turns"

_budget: ContextVar[Budget | None] = ContextVar("render_budget", default=None)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[diouxXeEfFgGcrsa]")
_DIGITS = re.compile(r"\d+")
_LOG2_10 = 3.3219280948873626
_MAX_INT_BITS = int(MAX_INT_DIGITS * _LOG2_10)


class OffLoop(Exception):
    """A render on the event loop needs more than the loop can give (time, jq): run it again
    in a thread. Never reaches a user: the renderer's async entry catches it."""


class Budget:
    """What one render (with every render() nested in it) may still spend."""

    __slots__ = ("deadline", "inline", "seconds", "turns")

    def __init__(self, seconds: float, *, inline: bool = False) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.inline = inline
        self.turns = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self) -> None:
        if self.inline:
            raise OffLoop
        raise TemplateError(
            f"the expression ran for more than {self.seconds:g} s, the limit for one render"
        )


def current() -> Budget | None:
    return _budget.get()


def enter(budget: Budget) -> Any:
    """Make `budget` the current one; returns the token `leave` takes."""
    return _budget.set(budget)


def leave(token: Any) -> None:
    _budget.reset(token)


def tick() -> None:
    """A point where a render may have run out of time."""
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        budget.expired()


def leave_loop(what: str) -> Budget | None:
    """The budget for work that can block (jq): never on the event loop's first try."""
    budget = _budget.get()
    if budget is not None and budget.inline:
        raise OffLoop(what)
    return budget


def counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Each `{% for %}` iterates through this: nested loops multiply, each range alone does not
    tell how long a render runs."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.turns += 1
            if budget.turns > MAX_LOOP_TURNS:
                raise TemplateError(f"loops ran more than {MAX_LOOP_TURNS} times")
            if time.monotonic() > budget.deadline:
                budget.expired()
        yield item


def check_length(value: Any, what: str = "the result") -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_LENGTH:
        raise TemplateError(
            f"{what} has {len(value)} {_unit(value)}, over the limit of {MAX_LENGTH}"
        )
    return value


def checked_concat(value: Any) -> Any:
    return check_length(value, "text joined with ~")


def limited_range(*args: int) -> range:
    """`range()` as the sandbox allows it, saying which range and which limit."""
    numbers = range(*args)
    count = _range_length(numbers)
    if count > MAX_RANGE:
        raise TemplateError(f"range of {count} items is over the limit of {MAX_RANGE}")
    return numbers


def binop(operator: str, left: Any, right: Any) -> Any:
    """The operators that can multiply a value's size, checked before they run."""
    tick()
    if operator == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
        if (
            _is_int(left)
            and _is_int(right)
            and abs(left).bit_length() + abs(right).bit_length() > _MAX_INT_BITS
        ):
            raise TemplateError(
                f"{_digits(left)}-digit * {_digits(right)}-digit number has "
                f"more than {MAX_INT_DIGITS} digits"
            )
        return left * right
    if operator == "**":
        if (
            _is_int(left)
            and _is_int(right)
            and abs(left) > 1
            and right * (abs(left).bit_length() - 1) > _MAX_INT_BITS
        ):
            raise TemplateError(f"{_shown(left)} ** {right} has more than {MAX_INT_DIGITS} digits")
        return left**right
    if operator == "+":
        if _sized(left) and _sized(right) and type(left) is type(right):
            _check_size(len(left) + len(right), left, f"{_describe(left)} + {_describe(right)}")
        return left + right
    if operator == "%":
        if isinstance(left, str):
            check_format(left, right if isinstance(right, tuple) else (right,))
        return left % right
    raise AssertionError(f"operator {operator!r} is not intercepted")


INTERCEPTED_BINOPS = frozenset({"*", "**", "+", "%"})


def check_format(template: str, args: Iterable[Any]) -> None:
    """`%` and `{}` formats: a width or precision sizes the text it makes."""
    numbers = [int(n) for n in _format_widths(template)]
    if "*" in _format_widths(template) or _nested_spec(template):
        numbers += [a for a in args if _is_int(a)]
    for number in numbers:
        if number > MAX_LENGTH:
            raise TemplateError(f"format width {number} is over the limit of {MAX_LENGTH}")


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Methods of text called from a template (`'x'.ljust(n)`) that size their result."""
    tick()
    # The sandbox hands out `str.format` wrapped; the method itself is `__wrapped__`.
    method = getattr(obj, "__wrapped__", obj)
    text = getattr(method, "__self__", None)
    if not isinstance(text, str):
        return
    name = getattr(method, "__name__", "")
    values = [*args, *kwargs.values()]
    if name in ("ljust", "rjust", "center", "zfill") and values and _is_int(values[0]):
        _check_size(values[0], text, f"{name}() width")
    elif name == "expandtabs" and values and _is_int(values[0]):
        _check_size(text.count("\t") * values[0], text, "expandtabs()")
    elif name == "replace" and len(values) >= 2 and all(isinstance(v, str) for v in values[:2]):
        _check_size(_replaced_length(text, values[0], values[1]), text, "replace()")
    elif name == "join" and values and isinstance(values[0], Sized):
        _check_size(len(text) * max(len(values[0]) - 1, 0), text, "join() separators")
    elif name in ("format", "format_map"):
        check_format(
            text,
            [
                *args,
                *(v for a in args if isinstance(a, dict) for v in a.values()),
                *kwargs.values(),
            ],
        )


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter's result checked for size, and those that pad or repeat checked before."""
    out = {name: _after(name, fn) for name, fn in filters.items()}
    before: dict[str, Callable[..., None]] = {
        "center": _center_args,
        "indent": _indent_args,
        "format": _format_args,
        "batch": _batch_args,
        "slice": _slice_args,
        "join": _join_args,
        "wordwrap": _wordwrap_args,
    }
    for name, check in before.items():
        if name in out:
            out[name] = _before(out[name], check)
    if "sum" in out:
        out["sum"] = _after("sum", bounded_sum)
    return out


@pass_environment
def bounded_sum(
    environment: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja's `sum`, but lists and texts are added in one pass with their size checked as
    they grow: `+` one by one copies the total each time, hours for 10^5 lists."""
    items = (
        iterable if attribute is None else map(make_attrgetter(environment, attribute), iterable)
    )
    if not _sized(start):
        total = start
        for item in items:
            total = total + item
            tick()
        return total
    parts: list[Any] = [start]
    size = len(start)
    for item in items:
        if type(item) is not type(start):
            raise TemplateError(f"sum: cannot add {type(item).__name__} to {type(start).__name__}")
        size += len(item)
        _check_size(size, start, "sum")
        parts.append(item)
        tick()
    if isinstance(start, str):
        return "".join(parts)
    if isinstance(start, bytes):
        return b"".join(parts)
    return type(start)(itertools.chain.from_iterable(parts))


class Bounds(NodeTransformer):
    """Marks a parsed template: every `~` checks its result's size, every `for` counts turns."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, CHECK_LENGTH, [], [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, COUNT_TURNS, [], [], None, None, lineno=node.lineno)
        return node


# -- helpers ------------------------------------------------------------------------------


def _after(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def apply(*args: Any, **kwargs: Any) -> Any:
        result = check_length(fn(*args, **kwargs), f"the {name} filter's result")
        tick()
        return result

    return apply


def _before(fn: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    # Filters marked `pass_context` and the like (Jinja's `join`, `slice`) get that first.
    passed = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    @wraps(fn)
    def apply(*args: Any, **kwargs: Any) -> Any:
        check(*args[passed:], **kwargs)
        return fn(*args, **kwargs)

    return apply


def _center_args(value: Any, width: Any = 80, *_: Any) -> None:
    if _is_int(width):
        _check_size(width, str(value), "center width")


def _indent_args(value: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    size = width if _is_int(width) else len(width) if isinstance(width, str) else 0
    text = value if isinstance(value, str) else ""
    _check_size((text.count("\n") + 1) * size + len(text), text, "indented text")


def _format_args(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        check_format(value, [*args, *kwargs.values()])


def _batch_args(value: Any, linecount: Any = 0, fill_with: Any = None, *_: Any) -> None:
    if fill_with is not None and _is_int(linecount):
        _check_size(linecount, [], "batch size")


def _slice_args(value: Any, slices: Any = 1, *_: Any) -> None:
    if _is_int(slices) and slices > MAX_RANGE:
        raise TemplateError(f"slice into {slices} parts is over the limit of {MAX_RANGE}")


def _join_args(value: Any, separator: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(separator, str) and isinstance(value, Sized):
        _check_size(len(separator) * max(len(value) - 1, 0), separator, "join separators")
    if isinstance(value, list | tuple):
        # Texts joined are sized before the join: after it, 10 GB would already exist.
        size = sum(len(v) for v in value if isinstance(v, str))
        _check_size(size, "", "join of texts")


def _wordwrap_args(value: Any, *_: Any, **__: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_WRAP:
        raise TemplateError(
            f"wordwrap of a text of {len(value)} characters is over the limit of {MAX_WRAP}"
        )


def _check_repeat(seq: Any, times: Any) -> None:
    if _sized(seq) and _is_int(times):
        _check_size(len(seq) * times, seq, f"{_describe(seq)} * {times}")


def _check_size(size: int, like: Any, what: str) -> None:
    if size > MAX_LENGTH:
        raise TemplateError(f"{what} makes {size} {_unit(like)}, over the limit of {MAX_LENGTH}")


def _replaced_length(text: str, old: str, new: str) -> int:
    count = len(text) + 1 if not old else text.count(old)
    return len(text) + count * (len(new) - len(old))


def _format_widths(template: str) -> list[str]:
    out: list[str] = []
    for match in _PERCENT.finditer(template):
        out += [g for g in match.groups() if g]
    try:
        specs = [spec for _, _, spec, _ in string.Formatter().parse(template) if spec]
    except ValueError:
        return out  # a malformed `{}` format fails when it runs, with Python's message
    for spec in specs:
        out += _DIGITS.findall(spec)
    return out


def _nested_spec(template: str) -> bool:
    try:
        return any(spec and "{" in spec for _, _, spec, _ in string.Formatter().parse(template))
    except ValueError:
        return False


def _range_length(numbers: range) -> int:
    start, stop, step = numbers.start, numbers.stop, numbers.step
    span = stop - start if step > 0 else start - stop
    return max(0, -(-span // abs(step)))


def _describe(seq: Any) -> str:
    """A short value as written, a long one by its size: messages stay one line."""
    if len(seq) <= 20 and len(shown := repr(seq)) <= 40:
        return shown
    return (
        f"a text of {len(seq)} characters"
        if isinstance(seq, str)
        else f"a list of {len(seq)} items"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sized(value: Any) -> bool:
    return isinstance(value, str | list | tuple | bytes)


def _unit(value: Any) -> str:
    return (
        "characters" if isinstance(value, str) else "bytes" if isinstance(value, bytes) else "items"
    )


def _digits(number: int) -> int:
    return (
        len(str(abs(number)))
        if abs(number).bit_length() < _MAX_INT_BITS
        else int(abs(number).bit_length() / _LOG2_10) + 1
    )


def _shown(number: int) -> str:
    return str(number) if abs(number).bit_length() < 64 else f"a {_digits(number)}-digit number"
