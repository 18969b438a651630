"""The filters and tests Kestra documents, with Pebble's meaning where it differs from Jinja's.

Pebble passes null through most filters, prints values its own way (`true`, JSON for maps),
and treats a blank string as empty; flows written for Kestra rely on all three. A filter that
refuses its input raises `ValueError`/`TypeError`; `FILTERS` turns that into a
`TemplateError` naming the filter, so the author sees which one refused what.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import wraps
from typing import Any, Concatenate, ParamSpec
from urllib.parse import quote_plus, unquote_plus

import regex  # type: ignore[import-untyped]
from jinja2 import Undefined

from daemon.expr import ion_values as ion
from daemon.expr import jq_worker, kestra_filters, limits
from daemon.expr.conversions import (
    date_add,
    date_filter,
    from_json,
    number,
    timestamp,
    to_json,
    to_text,
)
from daemon.sdk.errors import TemplateError

P = ParamSpec("P")

_JAVA_REPLACEMENT = re.compile(r"\\(.)|\$(\d+)|\$\{(\w+)\}", re.DOTALL)
# Seconds one `replace(regexp=true)` may take: a backtracking pattern such as `(a+)+$` would
# otherwise hold the whole daemon, since the regex engine never yields.
REGEX_TIMEOUT = 2.0


def _on_text(fn: Callable[Concatenate[str, P], Any]) -> Callable[Concatenate[Any, P], Any]:
    """Pebble's string filters pass null through and read anything else as its printed text."""

    @wraps(fn)
    def apply(value: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        return None if value is None else fn(to_text(value), *args, **kwargs)

    return apply


def _named(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A filter given a missing value fails with what is missing, not with what it expected."""

    @wraps(fn)
    def apply(value: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        try:
            return fn(value, *args, **kwargs)
        except (ValueError, TypeError, OverflowError) as exc:
            raise TemplateError(f"{name}: {exc}") from exc

    return apply


# -- dates ------------------------------------------------------------------------------


def _jq(value: Any, expression: str | None = None) -> list[Any] | None:
    """Kestra's `jq`: every result in a list; a text is read as JSON (as Kestra's JqFilter
    does), so `'{"a":1}' | jq('.a')` is `[1]`; null gives null."""
    if expression is None:
        raise ValueError("expects an argument 'expression'")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise ValueError(
                f"unable to parse jq value '{value[:100]}' (a text that is not JSON)"
            ) from None
        text = value
    else:
        text = to_json(value)
    # In a worker process: libjq can loop or allocate forever where nothing can stop it.
    budget = limits.leave_loop("jq") or limits.Budget(limits.RENDER_SECONDS)
    try:
        return jq_worker.pool().run(expression, text, budget.remaining(), budget.seconds)
    except jq_worker.JqError as exc:
        raise ValueError(str(exc)) from None


def _first(value: Any) -> Any:
    return None if value is None else next(iter(value), None)


def _last(value: Any) -> Any:
    items = [] if value is None else list(value)
    return items[-1] if items else None


def _keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(range(len(value)))
    raise ValueError(f"a {type(value).__name__} has no keys")


def _values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    raise ValueError(f"a {type(value).__name__} has no values")


def _length(value: Any) -> int:
    return 0 if value is None else len(value)


def _chunk(value: Iterable[Any], size: int) -> list[list[Any]]:
    items = list(value)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _distinct(value: Iterable[Any]) -> list[Any]:
    unique: list[Any] = []
    for item in value:
        if item not in unique:
            unique.append(item)
    return unique


def _reverse(value: Any) -> Any:
    return value[::-1] if isinstance(value, str) else list(reversed(list(value)))


def _default(value: Any, default_value: Any = "") -> Any:
    return default_value if _is_empty(value) else value


# -- strings ----------------------------------------------------------------------------


def _replace(
    value: Any, old: Any, new: Any = None, count: int | None = None, regexp: bool = False
) -> Any:
    """Pebble's `replace({'a': 'b'}, regexp=false)` and Jinja's `replace('a', 'b', count)`."""
    if isinstance(old, Mapping):
        pairs = [(to_text(k), to_text(v)) for k, v in old.items()]
    elif new is None:
        raise ValueError("expects a map of replacements, or a text and its replacement")
    else:
        pairs = [(to_text(old), to_text(new))]
    return None if value is None else _replace_in(value, pairs, regexp, count)


def _replace_in(value: Any, pairs: list[tuple[str, str]], regexp: bool, count: int | None) -> Any:
    if isinstance(value, Mapping):
        return {k: _replace_in(v, pairs, regexp, count) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_in(v, pairs, regexp, count) for v in value]
    text = to_text(value)
    for old, new in pairs:
        if regexp:
            text = _regex_sub(old, _python_replacement(new), text, count or 0)
        else:
            text = text.replace(old, new, -1 if count is None else count)
    return text


def _regex_sub(pattern: str, replacement: str, text: str, count: int) -> str:
    try:
        return str(regex.sub(pattern, replacement, text, count=count, timeout=REGEX_TIMEOUT))
    except regex.error as exc:
        raise ValueError(
            f'invalid regular expression "{pattern}" or replacement "{replacement}": {exc}'
        ) from None
    except TimeoutError:
        raise ValueError(
            f'regular expression "{pattern}" ran longer than {REGEX_TIMEOUT:g} s '
            "(nested repetition such as (a+)+ backtracks without end)"
        ) from None


def _python_replacement(java: str) -> str:
    """Java's `$1`/`${name}` group references (and `\\$` escapes) in Python's `re.sub` form."""

    def convert(match: re.Match[str]) -> str:
        escaped, number, name = match.groups()
        if escaped is not None:
            return escaped.replace("\\", "\\\\")
        return f"\\g<{number or name}>"

    return _JAVA_REPLACEMENT.sub(convert, java)


def _split(value: str, delimiter: str, limit: int | None = None) -> list[str]:
    """Splits on the delimiter as plain text: Pebble reads it as a regex, but flows pass text."""
    if not delimiter:
        return list(value)
    if limit is not None and limit > 0:
        return value.split(delimiter, limit - 1)
    return value.split(delimiter)


def _join(value: Iterable[Any] | None, separator: str = "") -> str | None:
    return None if value is None else separator.join(to_text(item) for item in value)


def _slugify(value: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _abbreviate(value: str, length: int) -> str:
    return value if len(value) <= length else value[: max(length - 3, 0)] + "..."


def _capitalize(value: str) -> str:
    return value[:1].upper() + value[1:]


def _title(value: str) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), value)


def _base64encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _base64decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except binascii.Error:
        raise ValueError("the input is not valid base64") from None
    except UnicodeDecodeError:
        raise ValueError("the decoded bytes are not UTF-8 text") from None


def _urlencode(value: str) -> str:
    """As Java's `URLEncoder`: form encoding, spaces as `+`, `*` kept, `~` escaped."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def _digest(algorithm: str) -> Callable[[str], str]:
    return lambda value: hashlib.new(algorithm, value.encode()).hexdigest()


def _substring_before(value: str, separator: str) -> str:
    return value.partition(separator)[0] if separator else ""


def _substring_before_last(value: str, separator: str) -> str:
    return value.rpartition(separator)[0] if separator and separator in value else value


def _substring_after(value: str, separator: str) -> str:
    return value.partition(separator)[2] if separator else value


def _substring_after_last(value: str, separator: str) -> str:
    return value.rpartition(separator)[2] if separator and separator in value else ""


# -- tests ------------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def _is_empty(value: Any) -> bool:
    if _is_null(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return not value
    return False


def _is_json(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


_FILTERS: dict[str, Callable[..., Any]] = {
    "date": date_filter,
    "dateAdd": date_add,
    "timestamp": timestamp(timedelta(seconds=1)),
    "timestampMilli": timestamp(timedelta(milliseconds=1)),
    "timestampMicro": timestamp(timedelta(microseconds=1)),
    "timestampNano": timestamp(timedelta(microseconds=1), scale=1000),
    "json": to_json,
    "toJson": to_json,
    "jsonEncode": to_json,  # before Kestra 0.18
    "fromJson": from_json,
    "jq": _jq,
    "first": _first,
    "last": _last,
    "keys": _keys,
    "values": _values,
    "length": _length,
    "number": number,
    "chunk": _chunk,
    "distinct": _distinct,
    "reverse": _reverse,
    "rsort": lambda value: sorted(value, reverse=True),
    "string": to_text,
    "replace": _replace,
    "join": _join,
    "split": _on_text(_split),
    "upper": _on_text(str.upper),
    "lower": _on_text(str.lower),
    "trim": _on_text(str.strip),
    "capitalize": _on_text(_capitalize),
    "title": _on_text(_title),
    "slugify": _on_text(_slugify),
    "abbreviate": _on_text(_abbreviate),
    "startsWith": _on_text(str.startswith),
    "endsWith": _on_text(str.endswith),
    "substringBefore": _on_text(_substring_before),
    "substringBeforeLast": _on_text(_substring_before_last),
    "substringAfter": _on_text(_substring_after),
    "substringAfterLast": _on_text(_substring_after_last),
    "base64encode": _on_text(_base64encode),
    "base64decode": _on_text(_base64decode),
    "urlencode": _on_text(_urlencode),
    "urldecode": _on_text(unquote_plus),
    "raw": lambda value: value,  # Pebble's: no escaping to undo, podium never autoescapes
    "md5": _on_text(_digest("md5")),
    "sha1": _on_text(_digest("sha1")),
    "sha256": _on_text(_digest("sha256")),
    "sha512": _on_text(_digest("sha512")),
    **kestra_filters.FILTERS,
    "toIon": ion.dumps,
}
FILTERS = {name: _named(name, fn) for name, fn in _FILTERS.items()}
# Not through `_named`: a missing value is exactly what `default` is for.
FILTERS["default"] = _default

FUNCTIONS = {
    "fromJson": _named("fromJson", from_json),
    "json": _named("json", from_json),  # Kestra's older name for fromJson, still found in flows
    "jsonDecode": _named("jsonDecode", from_json),  # before Kestra 0.18
    "yaml": _named("yaml", kestra_filters.from_yaml),
    "fromIon": _named("fromIon", lambda ion_text, allRows=False: ion.loads(ion_text, allRows)),
}

# `a ??? b` is `a` unless `a` is undefined (a null `a` is kept): pebble.py rewrites it to
# this test, which is Jinja's own `defined`.
PRESENT = "_pebble_present"

TESTS: dict[str, Callable[[Any], bool]] = {
    "null": _is_null,
    # Pebble's DefinedTest is NullTest inverted: a variable that holds null is not defined
    # (Kestra's AllowFailureTest branches on `inputs.crash is defined` with the optional
    # input absent, so null).
    "defined": lambda value: not _is_null(value),
    PRESENT: lambda value: not isinstance(value, Undefined),
    "empty": _is_empty,
    "json": _is_json,
    "map": lambda value: isinstance(value, Mapping),
}
