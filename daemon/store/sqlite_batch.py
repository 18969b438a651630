"""The writes of one group commit: each queued write, and which of them run.

Every write of one turn of the event loop (or every write queued to the writer thread
since its last transaction) is committed in one transaction (see sqlite_io). Writes that
replace one row whole, several times over in one transaction, need run only once:
`coalesced` says which; `settle` wakes their callers.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

Write = Callable[[sqlite3.Connection], Any]
Outcome = tuple[Any, BaseException | None]

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


def settle(ops: Sequence[Op], outcomes: Sequence[Outcome], logger: logging.Logger) -> None:
    """Wake the callers of committed (or failed) ops: at once on the calling thread's own
    loop, else with one `call_soon_threadsafe` per loop, not one per op."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for op, (result, exc) in zip(ops, outcomes, strict=True):
        if op.future is None or op.loop is None:
            if exc is not None:
                logger.error("store: lost unawaited write: %s", exc)
            continue
        by_loop.setdefault(op.loop, []).append((op.future, result, exc))
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for loop, items in by_loop.items():
        if loop is here:
            _resolve(items)
            continue
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _resolve(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, exc in items:
        if future.done():  # the caller was cancelled; the write happened anyway
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
