"""Namespace files in the store: one file tree per namespace, shared by a cluster.

A file's content is a *blob*: numbered chunks of at most `CHUNK_SIZE` bytes, written one
by one while it streams in and read one by one while it streams out, so that neither an
upload nor a download ever holds a whole file. A blob is written first under a fresh id
recorded as pending; one short transaction then points the file's row at it (dropping the
blob it replaces). Readers thus never see half a file, a failed upload is dropped, and a
pending blob left by a crash is swept by the next process that writes a file (`sweep`),
not when the store opens: a read-only `podium executions list` opens it too.

Directories are rows of their own: made explicitly (an empty folder), or implied by a file
written below them. The root of every namespace exists without a row.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import TypeVar

from daemon.sdk.errors import NotFound
from daemon.sdk.nsfiles import (
    CHUNK_SIZE,
    Conflict,
    FileConflict,
    NamespaceFileError,
    NamespaceFileInfo,
    normalize_path,
)
from daemon.store.base import StoreError

T = TypeVar("T")
WRITE_WINDOW = 8  # chunk writes in flight during one upload (8 MiB at most)
PENDING_TTL = timedelta(days=1)
"""A blob still pending after this long belongs to an upload that died with its process."""


def below(directory: str) -> tuple[str, str]:
    """The half-open range of paths strictly below `directory` ('0' sorts after '/')."""
    base = directory.rstrip("/")
    return base + "/", base + "0"


async def refusal_kept(write: Awaitable[T]) -> T:
    """`write`, with the store's wrapping of a refusal undone: the writers report any
    error of a write function as a StoreError, but a conflict or a missing source is the
    caller's to answer (409, 404), not the store's failure."""
    try:
        return await write
    except StoreError as exc:
        if isinstance(exc.__cause__, NamespaceFileError | NotFound):
            raise exc.__cause__ from None
        raise


def target_error(path: str, existing: NamespaceFileInfo) -> FileConflict:
    kind = "directory" if existing.is_directory else "file"
    return FileConflict(f"a {kind} already exists at {path}")


class NamespaceFileTable(ABC):
    """The store's namespace files; each backend keeps rows, chunks and pending blobs."""

    _swept = False  # whether this process swept stale pending blobs yet

    async def write(
        self,
        namespace: str,
        path: str,
        chunks: AsyncIterator[bytes],
        *,
        conflict: Conflict = "OVERWRITE",
    ) -> NamespaceFileInfo | None:
        """Store the content `chunks` yields at `path`; see `sdk.nsfiles.NamespaceFiles`."""
        path = normalize_path(path)
        if path == "/":
            raise NamespaceFileError("the root of a namespace is a directory, not a file")
        existing = await self.stat(namespace, path)
        if existing is not None and (existing.is_directory or conflict == "ERROR"):
            raise target_error(path, existing)
        if existing is not None and conflict == "SKIP":
            return None
        if not self._swept:
            self._swept = True
            await self.sweep()
        blob = uuid.uuid4().hex
        await self._begin_blob(blob)
        # Chunk writes in flight while the next chunk streams in: the store's writer then
        # commits several per transaction. Memory stays bounded by the window.
        flying: deque[asyncio.Future[None]] = deque()

        async def put(seq: int, data: bytes) -> None:
            flying.append(asyncio.ensure_future(self._put_chunk(blob, seq, data)))
            if len(flying) >= WRITE_WINDOW:
                await flying.popleft()

        try:
            size = 0
            seq = 0
            buffer = bytearray()
            async for data in chunks:
                buffer += data
                while len(buffer) >= CHUNK_SIZE:
                    await put(seq, bytes(buffer[:CHUNK_SIZE]))
                    del buffer[:CHUNK_SIZE]
                    seq += 1
                size += len(data)
            if buffer or seq == 0:
                await put(seq, bytes(buffer))
            while flying:
                await flying.popleft()
            return await self._commit(namespace, path, blob, size, conflict)
        except BaseException:
            await asyncio.gather(*flying, return_exceptions=True)
            await asyncio.shield(self._drop_blob(blob))
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            raise

    async def read(self, namespace: str, path: str) -> AsyncIterator[bytes]:
        """The content of a file, chunk by chunk. A file replaced while it is being read
        is an error rather than a mix of two contents."""
        path = normalize_path(path)
        found = await self._blob_of(namespace, path)
        if found is None:
            raise NotFound(f"namespace file {path} not found in namespace {namespace}")
        blob, size = found
        received = 0
        seq = 0
        while received < size or seq == 0:
            data = await self._chunk(blob, seq)
            if data is None:
                raise StoreError(
                    f"namespace file {path} of {namespace} changed while it was being read"
                )
            received += len(data)
            seq += 1
            yield data

    async def list(
        self, namespace: str, directory: str = "/", *, recursive: bool = False
    ) -> list[NamespaceFileInfo]:
        directory = normalize_path(directory)
        if directory != "/":
            found = await self.stat(namespace, directory)
            if found is None or not found.is_directory:
                raise NotFound(f"directory {directory} not found in namespace {namespace}")
        return await self._entries(namespace, directory, recursive)

    @abstractmethod
    async def stat(self, namespace: str, path: str) -> NamespaceFileInfo | None:
        """The entry at `path` (the root is always a directory), or None."""

    @abstractmethod
    async def make_directory(self, namespace: str, path: str) -> None:
        """Make a directory and its parents; nothing when it exists, FileConflict when a
        file is in the way."""

    @abstractmethod
    async def delete(self, namespace: str, path: str) -> builtins.list[str]:
        """Remove an entry and everything below it; the paths removed (empty: none)."""

    @abstractmethod
    async def move(self, namespace: str, source: str, target: str) -> None:
        """Rename an entry and everything below it, in one transaction."""

    @abstractmethod
    async def namespaces(self) -> builtins.list[str]:
        """The namespaces that have at least one entry."""

    @abstractmethod
    async def sweep(self) -> int:
        """Drop blobs pending for longer than `PENDING_TTL`; how many."""

    # what each backend implements

    @abstractmethod
    async def _entries(
        self, namespace: str, directory: str, recursive: bool
    ) -> builtins.list[NamespaceFileInfo]: ...

    @abstractmethod
    async def _begin_blob(self, blob: str) -> None: ...

    @abstractmethod
    async def _put_chunk(self, blob: str, seq: int, data: bytes) -> None: ...

    @abstractmethod
    async def _drop_blob(self, blob: str) -> None:
        """Remove a blob's chunks and its pending mark (a failed or skipped upload)."""

    @abstractmethod
    async def _commit(
        self, namespace: str, path: str, blob: str, size: int, conflict: Conflict
    ) -> NamespaceFileInfo | None:
        """In one transaction: check the target again, point it at `blob`, make its
        parents, drop the blob it replaces and the pending mark."""

    @abstractmethod
    async def _blob_of(self, namespace: str, path: str) -> tuple[str, int] | None:
        """(blob, size) of the file at `path`; None when no file is there."""

    @abstractmethod
    async def _chunk(self, blob: str, seq: int) -> bytes | None: ...
