"""What a storage backend does: keep files by key, moving them in bounded pieces.

A key is a relative POSIX path (`ns/flow/executions/EXEC/tasks/TASK/RUN/out.csv`), checked
once here so that no backend can be walked out of its root, bucket prefix or table. Files
go in from a local file or bytes and come out as an async stream of chunks: no backend
ever holds a whole file in memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from daemon.sdk.errors import NotFound
from daemon.sdk.files import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_KEY_BYTES = 1024  # S3's limit, kept by every backend so that files can move between them
READ_CHUNK = 1024 * 1024  # what a reader gets at a time


class BadKey(NotFound):
    """A key that cannot name a stored file (`..`, a NUL, empty parts...): for a reader
    there is no such file, and nothing outside the storage is ever touched."""


def check_key(key: str) -> str:
    """`key` when it is a clean relative path; BadKey otherwise."""
    if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise BadKey(f"{key[:80]!r} cannot name a stored file (1 to {MAX_KEY_BYTES} bytes)")
    if "\x00" in key or "\\" in key or any(ord(c) < 32 for c in key):
        raise BadKey(f"{key!r} cannot name a stored file (control character or backslash)")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadKey(f"{key!r} cannot name a stored file (empty, '.' or '..' part)")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key naming a folder; `''` (everything) is not one a caller may delete."""
    return check_key(prefix.strip("/"))


@dataclass(frozen=True)
class BlobInfo:
    size: int
    version: str  # changes whenever the file is replaced (an ETag, a chunk set's id, mtime)


class Blobs(ABC):
    """One storage backend. Errors: NotFound for a missing file, StorageError when the
    backend refuses or cannot be reached (after its retries)."""

    where: str  # for messages: a directory, s3://bucket/prefix, postgresql://host/db
    local = False  # its files are files of this machine (`local_path`)

    @abstractmethod
    async def put_file(self, key: str, source: Path, size: int) -> None:
        """Store a local file of `size` bytes; a reader never sees a partial file."""

    @abstractmethod
    async def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The file's bytes from `offset`, in chunks of at most READ_CHUNK."""

    @abstractmethod
    async def info(self, key: str) -> BlobInfo | None: ...

    @abstractmethod
    async def keys(self, prefix: str) -> list[str]:
        """Every key under the folder `prefix`, sorted."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """False when there was no such file."""

    async def delete_prefix(self, prefix: str) -> list[str]:
        """Remove every file under the folder `prefix`; returns their keys."""
        removed = []
        for key in await self.keys(prefix):
            if await self.delete(key):
                removed.append(key)
        return removed

    def local_path(self, key: str) -> Path | None:
        """The file itself when the backend is a local directory (no copy needed); it may
        touch the disk: call it in a thread."""
        return None

    async def close(self) -> None:
        return None


class Transient(Exception):
    """A backend's failure worth another try (a refused connection, a timeout, a 5xx)."""


async def with_retries(
    what: str, retries: int, attempt: Callable[[], Awaitable[T]], *, where: str
) -> T:
    """Run `attempt`, trying again after a Transient failure with exponential backoff and
    jitter (0.5 s, 1 s, 2 s... at most 10 s); the last failure becomes a StorageError."""
    delay, tries = 0.5, 0
    while True:
        try:
            return await attempt()
        except Transient as exc:
            tries += 1
            if tries > retries:
                raise StorageError(
                    f"cannot {what} ({where}): {exc} (after {tries} tries)", None
                ) from exc
            log.warning("storage: %s failed (%s); trying again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)
