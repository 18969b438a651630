"""Core storage tasks: Concat, Split, Size, Delete, PurgeCurrentExecutionFiles, Write and
LocalFiles.

Every file operation here runs in a worker thread, streaming: files may be far larger
than memory.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from typing import Annotated, Any

from pydantic import Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText
from daemon.sdk.splits import LineSplitter, parse_size
from daemon.sdk.workdir import file_map, store_files, write_files


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
        parts = LineSplitter(await ctx.working_dir(), source, self.separator)
        written = await asyncio.to_thread(parts.split, limit, self.rows, self.partitions, pattern)
        return {"uris": [await ctx.put_file(path) for path in written]}


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


class Write(Task):
    """Store a rendered text as a file; its URI is `outputs.<id>.uri`."""

    types = ("io.kestra.plugin.core.storage.Write",)

    content: Annotated[str, Dynamic]
    extension: Annotated[str | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        extension = self.extension if self.extension is not None else ".tmp"
        if "/" in extension:
            raise TaskFailed(f"extension {extension!r} may not hold a '/'", non_retryable=True)
        name = f"{ctx.task_run.task_id}{extension}"
        return {"uri": await ctx.put_file(self.content.encode(), name)}


class LocalFiles(Task):
    """Write files into the working directory and store the ones matching `outputs` (the
    legacy way, before `inputFiles`/`outputFiles`; inside a WorkingDirectory the files stay
    for the tasks after it). A stored file leaves the directory."""

    types = (
        "io.kestra.plugin.core.storage.LocalFiles",
        "io.kestra.core.tasks.storages.LocalFiles",
    )

    inputs: Annotated[dict[str, Any] | str | None, Dynamic] = None
    outputs: Annotated[list[str] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        directory = await ctx.working_dir()
        if self.inputs is not None:
            await write_files(ctx, directory, file_map(self.inputs, "inputs"), "inputs")
        uris = await store_files(ctx, directory, self.outputs, move=True) if self.outputs else {}
        return {"uris": uris}
