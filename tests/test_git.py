"""Kestra's git Clone and Push against local bare repositories.

From kestra-io/plugin-git: CloneTest (branch, depth, directory) and PushTest (commit by
author with commitMessage, a new branch made, inputFiles, commitId).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from daemon.sdk.state import State
from tests.harness import Harness


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip
    return done.stdout


@pytest.fixture
async def remote(tmp_path: Path) -> Path:
    """A bare repository with one commit on main: README.md and flows/hello.yaml."""

    def make() -> Path:
        bare, seed = tmp_path / "remote.git", tmp_path / "seed"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
        git("clone", "--quiet", str(bare), str(seed), cwd=tmp_path)
        (seed / "README.md").write_text("hello\n")
        (seed / "flows").mkdir()
        (seed / "flows" / "hello.yaml").write_text("id: hello\n")
        git("add", ".", cwd=seed)
        git("commit", "--quiet", "-m", "first", cwd=seed)
        git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
        return bare

    return await asyncio.to_thread(make)


async def test_clone_then_change_then_push(h: Harness, remote: Path, tmp_path: Path) -> None:
    execution = await h.run(
        f"""
id: git
namespace: test
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: clone
        type: io.kestra.plugin.git.Clone
        url: file://{remote}
        branch: main
        directory: repo
      - id: change
        type: io.kestra.plugin.scripts.shell.Commands
        taskRunner:
          type: io.kestra.plugin.core.runner.Process
        commands:
          - test -f repo/flows/hello.yaml
          - echo "changed by {{{{ execution.id }}}}" >> repo/README.md
      - id: push
        type: io.kestra.plugin.git.Push
        url: file://{remote}
        directory: repo
        branch: feature
        commitMessage: "podium: {{{{ execution.id }}}}"
        author:
          name: Podium Bot
          email: bot@podium.test
        inputFiles:
          notes/added.txt: added from inputFiles
"""
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    push = next(tr for tr in execution.task_runs if tr.task_id == "push").outputs
    check = tmp_path / "check"
    log = await asyncio.to_thread(
        lambda: (
            git("clone", "--quiet", "--branch", "feature", str(remote), str(check), cwd=tmp_path),
            git("log", "-1", "--format=%H %an <%ae> %s", cwd=check),
        )[1]
    )
    assert log.strip() == f"{push['commitId']} Podium Bot <bot@podium.test> podium: {execution.id}"
    readme = await asyncio.to_thread((check / "README.md").read_text)
    assert readme == f"hello\nchanged by {execution.id}\n"
    added = await asyncio.to_thread((check / "notes" / "added.txt").read_text)
    assert added == "added from inputFiles"


async def test_clone_of_a_missing_repository_fails_with_gits_words(
    h: Harness, tmp_path: Path
) -> None:
    execution = await h.run(
        f"""
id: git
namespace: test
tasks:
  - id: clone
    type: io.kestra.plugin.git.Clone
    url: file://{tmp_path}/nowhere.git
"""
    )
    assert execution.state.current == State.FAILED
    assert any("git clone" in line and "failed" in line for line in await h.logs(execution))


async def test_a_password_never_reaches_the_log(h: Harness, tmp_path: Path) -> None:
    execution = await h.run(
        """
id: git
namespace: test
tasks:
  - id: clone
    type: io.kestra.plugin.git.Clone
    url: https://127.0.0.1:1/repo.git
    username: someone
    password: s3cret-value
"""
    )
    assert execution.state.current == State.FAILED
    assert not any("s3cret-value" in line for line in await h.logs(execution))
