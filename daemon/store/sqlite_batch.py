"""The writes of one group commit: each queued write, and which of them run.

The writer thread commits every write queued since its last transaction in one
transaction (see sqlite_io). Writes that replace one row whole, several times over in one
transaction, need run only once: `coalesced` says which.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

Write = Callable[[sqlite3.Connection], Any]

RowKey = tuple[str, str]
"""The one row a write changes, as (table, id): see `coalesced`."""
APPEND_ONLY: RowKey = ("", "")
"""The key of a write that only appends rows no other write reads or replaces (logs,
metrics): it never stands between two writes of one row."""


class Op:
    """One queued write; `future` is None for fire-and-forget writes."""

    __slots__ = ("fn", "future", "key", "loop", "replaces", "what")

    def __init__(
        self,
        fn: Write,
        what: str,
        future: asyncio.Future[Any] | None,
        loop: asyncio.AbstractEventLoop | None,
        key: RowKey | None = None,
        replaces: bool = False,
    ) -> None:
        self.fn = fn
        self.what = what
        self.future = future
        self.loop = loop
        self.key = key
        self.replaces = replaces


def coalesced(ops: Sequence[Op]) -> list[Write | None]:
    """What to run for each op of one transaction: a row written whole several times is
    written once, with its last content, where it was first written (its rowid, and so the
    order rows are listed in, stays that of its first write); the later writes run nothing.

    Only writes that replace their row whole (`replaces`, with a `key`) merge, and only
    across writes that cannot see the difference: another write of the same row that does
    not replace it (an insert that must find the row absent) or a write with no key (any
    other statement) keeps the writes before it and after it apart. Appends (APPEND_ONLY)
    stand between nothing. Under load one task run's RUNNING and SUCCESS, or several
    changes of one execution, land in one transaction: each was a full upsert."""
    plan: list[Write | None] = [op.fn for op in ops]
    # per row: the earliest replacing write seen so far, and the content the row ends with
    held: dict[RowKey, tuple[int, Write]] = {}
    for i in range(len(ops) - 1, -1, -1):  # backwards: the last content is met first
        op = ops[i]
        key = op.key
        if key is None:
            held.clear()
        elif key == APPEND_ONLY:
            continue
        elif not op.replaces:
            held.pop(key, None)
        elif key in held:
            later, content = held[key]
            plan[later], plan[i] = None, content
            held[key] = (i, content)
        else:
            held[key] = (i, op.fn)
    return plan
