"""What the FTP, FTPS and SFTP tasks do, whatever the protocol (kestra-io/plugin-fs's vfs
package): List, Download, Downloads, Upload, Uploads, Delete and Move. Each protocol's
module (fs_ftp, fs_ftps, fs_sftp) mixes in its connection properties and Kestra's names.

Beyond Kestra: a MOVE of Downloads never replaces a file already in `moveDirectory` (the
file goes beside it, `a-1.csv`), and files downloaded under one name are stored under
names of their own (`a.csv`, `a-1.csv`) where Kestra's `outputFiles` would clash.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from daemon.sdk.brokers import read_from
from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText
from daemon.sdk.remotefs import (
    Entry,
    RemoteConnection,
    RemoteFs,
    Sort,
    compiled,
    connected,
    file_doc,
    flow_path,
    sorted_entries,
)

Action = Literal["MOVE", "DELETE", "NONE"]
# Kestra's ChecksumService.Algorithm -> hashlib's name.
ALGORITHMS = {"MD5": "md5", "SHA_1": "sha1", "SHA_256": "sha256", "SHA_512": "sha512"}
# A `from` of Uploads read as a list of URIs only when the file is this small.
URI_LIST_LIMIT = 1 << 20


def _connection(task: Task) -> RemoteConnection:
    if not isinstance(task, RemoteConnection):
        raise TypeError(f"{type(task).__name__} has no connection properties")
    return task


def _open(task: Task, ctx: RunContext) -> Any:
    conn = _connection(task)
    for secret in conn.secrets():
        ctx.secrets.add(secret)
    return connected(conn)


def _stored_name(name: str, taken: set[str]) -> str:
    stem, suffix = posixpath.splitext(name)
    n, candidate = 0, name
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{suffix}"
    taken.add(candidate)
    return candidate


async def _fetch(
    fs: RemoteFs, ctx: RunContext, path: str, name: str, algorithm: str = "sha256"
) -> tuple[str, str]:
    """Download into the working directory, store it; the URI and the content's digest."""
    local = await ctx.working_dir() / name
    await fs.download(path, local)
    digest = await asyncio.to_thread(_digest, local, algorithm)
    uri = await ctx.put_file(local, name)
    await asyncio.to_thread(local.unlink)
    return uri, digest


def _digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


async def act_on(
    fs: RemoteFs, entries: list[Entry], action: Action | None, move_directory: str | None
) -> None:
    """Kestra's VfsService.performAction after a download: DELETE or MOVE the files."""
    for entry in entries:
        if action == "DELETE":
            await fs.remove(entry.path)
        elif action == "MOVE" and move_directory is not None:
            await fs.move_into(entry.path, flow_path(move_directory))


def _storage_uri(value: str, what: str) -> str:
    if not value.startswith(SCHEME):
        raise TaskFailed(
            f"{what} must be a Kestra internal storage URI (kestra:///...), not {value!r}",
            non_retryable=True,
        )
    return value


class RemoteList(Task):
    """Kestra's vfs List: the files under `from`, `regExp` on the whole path."""

    from_: Annotated[str, Dynamic] = Field(alias="from")
    reg_exp: Annotated[str | None, Dynamic] = None
    recursive: Annotated[bool, Dynamic] = False
    max_files: Annotated[int, Dynamic] = Field(default=25, ge=1)
    sort: Annotated[Sort, Dynamic] = "NONE"

    async def run(self, ctx: RunContext) -> Output:
        async with _open(self, ctx) as fs:
            files = await fs.list_files(flow_path(self.from_), self.reg_exp, self.recursive)
        files = sorted_entries(files, self.sort)
        if len(files) > self.max_files:
            ctx.logger.warning(
                f"Too many files to process ({len(files)}), limiting to {self.max_files}"
            )
            files = files[: self.max_files]
        return {"files": [file_doc(e) for e in files]}


class RemoteDownload(Task):
    """Kestra's vfs Download: one file into storage, with its checksum."""

    from_: Annotated[str, Dynamic] = Field(alias="from")
    validate_checksum: Annotated[bool, Dynamic] = False
    checksum_expected: Annotated[str | None, Dynamic] = None
    checksum_algorithm: Annotated[Literal["MD5", "SHA_1", "SHA_256", "SHA_512"], Dynamic] = (
        "SHA_256"
    )

    async def run(self, ctx: RunContext) -> Output:
        if self.validate_checksum and not (self.checksum_expected or "").strip():
            raise TaskFailed(
                "Checksum validation is enabled but no `checksumExpected` value was provided.",
                non_retryable=True,
            )
        if self.checksum_algorithm in ("MD5", "SHA_1"):
            ctx.logger.warning(
                f"Checksum algorithm '{self.checksum_algorithm}' is deprecated and considered "
                "weak; use SHA_256 or stronger for integrity verification."
            )
        path = flow_path(self.from_)
        algorithm = ALGORITHMS[self.checksum_algorithm]
        async with _open(self, ctx) as fs:
            name = posixpath.basename(path) or "download"
            local = await ctx.working_dir() / name
            await fs.download(path, local)
            source = fs.uri(path)
        checksum = await asyncio.to_thread(_digest, local, algorithm)
        expected = (self.checksum_expected or "").strip()
        if self.validate_checksum and checksum.lower() != expected.lower():
            raise TaskFailed(
                f"Checksum mismatch for file '{source}': expected '{expected}' but computed "
                f"'{checksum}' using {self.checksum_algorithm}.",
                non_retryable=True,
            )
        return {"from": source, "to": await ctx.put_file(local, name), "checksum": checksum}


class RemoteDownloads(Task):
    """Kestra's vfs Downloads: the files under `from` into storage, then MOVE or DELETE."""

    from_: Annotated[str, Dynamic] = Field(alias="from")
    move_directory: Annotated[str | None, Dynamic] = None  # before `action`, which reads it
    action: Annotated[Action | None, Dynamic] = None
    reg_exp: Annotated[str | None, Dynamic] = None
    recursive: Annotated[bool, Dynamic] = False
    max_files: Annotated[int, Dynamic] = Field(default=25, ge=1)

    @field_validator("action")
    @classmethod
    def _move_needs_directory(cls, value: Any, info: ValidationInfo) -> Any:
        if value == "MOVE" and info.data.get("move_directory") is None:
            raise ValueError("MOVE needs 'moveDirectory', the directory files are moved to")
        return value

    async def run(self, ctx: RunContext) -> Output:
        compiled(self.reg_exp)
        docs, outputs, taken = [], {}, set[str]()
        async with _open(self, ctx) as fs:
            files = await fs.list_files(flow_path(self.from_), self.reg_exp, self.recursive)
            if len(files) > self.max_files:
                ctx.logger.warning(
                    f"Too many files to process ({len(files)}), limiting to {self.max_files}"
                )
                files = files[: self.max_files]
            for entry in files:
                name = _stored_name(entry.name, taken)
                uri, _ = await _fetch(fs, ctx, entry.path, name)
                docs.append(file_doc(entry, uri))
                outputs[name] = uri
            await act_on(fs, files, self.action, self.move_directory)
        return {"files": docs, "outputFiles": outputs}


class RemoteUpload(Task):
    """Kestra's vfs Upload: one stored file to the server."""

    from_: Annotated[str, Dynamic] = Field(alias="from")
    to: Annotated[str | None, Dynamic] = None
    overwrite: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        source = _storage_uri(self.from_, "'from'")
        name = source.rsplit("/", 1)[-1]
        target = flow_path(self.to if self.to is not None else name)
        if target.endswith("/"):
            target += name
        local = await ctx.file_path(source)
        async with _open(self, ctx) as fs:
            found = await fs.stat(target)
            if found is not None and not self.overwrite:
                what = "Folder" if found.is_dir else "File"
                raise TaskFailed(
                    f"{what} '{target}' already exists in the remote server and cannot be "
                    "overwritten. Set `overwrite: true` to replace it.",
                    non_retryable=True,
                )
            if found is not None and found.is_dir:
                await fs.remove_tree(target)
            await fs.make_dirs(posixpath.dirname(target))
            await fs.upload(local, target)
            return {"from": source, "to": fs.uri(target)}


class RemoteUploads(Task):
    """Kestra's vfs Uploads: stored files into one remote directory, at most `maxFiles`."""

    from_: Annotated[str | list[str] | dict[str, str], Dynamic, JsonText] = Field(alias="from")
    to: Annotated[str, Dynamic]
    max_files: Annotated[int, Dynamic] = Field(default=25, ge=1)

    async def run(self, ctx: RunContext) -> Output:
        pairs = await self._sources(ctx)
        if len(pairs) > self.max_files:
            ctx.logger.warning(
                f"Too many files to process ({len(pairs)}), limiting to {self.max_files}"
            )
            pairs = pairs[: self.max_files]
        directory = flow_path(self.to)
        uploaded = []
        async with _open(self, ctx) as fs:
            await fs.make_dirs(directory)
            for name, uri in pairs:
                local = await ctx.file_path(_storage_uri(uri, "each file of 'from'"))
                target = posixpath.join(directory, name or uri.rsplit("/", 1)[-1])
                await fs.upload(local, target)
                uploaded.append(fs.uri(target))
        return {"files": uploaded}

    async def _sources(self, ctx: RunContext) -> list[tuple[str | None, str]]:
        """(destination name or None, URI): a map names the files, a list or a text does
        not; one URI is the file to upload, or a stored list of URIs (Kestra's Data.From)."""
        value = self.from_
        if isinstance(value, dict):
            return [(str(k), str(v)) for k, v in value.items()]
        if isinstance(value, list):
            return [(None, str(v)) for v in value]
        uri = _storage_uri(value.strip(), "'from'")
        local = await ctx.file_path(uri)
        if (await asyncio.to_thread(local.stat)).st_size <= URI_LIST_LIMIT:
            try:
                items = await read_from(ctx, uri)
            except TaskFailed:
                items = []
            if items and all(isinstance(i, str) and i.startswith(SCHEME) for i in items):
                return [(None, i) for i in items]
        return [(None, uri)]


class RemoteDelete(Task):
    """Kestra's vfs Delete: a file, a directory (with `recursive`), or the files under a
    directory whose path matches `regExp`."""

    uri: Annotated[str, Dynamic]
    error_on_missing: Annotated[bool, Dynamic] = False
    recursive: Annotated[bool, Dynamic] = False
    reg_exp: Annotated[str | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        path = flow_path(self.uri)
        pattern = compiled(self.reg_exp)
        async with _open(self, ctx) as fs:
            found = await fs.stat(path)
            if found is None:
                if self.error_on_missing:
                    what = "directory" if pattern else "file"
                    raise TaskFailed(f"Unable to find {what} '{fs.uri(path)}'", non_retryable=True)
                return {"uri": fs.uri(path), "deleted": False, "uris": []}
            if pattern is not None:
                keep = lambda e: bool(pattern.fullmatch(e.path))  # noqa: E731
                matches = await fs.walk(path, self.recursive, keep) if found.is_dir else []
                if matches:
                    ctx.logger.warning(
                        f"Deleting {len(matches)} file(s) matching regExp '{self.reg_exp}' "
                        f"under '{fs.uri(path)}'"
                    )
                for entry in matches:
                    await fs.remove(entry.path)
                uris = [fs.uri(e.path) for e in matches]
                return {"uri": fs.uri(path), "deleted": bool(uris), "uris": uris}
            if not found.is_dir:
                await fs.remove(path)
            elif self.recursive or not await fs.list_dir(path):
                await fs.remove_tree(path)
            else:
                ctx.logger.warning(f"'{path}' is a directory that is not empty: set recursive")
                return {"uri": fs.uri(path), "deleted": False, "uris": []}
            return {"uri": fs.uri(path), "deleted": True, "uris": []}


class RemoteMove(Task):
    """Kestra's vfs Move: a file renamed or moved; missing directories are created."""

    from_: Annotated[str, Dynamic] = Field(alias="from")
    to: Annotated[str, Dynamic]
    overwrite: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        source = flow_path(self.from_)
        target = flow_path(self.to)
        if target.endswith("/") and not source.endswith("/"):
            target += posixpath.basename(source)
        async with _open(self, ctx) as fs:
            if await fs.stat(source) is None:
                raise TaskFailed(f"Unable to find file '{fs.uri(source)}'", non_retryable=True)
            there = await fs.stat(target)
            if there is not None and there.is_dir:
                target = posixpath.join(target, posixpath.basename(source))
                there = await fs.stat(target)
            if there is not None:
                if not self.overwrite:
                    raise TaskFailed(
                        f"File '{posixpath.basename(target)}' already exists in the remote "
                        "server and cannot be overwritten. If you want to ignore this, set "
                        "`overwrite` to `true`.",
                        non_retryable=True,
                    )
                ctx.logger.warning(f"File '{target}' already exists and will be overwritten.")
                await fs.remove(target)
            else:
                await fs.make_dirs(posixpath.dirname(target))
            await fs.rename(source, target)
            return {"from": fs.uri(source), "to": fs.uri(target)}
