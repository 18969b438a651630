"""Kestra's docker plug-in against a private podman API service: Build, Run and Stop.

From kestra-io/plugin-docker: BuildTest (a Dockerfile with inputFiles, tags, buildArgs,
imageId), RunTest (commands as the container's command, outputFiles, exit code) and
StopTest (runAndStop: Run with `wait: false`, then Stop by its containerId; a second Stop
fails; stop by name).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiodocker
import pytest

from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tests.harness import Harness


async def inspect(docker_host: str, container: str) -> dict[str, Any] | None:
    """The engine's view of a container, None when it does not exist."""
    async with aiodocker.Docker(url=docker_host) as client:
        try:
            return await client.containers.container(container).show()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise


async def test_build_an_image_then_run_it(h: Harness, docker_host: str, python_image: str) -> None:
    execution = await h.run(
        f"""
id: docker
namespace: test
tasks:
  - id: build
    type: io.kestra.plugin.docker.Build
    host: {docker_host}
    pull: false
    tags: [localhost/podium-built:test, localhost/podium-built:second]
    buildArgs:
      GREETING: hello
    inputFiles:
      app.py: |
        import os, sys
        print("::" + '{{"outputs": {{"greeting": "' + os.environ["GREETING"] + '"}}}}' + "::")
        open("out.txt", "w").write(" ".join(sys.argv[1:]))
    dockerfile: |
      FROM {python_image}
      ARG GREETING
      ENV GREETING=$GREETING
      COPY app.py /app/app.py
      ENTRYPOINT ["python3", "/app/app.py"]
  - id: run
    type: io.kestra.plugin.docker.Run
    host: {docker_host}
    containerImage: localhost/podium-built:second
    pullPolicy: NEVER
    commands: [from, the, run]
    outputFiles: [out.txt]
  - id: exit
    type: io.kestra.plugin.docker.Run
    host: {docker_host}
    containerImage: {python_image}
    pullPolicy: NEVER
    entryPoint: [python3, -c]
    commands: ["import sys; sys.exit(3)"]
"""
    )
    runs = {tr.task_id: tr for tr in execution.task_runs}
    assert runs["build"].outputs["imageId"], await h.logs(execution)
    assert runs["run"].state.current == State.SUCCESS, await h.logs(execution)
    assert runs["run"].outputs["vars"] == {"greeting": "hello"}
    assert runs["run"].outputs["exitCode"] == 0
    assert set(runs["run"].outputs["outputFiles"]) == {"out.txt"}
    assert runs["exit"].state.current == State.FAILED
    assert any("exit code 3" in line or "3" in line for line in await h.logs(execution, "ERROR"))


async def test_a_dockerfile_that_fails_fails_the_build(
    h: Harness, docker_host: str, python_image: str
) -> None:
    execution = await h.run(
        f"""
id: docker
namespace: test
tasks:
  - id: build
    type: io.kestra.plugin.docker.Build
    host: {docker_host}
    pull: false
    tags: [localhost/podium-broken:test]
    dockerfile: |
      FROM {python_image}
      RUN exit 7
"""
    )
    assert execution.state.current == State.FAILED
    assert any("the build failed" in line for line in await h.logs(execution))


async def test_run_without_waiting_leaves_the_container_running_then_stop_removes_it(
    h: Harness, docker_host: str, python_image: str
) -> None:
    """StopTest.runAndStop (plugin-docker): `wait: false` returns exit code 0 at once with
    `taskRunner.containerId`; Stop by that id stops and removes it. The container sees its
    input files although the task's working directory is gone (Kestra's VOLUME strategy
    copies them in), and podium's reaper does not count it as its own."""
    execution = await h.run(
        f"""
id: detached
namespace: test
tasks:
  - id: run
    type: io.kestra.plugin.docker.Run
    host: {docker_host}
    containerImage: {python_image}
    pullPolicy: NEVER
    wait: "{{{{ 1 == 2 }}}}"
    inputFiles:
      config.txt: from the input file
    commands: [/bin/sh, -c, "sleep 1; cat config.txt > /tmp/seen; exec sleep 300"]
"""
    )
    run = execution.task_runs[0]
    assert run.state.current == State.SUCCESS, await h.logs(execution)
    assert run.outputs["exitCode"] == 0
    assert run.outputs["vars"] == {}
    container_id = run.outputs["taskRunner"]["containerId"]
    state = await inspect(docker_host, container_id)
    assert state is not None and state["State"]["Running"]
    assert "podium.managed" not in state["Config"]["Labels"]
    async with aiodocker.Docker(url=docker_host) as client:
        container = client.containers.container(container_id)
        seen = b""
        for _ in range(100):  # the container copies the file after a second
            probe = await container.exec(["cat", "/tmp/seen"])
            async with probe.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    seen += message.data if message.stream == 1 else b""
            if seen:
                break
            await asyncio.sleep(0.1)
        assert seen == b"from the input file"

    stopped = await h.run(
        f"""
id: stop
namespace: test
tasks:
  - id: stop
    type: io.kestra.plugin.docker.Stop
    host: {docker_host}
    containerId: "{container_id[:12]}"
"""
    )
    assert stopped.state.current == State.SUCCESS, await h.logs(stopped)
    assert stopped.task_runs[0].outputs == {}
    assert await inspect(docker_host, container_id) is None

    again = await h.run(
        f"""
id: stop
namespace: test
tasks:
  - id: stop
    type: io.kestra.plugin.docker.Stop
    host: {docker_host}
    containerId: "{container_id}"
"""
    )
    assert again.state.current == State.FAILED
    errors = await h.logs(again, "ERROR")
    assert any(f"cannot stop container {container_id}: no such container" in e for e in errors)


async def test_a_waited_run_reports_its_container_id_and_removes_it(
    h: Harness, docker_host: str, python_image: str
) -> None:
    """Kestra's ScriptOutput carries the Docker runner's details (`taskRunner.containerId`)
    for every run; with `wait` (the default) the container is removed at its end."""
    execution = await h.run(
        f"""
id: waited
namespace: test
tasks:
  - id: run
    type: io.kestra.plugin.docker.Run
    host: {docker_host}
    containerImage: {python_image}
    pullPolicy: NEVER
    commands: [/bin/true]
"""
    )
    run = execution.task_runs[0]
    assert run.state.current == State.SUCCESS, await h.logs(execution)
    assert await inspect(docker_host, run.outputs["taskRunner"]["containerId"]) is None


async def test_kill_without_delete_keeps_the_stopped_container(
    h: Harness, docker_host: str, python_image: str
) -> None:
    """plugin-docker Stop: `kill: true` sends SIGKILL, `delete: false` keeps the container
    (StopTest.stopByContainerName stops one by name); stopping it again fails, as Kestra's
    docker-java stop does for a container that is not running."""
    name = "podium-stop-by-name"
    async with aiodocker.Docker(url=docker_host) as client:
        container = await client.containers.create(
            {"Image": python_image, "Cmd": ["sleep", "300"]}, name=name
        )
        await container.start()
    execution = await h.run(
        f"""
id: kill
namespace: test
tasks:
  - id: kill
    type: io.kestra.plugin.docker.Stop
    host: {docker_host}
    containerId: {name}
    kill: true
    delete: false
  - id: again
    type: io.kestra.plugin.docker.Stop
    host: {docker_host}
    containerId: {name}
"""
    )
    runs = {tr.task_id: tr for tr in execution.task_runs}
    assert runs["kill"].state.current == State.SUCCESS, await h.logs(execution)
    state = await inspect(docker_host, name)
    assert state is not None and not state["State"]["Running"], await h.logs(execution)
    assert state["State"]["ExitCode"] == 137  # SIGKILL, not the graceful stop
    assert runs["again"].state.current == State.FAILED
    assert any(
        f"cannot stop container {name}: it is not running" in line
        for line in await h.logs(execution, "ERROR")
    )
    assert await inspect(docker_host, name) is not None  # a failed stop removes nothing
    async with aiodocker.Docker(url=docker_host) as client:
        await client.containers.container(name).delete(force=True)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("Stop\n    containerId: ''", "containerId"),
        ("Stop\n    containerId: abc\n    kill: sometimes", "kill"),
        ("Stop\n    containerId: abc\n    remove: true", "remove"),
        ("Run\n    containerImage: alpine\n    wait: sometimes", "wait"),
    ],
)
async def test_stop_and_run_wait_malformed_are_load_errors(
    h: Harness, task: str, message: str
) -> None:
    """Stop's properties and Run's `wait` are checked when the flow loads: a required
    containerId, booleans for kill, delete and wait, no unknown names."""
    with pytest.raises(FlowError, match=message):
        await h.flow(
            f"""
id: bad
namespace: test
tasks:
  - id: task
    type: io.kestra.plugin.docker.{task}
"""
        )
