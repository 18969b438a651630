"""Kestra's `namespaceFiles:` property, one implementation for every task that has it
(script tasks, WorkingDirectory): the files of one or more namespaces copied from the
store into the task's working directory before it runs.

Kestra's NamespaceFilesUtils is the model: `include`/`exclude` are PathMatcherPredicate
patterns, namespaces are read in order and a later one's file replaces an earlier one's,
`folderPerNamespace` puts each namespace's files under a folder of its name, and
`ifExists` says what to do with a file the working directory already has.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import ValidationError

from daemon.sdk.errors import TaskFailed
from daemon.sdk.nsfiles import NamespaceFileError, path_matcher
from daemon.sdk.properties import Dynamic, JsonText, Model, has_template

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class NamespaceFilesSpec(Model):
    """`namespaceFiles:` as Kestra's NamespaceFiles model has it (every field templated)."""

    enabled: Annotated[bool, Dynamic] = True
    include: Annotated[list[str] | None, Dynamic, JsonText] = None
    exclude: Annotated[list[str] | None, Dynamic, JsonText] = None
    namespaces: Annotated[list[str] | None, Dynamic, JsonText] = None
    if_exists: Annotated[Literal["OVERWRITE", "FAIL", "WARN", "IGNORE"], Dynamic] = "OVERWRITE"
    folder_per_namespace: Annotated[bool, Dynamic] = False

    def rendered(self, ctx: RunContext) -> NamespaceFilesSpec:
        """This spec with its expressions rendered, checked again now their values are known."""
        # Not model_dump: a field may still hold the text of its expression.
        data = {name: getattr(self, name) for name in self.model_fields_set}
        if not has_template(data):
            return self
        try:
            return NamespaceFilesSpec.model_validate(ctx.render(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise TaskFailed(f"namespaceFiles: {problems}", non_retryable=True) from None


async def inject_namespace_files(
    spec: NamespaceFilesSpec | None, ctx: RunContext, working_dir: Path
) -> list[str]:
    """Copy the namespace files `spec` selects into `working_dir`; the paths written
    (relative to it). Nothing when `spec` is absent or disabled."""
    if spec is None:
        return []
    spec = spec.rendered(ctx)
    if not spec.enabled:
        return []
    namespaces = spec.namespaces or [ctx.flow.namespace]
    for namespace in namespaces:
        if not _NAMESPACE.match(namespace):
            raise TaskFailed(
                f"namespaceFiles: {namespace!r} is not a namespace", non_retryable=True
            )
    try:
        included = path_matcher(spec.include) if spec.include else None
        excluded = path_matcher(spec.exclude) if spec.exclude else None
    except NamespaceFileError as exc:
        raise TaskFailed(f"namespaceFiles: {exc}", non_retryable=True) from None
    chosen: dict[str, tuple[str, str]] = {}  # local name -> (namespace, path); later wins
    for namespace in namespaces:
        for entry in await ctx.namespace_files.list(namespace, recursive=True):
            if entry.is_directory:
                continue
            if included is not None and not included(entry.path):
                continue
            if excluded is not None and excluded(entry.path):
                continue
            local = entry.path.lstrip("/")
            if spec.folder_per_namespace:
                local = f"{namespace}/{local}"
            chosen[local] = (namespace, entry.path)
    written: list[str] = []
    for local, (namespace, path) in sorted(chosen.items()):
        target = working_dir.joinpath(*local.split("/"))
        if await asyncio.to_thread(target.exists) and not await _replace(spec, local, ctx):
            continue
        await ctx.namespace_files.download(namespace, path, target)
        written.append(local)
    ctx.logger.debug(f"namespaceFiles: {len(written)} file(s) copied into the working directory")
    return written


async def _replace(spec: NamespaceFilesSpec, local: str, ctx: RunContext) -> bool:
    """Whether a namespace file replaces the working directory's own file `local`."""
    if spec.if_exists == "FAIL":
        raise TaskFailed(
            f"namespaceFiles: {local} already exists in the working directory (ifExists: FAIL)",
            non_retryable=True,
        )
    if spec.if_exists == "WARN":
        ctx.logger.warning(
            f"namespaceFiles: {local} already exists in the working directory; "
            "kept the existing file (ifExists: WARN)"
        )
    return spec.if_exists == "OVERWRITE"
