"""Namespace files as plug-ins see them: a file tree per namespace, kept in the store so
that every node of a cluster sees the same files.

What is defined here is shared by the store (which keeps the tree), the API, the
expression functions and the plug-ins, so that a path or a pattern means one thing
everywhere: paths are absolute inside their namespace (`/scripts/etl.py`), and patterns
are Kestra's (`PathMatcherPredicate`: Java globs, `glob:`/`regex:` prefixes, a pattern
starting with a word character matches at any depth).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from daemon.sdk.errors import PodiumError
from daemon.sdk.workdir import glob_regex

CHUNK_SIZE = 1 << 20  # bytes per stored chunk: a file is never held whole in memory
MAX_NAME_LENGTH = 255  # bytes of one path component, as on common file systems
Conflict = Literal["OVERWRITE", "ERROR", "SKIP"]


class NamespaceFileError(PodiumError):
    """A path that is not one, a file where a directory is expected, a conflict."""


class FileConflict(NamespaceFileError):
    """A file exists where `conflict: ERROR` (or a directory) forbids writing one."""


@dataclass(frozen=True)
class NamespaceFileInfo:
    """One entry of a namespace's tree. Times are ISO-8601 text (UTC)."""

    namespace: str
    path: str  # absolute inside the namespace: "/", "/scripts", "/scripts/etl.py"
    is_directory: bool
    size: int
    created: str
    updated: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def normalize_path(path: str) -> str:
    """`path` as the tree keys it: absolute, `/` separated, no empty, `.` or `..` part.

    A path that tries to leave its namespace is refused, not resolved: `a/../../x` is an
    error rather than `/x`, so that nothing written by mistake lands somewhere else.
    """
    if not isinstance(path, str):
        raise NamespaceFileError(f"a namespace file path must be text, got {type(path).__name__}")
    if "\x00" in path:
        raise NamespaceFileError(f"{path!r} is not a path: it holds a NUL character")
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise NamespaceFileError(
                f"{path!r} is not a path inside the namespace: '{part}' is not allowed"
            )
        if len(part.encode()) > MAX_NAME_LENGTH:
            raise NamespaceFileError(
                f"A file or folder name exceeds the maximum length of {MAX_NAME_LENGTH} "
                f"characters: {part[:40]}..."
            )
    return "/" + "/".join(parts)


def parent_of(path: str) -> str:
    """The directory holding `path` ("/" for a top-level entry; "" for the root itself)."""
    if path == "/":
        return ""
    return path.rsplit("/", 1)[0] or "/"


def ancestors(path: str) -> list[str]:
    """Every directory above `path`, the root excluded, outermost first."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def path_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Kestra's PathMatcherPredicate: true when an absolute path matches one pattern.

    `glob:`/`regex:` prefixed patterns are used as written; others are globs, and one
    starting with a word character (`etl.py`, `scripts/**`) matches at any depth.
    """
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        if pattern.startswith("regex:"):
            try:
                compiled.append(re.compile(pattern[len("regex:") :] + r"\Z", re.DOTALL))
            except re.error as exc:
                raise NamespaceFileError(
                    f"{pattern!r} is not a regular expression: {exc}"
                ) from None
        elif pattern.startswith("glob:"):
            compiled.append(glob_regex(pattern[len("glob:") :]))
        else:
            compiled.append(glob_regex(("**/" + pattern) if re.match(r"\w", pattern) else pattern))
    return lambda path: any(p.match(path) for p in compiled)


class NamespaceFiles(Protocol):
    """The namespace files service a plug-in's context hands over: the tree of any
    namespace, read and written in chunks, never the store behind it."""

    async def list(
        self, namespace: str, directory: str = "/", *, recursive: bool = False
    ) -> list[NamespaceFileInfo]:
        """Entries under `directory` (children only, or everything below); NotFound when
        it is not a directory. The root of a namespace always exists (maybe empty)."""
        ...

    async def stat(self, namespace: str, path: str) -> NamespaceFileInfo | None: ...

    def read(self, namespace: str, path: str) -> AsyncIterator[bytes]:
        """The content, chunk by chunk; NotFound when no file is there."""
        ...

    async def download(self, namespace: str, path: str, target: Path) -> NamespaceFileInfo:
        """Copy a file to a local path (parents created), streamed; NotFound."""
        ...

    async def write(
        self,
        namespace: str,
        path: str,
        content: Path | bytes | AsyncIterator[bytes],
        *,
        conflict: Conflict = "OVERWRITE",
    ) -> NamespaceFileInfo | None:
        """Store a file (parent directories made); None when `SKIP` kept an existing
        one. FileConflict for `ERROR` and an existing file, or a directory in the way."""
        ...

    async def make_directory(self, namespace: str, path: str) -> None: ...

    async def delete(self, namespace: str, path: str) -> builtins.list[str]:
        """Remove a file, or a directory and all below it; the paths removed."""
        ...

    async def move(self, namespace: str, source: str, target: str) -> None:
        """Rename a file or a directory (with all below it); FileConflict when the target
        exists, NotFound when the source does not."""
        ...
