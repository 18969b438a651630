"""Files in a task's working directory, the way Kestra's `inputFiles`/`outputFiles` fill and
collect them: names relative to the directory, Java glob patterns, `kestra://` contents
copied from storage.

Shared by every plug-in that has such properties (WorkingDirectory, LocalFiles, ...), so
that a pattern or a file name means the same thing in each.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Java's glob syntax, which Kestra's patterns use: `*` and `?` stay within a directory,
    `**` crosses directories, `{a,b}` is either, `[...]` a character class (`[!...]` negated)."""
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 1
        elif char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            out.append("(?:")
            depth += 1
        elif char == "}" and depth:
            out.append(")")
            depth -= 1
        elif char == "," and depth:
            out.append("|")
        elif char == "[" and pattern.find("]", i + 2) > 0:
            end = pattern.find("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def inside(root: Path, name: str, what: str) -> Path:
    """`root / name`, refused when the name would leave the directory (checked on the name
    itself: `..`, absolute paths)."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise TaskFailed(
            f"{what}: {name!r} is not a relative path inside the working directory",
            non_retryable=True,
        )
    return root.joinpath(*parts)


def file_map(value: Any, what: str) -> dict[str, str]:
    """Kestra's `inputFiles` shapes, rendered: a map of name -> content (entries without a
    value dropped, other scalars as text) or a string holding such a map as JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TaskFailed(
                f"{what}: a string must hold a JSON object of file names to contents ({exc})",
                non_retryable=True,
            ) from None
    if not isinstance(value, Mapping):
        raise TaskFailed(
            f"{what}: expected a map of file names to contents, got {type(value).__name__}",
            non_retryable=True,
        )
    out: dict[str, str] = {}
    for name, content in value.items():
        if content is None:
            continue
        if isinstance(content, dict | list):
            content = json.dumps(content)
        out[str(name)] = content if isinstance(content, str) else str(content)
    return out


async def write_files(ctx: RunContext, root: Path, files: Mapping[str, str], what: str) -> None:
    """Write each file under `root` (parent directories created, an existing file replaced):
    a `kestra://` content is the stored file's, anything else the text itself."""
    for name, content in files.items():
        target = inside(root, name, what)
        source = await ctx.file_path(content) if content.startswith(SCHEME) else None

        def write(
            target: Path = target, content: str = content, source: Path | None = source
        ) -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            if source is not None:
                shutil.copyfile(source, target)
            else:
                target.write_text(content, encoding="utf-8")

        await asyncio.to_thread(write)


def _write(target: Path, content: str, source: Path | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copyfile(source, target)
    else:
        target.write_text(content, encoding="utf-8")


def matching_files(root: Path, patterns: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    """Regular files under `root` (blocking) whose path relative to it matches one of the
    glob patterns (taken relative to `root`: `out/*`, `**.csv`, `/data.json`), sorted.

    Symbolic links are never followed: a script (or a container) could point one at a
    host file that podium, not the script, may read.
    """
    compiled = [glob_regex("/" + p.lstrip("/")) for p in patterns]
    skipped = set(skip)
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            rel = path.relative_to(root).as_posix()
            if (
                rel not in skipped
                and not path.is_symlink()
                and path.is_file()
                and any(p.match("/" + rel) for p in compiled)
            ):
                found.append(rel)
    return sorted(found)


async def store_files(
    ctx: RunContext,
    root: Path,
    patterns: Iterable[str],
    *,
    skip: Iterable[str] = (),
    move: bool = False,
) -> dict[str, str]:
    """The files matching `patterns`, stored as this task run's: relative path -> URI.
    With `move`, each is removed from the directory once stored."""
    out: dict[str, str] = {}
    for rel in await asyncio.to_thread(matching_files, root, list(patterns), list(skip)):
        out[rel] = await ctx.put_file(root / rel, rel)
        if move:
            await asyncio.to_thread((root / rel).unlink, missing_ok=True)
    return out
