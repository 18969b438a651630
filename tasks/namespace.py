"""Namespace file tasks: UploadFiles, DownloadFiles and DeleteFiles, on the namespace file
tree the store keeps (the same files the API, `namespaceFiles:` and `read()` see).

Patterns follow Kestra's tasks: UploadFiles matches files of the working directory (plain
patterns from its root, `glob:`/`regex:` ones on the absolute path); DownloadFiles and
DeleteFiles match namespace paths with PathMatcherPredicate (a pattern starting with a
word character matches at any depth).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from daemon.sdk.context import RunContext
from daemon.sdk.errors import NotFound, TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.nsfiles import (
    FileConflict,
    NamespaceFileError,
    ancestors,
    normalize_path,
    path_matcher,
)
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText
from daemon.sdk.workdir import glob_regex

Files = Annotated[str | list[str], Dynamic, JsonText]


def _as_list(files: str | list[str]) -> list[str]:
    patterns = [files] if isinstance(files, str) else list(files)
    if not patterns:
        raise TaskFailed("files: give at least one file or pattern", non_retryable=True)
    return patterns


def _namespace(task_namespace: str | None, ctx: RunContext) -> str:
    namespace = task_namespace or ctx.flow.namespace
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", namespace):
        raise TaskFailed(f"namespace: {namespace!r} is not a namespace", non_retryable=True)
    return namespace


def _inside(destination: str, name: str) -> str:
    try:
        return normalize_path(f"{destination}/{name}")
    except NamespaceFileError as exc:
        raise TaskFailed(str(exc), non_retryable=True) from None


def _local_matcher(root: Path, patterns: list[str]) -> Callable[[str], bool]:
    """Kestra's WorkingDir.findAllFilesMatching: a plain pattern is taken from the working
    directory's root; `glob:` and `regex:` patterns match the file's absolute path."""
    rooted: list[re.Pattern[str]] = []
    absolute: list[re.Pattern[str]] = []
    for pattern in patterns:
        if pattern.startswith("regex:"):
            absolute.append(re.compile(pattern[len("regex:") :] + r"\Z", re.DOTALL))
        elif pattern.startswith("glob:"):
            absolute.append(glob_regex(pattern[len("glob:") :]))
        else:
            rooted.append(glob_regex("/" + pattern.lstrip("/")))
    base = str(root)

    def matches(rel: str) -> bool:
        return any(p.match("/" + rel) for p in rooted) or any(
            p.match(f"{base}/{rel}") for p in absolute
        )

    return matches


def _walk(root: Path) -> list[str]:
    """Regular files under `root`, relative; symbolic links are never followed."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if not path.is_symlink() and path.is_file():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


class UploadFiles(Task):
    """Upload files of the working directory (`files`) or stored files (`filesMap`) as
    namespace files. Kestra UploadFilesTest."""

    types = (
        "io.kestra.plugin.core.namespace.UploadFiles",
        "io.kestra.core.tasks.namespace.UploadFiles",
    )

    namespace: Annotated[str | None, Dynamic] = None
    files: Annotated[list[str] | None, Dynamic, JsonText] = None
    files_map: Annotated[dict[str, Any] | str | None, Dynamic] = None
    destination: Annotated[str, Dynamic] = "/"
    conflict: Annotated[Literal["OVERWRITE", "ERROR", "SKIP"], Dynamic] = "OVERWRITE"

    async def run(self, ctx: RunContext) -> Output:
        namespace = _namespace(self.namespace, ctx)
        if self.files is None and self.files_map is None:
            raise TaskFailed("files or filesMap is required", non_retryable=True)
        uploads: list[tuple[str, Path]] = []
        if self.files:
            root = await ctx.working_dir()
            matches = _local_matcher(root, self.files)
            for rel in await asyncio.to_thread(_walk, root):
                if matches(rel):
                    uploads.append((_inside(self.destination, rel), root / rel))
        for name, uri in self._files_map().items():
            try:
                source = await ctx.file_path(uri)
            except NotFound:
                ctx.logger.warning(f"filesMap: {uri} does not exist; {name} not uploaded")
                continue
            uploads.append((_inside(self.destination, name), source))
        written: dict[str, str] = {}
        for target, source in uploads:
            try:
                info = await ctx.namespace_files.write(
                    namespace, target, source, conflict=self.conflict
                )
            except FileConflict as exc:
                raise TaskFailed(f"{exc} in namespace {namespace}", non_retryable=True) from None
            if info is None:
                ctx.logger.debug(f"{target} already exists; skipped (conflict: SKIP)")
                continue
            ctx.logger.debug(f"uploaded {target}")
            written[target] = f"nsfile://{namespace}{target}"
        ctx.metric("uploaded", "counter", len(written))
        return {"files": written}

    def _files_map(self) -> dict[str, str]:
        value = self.files_map
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise TaskFailed(
                    f"filesMap: a string must hold a JSON object ({exc})", non_retryable=True
                ) from None
        if not isinstance(value, dict) or not all(
            isinstance(v, str) and v.startswith(SCHEME) for v in value.values()
        ):
            raise TaskFailed(
                "filesMap must be a map of file names to kestra:// URIs", non_retryable=True
            )
        return {str(k): v for k, v in value.items()}


class DownloadFiles(Task):
    """Copy namespace files into this execution's storage (under `destination`); `files`
    maps each namespace path to its stored URI. Kestra DownloadFilesTest."""

    types = (
        "io.kestra.plugin.core.namespace.DownloadFiles",
        "io.kestra.core.tasks.namespace.DownloadFiles",
    )

    namespace: Annotated[str, Dynamic]
    files: Files
    destination: Annotated[str, Dynamic] = ""

    async def run(self, ctx: RunContext) -> Output:
        namespace = _namespace(self.namespace, ctx)
        try:
            matches = path_matcher(_as_list(self.files))
        except NamespaceFileError as exc:
            raise TaskFailed(f"files: {exc}", non_retryable=True) from None
        root = await ctx.working_dir()
        downloaded: dict[str, str] = {}
        for entry in await ctx.namespace_files.list(namespace, recursive=True):
            if entry.is_directory or not matches(entry.path):
                continue
            local = root / "download" / entry.path.lstrip("/")
            await ctx.namespace_files.download(namespace, entry.path, local)
            name = f"{self.destination.strip('/')}/{entry.path.lstrip('/')}".lstrip("/")
            downloaded[entry.path] = await ctx.put_file(local, name)
            await asyncio.to_thread(local.unlink)
            ctx.logger.debug(f"Downloaded {entry.path}")
        ctx.metric("downloaded", "counter", len(downloaded))
        return {"files": downloaded}


class DeleteFiles(Task):
    """Delete the namespace files matching `files`, and with `deleteParentFolder` the
    folders left empty. Kestra DeleteFilesTest."""

    types = (
        "io.kestra.plugin.core.namespace.DeleteFiles",
        "io.kestra.core.tasks.namespace.DeleteFiles",
    )

    namespace: Annotated[str, Dynamic]
    files: Files
    delete_parent_folder: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        namespace = _namespace(self.namespace, ctx)
        try:
            matches = path_matcher(_as_list(self.files))
        except NamespaceFileError as exc:
            raise TaskFailed(f"files: {exc}", non_retryable=True) from None
        service = ctx.namespace_files
        folders: set[str] = set()
        deleted = 0
        for entry in await service.list(namespace, recursive=True):
            if entry.is_directory or not matches(entry.path):
                continue
            if await service.delete(namespace, entry.path):
                deleted += 1
                ctx.logger.debug(f"Deleted {entry.path}")
                folders.update(ancestors(entry.path))
        if self.delete_parent_folder:
            for folder in sorted(folders, key=lambda f: -f.count("/")):
                if not await service.list(namespace, folder):
                    await service.delete(namespace, folder)
                    ctx.logger.debug(f"Deleted empty folder: {folder}")
        ctx.metric("deleted", "counter", deleted)
        return None
