"""Tasks over a stored file of items, one item a line (Ion, as Kestra writes them, or JSON):
FilterItems, DeduplicateItems, and Reverse (the lines in reverse order).

Lines are read and written in a worker thread, streaming; an item is parsed only to
render an expression with its fields, and written back exactly as it was read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed, TemplateError
from daemon.sdk.files import SCHEME
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic
from daemon.sdk.truth import truthy


def _plain(value: Any) -> Any:
    """An Ion value as the Python value expressions see (maps, lists, text, numbers,
    dates; Ion nulls of every type as None)."""
    from amazon.ion.core import IonType  # type: ignore[import-untyped]

    kind = getattr(value, "ion_type", None)
    if value is None or type(value).__name__ == "IonPyNull" or kind == IonType.NULL:
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if kind == IonType.BOOL:
        return bool(value)
    if kind == IonType.INT:
        return int(value)
    if kind == IonType.FLOAT:
        return float(value)
    if kind == IonType.SYMBOL:
        return str(getattr(value, "text", value))
    if kind == IonType.STRING:
        return str(value)
    if isinstance(value, datetime):
        return datetime.fromisoformat(value.isoformat())
    return value


def read_items(path: Path) -> Iterator[tuple[int, str, Callable[[], dict[str, Any]]]]:
    """(line number, line, parse) of each non-blank line; `parse` gives its fields, or
    TaskFailed naming the line when it is not one Ion (or JSON) map."""
    from amazon.ion import simpleion  # type: ignore[import-untyped]

    with path.open(encoding="utf-8") as lines:
        for number, raw in enumerate(lines, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue

            def parse(line: str = line, number: int = number) -> dict[str, Any]:
                try:
                    value = _plain(simpleion.loads(line))
                except Exception as exc:
                    raise TaskFailed(
                        f"line {number} is not an Ion or JSON value: {exc}", non_retryable=True
                    ) from None
                if not isinstance(value, dict):
                    raise TaskFailed(
                        f"line {number} is not a map of fields: {line[:80]}", non_retryable=True
                    )
                return value

            yield number, line, parse


async def _source(ctx: RunContext, uri: str) -> Path:
    if not uri.startswith(SCHEME):
        raise TaskFailed(f"'{uri}' is not a storage URI (kestra:///...)", non_retryable=True)
    return await ctx.file_path(uri)


class FilterItems(Task):
    """Keep (INCLUDE) or drop (EXCLUDE) the items for which `filterCondition`, rendered
    with the item's fields as variables, is true (Kestra's truthiness)."""

    types = (
        "io.kestra.plugin.core.storage.FilterItems",
        "io.kestra.core.tasks.storages.FilterItems",
    )

    from_: Annotated[str, Dynamic] = Field(alias="from")
    filter_condition: str  # rendered per item
    filter_type: Annotated[Literal["INCLUDE", "EXCLUDE"], Dynamic] = "INCLUDE"
    error_or_null_behavior: Annotated[Literal["FAIL", "INCLUDE", "EXCLUDE"], Dynamic] = "FAIL"

    async def run(self, ctx: RunContext) -> Output:
        source = await _source(ctx, self.from_)
        target = (await ctx.working_dir()) / f"{ctx.task_run.task_id}.ion"
        processed, dropped = await asyncio.to_thread(self._filter, ctx, source, target)
        return {
            "uri": await ctx.put_file(target),
            "processedItemsTotal": processed,
            "droppedItemsTotal": dropped,
        }

    def _filter(self, ctx: RunContext, source: Path, target: Path) -> tuple[int, int]:
        processed = dropped = 0
        with target.open("w", encoding="utf-8") as out:
            for _, line, parse in read_items(source):
                processed += 1
                try:
                    match = truthy(ctx.render(self.filter_condition, parse()))
                    action = self.filter_type
                    if not match:
                        action = "EXCLUDE" if action == "INCLUDE" else "INCLUDE"
                except TemplateError as exc:
                    if self.error_or_null_behavior == "FAIL":
                        raise TaskFailed(
                            f"Expression `{self.filter_condition}` failed on item `{line}`: {exc}"
                        ) from None
                    action = self.error_or_null_behavior
                if action == "INCLUDE":
                    out.write(line + "\n")
                else:
                    dropped += 1
        return processed, dropped


class DeduplicateItems(Task):
    """Keep, of the items with the same key (`expr` rendered with the item's fields), the
    last one, in the order of those last ones."""

    types = (
        "io.kestra.plugin.core.storage.DeduplicateItems",
        "io.kestra.core.tasks.storages.DeduplicateItems",
    )

    from_: Annotated[str, Dynamic] = Field(alias="from")
    expr: str  # rendered per item

    async def run(self, ctx: RunContext) -> Output:
        source = await _source(ctx, self.from_)
        target = (await ctx.working_dir()) / f"{ctx.task_run.task_id}.ion"
        keys, processed, dropped = await asyncio.to_thread(self._dedup, ctx, source, target)
        return {
            "uri": await ctx.put_file(target),
            "numKeys": keys,
            "processedItemsTotal": processed,
            "droppedItemsTotal": dropped,
        }

    def _dedup(self, ctx: RunContext, source: Path, target: Path) -> tuple[int, int, int]:
        """Two passes: the last line of each key, then those lines (keys held, not items)."""
        last: dict[str, int] = {}
        processed = 0
        for number, line, parse in read_items(source):
            processed += 1
            try:
                key = str(ctx.render(self.expr, parse()))
            except TemplateError as exc:
                raise TaskFailed(
                    f"Expression `{self.expr}` failed on item `{line}`: {exc}"
                ) from None
            last[key] = number
        keep = set(last.values())
        with target.open("w", encoding="utf-8") as out:
            for number, line, _ in read_items(source):
                if number in keep:
                    out.write(line + "\n")
        return len(last), processed, processed - len(keep)


class Reverse(Task):
    """The lines of a stored file in reverse order, each followed by `separator`."""

    types = ("io.kestra.plugin.core.storage.Reverse", "io.kestra.core.tasks.storages.Reverse")

    from_: Annotated[str, Dynamic] = Field(alias="from")
    separator: Annotated[str, Dynamic] = "\n"
    charset: Annotated[str, Dynamic] = "UTF-8"

    async def run(self, ctx: RunContext) -> Output:
        source = await _source(ctx, self.from_)
        try:
            "".encode(self.charset)
        except LookupError:
            raise TaskFailed(f"unknown charset '{self.charset}'", non_retryable=True) from None
        suffix = source.suffix or ".tmp"
        target = (await ctx.working_dir()) / f"{ctx.task_run.task_id}{suffix}"
        await asyncio.to_thread(_reverse, source, target, self.separator, self.charset)
        return {"uri": await ctx.put_file(target)}


BLOCK = 64 * 1024


def _reverse(source: Path, target: Path, separator: str, charset: str) -> None:
    """Read the source backwards by blocks: a file larger than memory is fine. A final
    line end does not make an empty last line (as commons-io's ReversedLinesFileReader)."""
    end = separator.encode(charset)
    if "\n".encode(charset) != b"\n":  # UTF-16 and the like: lines are not split by bytes
        texts = source.read_text(encoding=charset).splitlines()
        target.write_bytes(b"".join(text.encode(charset) + end for text in reversed(texts)))
        return
    with source.open("rb") as handle, target.open("wb") as out:
        position = handle.seek(0, os.SEEK_END)
        pending = b""
        last_line = True
        while position > 0:
            step = min(BLOCK, position)
            position -= step
            handle.seek(position)
            pending = handle.read(step) + pending
            lines = pending.split(b"\n")
            pending = lines.pop(0)
            for line in reversed(lines):
                if not (last_line and not line):  # the file's final line end
                    out.write(line.removesuffix(b"\r") + end)
                last_line = False
        if pending or not last_line:
            out.write(pending.removesuffix(b"\r") + end)
