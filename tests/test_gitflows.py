"""Kestra's git SyncFlows and PushFlows on the flows directory, with local bare repositories.

From kestra-io/plugin-git: SyncFlowsTest (namespaces rewritten to the target, child
namespaces from subdirectories, delete, the diff file's rows) and PushFlowsTest (a
namespace's flows committed to `_flows`, targetNamespace rewritten).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from daemon.sdk.ion import loads
from daemon.sdk.state import State
from tests.daemon_process import ServeProcess
from tests.harness import Harness, eventually

HELLO = (
    "id: hello\nnamespace: dev\ntasks:\n"
    "  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
)
CRM = HELLO.replace("id: hello", "id: crm").replace("namespace: dev", "namespace: dev.marketing")


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip
    return done.stdout


@pytest.fixture
async def remote(tmp_path: Path) -> Path:
    def make() -> Path:
        bare, seed = tmp_path / "remote.git", tmp_path / "seed"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
        git("clone", "--quiet", str(bare), str(seed), cwd=tmp_path)
        (seed / "_flows" / "marketing").mkdir(parents=True)
        (seed / "_flows" / "hello.yml").write_text(HELLO)
        (seed / "_flows" / "marketing" / "crm.yml").write_text(CRM)
        git("add", ".", cwd=seed)
        git("commit", "--quiet", "-m", "flows", cwd=seed)
        git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
        return bare

    return await asyncio.to_thread(make)


@pytest.fixture
async def flows_dir(h: Harness, tmp_path: Path) -> Path:
    """podium serve's flows directory, with a flow of prod that git does not have."""
    root = tmp_path / "flows"

    def make() -> None:
        (root / "prod").mkdir(parents=True)
        (root / "prod" / "old.yaml").write_text(
            HELLO.replace("hello", "old").replace("dev", "prod")
        )
        (root / "other.yaml").write_text(HELLO.replace("dev", "elsewhere"))

    await asyncio.to_thread(make)
    h.engine.resources.options.flows_dir = root
    return root


async def test_sync_flows_from_git_into_the_flows_directory(
    h: Harness, remote: Path, flows_dir: Path
) -> None:
    source = f"""
id: sync
namespace: system
tasks:
  - id: sync
    type: io.kestra.plugin.git.SyncFlows
    url: file://{remote}
    branch: main
    targetNamespace: prod
    includeChildNamespaces: true
    delete: true
"""
    execution = await h.run(source)
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    uri = execution.task_runs[0].outputs["flows"]
    text = await h.engine.resources.storage.read_text(uri)
    rows = sorted((loads(line) for line in text.splitlines()), key=lambda r: r["flowId"])
    assert rows == [
        {"gitPath": "_flows/marketing/crm.yml", "syncState": "ADDED", "flowId": "crm",
         "namespace": "prod.marketing"},
        {"gitPath": "_flows/hello.yml", "syncState": "ADDED", "flowId": "hello",
         "namespace": "prod"},
        {"syncState": "DELETED", "flowId": "old", "namespace": "prod"},
    ]  # fmt: skip
    hello = await asyncio.to_thread((flows_dir / "prod" / "hello.yaml").read_text)
    assert hello == HELLO.replace("namespace: dev", "namespace: prod")
    crm = await asyncio.to_thread((flows_dir / "prod.marketing" / "crm.yaml").read_text)
    assert "namespace: prod.marketing\n" in crm
    assert not await asyncio.to_thread((flows_dir / "prod" / "old.yaml").exists)
    assert await asyncio.to_thread((flows_dir / "other.yaml").exists)  # another namespace

    again = await h.run(source)
    text = await h.engine.resources.storage.read_text(again.task_runs[0].outputs["flows"])
    assert {loads(line)["syncState"] for line in text.splitlines()} == {"UNCHANGED"}


async def test_push_flows_of_a_namespace_to_git(
    h: Harness, remote: Path, flows_dir: Path, tmp_path: Path
) -> None:
    execution = await h.run(
        f"""
id: push
namespace: system
tasks:
  - id: push
    type: io.kestra.plugin.git.PushFlows
    url: file://{remote}
    branch: export
    sourceNamespace: prod
    targetNamespace: staging
    commitMessage: export prod
"""
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert execution.task_runs[0].outputs["flowsCount"] == 1
    check = tmp_path / "check"

    def cloned() -> str:
        git("clone", "--quiet", "--branch", "export", str(remote), str(check), cwd=tmp_path)
        return (check / "_flows" / "old.yml").read_text()

    pushed = await asyncio.to_thread(cloned)
    assert "namespace: staging\n" in pushed and "id: old" in pushed


async def test_sync_flows_needs_the_flows_directory(h: Harness, remote: Path) -> None:
    execution = await h.run(
        f"""
id: sync
namespace: system
tasks:
  - id: sync
    type: io.kestra.plugin.git.SyncFlows
    url: file://{remote}
    targetNamespace: prod
"""
    )
    assert execution.state.current == State.FAILED
    assert any("flows directory" in line for line in await h.logs(execution))


async def test_podium_serve_loads_the_flows_sync_flows_wrote(remote: Path, tmp_path: Path) -> None:
    """Under `podium serve`, the synced flows are loaded from the flows directory and can
    run: the API knows prod.hello once the sync ended."""
    flows = tmp_path / "served"
    sync = f"""id: sync
namespace: system
tasks:
  - id: sync
    type: io.kestra.plugin.git.SyncFlows
    url: file://{remote}
    targetNamespace: prod
"""

    def write() -> None:
        flows.mkdir()
        (flows / "sync.yaml").write_text(sync)

    await asyncio.to_thread(write)
    daemon = await asyncio.to_thread(ServeProcess, tmp_path, flows, tmp_path / "data")
    try:
        await asyncio.to_thread(daemon.start)
        created = await asyncio.to_thread(daemon.create_execution, "system", "sync")
        done = await asyncio.to_thread(daemon.wait_execution, created["id"], {"SUCCESS", "FAILED"})
        assert done["state"]["current"] == "SUCCESS", daemon.output()

        def loaded() -> bool:
            status, _ = daemon.request("GET", "/api/v1/flows/prod/hello")
            return status == 200

        async def check() -> bool:
            return await asyncio.to_thread(loaded)

        await eventually(check, "prod.hello loaded", timeout=30)
        ran = await asyncio.to_thread(daemon.create_execution, "prod", "hello")
        finished = await asyncio.to_thread(daemon.wait_execution, ran["id"], {"SUCCESS", "FAILED"})
        assert finished["state"]["current"] == "SUCCESS"
    finally:
        if daemon.proc is not None:
            await asyncio.to_thread(daemon.stop)
