"""Core storage tasks: Concat, Split, Size, Delete and PurgeCurrentExecutionFiles.

Every file operation here runs in a worker thread, streaming: files may be far larger
than memory.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import IO, Annotated

from pydantic import Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_size(text: str | int) -> int:
    """Kestra's readable sizes: 1024, 10KB, 10MB, 1GB (binary multiples)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match or int(match.group(1)) == 0:
        raise TaskFailed(
            f"invalid size '{text}': expected a positive number of bytes such as "
            "1048576, 512KB, 10MB or 1GB",
            non_retryable=True,
        )
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def _storage_uri(uri: str) -> str:
    if not uri.startswith(SCHEME):
        raise TaskFailed(f"'{uri}' is not a storage URI (kestra:///...)", non_retryable=True)
    return uri


class Concat(Task):
    """Join stored files in order into one new stored file."""

    types = ("io.kestra.plugin.core.storage.Concat", "io.kestra.core.tasks.storages.Concat")

    files: Annotated[list[str], Dynamic, JsonText]
    separator: Annotated[str | None, Dynamic] = None
    extension: Annotated[str, Dynamic] = ".tmp"

    async def run(self, ctx: RunContext) -> Output:
        sources = [await ctx.file_path(_storage_uri(uri)) for uri in self.files]
        target = (await ctx.working_dir()) / f"concat{self.extension}"
        separator = self.separator.encode() if self.separator is not None else b""

        def concat() -> None:
            with target.open("wb") as out:
                for source in sources:
                    with source.open("rb") as handle:
                        shutil.copyfileobj(handle, out)
                    out.write(separator)

        await asyncio.to_thread(concat)
        return {"uri": await ctx.put_file(target)}


class Split(Task):
    """Cut a stored text file into several, at line ends: by size, rows, partitions or a key."""

    types = ("io.kestra.plugin.core.storage.Split", "io.kestra.core.tasks.storages.Split")

    from_: Annotated[str, Dynamic] = Field(alias="from")
    bytes_: Annotated[str | int | None, Dynamic] = Field(default=None, alias="bytes")
    partitions: Annotated[int | None, Dynamic] = Field(default=None, ge=1)
    rows: Annotated[int | None, Dynamic] = Field(default=None, ge=1)
    regex_pattern: Annotated[str | None, Dynamic] = None
    separator: Annotated[str, Dynamic] = "\n"

    @model_validator(mode="after")
    def _one_way(self) -> Split:
        given = [self.bytes_, self.partitions, self.rows, self.regex_pattern]
        if sum(value is not None for value in given) != 1:
            raise ValueError("Split needs exactly one of bytes, partitions, rows or regexPattern")
        return self

    async def run(self, ctx: RunContext) -> Output:
        source = await ctx.file_path(_storage_uri(self.from_))
        pattern = None
        if self.regex_pattern is not None:
            try:
                pattern = re.compile(self.regex_pattern)
            except re.error as exc:
                raise TaskFailed(
                    f"invalid regexPattern '{self.regex_pattern}': {exc}", non_retryable=True
                ) from None
        limit = parse_size(self.bytes_) if self.bytes_ is not None else None
        parts = _Parts(await ctx.working_dir(), source, self.separator)
        written = await asyncio.to_thread(parts.split, limit, self.rows, self.partitions, pattern)
        return {"uris": [await ctx.put_file(path) for path in written]}


class _Parts:
    """The files one Split writes, named after the source: orders-0.csv, orders-1.csv…"""

    def __init__(self, directory: Path, source: Path, separator: str) -> None:
        self.directory = directory
        self.source = source
        self.separator = separator
        self.paths: list[Path] = []

    def _new(self) -> IO[str]:
        name = f"{self.source.stem}-{len(self.paths)}{self.source.suffix or '.tmp'}"
        path = self.directory / name
        self.paths.append(path)
        return path.open("w", encoding="utf-8", newline="")

    def split(
        self,
        limit: int | None,
        rows: int | None,
        partitions: int | None,
        pattern: re.Pattern[str] | None,
    ) -> list[Path]:
        """The parts written, in order; empty ones (spare partitions) left out."""
        with self.source.open(encoding="utf-8") as lines:
            if partitions is not None:
                self._round_robin(lines, partitions)
            elif pattern is not None:
                self._by_key(lines, pattern)
            else:
                self._sequential(lines, limit, rows)
        return [path for path in self.paths if path.stat().st_size > 0]

    def _sequential(self, lines: IO[str], limit: int | None, rows: int | None) -> None:
        out: IO[str] | None = None
        size = count = 0
        try:
            for line in lines:
                if (
                    out is None
                    or (limit is not None and size >= limit)
                    or (rows is not None and count >= rows)
                ):
                    if out is not None:
                        out.close()
                    out, size, count = self._new(), 0, 0
                text = line.rstrip("\n") + self.separator
                out.write(text)
                size += len(text.encode())
                count += 1
        finally:
            if out is not None:
                out.close()

    def _round_robin(self, lines: IO[str], partitions: int) -> None:
        outs = [self._new() for _ in range(partitions)]
        try:
            for index, line in enumerate(lines):
                outs[index % partitions].write(line.rstrip("\n") + self.separator)
        finally:
            for out in outs:
                out.close()

    def _by_key(self, lines: IO[str], pattern: re.Pattern[str]) -> None:
        """Lines grouped by the pattern's first group; lines that do not match are dropped."""
        outs: dict[str, IO[str]] = {}
        try:
            for line in lines:
                match = pattern.search(line)
                if match is None or not match.groups():
                    continue
                key = match.group(1)
                if key not in outs:
                    outs[key] = self._new()
                outs[key].write(line.rstrip("\n") + self.separator)
        finally:
            for out in outs.values():
                out.close()


class Size(Task):
    """The size in bytes of a stored file."""

    types = ("io.kestra.plugin.core.storage.Size", "io.kestra.core.tasks.storages.Size")

    uri: Annotated[str, Dynamic]

    async def run(self, ctx: RunContext) -> Output:
        path = await ctx.file_path(_storage_uri(self.uri))
        stat = await asyncio.to_thread(path.stat)
        return {"size": stat.st_size}


class Delete(Task):
    """Delete one stored file; a missing one is fine unless `errorOnMissing`."""

    types = ("io.kestra.plugin.core.storage.Delete", "io.kestra.core.tasks.storages.Delete")

    uri: Annotated[str, Dynamic]
    error_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        uri = _storage_uri(self.uri)
        deleted = await ctx.files.delete(uri)
        if not deleted and self.error_on_missing:
            raise TaskFailed(f"Unable to find file '{uri}'")
        return {"uri": uri, "deleted": deleted}


class PurgeCurrentExecutionFiles(Task):
    """Delete every stored file of this execution: inputs, task outputs, trigger files."""

    types = (
        "io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles",
        "io.kestra.plugin.core.storage.PurgeExecution",
        "io.kestra.core.tasks.storages.PurgeExecution",
    )

    async def run(self, ctx: RunContext) -> Output:
        ex = ctx.execution
        prefix = ctx.files.execution_prefix(ex.namespace, ex.flow_id, ex.id)
        uris = await ctx.files.delete_prefix(prefix)
        ctx.logger.info(f"purged {len(uris)} file(s) of execution {ex.id}")
        return {"uris": uris}
