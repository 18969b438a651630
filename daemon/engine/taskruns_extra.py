"""Two per-task options of Kestra 1.x around a task run: `taskCache` (a task's outputs kept
and reused while its rendered properties stay the same) and `logToFile` (its log lines
written to a file in storage instead of the log table).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.engine.contexts import ExecutionLog
from daemon.engine.resources import Resources
from daemon.sdk.context import LEVELS, TaskLogger
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.plugin import Task
from daemon.sdk.state import iso

# Lines a file-logged task run keeps in memory before they are appended to its file.
FLUSH_EVERY = 1000


class TaskCache:
    """Kestra's `taskCache: {enabled, ttl}`: the outputs of a successful run, reused by a
    later run of the same task of the same flow with the same rendered properties until
    `ttl` has passed (kept forever without one). Kept in the store's state table."""

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    @staticmethod
    def wanted(task: Task) -> bool:
        return task.task_cache is not None and task.task_cache.enabled

    def key(self, execution: Execution, task: Task, run: TaskRun) -> str:
        properties = task.model_dump(mode="json", exclude={"task_cache", "description"})
        digest = hashlib.sha256(
            json.dumps(
                [execution.namespace, execution.flow_id, task.id, run.value, properties],
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()
        return f"taskcache:{digest}"

    async def get(self, key: str) -> dict[str, Any] | None:
        entry = await self._resources.store.state.get(key)
        if entry is None:
            return None
        expires = entry.get("expires")
        if expires is not None and datetime.fromisoformat(expires) <= self._resources.clock.now():
            return None
        outputs = entry.get("outputs")
        return outputs if isinstance(outputs, dict) else {}

    async def put(self, key: str, task: Task, outputs: dict[str, Any]) -> None:
        ttl: timedelta | None = task.task_cache.ttl if task.task_cache else None
        expires = iso(self._resources.clock.now() + ttl) if ttl is not None else None
        await self._resources.store.state.set(key, {"outputs": outputs, "expires": expires})


class FileLog(TaskLogger):
    """Kestra's `logToFile`: a task run's lines go to a file, stored with the task run's
    files once it ends; the log table only gets one line naming that file."""

    def __init__(
        self,
        resources: Resources,
        execution: Execution,
        task_run: TaskRun,
        path: Path,
        min_level: str | None = None,
    ) -> None:
        self._resources = resources
        self._execution = execution
        self._task_run = task_run
        self._path = path
        self._min = LEVELS[min_level] if min_level else 0
        self._lines: list[str] = []
        self._writing: asyncio.Future[None] | None = None

    def log(self, level: str, message: str) -> None:
        level = "WARN" if level == "WARNING" else level
        if LEVELS[level] < self._min:
            return
        stamp = iso(self._resources.clock.now())
        text = self._resources.secrets.mask(message)
        self._lines.append(f"{stamp} {level} {text}\n")
        if len(self._lines) >= FLUSH_EVERY:
            self._flush_soon()

    def _flush_soon(self) -> None:
        lines, self._lines = self._lines, []
        previous = self._writing

        async def write() -> None:
            if previous is not None:
                await previous
            await asyncio.to_thread(_append, self._path, lines)

        self._writing = asyncio.ensure_future(write())

    async def close(self, put_file: Any) -> str | None:
        """Write what is left, store the file (`put_file(path, name)` -> URI) and say where
        it went in the execution's logs."""
        if self._lines:
            self._flush_soon()
        if self._writing is not None:
            await self._writing
        if not await asyncio.to_thread(self._path.is_file):
            return None
        uri: str = await put_file(self._path, f"{self._task_run.id}.log")
        ExecutionLog(self._resources, self._execution, self._task_run).info(
            f"the logs of this task run are in {uri} (logToFile)"
        )
        return uri


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(lines)
