"""The SDK's services (files, KV, executions) over the store and the storage.

File storage is `daemon.store.internal_storage.Storage` (a local directory, object storage or
PostgreSQL); a plug-in sees only the `Files` protocol.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.engine.events import EventBus, ExecutionChanged
from daemon.sdk.clock import Clock
from daemon.sdk.context import LEVELS
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.nsfiles import CHUNK_SIZE, Conflict, NamespaceFileInfo
from daemon.sdk.services import ExecutionListener
from daemon.sdk.state import iso
from daemon.store.base import Store
from daemon.store.internal_storage import Storage
from daemon.store.purge import KvPurge, LogPurge


class StorageFiles:
    """`sdk.services.Files` over the daemon's storage, whichever backend keeps the files."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def execution_prefix(self, namespace: str, flow_id: str, execution_id: str) -> str:
        return self._storage.execution_prefix(namespace, flow_id, execution_id)

    async def put(self, source: Path | bytes, *, prefix: str, name: str) -> str:
        return await self._storage.put(source, prefix=prefix, name=name)

    async def path(self, uri: str) -> Path:
        return await self._storage.path(uri)

    async def read_text(self, uri: str) -> str:
        return await self._storage.read_text(uri)

    async def delete(self, uri: str) -> bool:
        return await self._storage.delete(uri)

    async def delete_prefix(self, prefix: str) -> list[str]:
        return await self._storage.delete_prefix(prefix)


class StoreKeyValue:
    """`sdk.services.KeyValueStore` over the store's KV table (expiry as a datetime)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._kv = store.kv
        self._clock = clock  # what "expired" is measured against

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        return await self._kv.get(namespace, key)

    async def set(
        self, namespace: str, key: str, value: Any, *, expires_at: datetime | None = None
    ) -> None:
        await self._kv.set(namespace, key, value, expires_at=iso(expires_at))

    async def delete(self, namespace: str, key: str) -> bool:
        return await self._kv.delete(namespace, key)

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        return await self._kv.list(namespace)

    async def purge(
        self,
        *,
        namespaces: Sequence[str] | None,
        include_children: bool,
        namespace_glob: str | None,
        key_glob: str | None,
        expired_only: bool,
    ) -> int:
        purge = KvPurge(
            now=self._clock.now(), namespaces=namespaces, include_children=include_children,
            namespace_glob=namespace_glob, key_glob=key_glob, expired_only=expired_only,
        )  # fmt: skip
        return await self._kv.purge(purge)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A local file, chunk by chunk, each read in a thread."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class StoreNamespaceFiles:
    """`sdk.nsfiles.NamespaceFiles` over the store's namespace file table; local files
    are read and written in a thread, a chunk at a time."""

    def __init__(self, store: Store) -> None:
        self._files = store.namespace_files

    async def list(
        self, namespace: str, directory: str = "/", *, recursive: bool = False
    ) -> list[NamespaceFileInfo]:
        return await self._files.list(namespace, directory, recursive=recursive)

    async def stat(self, namespace: str, path: str) -> NamespaceFileInfo | None:
        return await self._files.stat(namespace, path)

    def read(self, namespace: str, path: str) -> AsyncIterator[bytes]:
        return self._files.read(namespace, path)

    async def download(self, namespace: str, path: str, target: Path) -> NamespaceFileInfo:
        info = await self._files.stat(namespace, path)
        if info is None or info.is_directory:
            raise NotFound(f"namespace file {path} not found in namespace {namespace}")
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(target.open, "wb")
        try:
            async for chunk in self._files.read(namespace, path):
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)
        return info

    async def write(
        self,
        namespace: str,
        path: str,
        content: Path | bytes | AsyncIterator[bytes],
        *,
        conflict: Conflict = "OVERWRITE",
    ) -> NamespaceFileInfo | None:
        if isinstance(content, Path):
            chunks = _file_chunks(content)
        elif isinstance(content, bytes):
            chunks = _one_chunk(content)
        else:
            chunks = content
        return await self._files.write(namespace, path, chunks, conflict=conflict)

    async def make_directory(self, namespace: str, path: str) -> None:
        await self._files.make_directory(namespace, path)

    async def delete(self, namespace: str, path: str) -> builtins.list[str]:
        return await self._files.delete(namespace, path)

    async def move(self, namespace: str, source: str, target: str) -> None:
        await self._files.move(namespace, source, target)


class StoreExecutions:
    """`sdk.services.ExecutionQueries`: stored executions, and waiting for one to end."""

    def __init__(
        self, store: Store, wait: Callable[[str], Awaitable[Execution]], events: EventBus
    ) -> None:
        self._store = store
        self._wait = wait
        self._events = events

    async def wait(self, execution_id: str) -> Execution:
        return await self._wait(execution_id)

    def watch(self, listener: ExecutionListener) -> Callable[[], None]:
        def on_event(event: object) -> None:
            if isinstance(event, ExecutionChanged):
                listener(event.execution)

        return self._events.subscribe(on_event)

    async def logs(
        self, execution_id: str, *, task_run_id: str | None = None, min_level: str | None = None
    ) -> list[dict[str, Any]]:
        await self._store.flush()
        return await self._store.logs(execution_id, task_run_id=task_run_id, min_level=min_level)

    async def get(self, execution_id: str) -> Execution | None:
        await self._store.flush()
        doc = await self._store.get_execution(execution_id)
        return None if doc is None else Execution.from_json(doc)

    async def search(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Sequence[str] | None = None,
        start_after: str | None = None,
        start_before: str | None = None,
        page: int = 1,
        size: int = 100,
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._store.search_executions(
            namespace=namespace,
            flow_id=flow_id,
            states=states,
            start_after=start_after,
            start_before=start_before,
            page=page,
            size=size,
        )

    async def purge_logs(
        self,
        *,
        end: datetime,
        start: datetime | None = None,
        levels: Sequence[str] | None = None,
        execution_id: str | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> int:
        await self._store.flush()
        # As the store writes them: UTC with a Z, so that texts compare as instants.
        purge = LogPurge(
            end=iso(end.astimezone(UTC)) or "",
            start=iso(start.astimezone(UTC)) if start is not None else None,
            levels=None if levels is None else [LEVELS[level] for level in levels],
            execution_id=execution_id,
            namespace=namespace,
            flow_id=flow_id,
        )
        return await self._store.purges.logs(purge)

    async def delete(self, execution_id: str) -> dict[str, int]:
        await self._store.flush()
        logs = len(await self._store.logs(execution_id))
        metrics = len(await self._store.metrics(execution_id))
        await self._store.delete_execution(execution_id)
        return {"logs": logs, "metrics": metrics}
