"""The default backend: files under a directory of this machine (`<data-dir>/storage`).

Disk calls run in a thread. A file is written beside its target and renamed over it, so a
reader never sees half a file, and a full disk gets its space back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from daemon.sdk.errors import NotFound
from daemon.sdk.files import StorageError
from daemon.store.blobs import READ_CHUNK, BlobInfo, Blobs, check_key, check_prefix


def _refused(action: str, path: Path, exc: OSError) -> StorageError:
    """'cannot write /data/storage/…/out.csv: No space left on device'. The directory the
    system names is kept when it is not the file's own (which one is not a directory);
    other names it gives are not the storage's (sendfile names the source)."""
    reason = exc.strerror or str(exc)
    culprit = Path(os.fsdecode(exc.filename)) if exc.filename is not None else None
    if culprit is not None and culprit in path.parents and culprit != path.parent:
        reason = f"{reason} ({culprit})"
    return StorageError(f"cannot {action} {path}: {reason}", exc.errno)


class LocalBlobs(Blobs):
    local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _path(self, key: str) -> Path:
        check_key(key)
        root = self.root.resolve()
        target = (root / key).resolve()
        if root not in target.parents:  # a symlink planted inside the directory
            raise NotFound(f"{key!r} is outside the storage")
        return target

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def put_file(self, key: str, source: Path, size: int) -> None:
        await asyncio.to_thread(self._write, key, source)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, key, data)

    def _write(self, key: str, source: Path | bytes) -> None:
        target = self._path(key)
        tmp = target.with_name(f".{target.name}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                tmp.write_bytes(source)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise _refused("write", target, exc) from exc

    async def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        target = await asyncio.to_thread(self._path, key)
        try:
            handle = await asyncio.to_thread(target.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no stored file {key}") from None
        except OSError as exc:
            raise _refused("read", target, exc) from exc
        try:
            if offset:
                await asyncio.to_thread(handle.seek, offset)
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk
        finally:
            handle.close()

    async def info(self, key: str) -> BlobInfo | None:
        def look() -> BlobInfo | None:
            try:
                found = self._path(key).stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat.S_ISREG(found.st_mode):
                return None
            return BlobInfo(found.st_size, f"{found.st_mtime_ns}-{found.st_size}")

        return await asyncio.to_thread(look)

    async def keys(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            folder = self._path(check_prefix(prefix))
            root = self.root.resolve()
            if not folder.is_dir():
                return []
            return sorted(
                p.relative_to(root).as_posix()
                for p in folder.rglob("*")
                if p.is_file() and not p.name.endswith(".part")
            )

        return await asyncio.to_thread(walk)

    async def delete(self, key: str) -> bool:
        def remove() -> bool:
            target = self._path(key)
            try:
                target.unlink()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return False
            except OSError as exc:
                raise _refused("delete", target, exc) from exc
            return True

        return await asyncio.to_thread(remove)

    async def delete_prefix(self, prefix: str) -> list[str]:
        keys = await self.keys(prefix)

        def remove() -> None:
            folder = self._path(check_prefix(prefix))
            if folder.is_dir():
                try:
                    shutil.rmtree(folder)
                except OSError as exc:
                    raise _refused("delete", folder, exc) from exc

        await asyncio.to_thread(remove)
        return keys
