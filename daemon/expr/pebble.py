"""Rewrites the Pebble operators Kestra flows use and Jinja2 lacks into plain Jinja2.

Handled: `a ?? b` (b when a is undefined or null), `a ??? b` (b only when a is undefined),
`cond ? x : y`, `a equals b` (Pebble's alias of `==`), `a contains b` and the inclusive
range `a..b` (calls of `daemon.expr.operators`). Only the insides of `{{ }}` and `{% %}`
that contain one of these are touched; text, comments, `{% raw %}` blocks and every other
tag are passed through as they are, so Jinja's own messages still point at what the author
wrote. Anything the rewriter does not understand is left alone for Jinja to report.

Precedence follows Kestra: `??` binds tighter than any binary operator (`'a' ~ x ?? 'b'` is
`'a' ~ (x ?? 'b')`, and `x ?? 'b' | upper` filters the result), while the ternary binds
loosest of all. A `:` inside brackets, braces or strings, or with no pending `?` (dict
entries, slices), is not a ternary colon.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<op>\?\?\?|\?\?|==|!=|<=|>=|\*\*|//|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_OPEN = re.compile(r"\{\{|\{%|\{#")
_RAW = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_ENDRAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(_PAIRS.values())
# Names that are operators, never the start or end of an operand.
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})
_COALESCE_TESTS = {"??": "is not null", "???": "is _pebble_present"}  # filters.PRESENT
# A tag needs rewriting when it holds one of these (a cheap test on the whole source first).
_PEBBLE_ONLY = re.compile(r"\?|\.\.|\bcontains\b|\bequals\b")
_CONTAINS = "_pebble_contains"  # daemon.expr.operators.CONTAINS
_RANGE = "_pebble_range"  # daemon.expr.operators.RANGE


class _Tok(NamedTuple):
    kind: str  # space, string, name, number, op, or group (an already rewritten bracket)
    text: str


def rewrite(source: str) -> str:
    """Jinja2 source equivalent to the Pebble `source`; unchanged when it has no Pebble operator."""
    if not _PEBBLE_ONLY.search(source):
        return source
    out: list[str] = []
    pos = 0
    while (match := _OPEN.search(source, pos)) is not None:
        out.append(source[pos : match.start()])
        start, opener = match.start(), match.group()
        if opener == "{#" or _RAW.match(source, start):
            closing = re.compile(re.escape("#}")) if opener == "{#" else _ENDRAW
            closed = closing.search(source, match.end())
            if closed is None:
                break
            out.append(source[start : closed.end()])
            pos = closed.end()
            continue
        inner = match.end() + (1 if source[match.end() : match.end() + 1] in ("-", "+") else 0)
        found = _scan_tag(source, inner, "}}" if opener == "{{" else "%}")
        if found is None:
            break
        end, tokens = found
        out.append(source[start:inner])
        out.append(_rewrite_tag(source[inner:end], tokens, block=opener == "{%"))
        pos = end
    out.append(source[pos:])
    return "".join(out)


def _scan_tag(source: str, pos: int, close: str) -> tuple[int, list[_Tok]] | None:
    """Tokens up to the tag's end (outside strings and brackets), and where that end starts."""
    tokens: list[_Tok] = []
    depth = 0
    while pos < len(source):
        if depth == 0 and (
            source.startswith(close, pos)
            or (source[pos] in "-+" and source.startswith(close, pos + 1))
        ):
            return pos, tokens
        match = _TOKEN.match(source, pos)
        assert match is not None and match.lastgroup is not None  # `.` matches any character
        text = match.group()
        if text in _PAIRS:
            depth += 1
        elif text in _CLOSERS and depth:
            depth -= 1
        tokens.append(_Tok(match.lastgroup, text))
        pos = match.end()
    return None


def _rewrite_tag(inner: str, tokens: list[_Tok], *, block: bool) -> str:
    if not _needs_rewrite(tokens):
        return inner
    cut = _statement_head(tokens) if block else 0
    items = _nest(tokens[cut:])
    if items is None:
        return inner
    return _text(tokens[:cut]) + _rewrite_items(items)


def _statement_head(tokens: list[_Tok]) -> int:
    """How many tokens name the statement (`if`, `for x in`, `set`…) before its expression."""
    words = [i for i, t in enumerate(tokens) if t.kind != "space"]
    if not words:
        return 0
    if tokens[words[0]].text == "for":
        depth = 0
        for i, tok in enumerate(tokens):
            depth += (tok.text in _PAIRS) - (tok.text in _CLOSERS)
            if depth == 0 and tok.kind == "name" and tok.text == "in":
                return i + 1
    return words[0] + 1


def _nest(tokens: list[_Tok]) -> list[_Tok] | None:
    """Rewrite each bracket's inside, innermost first, and fold it into one `group` token."""
    stack: list[tuple[str, list[_Tok]]] = [("", [])]
    for tok in tokens:
        if tok.kind == "op" and tok.text in _PAIRS:
            stack.append((tok.text, []))
        elif tok.kind == "op" and tok.text in _CLOSERS:
            opener, items = stack.pop()
            if not opener or _PAIRS[opener] != tok.text:
                return None
            stack[-1][1].append(_Tok("group", opener + _rewrite_items(items) + tok.text))
        else:
            stack[-1][1].append(tok)
    return stack[0][1] if len(stack) == 1 else None


def _rewrite_items(items: list[_Tok]) -> str:
    """Rewrite each operand between `,`, `=` and structural `:` separators on one level."""
    out: list[str] = []
    piece: list[_Tok] = []
    pending = 0
    for tok in items:
        separator = tok.kind == "op" and (
            tok.text in (",", "=") or (tok.text == ":" and not pending)
        )
        if separator:
            out.append(_ternary(_coalesce(_ranges(piece))) + tok.text)
            piece, pending = [], 0
            continue
        if tok.kind == "op" and tok.text == "?":
            pending += 1
        elif tok.kind == "op" and tok.text == ":":
            pending -= 1
        piece.append(tok)
    out.append(_ternary(_coalesce(_ranges(piece))))
    return "".join(out)


def _coalesce(tokens: list[_Tok]) -> list[_Tok]:
    """Fold each `a ?? b` / `a ??? b` into one group token, right to left.

    Right to left, `a ?? b ?? c` becomes `a ?? (b ?? c)`: the same value as Kestra's
    `(a ?? b) ?? c`, but each operand is written (and evaluated) at most twice.
    """
    while True:
        at = next(
            (
                i
                for i in reversed(range(len(tokens)))
                if tokens[i].kind == "op" and tokens[i].text in _COALESCE_TESTS
            ),
            None,
        )
        if at is None:
            return tokens
        start, end = _operand_start(tokens, at), _operand_end(tokens, at)
        if start is None or end is None:
            return tokens
        left, right = _text(tokens[start:at]).strip(), _text(tokens[at + 1 : end]).strip()
        test = _COALESCE_TESTS[tokens[at].text]
        folded = _Tok("group", f"(({left}) if ({left}) {test} else ({right}))")
        tokens = [*tokens[:start], folded, *tokens[end:]]


def _is_operand(tok: _Tok) -> bool:
    return tok.kind in ("string", "number", "group") or (
        tok.kind == "name" and tok.text not in _KEYWORDS
    )


def _operand_start(tokens: list[_Tok], at: int) -> int | None:
    """First token of the postfix chain (`a.b[0](x) | f`) that ends just before `at`."""
    start = _significant(tokens, at - 1, -1)
    if start is None or not _is_operand(tokens[start]):
        return None
    while (before := _significant(tokens, start - 1, -1)) is not None:
        tok = tokens[before]
        if tokens[start].kind == "group" and tokens[start].text[0] in "([" and _is_operand(tok):
            start = before
        elif tok.text in (".", "|") and tok.kind == "op":
            chained = _significant(tokens, before - 1, -1)
            if chained is None or not _is_operand(tokens[chained]):
                return None
            start = chained
        else:
            break
    return start


def _operand_end(tokens: list[_Tok], at: int) -> int | None:
    """One past the postfix chain (`-b.c[0](x)`, no filters) that starts just after `at`."""
    first = _significant(tokens, at + 1, 1)
    if first is not None and tokens[first].text in ("-", "+"):
        first = _significant(tokens, first + 1, 1)
    if first is None or not _is_operand(tokens[first]):
        return None
    end = first + 1
    while (after := _significant(tokens, end, 1)) is not None:
        tok = tokens[after]
        if tok.kind == "group" and tok.text[0] in "([":
            end = after + 1
        elif tok.kind == "op" and tok.text == ".":
            attribute = _significant(tokens, after + 1, 1)
            if attribute is None or tokens[attribute].kind not in ("name", "number"):
                return None
            end = attribute + 1
        else:
            break
    return end


def _ternary(tokens: list[_Tok]) -> str:
    """`cond ? a : b` as Jinja's `(a if cond else b)`; right-associative, lowest precedence."""
    ask = next((i for i, t in enumerate(tokens) if t.kind == "op" and t.text == "?"), None)
    if ask is None:
        return _words(tokens)
    depth = 0
    for colon in range(ask + 1, len(tokens)):
        tok = tokens[colon]
        if tok.kind == "op" and tok.text == "?":
            depth += 1
        elif tok.kind == "op" and tok.text == ":":
            if depth == 0:
                break
            depth -= 1
    else:
        return _words(tokens)
    whole = _text(tokens)
    lead = whole[: len(whole) - len(whole.lstrip())]
    trail = whole[len(whole.rstrip()) :]
    condition = _words(tokens[:ask]).strip()
    then, other = _ternary(tokens[ask + 1 : colon]).strip(), _ternary(tokens[colon + 1 :]).strip()
    return f"{lead}(({then}) if ({condition}) else ({other})){trail}"


def _needs_rewrite(tokens: list[_Tok]) -> bool:
    for i, tok in enumerate(tokens):
        if tok.kind == "op" and tok.text.startswith("?"):
            return True
        if tok.kind == "name" and tok.text in ("contains", "equals"):
            return True
        if _is_dot(tok) and i + 1 < len(tokens) and _is_dot(tokens[i + 1]):
            return True
    return False


def _is_dot(tok: _Tok) -> bool:
    return tok.kind == "op" and tok.text == "."


def _ranges(tokens: list[_Tok]) -> list[_Tok]:
    """Fold each `a..b` into a call of Pebble's inclusive range, left to right."""
    while True:
        at = next(
            (i for i in range(len(tokens) - 1) if _is_dot(tokens[i]) and _is_dot(tokens[i + 1])),
            None,
        )
        if at is None:
            return tokens
        start, end = _operand_start(tokens, at), _operand_end(tokens, at + 1)
        if start is None or end is None:
            return tokens
        left, right = _text(tokens[start:at]).strip(), _text(tokens[at + 2 : end]).strip()
        tokens = [*tokens[:start], _Tok("group", f"{_RANGE}({left}, {right})"), *tokens[end:]]


def _words(tokens: list[_Tok]) -> str:
    """`equals` as `==`, and `contains` (looser than comparisons, tighter than `and`/`or`)
    as a call, on one level of an expression whose brackets are already folded."""
    if not any(t.kind == "name" and t.text in ("contains", "equals") for t in tokens):
        return _text(tokens)
    tokens = [
        _Tok("op", "==")
        if tok.kind == "name" and tok.text == "equals" and _infix(tokens, i)
        else tok
        for i, tok in enumerate(tokens)
    ]
    out: list[str] = []
    segment: list[_Tok] = []
    for tok in [*tokens, _Tok("name", "or")]:
        if tok.kind == "name" and tok.text in ("and", "or"):
            out.append(_contains(segment))
            segment = []
            out.append(tok.text)
        else:
            segment.append(tok)
    return "".join(out[:-1])


def _infix(tokens: list[_Tok], i: int) -> bool:
    """A word between two operands (not `x.equals`, not a variable of that name)."""
    before, after = _significant(tokens, i - 1, -1), _significant(tokens, i + 1, 1)
    return (
        before is not None
        and after is not None
        and not _is_dot(tokens[before])
        and (_is_operand(tokens[before]) or tokens[before].text in (")", "]"))
    )


def _contains(segment: list[_Tok]) -> str:
    cuts = [
        i
        for i, t in enumerate(segment)
        if t.kind == "name" and t.text == "contains" and _infix(segment, i)
    ]
    if not cuts:
        return _text(segment)
    first = _significant(segment, 0, 1) or 0
    lead = 0
    while segment[first].kind == "name" and segment[first].text == "not":
        lead = first + 1
        first = _significant(segment, lead, 1) or lead
    parts, previous = [], lead
    for cut in cuts:
        parts.append(_text(segment[previous:cut]).strip())
        previous = cut + 1
    parts.append(_text(segment[previous:]).strip())
    folded = parts[0]
    for part in parts[1:]:
        folded = f"{_CONTAINS}({folded}, {part})"
    return f"{_text(segment[:lead])} ({folded}) "


def _significant(tokens: list[_Tok], i: int, step: int) -> int | None:
    """Index of the nearest non-space token from `i` in direction `step`."""
    while 0 <= i < len(tokens):
        if tokens[i].kind != "space":
            return i
        i += step
    return None


def _text(tokens: list[_Tok]) -> str:
    return "".join(t.text for t in tokens)
