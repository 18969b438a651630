"""Kestra's truthiness of a rendered condition (its TruthUtils): what LoopUntil, Assert and
FilterItems test, more lenient than `If`'s true/false."""

from __future__ import annotations

FALSE_TEXTS = frozenset({"false", "0", "-0", ""})


def truthy(text: object) -> bool:
    """False for None and for "false", "0", "-0" and "" (surrounding blanks ignored, case
    kept: "False" is true, as in Kestra); true for anything else."""
    if text is None:
        return False
    if isinstance(text, bool):
        return text
    return str(text).strip() not in FALSE_TEXTS
