"""The rest of Kestra's and Pebble's filters, with their meaning where Jinja's differ.

`indent`, `slice` and `abs` replace Jinja's filters of the same name (Pebble's read their
arguments differently); the others exist only in Kestra. Each refuses bad input with
`ValueError`/`TypeError`, which `daemon.expr.filters` reports naming the filter.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable, Mapping
from typing import Any

import regex  # type: ignore[import-untyped]
import yaml

from daemon.expr.conversions import to_text

# Seconds one regular-expression filter may take (see daemon.expr.filters.REGEX_TIMEOUT).
REGEX_TIMEOUT = 2.0
_LIST = (list, tuple)


def _line_separator(text: str) -> str:
    for separator in ("\r\n", "\n\r", "\n", "\r"):
        if separator in text:
            return separator
    return "\n"


def _amount(amount: Any, name: str) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"the '{name}' filter expects an integer as argument 'amount'")
    if amount < 0:
        raise ValueError(f"the '{name}' filter expects a positive integer >=0 as argument 'amount'")
    return amount


def indent(value: Any, amount: Any = None, prefix: str = " ") -> Any:
    """Kestra's `indent`: every line but the first gets `amount` times `prefix` (the first is
    assumed to sit where the expression is)."""
    if value is None:
        return None
    text = to_text(value)
    if not text:
        return text
    newline = _line_separator(text)
    return text.replace(newline, newline + prefix * _amount(amount, "indent"))


def nindent(value: Any, amount: Any = None, prefix: str = " ") -> Any:
    """Kestra's `nindent`: a newline first, then every line indented."""
    if value is None:
        return None
    text = to_text(value)
    if not text:
        return text
    newline = _line_separator(text)
    return (newline + text).replace(newline, newline + prefix * _amount(amount, "nindent"))


def flatten(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, _LIST):
        raise ValueError("can only be applied to lists")
    out: list[Any] = []
    for item in value:
        out.extend(item) if isinstance(item, _LIST) else out.append(item)
    return out


def merge(value: Any, items: Any = None) -> Any:
    """Pebble's `merge`: the left side's type decides (a map takes keys, a list appends)."""
    if value is None:
        if items is None:
            raise ValueError("the two arguments to be merged are null")
        return items
    if items is None:
        return value
    if isinstance(value, Mapping):
        if isinstance(items, Mapping):
            return {**value, **items}
        if isinstance(items, _LIST):
            return {**value, **{item: item for item in items}}
        raise ValueError("only maps and lists can be merged with a map")
    if isinstance(value, _LIST):
        if isinstance(items, Mapping):
            return [*value, *({k: v} for k, v in items.items())]
        if isinstance(items, _LIST):
            return [*value, *items]
        raise ValueError("only maps and lists can be merged with a list")
    raise ValueError("the value filtered is not a map or a list")


def slice_(value: Any, fromIndex: Any = 0, toIndex: Any = None) -> Any:
    """Pebble's `slice(fromIndex, toIndex)` of a text or a list; `toIndex` excluded."""
    if value is None:
        return None
    if not isinstance(value, str | list | tuple):
        raise ValueError(f"can only be applied to texts and lists, not {type(value).__name__}")
    start = 0 if fromIndex is None else fromIndex
    if not isinstance(start, int) or start < 0:
        raise ValueError("fromIndex must be a number, 0 or more")
    end = len(value) if toIndex is None else toIndex
    if not isinstance(end, int):
        raise ValueError("toIndex must be a number")
    if end > len(value):
        raise ValueError(f"toIndex must be smaller than input size: {len(value)}")
    if start >= end and toIndex is not None:
        raise ValueError("toIndex must be greater than fromIndex")
    return value[start:end]


_ESCAPES = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}


def escape_char(value: Any, type: Any = None) -> Any:
    if type is None:
        raise ValueError("expects an argument 'type'")
    kind = str(type).lower()
    if kind not in _ESCAPES:
        raise ValueError("the value of 'type' must be 'single', 'double' or 'shell'")
    old, new = _ESCAPES[kind]

    def escape(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: escape(v) for k, v in item.items()}
        if isinstance(item, _LIST):
            return [escape(v) for v in item]
        return to_text(item).replace(old, new)

    return None if value is None else escape(value)


def sh(value: Any) -> Any:
    """Text made safe inside single quotes of a shell command."""
    return None if value is None else to_text(value).replace("'", "'\\''")


def uniq(value: Any) -> Any:
    if not isinstance(value, _LIST):
        return value
    out: list[Any] = []
    for item in value:
        if item not in out:
            out.append(item)
    return out


def _compiled(pattern: Any) -> Any:
    if pattern is None:
        raise ValueError("the argument 'regex' is required")
    try:
        return regex.compile(to_text(pattern))
    except regex.error as exc:
        raise ValueError(f'invalid regular expression "{pattern}": {exc}') from None


def _timed(run: Callable[[], Any], pattern: Any) -> Any:
    try:
        return run()
    except TimeoutError:
        raise ValueError(
            f'regular expression "{pattern}" ran longer than {REGEX_TIMEOUT:g} s'
        ) from None


def regex_match(value: Any, regex: Any = None) -> bool:
    """True when the pattern is found anywhere in the text (Java's `find`)."""
    compiled = _compiled(regex)
    if value is None:
        return False
    return bool(_timed(lambda: compiled.search(to_text(value), timeout=REGEX_TIMEOUT), regex))


def regex_extract(value: Any, regex: Any = None, group: Any = 0) -> Any:
    """The first match (or one of its groups); null when nothing matches."""
    compiled = _compiled(regex)
    if value is None:
        return None
    found = _timed(lambda: compiled.search(to_text(value), timeout=REGEX_TIMEOUT), regex)
    if found is None:
        return None
    try:
        return found.group(int(group or 0))
    except IndexError:
        raise ValueError(f"the pattern has no group {group}") from None


def regex_replace(value: Any, regex: Any = None, replacement: Any = None) -> Any:
    compiled = _compiled(regex)
    if replacement is None:
        raise ValueError("the argument 'replacement' is required")
    if value is None:
        return None
    java = re.sub(r"\$(\d+)", r"\\g<\1>", to_text(replacement))
    return _timed(lambda: compiled.sub(java, to_text(value), timeout=REGEX_TIMEOUT), regex)


class _IndentedLists(yaml.SafeDumper):
    """Lists indented under their key, as Kestra's YAML writer (INDENT_ARRAYS) does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def to_yaml(value: Any) -> str:
    """Kestra's `yaml` filter: the value as YAML text (no document marker)."""
    if value is None:
        return "null"
    text = yaml.dump(
        _plain(value),
        Dumper=_IndentedLists,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
    )
    return str(text).removesuffix("...\n")


def from_yaml(text: Any) -> Any:
    """Kestra's `yaml()` function: a YAML text parsed (a value already parsed is kept)."""
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, _LIST):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return to_text(value)


_JAVA_CLASSES: tuple[tuple[type, str], ...] = (
    (bool, "java.lang.Boolean"),
    (int, "java.lang.Integer"),
    (float, "java.lang.Double"),
    (decimal.Decimal, "java.math.BigDecimal"),
    (str, "java.lang.String"),
    (list, "java.util.ArrayList"),
    (tuple, "java.util.ArrayList"),
    (dict, "java.util.LinkedHashMap"),
)


def class_name(value: Any) -> Any:
    """The Java class Kestra would name for the value (`java.lang.String`...)."""
    if value is None:
        return None
    for kind, name in _JAVA_CLASSES:
        if isinstance(value, kind):
            if isinstance(value, int) and name.endswith("Integer") and abs(value) >= 2**31:
                return "java.lang.Long"
            return name
    return type(value).__name__


def abs_(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise ValueError(f"expects a number, got {type(value).__name__}")
    return abs(value)


def number_format(value: Any, format: Any = None) -> Any:
    """Pebble's `numberformat(pattern)` for the patterns flows use: `#,##0.00`, `0.###`,
    `#%`... (Java's DecimalFormat: `0` a digit always shown, `#` one shown if needed)."""
    if value is None:
        return None
    number = decimal.Decimal(str(value))
    if format is None:
        return f"{number:,}" if number == number.to_integral_value() else f"{float(number):,}"
    pattern = str(format)
    percent = pattern.endswith("%")
    if percent:
        number *= 100
        pattern = pattern[:-1]
    whole, _, fraction = pattern.partition(".")
    shown, extra = fraction.count("0"), fraction.count("#")
    rounded = number.quantize(
        decimal.Decimal(1).scaleb(-(shown + extra)), rounding=decimal.ROUND_HALF_EVEN
    )
    text = (
        f"{abs(rounded):,.{shown + extra}f}"
        if "," in whole
        else f"{abs(rounded):.{shown + extra}f}"
    )
    if extra:
        head, _, tail = text.partition(".")
        tail = tail[: shown + extra].rstrip("0").ljust(shown, "0")
        text = f"{head}.{tail}" if tail else head
    digits = whole.replace(",", "").count("0")
    head, dot, tail = text.partition(".")
    if digits == 0 and head.replace(",", "") == "0" and (tail or rounded != 0):
        head = ""
    elif len(head.replace(",", "")) < digits:
        head = head.replace(",", "").rjust(digits, "0")
    text = head + dot + tail
    return ("-" if rounded < 0 else "") + text + ("%" if percent else "")


def nl2br(value: Any) -> Any:
    return None if value is None else to_text(value).replace("\n", "<br />")


FILTERS: dict[str, Callable[..., Any]] = {
    "indent": indent,
    "nindent": nindent,
    "flatten": flatten,
    "merge": merge,
    "slice": slice_,
    "escapeChar": escape_char,
    "sh": sh,
    "uniq": uniq,
    "regexMatch": regex_match,
    "regexExtract": regex_extract,
    "regexReplace": regex_replace,
    "yaml": to_yaml,
    "className": class_name,
    "abs": abs_,
    "numberformat": number_format,
    "numberFormat": number_format,
    "nl2br": nl2br,
}
