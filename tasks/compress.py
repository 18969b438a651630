"""Kestra's compress plug-in (kestra-io/plugin-compress): ArchiveCompress and
ArchiveDecompress (`algorithm` ZIP or TAR, a TAR optionally `compression` GZIP, BZIP2,
XZ or ZSTD) and FileCompress/FileDecompress (one file, GZIP, BZIP2, XZ or ZSTD).

Everything streams through fixed-size buffers, off the event loop. Decompressed archive
members keep their relative paths; a member that would land outside the task's working
directory (`../x`, an absolute path, a link) is refused.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import lzma
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText

Compression = Literal["GZIP", "BZIP2", "XZ", "ZSTD"]
Algorithm = Literal["ZIP", "TAR"]
CHUNK = 1 << 20
_SUFFIX = {"GZIP": ".gz", "BZIP2": ".bz2", "XZ": ".xz", "ZSTD": ".zst"}


def _open(path: Path, mode: str, compression: Compression | None) -> IO[bytes]:
    """A binary stream through `compression` (none: the file itself)."""
    if compression is None:
        return path.open(mode + "b")
    if compression == "GZIP":
        return gzip.open(path, mode + "b")
    if compression == "BZIP2":
        return bz2.open(path, mode + "b")
    if compression == "XZ":
        return lzma.open(path, mode + "b")
    import zstandard

    return zstandard.open(path, mode + "b")  # type: ignore[no-any-return]


def _checked(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise TaskFailed(f"the archive member '{name}' would land outside the directory")
    return path


async def _blocking(work: Callable[[], Any], what: str) -> Any:
    try:
        return await asyncio.to_thread(work)
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise TaskFailed(f"{what}: {exc}", non_retryable=True) from None
    except Exception as exc:  # zstandard.ZstdError and the like
        if type(exc).__module__.startswith("zstandard"):
            raise TaskFailed(f"{what}: {exc}", non_retryable=True) from None
        raise


class ArchiveCompress(Task):
    """Kestra's ArchiveCompress: `from` maps each member's name to a stored file."""

    types = ("io.kestra.plugin.compress.ArchiveCompress",)

    from_: Annotated[dict[str, str], Dynamic, JsonText] = Field(alias="from")
    algorithm: Algorithm
    compression: Compression | None = None

    async def run(self, ctx: RunContext) -> Output:
        if self.algorithm == "ZIP" and self.compression:
            raise TaskFailed("a ZIP archive compresses its members itself: drop compression")
        members = [(_checked(name), await ctx.file_path(uri)) for name, uri in self.from_.items()]
        suffix = ".zip" if self.algorithm == "ZIP" else ".tar"
        if self.compression:
            suffix += _SUFFIX[self.compression]
        target = await ctx.working_dir() / f"{self.id}{suffix}"

        def write() -> None:
            if self.algorithm == "ZIP":
                with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                    for name, path in members:
                        archive.write(path, str(name))
                return
            with (
                _open(target, "w", self.compression) as raw,
                tarfile.open(fileobj=raw, mode="w|") as archive,
            ):
                for name, path in members:
                    archive.add(path, str(name), recursive=False)

        await _blocking(write, "cannot write the archive")
        return {"uri": await ctx.put_file(target)}


class ArchiveDecompress(Task):
    """Kestra's ArchiveDecompress: `files` maps each member's path to its stored file."""

    types = ("io.kestra.plugin.compress.ArchiveDecompress",)

    from_: Annotated[str, Dynamic] = Field(alias="from")
    algorithm: Algorithm
    compression: Compression | None = None

    async def run(self, ctx: RunContext) -> Output:
        source = await ctx.file_path(self.from_)
        directory = await ctx.working_dir() / f"{self.id}-files"

        def extract() -> list[PurePosixPath]:
            names: list[PurePosixPath] = []
            directory.mkdir(parents=True, exist_ok=True)
            if self.algorithm == "ZIP":
                with zipfile.ZipFile(source) as archive:
                    for info in archive.infolist():
                        if info.is_dir():
                            continue
                        name = _checked(info.filename)
                        _copy(archive.open(info), directory / name)
                        names.append(name)
                return names
            with (
                _open(source, "r", self.compression) as raw,
                tarfile.open(fileobj=raw, mode="r|") as archive,
            ):
                for member in archive:
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise TaskFailed(f"the archive member '{member.name}' is not a file")
                    name = _checked(member.name)
                    stream = archive.extractfile(member)
                    assert stream is not None
                    _copy(stream, directory / name)
                    names.append(name)
            return names

        names = await _blocking(extract, f"cannot read {self.from_}")
        files = {str(name): await ctx.put_file(directory / name, str(name)) for name in names}
        return {"files": files}


def _copy(stream: IO[bytes], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with stream, target.open("wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)


class FileCompress(Task):
    """Kestra's FileCompress: one stored file compressed."""

    types = ("io.kestra.plugin.compress.FileCompress",)

    from_: Annotated[str, Dynamic] = Field(alias="from")
    compression: Compression

    async def run(self, ctx: RunContext) -> Output:
        source = await ctx.file_path(self.from_)
        target = await ctx.working_dir() / f"{self.id}{_SUFFIX[self.compression]}"

        def compress() -> None:
            with source.open("rb") as data, _open(target, "w", self.compression) as out:
                shutil.copyfileobj(data, out, CHUNK)

        await _blocking(compress, f"cannot compress {self.from_}")
        return {"uri": await ctx.put_file(target)}


class FileDecompress(Task):
    """Kestra's FileDecompress: one stored file decompressed."""

    types = ("io.kestra.plugin.compress.FileDecompress",)

    from_: Annotated[str, Dynamic] = Field(alias="from")
    compression: Compression

    async def run(self, ctx: RunContext) -> Output:
        source = await ctx.file_path(self.from_)
        name = PurePosixPath(self.from_).name
        stem = name.removesuffix(_SUFFIX[self.compression]) if name else self.id
        target = await ctx.working_dir() / (stem if stem != name else f"{self.id}.out")

        def decompress() -> None:
            with _open(source, "r", self.compression) as data, target.open("wb") as out:
                shutil.copyfileobj(data, out, CHUNK)

        await _blocking(decompress, f"cannot decompress {self.from_}")
        return {"uri": await ctx.put_file(target)}
