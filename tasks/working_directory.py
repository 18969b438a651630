"""WorkingDirectory: child tasks run one after the other in one shared directory.

Before the first child: the cache is restored, then `inputFiles` written. After the last
(even when one failed): `outputFiles` stored as this task's outputs, and the cache saved
when one of its files changed. The directory is removed once the task ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.nsworkdir import NamespaceFilesSpec, inject_namespace_files
from daemon.sdk.plugin import Branch, Children, FlowableTask, Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model
from daemon.sdk.state import State
from daemon.sdk.workdir import file_map, inside, matching_files, store_files, write_files

CACHE_FILE = "cache.zip"


class Cache(Model):
    """Files kept from one execution to the next (per flow, task and `taskrun.value`)."""

    patterns: list[str] = Field(min_length=1)
    ttl: Duration | None = None


class WorkingDirectory(FlowableTask):
    """Run child tasks in order, in the same working directory (`{{ workingDir }}`)."""

    types = (
        "io.kestra.plugin.core.flow.WorkingDirectory",
        "io.kestra.core.tasks.flows.WorkingDirectory",
        "io.kestra.core.tasks.flows.Worker",
        "io.kestra.plugin.core.flow.Worker",
    )

    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    input_files: Annotated[dict[str, Any] | str | None, Dynamic] = None
    output_files: Annotated[list[str] | None, Dynamic, JsonText] = None
    namespace_files: NamespaceFilesSpec | None = None
    cache: Cache | None = None

    @field_validator("tasks")
    @classmethod
    def _runnable_only(cls, tasks: list[Task]) -> list[Task]:
        flowables = [t.id for t in tasks if isinstance(t, FlowableTask)]
        if flowables:
            raise ValueError(
                "Only runnable tasks are allowed as children of a WorkingDirectory task "
                f"({', '.join(flowables)} is a flowable task)"
            )
        return tasks

    async def children(self, ctx: RunContext) -> Children:
        directory = await ctx.working_dir()
        cache = _CacheFile(ctx, self) if self.cache is not None else None
        try:
            restored_at = await cache.restore(directory) if cache is not None else 0.0
            await inject_namespace_files(self.namespace_files, ctx, directory)
            if self.input_files is not None:
                files = file_map(self.input_files, "inputFiles")
                await write_files(ctx, directory, files, "inputFiles")
        except TaskFailed as exc:
            raise TaskFailed(f"Failed preExecuteTasks on WorkingDirectory: {exc}") from None

        async def then(state: State) -> Output:
            outputs = None
            if self.output_files:
                try:
                    stored = await store_files(ctx, directory, self.output_files)
                except OSError as exc:
                    raise TaskFailed(
                        f"Failed postExecuteTasks on WorkingDirectory: unable to capture "
                        f"the output files: {exc}"
                    ) from None
                outputs = {"outputFiles": stored} if stored else None
            if cache is not None:
                await cache.save(directory, restored_at)
            return outputs

        return Children(
            [Branch(self.tasks)],
            errors=self.errors,
            finally_=self.finally_,
            shared_working_dir=True,
            then=then,
        )


class _CacheFile:
    """The cache archive of one WorkingDirectory (per flow, task id and `taskrun.value`),
    kept in the daemon's data directory: a cache, not an output."""

    def __init__(self, ctx: RunContext, task: WorkingDirectory) -> None:
        assert task.cache is not None
        self._ctx = ctx
        self._patterns = task.cache.patterns
        self._ttl = task.cache.ttl
        value = ctx.task_run.value or ""
        key = hashlib.sha256(value.encode()).hexdigest()[:16] if value else "-"
        flow = ctx.flow
        self.path = ctx.data_path("caches", "working-directory", flow.namespace, flow.id,
                                  task.id, key, CACHE_FILE)  # fmt: skip

    async def restore(self, directory: Path) -> float:
        """Extract a live archive into `directory`; when (time.time()) it was, else 0."""
        logger = self._ctx.logger
        path, ttl = self.path, self._ttl

        def extract() -> bool:
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                return False
            if ttl is not None and timedelta(seconds=age) > ttl:
                path.unlink(missing_ok=True)
                return False
            with zipfile.ZipFile(path) as archive:
                for entry in archive.infolist():
                    if entry.is_dir():
                        continue
                    target = inside(directory, entry.filename, "cache")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(entry) as source:
                        target.write_bytes(source.read())
            return True

        try:
            restored = await asyncio.to_thread(extract)
        except (OSError, zipfile.BadZipFile) as exc:
            logger.warning(f"the cache {path} cannot be read ({exc}); starting without it")
            return 0.0
        if not restored:
            return 0.0
        logger.debug("cache restored")
        return time.time()

    async def save(self, directory: Path, restored_at: float) -> None:
        """Archive the files matching the patterns, when one of them changed since the
        restore (or there was none). A failure is logged: the task's work is done."""
        path, patterns = self.path, self._patterns

        def archive() -> bool:
            found = matching_files(directory, patterns)
            if not any((directory / rel).stat().st_mtime > restored_at for rel in found):
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.part")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
                for rel in found:
                    out.write(directory / rel, rel)
            os.replace(partial, path)
            return True

        try:
            saved = await asyncio.to_thread(archive)
        except OSError as exc:
            self._ctx.logger.error(f"Unable to execute WorkingDirectory post actions: {exc}")
            return
        self._ctx.logger.debug("cache saved" if saved else "cache files unchanged")
