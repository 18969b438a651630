"""What every serdes task shares: `from` (a stored file's URI), the conversion run off the
event loop on a stream of rows (bounded memory whatever the file's size), and the
converted file stored as the task run's output `uri`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.ion import IonError
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic

# Rows converted per batch by the columnar formats (Parquet, Avro): the memory bound.
BATCH_ROWS = 10_000


class Convert(Task):
    """A conversion of the file at `from` into a file named `<task id><suffix>`."""

    suffix: ClassVar[str] = ".ion"

    from_: Annotated[str, Dynamic] = Field(alias="from")

    def convert(self, source: Path, target: Path) -> int:
        """Blocking: read `source`, write `target`; returns the number of records."""
        raise NotImplementedError

    async def run(self, ctx: RunContext) -> Output:
        if not self.from_.startswith(SCHEME):
            raise TaskFailed(f"from must be a {SCHEME} URI, got {self.from_!r}", non_retryable=True)
        source = await ctx.file_path(self.from_)
        target = await ctx.working_dir() / f"{self.id}{self.suffix}"
        try:
            count = await asyncio.to_thread(self.convert, source, target)
        except (IonError, ValueError, UnicodeError, LookupError) as exc:
            raise TaskFailed(f"{self.from_}: {exc}", non_retryable=True) from None
        ctx.metric("records", "counter", count)
        return {"uri": await ctx.put_file(target)}


def java_format(pattern: str) -> Callable[[date | time], str]:
    """A formatter for Kestra's date properties, written as Java's DateTimeFormatter
    patterns (yyyy-MM-dd, HH:mm:ss.SSS, [XXX] optional offset...)."""
    tokens = [
        ("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"),
        ("dd", "%d"), ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"),
        ("SSSSSS", "%f"), ("SSS", "\x01ms"), ("XXX", "\x01tz"), ("EEE", "%a"), ("a", "%p"),
    ]  # fmt: skip
    out, i, quoted = "", 0, False
    text = pattern.replace("[", "").replace("]", "")
    while i < len(text):
        if text[i] == "'":
            quoted = not quoted
            i += 1
            continue
        if not quoted:
            for token, replacement in tokens:
                if text.startswith(token, i):
                    out += replacement
                    i += len(token)
                    break
            else:
                out += text[i].replace("%", "%%")
                i += 1
        else:
            out += text[i].replace("%", "%%")
            i += 1

    def render(value: date | time) -> str:
        result = value.strftime(out)
        if "\x01ms" in result:
            micro = getattr(value, "microsecond", 0)
            result = result.replace("\x01ms", f"{micro // 1000:03d}")
        if "\x01tz" in result:
            offset = value.utcoffset() if isinstance(value, datetime | time) else None
            if offset is None:
                zone = ""
            elif not offset:
                zone = "Z"
            else:
                minutes = int(offset.total_seconds() // 60)
                sign = "+" if minutes >= 0 else "-"
                zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
            result = result.replace("\x01tz", zone)
        return result

    return render


class TextFormats:
    """Kestra's AbstractTextWriter: how dates and times are written as text."""

    def __init__(self, date_format: str, time_format: str, date_time_format: str) -> None:
        self.date = java_format(date_format)
        self.time = java_format(time_format)
        self.date_time = java_format(date_time_format)

    def text(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return self.date_time(value)
        if isinstance(value, date):
            return self.date(value)
        if isinstance(value, time):
            return self.time(value)
        return value
