"""Internal storage: `kestra:///ns/flow/executions/EXEC/tasks/TASK/RUN/name` -> a file.

Every `kestra://` file of the daemon (task outputs, FILE inputs, uploads, trigger copies)
goes through `Storage`, whichever backend keeps it (`daemon.config.storage`). A plug-in
that wants a local file to open gets one from `path()`: the file itself on the local
backend, a copy streamed into `<data-dir>/cache/storage` on the others (fetched again
only when the stored file changed; the least recently used copies go once the cache is
over `cache-size`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from daemon.config.storage import StorageSettings
from daemon.sdk.errors import NotFound
from daemon.sdk.files import SCHEME, StorageError
from daemon.store.blob_local import LocalBlobs
from daemon.store.blobs import BadKey, Blobs, check_key, check_prefix

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
CACHE_GRACE = 600  # seconds a cached copy is kept after its last use, whatever the limit


def _part(text: str) -> str:
    cleaned = _SAFE.sub("_", text)
    if cleaned in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot name a stored file")
    return cleaned


def open_blobs(settings: StorageSettings, data_dir: Path, store_dsn: str | None) -> Blobs:
    """The backend `settings` name (not yet connected: that happens on first use)."""
    if settings.type == "s3":
        # imported here: botocore is only loaded by daemons that use it
        from daemon.store.blob_s3 import S3Blobs

        return S3Blobs(settings)
    if settings.type == "postgres":
        dsn = settings.dsn or store_dsn
        if dsn is None:
            raise StorageError(
                "storage type postgres needs a PostgreSQL store (store: postgresql://...) "
                "or its own storage dsn",
                None,
            )
        from daemon.store.blob_postgres import PostgresBlobs

        return PostgresBlobs(dsn, retries=settings.retries)
    return LocalBlobs(settings.path or data_dir / "storage")


class Storage:
    def __init__(self, blobs: Blobs, cache: Path, cache_size: int = 4 * 2**30) -> None:
        self.blobs = blobs
        self._cache = cache
        self._cache_size = cache_size

    @property
    def where(self) -> str:
        return self.blobs.where

    def execution_prefix(self, namespace: str, flow_id: str, execution_id: str) -> str:
        ns = "/".join(_part(p) for p in namespace.split("."))
        return f"/{ns}/{_part(flow_id)}/executions/{_part(execution_id)}"

    @staticmethod
    def key(uri: str) -> str:
        """The key of a `kestra:///` URI; NotFound if it is not one that can be stored."""
        if not uri.startswith(SCHEME + "/"):
            raise NotFound(f"{uri!r} is not a storage URI (kestra:///...)")
        return check_key(uri[len(SCHEME) + 1 :])

    async def put(self, source: Path | bytes, *, prefix: str, name: str) -> str:
        """Copy (or write) a file under `prefix`, returning its URI.

        A source that cannot be read raises its own OSError; a storage that cannot take the
        file raises StorageError, leaving no partial file behind.
        """
        key = f"{prefix.strip('/')}/{_part(name)}"
        try:
            check_key(key)
        except BadKey as exc:
            raise ValueError(str(exc)) from None
        if isinstance(source, bytes):
            await self.blobs.put_bytes(key, source)
        else:
            # a missing source is the caller's problem, not the storage's
            size = (await asyncio.to_thread(os.stat, source)).st_size
            await self.blobs.put_file(key, Path(source), size)
        await self._forget(key)
        return f"{SCHEME}/{key}"

    def open(self, uri: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The file's bytes as a stream of chunks; NotFound when there is none."""
        return self.blobs.read(self.key(uri), offset)

    async def size(self, uri: str) -> int:
        info = await self.blobs.info(self.key(uri))
        if info is None:
            raise NotFound(f"no stored file at {uri}")
        return info.size

    async def exists(self, uri: str) -> bool:
        try:
            return await self.blobs.info(self.key(uri)) is not None
        except NotFound:
            return False

    async def read_text(self, uri: str) -> str:
        """A small file as text (a list of URIs, a YAML document): read whole."""
        chunks = [chunk async for chunk in self.open(uri)]
        return b"".join(chunks).decode("utf-8")

    async def path(self, uri: str) -> Path:
        """A local file to read the stored file from; NotFound if there is none."""
        key = self.key(uri)
        if self.blobs.local:
            local = await asyncio.to_thread(self.blobs.local_path, key)
            if local is None or not await asyncio.to_thread(local.is_file):
                raise NotFound(f"no stored file at {uri}")
            return local
        info = await self.blobs.info(key)
        if info is None:
            raise NotFound(f"no stored file at {uri}")
        # <cache>/<key>.d/<name>: the copy keeps the file's name (plug-ins use it), and a
        # key that is another's folder ("a/b" and "a/b/c") does not collide with it.
        folder = self._cache / f"{key}.d"
        copy, version = folder / key.rsplit("/", 1)[-1], folder / ".version"
        if await asyncio.to_thread(_fresh, version, info.version, copy):
            return copy
        await self._download(key, folder, copy, info.version)
        await asyncio.to_thread(_evict, self._cache, self._cache_size, folder)
        return copy

    async def _download(self, key: str, folder: Path, copy: Path, version: str) -> None:
        """Stream the file into the cache beside its final name, then rename: a reader of
        the cache never sees a partial copy, and concurrent downloads do not collide."""
        tmp = folder / f".{uuid.uuid4().hex}.part"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(tmp.open, "wb")
        try:
            try:
                async for chunk in self.blobs.read(key):
                    await asyncio.to_thread(handle.write, chunk)
            finally:
                handle.close()
            await asyncio.to_thread(os.replace, tmp, copy)
            await asyncio.to_thread((folder / ".version").write_text, version)
        except OSError as exc:
            message = f"cannot copy {key} into {folder}: {exc.strerror or exc}"
            raise StorageError(message, exc.errno) from exc
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(tmp.unlink, missing_ok=True)

    async def delete(self, uri: str) -> bool:
        """Remove one stored file; False when there is none."""
        try:
            key = self.key(uri)
        except NotFound:
            return False
        await self._forget(key)
        return await self.blobs.delete(key)

    async def delete_prefix(self, prefix: str) -> list[str]:
        """Remove every file under a prefix (an execution's files); returns their URIs."""
        folder = check_prefix(prefix)
        await self._forget(folder)
        return [f"{SCHEME}/{key}" for key in await self.blobs.delete_prefix(folder)]

    async def _forget(self, key: str) -> None:
        """Drop the cached copies under `key` (a file or a folder) of this node."""
        if not self.blobs.local:
            for folder in (self._cache / key, self._cache / f"{key}.d"):
                await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    async def close(self) -> None:
        await self.blobs.close()


def _fresh(version: Path, expected: str, copy: Path) -> bool:
    """The cached copy is of the stored file's current version: use it (and mark it used,
    so that eviction takes it last)."""
    try:
        if version.read_text() != expected or not copy.is_file():
            return False
        os.utime(version)
    except OSError:
        return False
    return True


def _evict(cache: Path, limit: int, keep: Path) -> None:
    """Remove the least recently used copies until the cache holds at most `limit` bytes.
    `keep` (just fetched) and copies used in the last CACHE_GRACE seconds stay: a task may
    be about to open them."""
    entries = []
    for version in cache.rglob(".version"):
        folder = version.parent
        try:
            used = version.stat().st_mtime
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        except OSError:
            continue
        entries.append((used, size, folder))
    total = sum(size for _, size, _ in entries)
    now = time.time()
    for used, size, folder in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            return
        if folder == keep or now - used < CACHE_GRACE:
            continue
        for item in folder.iterdir():
            if item.is_file():
                with contextlib.suppress(OSError):
                    item.unlink()
        total -= size
