"""Kestra's git plug-in (kestra-io/plugin-git): Clone and Push, with the git command line.

Both work in the task's working directory, which inside a WorkingDirectory task is the
one its tasks share (Kestra's usual `Clone` then `shell.Commands` then `Push`). An
`https://` url's `username`/`password` reach git through an askpass helper in the
environment, never the command line or the log; `privateKey` goes to ssh through a key
file of the run that is removed afterwards.

SyncFlows and PushFlows are in gitflows.py; SyncNamespaceFiles is not here yet (podium
stores no namespace files yet).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model

GIT_TIMEOUT = 600.0


class Author(Model):
    name: Annotated[str | None, Dynamic] = None
    email: Annotated[str | None, Dynamic] = None


class GitTask(Task):
    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    private_key: Annotated[str | None, Dynamic] = None
    passphrase: Annotated[str | None, Dynamic] = None
    trusted_hosts_allowed: bool | None = None
    directory: Annotated[str | None, Dynamic] = None
    branch: Annotated[str | None, Dynamic] = None
    clone_submodules: bool = False

    async def target(self, ctx: RunContext) -> Path:
        root = await ctx.working_dir()
        if not self.directory:
            return root
        path, base = await asyncio.to_thread(
            lambda: ((root / str(self.directory)).resolve(), root.resolve())
        )
        if not path.is_relative_to(base):
            raise TaskFailed(f"directory '{self.directory}' is outside the working directory")
        return path

    async def git(self, ctx: RunContext, args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
        """Run one git command; its stdout. A failure fails the task with git's words."""
        shown = "git " + " ".join(shlex.quote(a) for a in args)
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env={**os.environ, **env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(GIT_TIMEOUT):
                out, err = await process.communicate()
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        if process.returncode != 0:
            reason = ctx.secrets.mask(err.decode(errors="replace").strip())
            raise TaskFailed(f"{shown} failed: {reason}")
        return out.decode(errors="replace")

    async def credentials(self, ctx: RunContext, scratch: Path) -> dict[str, str]:
        """The environment that hands git the credentials, through files of this run."""
        env: dict[str, str] = {}
        if self.password:
            ctx.secrets.add(self.password)
            askpass = scratch / "askpass.sh"
            script = (
                '#!/bin/sh\ncase "$1" in\n'
                f"  Username*) printf '%s\\n' {shlex.quote(self.username or 'git')} ;;\n"
                f"  *) printf '%s\\n' {shlex.quote(self.password)} ;;\nesac\n"
            )
            await asyncio.to_thread(_write_private, askpass, script, executable=True)
            env["GIT_ASKPASS"] = str(askpass)
        if self.private_key:
            ctx.secrets.add(self.private_key)
            key = scratch / "id_key"
            await asyncio.to_thread(_write_private, key, self.private_key.strip() + "\n")
            checking = "accept-new" if self.trusted_hosts_allowed is not False else "yes"
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {shlex.quote(str(key))} -o IdentitiesOnly=yes "
                f"-o StrictHostKeyChecking={checking}"
            )
        return env

    async def checkout(
        self, ctx: RunContext, target: Path, env: dict[str, str], branch: str
    ) -> None:
        remote = await self.git(ctx, ["ls-remote", "--heads", "origin", branch], target, env)
        if remote.strip():
            current = (await self.git(ctx, ["branch", "--show-current"], target, env)).strip()
            if current != branch:
                await self.git(ctx, ["fetch", "--quiet", "origin", branch], target, env)
                await self.git(
                    ctx, ["checkout", "--quiet", "-B", branch, "FETCH_HEAD"], target, env
                )
        else:
            await self.git(ctx, ["checkout", "--quiet", "-B", branch], target, env)

    async def commit_and_push(
        self,
        ctx: RunContext,
        target: Path,
        env: dict[str, str],
        branch: str,
        message: str,
        author: Author | None,
        dry_run: bool,
    ) -> dict[str, str | None]:
        """Commit what is staged (as `author`) and push it to `branch`; Kestra's outputs."""
        author = author or Author()
        identity = {
            "GIT_AUTHOR_NAME": author.name or "podium",
            "GIT_AUTHOR_EMAIL": author.email or "podium@localhost",
            "GIT_COMMITTER_NAME": author.name or "podium",
            "GIT_COMMITTER_EMAIL": author.email or "podium@localhost",
        }
        status = await self.git(ctx, ["status", "--porcelain"], target, env)
        if not status.strip():
            ctx.logger.info("nothing to commit: the branch is unchanged")
            head = (await self.git(ctx, ["rev-parse", "HEAD"], target, env)).strip()
            return {"commitId": head, "commitURL": None}
        await self.git(ctx, ["commit", "--quiet", "-m", message], target, {**env, **identity})
        commit = (await self.git(ctx, ["rev-parse", "HEAD"], target, env)).strip()
        if dry_run:
            ctx.logger.info(f"dryRun: commit {commit} made, not pushed")
        else:
            await self.git(ctx, ["push", "--quiet", "origin", f"HEAD:{branch}"], target, env)
        return {"commitId": commit, "commitURL": _commit_url(self.url, commit)}


def _write_private(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(stat.S_IRWXU if executable else stat.S_IRUSR | stat.S_IWUSR)


class Clone(GitTask):
    """Kestra's Clone: `url` (a `branch`, `depth` commits deep) into `directory`."""

    types = ("io.kestra.plugin.git.Clone",)

    depth: int | None = Field(default=1, ge=1)

    async def run(self, ctx: RunContext) -> Output:
        target = await self.target(ctx)
        scratch = ctx.data_path("git", ctx.task_run.id)
        try:
            env = await self.credentials(ctx, scratch)
            args = ["clone", "--quiet"]
            if self.depth:
                args += ["--depth", str(self.depth), "--no-single-branch"]
            if self.branch:
                args += ["--branch", self.branch]
            if self.clone_submodules:
                args.append("--recurse-submodules")
            await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
            if await asyncio.to_thread(lambda: any(target.iterdir())):
                raise TaskFailed(f"cannot clone into {target}: the directory is not empty")
            await self.git(ctx, [*args, "--", self.url, "."], target, env)
        finally:
            await asyncio.to_thread(_remove, scratch)
        return {"directory": str(target)}


class Push(GitTask):
    """Kestra's Push: files of `directory` matching `addFilesPattern` committed with
    `commitMessage` by `author` and pushed to `branch` (made when missing)."""

    types = ("io.kestra.plugin.git.Push",)

    commit_message: Annotated[str, Dynamic]
    add_files_pattern: Annotated[list[str], Dynamic, JsonText] = Field(
        default_factory=lambda: ["."]
    )
    author: Author | None = None
    input_files: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    dry_run: bool = False

    async def run(self, ctx: RunContext) -> Output:
        target = await self.target(ctx)
        scratch = ctx.data_path("git", ctx.task_run.id)
        branch = self.branch or "main"
        try:
            env = await self.credentials(ctx, scratch)
            if not await asyncio.to_thread((target / ".git").exists):
                await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
                await self.git(ctx, ["clone", "--quiet", "--", self.url, "."], target, env)
            await self.checkout(ctx, target, env, branch)
            for name, content in (self.input_files or {}).items():
                await self._write_input(ctx, target, name, content)
            await self.git(ctx, ["add", "--", *self.add_files_pattern], target, env)
            return await self.commit_and_push(
                ctx, target, env, branch, self.commit_message, self.author, self.dry_run
            )
        finally:
            await asyncio.to_thread(_remove, scratch)

    async def _write_input(self, ctx: RunContext, target: Path, name: str, content: str) -> None:
        path, base = await asyncio.to_thread(lambda: ((target / name).resolve(), target.resolve()))
        if not path.is_relative_to(base):
            raise TaskFailed(f"inputFiles: '{name}' is outside the repository")
        source = await ctx.file_path(content) if content.startswith("kestra://") else None

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if source is not None:
                path.write_bytes(source.read_bytes())
            else:
                path.write_text(content)

        await asyncio.to_thread(write)


def _commit_url(url: str, commit: str) -> str | None:
    """A browsable URL of the commit on the common hosts (as Kestra's commitURL)."""
    for host in ("github.com", "gitlab.com"):
        if host in url:
            path = url.split(host, 1)[1].lstrip(":/").removesuffix(".git")
            separator = "/-/commit/" if host == "gitlab.com" else "/commit/"
            return f"https://{host}/{path}{separator}{commit}"
    return None


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
