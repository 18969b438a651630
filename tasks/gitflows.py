"""Kestra's git SyncFlows and PushFlows (kestra-io/plugin-git) on podium's flows directory.

podium serves the flows of its watched flows directory (`RunContext.flows_dir`): SyncFlows
writes the flows of a git directory there (each under `<namespace>/<id>.yaml`, or over the
file that already defines it) and podium loads them as it loads any file dropped there; a
file that does not make a valid flow is reported in the daemon's log, as for any file.
PushFlows commits the flows of a namespace found there to a git directory.

As in Kestra: the git directory `_flows` holds the target namespace's flows, and with
`includeChildNamespaces` its subdirectories hold the child namespaces' (`_flows/a/b` is
`<namespace>.a.b`); SyncFlows rewrites each flow's top-level `namespace:` to where it goes;
`delete` removes the flows of those namespaces that git no longer has, never the flow that
runs the task; the changes are listed, one row each, in the Ion file `flows`
(`{gitPath, syncState: ADDED|UPDATED|UNCHANGED|DELETED, flowId, namespace}`).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path
from typing import Annotated, Any

import yaml

from daemon.sdk.brokers import write_records
from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from tasks.git import Author, GitTask, _remove

NAMESPACE = re.compile(r"(?m)^namespace: (.*)$")
SUFFIXES = (".yml", ".yaml")


def _identity(text: str) -> tuple[str, str] | None:
    """(namespace, id) of a flow's YAML text; None when it is not a flow."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict) or not doc.get("id") or not doc.get("namespace"):
        return None
    return str(doc["namespace"]), str(doc["id"])


def installed_flows(root: Path) -> dict[tuple[str, str], Path]:
    """Every flow file of the flows directory by (namespace, id). Blocking."""
    found: dict[tuple[str, str], Path] = {}
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            if name.endswith(SUFFIXES) and not name.startswith("."):
                path = Path(directory) / name
                identity = _identity(path.read_text(encoding="utf-8", errors="replace"))
                if identity is not None:
                    found.setdefault(identity, path)
    return found


def _in_scope(namespace: str, target: str, children: bool) -> bool:
    return namespace == target or (children and namespace.startswith(target + "."))


async def _flows_dir(ctx: RunContext) -> Path:
    if ctx.flows_dir is None:
        raise TaskFailed(
            "this task works on `podium serve`'s flows directory, which `podium run` has not",
            non_retryable=True,
        )
    return await asyncio.to_thread(ctx.flows_dir.resolve)


class SyncFlows(GitTask):
    """Kestra's SyncFlows: git is the source of truth for a namespace's flows."""

    types = ("io.kestra.plugin.git.SyncFlows",)

    target_namespace: Annotated[str, Dynamic]
    git_directory: Annotated[str, Dynamic] = "_flows"
    include_child_namespaces: bool = False
    delete: bool = False
    dry_run: bool = False
    ignore_invalid_flows: bool = False

    async def run(self, ctx: RunContext) -> Output:
        root = await _flows_dir(ctx)
        scratch = ctx.data_path("git", ctx.task_run.id)
        repo = scratch / "repo"
        try:
            env = await self.credentials(ctx, scratch)
            await asyncio.to_thread(repo.mkdir, parents=True, exist_ok=True)
            args = ["clone", "--quiet", "--depth", "1", "--branch", self.branch or "main"]
            await self.git(ctx, [*args, "--", self.url, "."], repo, env)
            rows = await asyncio.to_thread(self._sync, repo, root, ctx)
        finally:
            await asyncio.to_thread(_remove, scratch)
        for row in rows:
            ctx.logger.info(f"{row['syncState']} {row['namespace']}.{row['flowId']}")
        return {"flows": await write_records(ctx, rows, f"{self.id}-flows.ion")}

    def _sync(self, repo: Path, root: Path, ctx: RunContext) -> list[dict[str, Any]]:
        source_dir = (repo / self.git_directory).resolve()
        if not source_dir.is_relative_to(repo.resolve()) or not source_dir.is_dir():
            raise TaskFailed(f"the git directory '{self.git_directory}' is not in the repository")
        target = self.target_namespace
        existing = {k: v for k, v in installed_flows(root).items() if _in_scope(k[0], target, True)}
        rows: list[dict[str, Any]] = []
        synced: set[tuple[str, str]] = set()
        walk = os.walk(source_dir) if self.include_child_namespaces else [
            (str(source_dir), [], os.listdir(source_dir))
        ]  # fmt: skip
        for directory, _, names in walk:
            rel = Path(directory).relative_to(source_dir)
            namespace = ".".join([target, *rel.parts]) if rel.parts else target
            for name in sorted(names):
                path = Path(directory) / name
                if not name.endswith(SUFFIXES) or not path.is_file():
                    continue
                text = NAMESPACE.sub(f"namespace: {namespace}", path.read_text(), count=1)
                text = text.rstrip() + "\n"
                identity = _identity(text)
                git_path = f"{self.git_directory}/{path.relative_to(source_dir).as_posix()}"
                if identity is None:
                    if self.ignore_invalid_flows:
                        ctx.logger.warning(f"{git_path} is not a flow: skipped")
                        continue
                    raise TaskFailed(f"{git_path} is not a flow (YAML with id and namespace)")
                synced.add(identity)
                current = existing.get(identity)
                if current is not None and current.read_text() == text:
                    state = "UNCHANGED"
                else:
                    state = "UPDATED" if current is not None else "ADDED"
                    if not self.dry_run:
                        destination = current or root / identity[0] / f"{identity[1]}.yaml"
                        _write(destination, text)
                rows.append(_row(git_path, state, identity))
        if self.delete:
            running = (ctx.flow.namespace, ctx.flow.id)
            for identity, path in sorted(existing.items()):
                if identity in synced or identity == running:
                    continue
                if not _in_scope(identity[0], target, self.include_child_namespaces):
                    continue
                if not self.dry_run:
                    path.unlink(missing_ok=True)
                rows.append(_row(None, "DELETED", identity))
        return rows


def _row(git_path: str | None, state: str, identity: tuple[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"syncState": state, "flowId": identity[1], "namespace": identity[0]}
    if git_path is not None:
        row = {"gitPath": git_path, **row}
    return row


def _write(path: Path, text: str) -> None:
    """Whole or not at all: the flows directory's watcher skips the temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


class PushFlows(GitTask):
    """Kestra's PushFlows: the flows of `sourceNamespace` (the running flow's by default)
    committed to `gitDirectory` and pushed to `branch`."""

    types = ("io.kestra.plugin.git.PushFlows",)

    source_namespace: Annotated[str | None, Dynamic] = None
    target_namespace: Annotated[str | None, Dynamic] = None
    flows: Annotated[list[str] | str | None, Dynamic, JsonText] = None
    include_child_namespaces: bool = False
    git_directory: Annotated[str, Dynamic] = "_flows"
    commit_message: Annotated[str | None, Dynamic] = None
    author: Author | None = None
    dry_run: bool = False
    delete: bool = True

    async def run(self, ctx: RunContext) -> Output:
        import fnmatch

        root = await _flows_dir(ctx)
        source = self.source_namespace or ctx.flow.namespace
        patterns = [self.flows] if isinstance(self.flows, str) else (self.flows or ["*"])
        installed = await asyncio.to_thread(installed_flows, root)
        chosen = {
            identity: path
            for identity, path in installed.items()
            if _in_scope(identity[0], source, self.include_child_namespaces)
            and any(fnmatch.fnmatchcase(identity[1], p) for p in patterns)
        }
        branch = self.branch or "main"
        scratch = ctx.data_path("git", ctx.task_run.id)
        repo = scratch / "repo"
        try:
            env = await self.credentials(ctx, scratch)
            await asyncio.to_thread(repo.mkdir, parents=True, exist_ok=True)
            await self.git(ctx, ["clone", "--quiet", "--", self.url, "."], repo, env)
            await self.checkout(ctx, repo, env, branch)
            count = await asyncio.to_thread(self._write_flows, repo, source, chosen)
            await self.git(ctx, ["add", "--all", "--", self.git_directory], repo, env)
            message = self.commit_message or f"Add flows from {source} namespace"
            outputs = await self.commit_and_push(
                ctx, repo, env, branch, message, self.author, self.dry_run
            )
        finally:
            await asyncio.to_thread(_remove, scratch)
        return {**outputs, "flowsCount": count}

    def _write_flows(self, repo: Path, source: str, chosen: dict[tuple[str, str], Path]) -> int:
        directory = repo / self.git_directory
        if self.delete and directory.is_dir():  # git mirrors what podium has
            for path in directory.rglob("*"):
                if path.is_file() and path.name.endswith(SUFFIXES):
                    path.unlink()
        for (namespace, flow_id), path in chosen.items():
            text = path.read_text(encoding="utf-8")
            child = namespace[len(source) :].lstrip(".")
            if self.target_namespace:
                new = ".".join(x for x in (self.target_namespace, child) if x)
                text = NAMESPACE.sub(f"namespace: {new}", text, count=1)
            where = directory.joinpath(*child.split(".")) if child else directory
            _write(where / f"{flow_id}.yml", text)
        return len(chosen)
