"""SQL text as Kestra's JDBC tasks take it: several statements in one string, `:name`
parameters.

Kestra splits on a regular expression and replaces every `:word`, which breaks on a `;`
inside a string and on `::text` casts. Here both walk the text once, skipping string
literals (plain, E'' and dollar-quoted), quoted identifiers and comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Where something other than plain SQL code starts. A quote right after an identifier
# character is no E'' string (`date'2019-01-01'` is a typed literal: a plain string), and
# `$` after one belongs to an identifier such as `a$b`, not to a dollar quote.
_OPENING = re.compile(
    r"--|/\*|(?<![A-Za-z0-9_$])[eE]'|'|\"|"
    r"(?<![A-Za-z0-9_$])\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$"
)
_COMMENT_EDGE = re.compile(r"/\*|\*/")
_E_STRING = re.compile(r"(?:[^'\\]|\\.|'')*'", re.S)
_PLAIN_STRING = re.compile(r"(?:[^']|'')*'")
_IDENTIFIER = re.compile(r'(?:[^"]|"")*"')
# `:name`, but neither half of a `::` cast nor `a:b` (array slices, JSON paths).
_PARAMETER = re.compile(r"(?<![:A-Za-z0-9_]):([A-Za-z_][A-Za-z0-9_]*)")


def _spans(sql: str) -> Iterator[tuple[str, bool]]:
    """The text in pieces, each flagged True when it is SQL code (not a literal or comment).

    An unterminated literal or comment runs to the end: PostgreSQL reports it.
    """
    pos = 0
    while pos < len(sql):
        found = _OPENING.search(sql, pos)
        if found is None:
            yield sql[pos:], True
            return
        if found.start() > pos:
            yield sql[pos : found.start()], True
        opening = found.group()
        end = _closing(sql, found.end(), opening)
        yield sql[found.start() : end], False
        pos = end


def _closing(sql: str, start: int, opening: str) -> int:
    """Where the literal or comment opened by `opening` (ending at `start`) ends."""
    if opening == "--":
        newline = sql.find("\n", start)
        return len(sql) if newline < 0 else newline
    if opening == "/*":
        depth, pos = 1, start
        while depth:
            nxt = _COMMENT_EDGE.search(sql, pos)
            if nxt is None:
                return len(sql)
            depth += 1 if nxt.group() == "/*" else -1
            pos = nxt.end()
        return pos
    if opening.startswith("$"):
        end = sql.find(opening, start)
        return len(sql) if end < 0 else end + len(opening)
    pattern = {"'": _PLAIN_STRING, '"': _IDENTIFIER}.get(opening, _E_STRING)
    match = pattern.match(sql, start)
    return len(sql) if match is None else match.end()


def split_statements(sql: str) -> list[str]:
    """The statements of a script, trimmed; empty ones (and lone comments) left out."""
    statements: list[str] = []
    current: list[str] = []
    has_code = False

    def finish() -> None:
        nonlocal has_code
        text = "".join(current).strip()
        if has_code and text:
            statements.append(text)
        current.clear()
        has_code = False

    for text, is_code in _spans(sql):
        if not is_code:
            current.append(text)
            has_code = has_code or not text.startswith(("--", "/*"))
            continue
        parts = text.split(";")
        for i, part in enumerate(parts):
            if i:
                finish()
            current.append(part)
            has_code = has_code or bool(part.strip())
    finish()
    return statements


def bind_named(sql: str) -> tuple[str, list[str]]:
    """`:name` placeholders turned into `$1`, `$2`...; returns the SQL and the names in
    placeholder order (a name used twice gets one placeholder)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    out = [_PARAMETER.sub(number, text) if is_code else text for text, is_code in _spans(sql)]
    return "".join(out), names
