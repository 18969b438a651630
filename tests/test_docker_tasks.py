"""Kestra's docker plug-in against a private podman API service: Build then Run.

From kestra-io/plugin-docker: BuildTest (a Dockerfile with inputFiles, tags, buildArgs,
imageId) and RunTest (commands as the container's command, outputFiles, exit code).
"""

from __future__ import annotations

from daemon.sdk.state import State
from tests.harness import Harness


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
