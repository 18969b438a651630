"""The Docker runner against a real engine: the private podman and the locally built image.

Containers reach the test's own servers (the wheel index, the figure server) on the host's
loopback through `networkMode: host`; nothing here talks to a registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
import yaml
from aiohttp import web

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.state import State
from tasks.scripts import docker as docker_runner
from tasks.scripts.docker import (
    EXECUTION_LABEL,
    MANAGED_LABEL,
    TASKRUN_LABEL,
    Docker,
    image_registry,
    parse_size,
    port_bindings,
    pull_progress_line,
    reap_orphans,
    registry_auth,
)
from tasks.scripts.runner import ScriptJob, Stream
from tests.harness import Harness
from tests.services import free_port

RUNNER = "io.kestra.plugin.scripts.runner.docker.Docker"
FLOWS = Path(__file__).resolve().parent.parent / "flows"
PYTHON_ALIAS_IMAGE = "localhost/python:podium-alias"
MISSING_IMAGE = "localhost/podium-missing:1"
LABEL_FILTER = json.dumps({"label": [f"{MANAGED_LABEL}=true"]})


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture
def engine(docker_host: str, python_image: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The runner finds the private podman through DOCKER_HOST, as a user's would."""
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    return docker_host


@pytest.fixture
async def ctx(h: Harness) -> AsyncIterator[RunContext]:
    """The context of a real task run of a tiny flow, for handing to the runner directly."""
    flow = await h.flow("""
        id: docker_runner
        namespace: test
        tasks:
          - id: script
            type: io.kestra.plugin.core.log.Log
            message: placeholder
    """)
    execution = await h.run(flow)
    task_run = execution.task_runs[0]
    context = h.task_context(flow, execution, task_run)
    yield context
    await context.cleanup()


class Lines:
    """What the runner streamed, with an event per line so tests can wait for one."""

    def __init__(self) -> None:
        self.seen: list[tuple[Stream, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, stream: Stream, line: str) -> None:
        self.seen.append((stream, line))
        self.changed.set()

    def of(self, stream: Stream) -> list[str]:
        return [line for s, line in self.seen if s == stream]

    async def wait_for(self, line: str, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while line not in self.of("stdout"):
                self.changed.clear()
                await self.changed.wait()


async def make_job(ctx: RunContext, script: str, lines: Lines, **kwargs: Any) -> ScriptJob:
    kwargs.setdefault("image", "localhost/python:test")
    return ScriptJob(
        working_dir=await ctx.working_dir(),
        interpreter=["python3", "-c"],
        commands=[script],
        env=kwargs.pop("env", {}),
        on_line=lines,
        **kwargs,
    )


def runner(**properties: Any) -> Docker:
    return Docker.model_validate({"type": RUNNER, **properties})


async def podium_containers(docker_host: str) -> list[dict[str, Any]]:
    async with aiodocker.Docker(url=docker_host) as client:
        found = await client.containers.list(all=True, filters=LABEL_FILTER)
        return [c._container for c in found]


async def running_container(docker_host: str, execution_id: str) -> dict[str, Any]:
    async with aiodocker.Docker(url=docker_host) as client:
        found = await client.containers.list(
            filters=json.dumps({"label": [f"{EXECUTION_LABEL}={execution_id}"]})
        )
        assert len(found) == 1, found
        return await found[0].show()


# --- running scripts -------------------------------------------------------------------


async def test_script_lines_stream_by_stream_and_exit_code_zero(
    engine: str, ctx: RunContext
) -> None:
    lines = Lines()
    job = await make_job(
        ctx,
        "\n".join(
            [
                "import sys",
                "print('one')",
                "print('problem', file=sys.stderr)",
                "print('two')",
                'print(\'::{"outputs": {"downloads": 3}}::\')',
                "print('no newline at the end', end='')",
            ]
        ),
        lines,
    )
    result = await runner().run(job, ctx)
    assert result.exit_code == 0
    assert lines.of("stdout") == [
        "one",
        "two",
        '::{"outputs": {"downloads": 3}}::',
        "no newline at the end",
    ]
    assert lines.of("stderr") == ["problem"]
    assert await podium_containers(engine) == []


async def test_exit_code_of_the_script_is_returned(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(ctx, "import sys; print('bye'); sys.exit(3)", lines)
    result = await runner().run(job, ctx)
    assert result.exit_code == 3
    assert lines.of("stdout") == ["bye"]
    assert await podium_containers(engine) == []


async def test_working_dir_is_mounted_at_the_same_path(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    workdir = await ctx.working_dir()
    await asyncio.to_thread((workdir / "input.txt").write_text, "from the host\n")
    job = await make_job(
        ctx,
        "\n".join(
            [
                "import os",
                "print(os.getcwd())",
                "print(open('input.txt').read().strip())",
                "open(os.path.join(os.environ['WORKING_DIR'], 'out.txt'), "
                "'w').write('from the box')",
            ]
        ),
        lines,
        env={"WORKING_DIR": str(workdir)},
    )
    assert (await runner().run(job, ctx)).exit_code == 0
    assert lines.of("stdout") == [str(workdir), "from the host"]
    assert await asyncio.to_thread((workdir / "out.txt").read_text) == "from the box"


async def test_ten_thousand_lines_all_arrive_in_order(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(ctx, "for i in range(10000): print(f'line {i}')", lines)
    assert (await runner().run(job, ctx)).exit_code == 0
    assert lines.of("stdout") == [f"line {i}" for i in range(10000)]


async def test_env_user_network_and_limits_are_applied(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(
        ctx,
        "\n".join(
            [
                "import os, time",
                "print(os.environ['GREETING'], os.getuid())",
                "open('written-by-the-user', 'w').write('ok')",
                "print('ready', flush=True)",
                "while not os.path.exists('stop'): time.sleep(0.05)",
            ]
        ),
        lines,
        env={"GREETING": "hello"},
    )
    docker = runner(
        user="65534",
        networkMode="none",
        cpu={"cpus": 0.5},
        memory={"memory": "64Mb", "memorySwap": "128MB"},
        shmSize="32MB",
    )
    run = asyncio.create_task(docker.run(job, ctx))
    await lines.wait_for("ready")
    info = await running_container(engine, ctx.execution.id)
    await asyncio.to_thread((job.working_dir / "stop").write_text, "")
    assert (await run).exit_code == 0
    assert lines.of("stdout")[0] == "hello 65534"
    assert await asyncio.to_thread((job.working_dir / "written-by-the-user").read_text) == "ok"
    assert info["Config"]["User"] == "65534"
    assert info["Config"]["Labels"][MANAGED_LABEL] == "true"
    assert info["Config"]["Labels"][TASKRUN_LABEL] == ctx.task_run.id
    host = info["HostConfig"]
    assert (
        host["NetworkMode"],
        host["NanoCpus"],
        host["Memory"],
        host["MemorySwap"],
        host["ShmSize"],
    ) == ("none", 500_000_000, 64 << 20, 128 << 20, 32 << 20)


async def test_timeout_removes_the_never_ending_container(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(ctx, "import time\nprint('started', flush=True)\ntime.sleep(3600)", lines)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2):
            await runner().run(job, ctx)
    assert await podium_containers(engine) == []


async def test_kill_removes_the_running_container_and_reraises(
    engine: str, ctx: RunContext
) -> None:
    lines = Lines()
    job = await make_job(ctx, "import time\nprint('started', flush=True)\ntime.sleep(3600)", lines)
    run = asyncio.create_task(runner(killGracePeriod="PT1S").run(job, ctx))
    await lines.wait_for("started")
    assert len(await podium_containers(engine)) == 1
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert await podium_containers(engine) == []


async def test_entry_point_replaces_the_interpreter_launcher(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(ctx, "print('unused')", lines)
    job.interpreter = ["-c"]
    docker = runner(entryPoint=["/bin/sh"])
    job.commands = ["echo from sh; echo err >&2"]
    assert (await docker.run(job, ctx)).exit_code == 0
    assert (lines.of("stdout"), lines.of("stderr")) == (["from sh"], ["err"])


async def test_a_missing_interpreter_fails_the_start_with_the_engines_words(
    engine: str, ctx: RunContext
) -> None:
    job = await make_job(ctx, "print(1)", Lines())
    job.interpreter = ["podium-no-such-interpreter"]
    with pytest.raises(TaskFailed) as failed:
        await runner().run(job, ctx)
    assert str(failed.value).startswith("the container failed to run: ")
    assert "podium-no-such-interpreter" in str(failed.value)
    assert await podium_containers(engine) == []


async def test_templated_runner_properties_are_rendered(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(ctx, "import os; print(os.getuid())", lines)
    docker = Docker.model_validate(
        {"type": RUNNER, "user": "{{ 60000 + 1 }}"}, context={"defer_templates": True}
    )
    assert docker.user == "{{ 60000 + 1 }}"
    assert (await docker.run(job, ctx)).exit_code == 0
    assert lines.of("stdout") == ["60001"]


# --- images and the engine -------------------------------------------------------------


async def test_pull_policy_never_with_a_missing_image_fails_clearly(
    engine: str, ctx: RunContext
) -> None:
    job = await make_job(ctx, "print(1)", Lines(), image=MISSING_IMAGE)
    with pytest.raises(TaskFailed) as failed:
        await runner(pullPolicy="NEVER").run(job, ctx)
    assert str(failed.value) == (
        f"image {MISSING_IMAGE} is not on the Docker engine at {engine} and pullPolicy is NEVER"
    )
    assert failed.value.non_retryable


async def test_a_failed_pull_names_the_image_and_is_logged(
    engine: str, h: Harness, ctx: RunContext
) -> None:
    job = await make_job(ctx, "print(1)", Lines(), image=MISSING_IMAGE)
    with pytest.raises(TaskFailed) as failed:
        await runner().run(job, ctx)
    assert str(failed.value).startswith(f"cannot pull image {MISSING_IMAGE}: ")
    assert f"pulling image {MISSING_IMAGE}" in await h.logs(ctx.execution)
    assert await podium_containers(engine) == []


async def test_pull_policy_always_pulls_even_a_present_image(engine: str, ctx: RunContext) -> None:
    """localhost/python:test exists only locally, so a pull must be attempted and fail."""
    job = await make_job(ctx, "print(1)", Lines())
    with pytest.raises(TaskFailed, match=r"^cannot pull image localhost/python:test: "):
        await runner(pullPolicy="ALWAYS").run(job, ctx)


async def test_unreachable_engine_names_docker_host(
    tmp_path: Path, ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = f"unix://{tmp_path}/none.sock"
    monkeypatch.setenv("DOCKER_HOST", socket)
    job = await make_job(ctx, "print(1)", Lines())
    with pytest.raises(TaskFailed) as failed:
        await runner().run(job, ctx)
    assert str(failed.value) == (
        f"cannot reach a Docker engine at {socket} (from DOCKER_HOST): No such file or directory"
    )


async def test_unreachable_default_socket_says_docker_host_is_not_set(
    tmp_path: Path, ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = f"unix://{tmp_path}/docker.sock"
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_runner, "DEFAULT_HOST", socket)
    job = await make_job(ctx, "print(1)", Lines())
    with pytest.raises(TaskFailed) as failed:
        await runner().run(job, ctx)
    assert str(failed.value) == (
        f"cannot reach a Docker engine at {socket} "
        "(DOCKER_HOST is not set): No such file or directory"
    )


async def test_unreachable_host_property_is_named(ctx: RunContext) -> None:
    port = free_port()
    job = await make_job(ctx, "print(1)", Lines())
    with pytest.raises(TaskFailed) as failed:
        await runner(host=f"tcp://127.0.0.1:{port}").run(job, ctx)
    assert str(failed.value) == (
        f"cannot reach a Docker engine at tcp://127.0.0.1:{port} "
        f"(the runner's host property): Connect call failed "
        f"('127.0.0.1', {port})"
    )


async def test_volumes_are_refused_until_settings_allow_them(engine: str, ctx: RunContext) -> None:
    job = await make_job(ctx, "print(1)", Lines())
    with pytest.raises(TaskFailed) as failed:
        await runner(volumes=["/srv/data:/data"]).run(job, ctx)
    assert str(failed.value) == (
        "volumes are not allowed: mounting host paths into containers needs "
        "`docker-volumes-allowed: true` in podium's settings, which this podium does not "
        "have yet"
    )


async def test_no_image_at_all_is_an_error(engine: str, ctx: RunContext) -> None:
    job = await make_job(ctx, "print(1)", Lines(), image=None)
    with pytest.raises(TaskFailed) as failed:
        await runner().run(job, ctx)
    assert str(failed.value) == ("the Docker runner needs an image: set containerImage on the task")


async def test_runner_image_is_used_without_container_image(engine: str, ctx: RunContext) -> None:
    lines = Lines()
    job = await make_job(ctx, "print('ok')", lines, image=None)
    assert (await runner(image="localhost/python:test").run(job, ctx)).exit_code == 0
    assert lines.of("stdout") == ["ok"]


# --- reaping -----------------------------------------------------------------------------


async def test_reap_orphans_removes_only_labelled_containers_of_ended_executions(
    docker_host: str, python_image: str
) -> None:
    async with aiodocker.Docker(url=docker_host) as client:

        async def create(labels: dict[str, str]) -> str:
            container = await client.containers.create(
                config={"Image": python_image, "Cmd": ["sleep", "3600"], "Labels": labels}
            )
            await container.start()
            return container.id

        crashed = await create({MANAGED_LABEL: "true", EXECUTION_LABEL: "ex-crashed"})
        running = await create({MANAGED_LABEL: "true", EXECUTION_LABEL: "ex-running"})
        foreign = await create({EXECUTION_LABEL: "ex-crashed"})
        try:
            assert await reap_orphans(docker_host, {"ex-running"}) == 1
            left = {c.id for c in await client.containers.list(all=True)}
            assert crashed not in left
            assert {running, foreign} <= left
        finally:
            for container_id in (running, foreign):
                await client.containers.container(container_id).delete(force=True)


async def test_reap_orphans_without_an_engine_reaps_nothing(tmp_path: Path) -> None:
    assert await reap_orphans(f"unix://{tmp_path}/none.sock", set()) == 0


# --- dependencies ---------------------------------------------------------------------------


WHEELS = ("kestra==2.0.0", "requests", "uv")


@pytest.fixture(scope="session")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The dependencies' wheels, downloaded on the host once per session and served on
    loopback as a PEP 503 index (containers here cannot verify PyPI's certificate).

    Yields the environment that points pip and uv in a container at it.
    """
    root = tmp_path_factory.mktemp("index")
    download = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "-d",
            str(root),
            *WHEELS,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if download.returncode != 0:
        pytest.fail(f"pip download failed:\n{download.stderr[-3000:]}", pytrace=False)
    for wheel in root.glob("*.whl"):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        with page.open("a") as out:
            out.write(f'<a href="../../{wheel.name}">{wheel.name}</a>\n')
    with serve_directory(root) as url:
        yield {"PIP_INDEX_URL": f"{url}simple/", "UV_DEFAULT_INDEX": f"{url}simple/"}


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


KESTRA_SCRIPT = "\n".join(
    [
        "import requests",
        "from kestra import Kestra",
        "Kestra.outputs({'requests': requests.__name__})",
    ]
)


async def test_pip_dependencies_are_installed_before_the_script(
    engine: str, ctx: RunContext, package_index: dict[str, str]
) -> None:
    lines = Lines()
    job = await make_job(
        ctx, KESTRA_SCRIPT, lines, dependencies=["kestra", "requests"], env=package_index
    )
    result = await runner(networkMode="host").run(job, ctx)
    assert result.exit_code == 0, lines.seen
    assert lines.of("stdout")[-1] == '::{"outputs": {"requests": "requests"}}::'
    assert any(line.startswith("Successfully installed") for line in lines.of("stdout"))


async def test_uv_dependencies_install_as_a_user_without_a_home(
    engine: str, ctx: RunContext, package_index: dict[str, str]
) -> None:
    """uv reports progress on stderr: it must come out as plain output, not warnings."""
    lines = Lines()
    job = await make_job(
        ctx,
        KESTRA_SCRIPT,
        lines,
        dependencies=["kestra", "requests"],
        package_manager="UV",
        python_version="3.11",
        env=package_index,
    )
    result = await runner(networkMode="host", user="65534").run(job, ctx)
    assert result.exit_code == 0, lines.seen
    assert lines.of("stdout")[-1] == '::{"outputs": {"requests": "requests"}}::'
    assert any(line.startswith("Installed") for line in lines.of("stdout"))
    assert lines.of("stderr") == []


async def test_failed_install_repeats_the_installers_last_lines_on_stderr(
    engine: str, ctx: RunContext, package_index: dict[str, str]
) -> None:
    lines = Lines()
    job = await make_job(
        ctx, "print('never')", lines, dependencies=["podium-no-such-package"], env=package_index
    )
    result = await runner(networkMode="host").run(job, ctx)
    assert result.exit_code == 1
    assert "never" not in lines.of("stdout")
    stderr = lines.of("stderr")
    assert stderr[0] == "podium: installing the dependencies with pip failed (exit 1):"
    assert stderr[-1] == "ERROR: No matching distribution found for podium-no-such-package"


async def test_python_version_missing_from_the_image_fails_with_127(
    engine: str, ctx: RunContext
) -> None:
    lines = Lines()
    job = await make_job(
        ctx, "print('never')", lines, dependencies=["kestra"], python_version="3.99"
    )
    assert (await runner().run(job, ctx)).exit_code == 127
    assert lines.of("stderr") == [
        "podium: the image has no python3.99 to install dependencies with"
    ]


# --- script tasks under the Docker runner ---------------------------------------------------


@pytest.fixture(scope="session")
def python_alias_image(docker_host: str, python_image: str) -> str:
    """The test image plus `python` (Kestra's python tasks run `python`, which Debian's
    python3-minimal does not provide), committed on the private podman once a session."""
    name = f"podium-alias-{uuid.uuid4().hex[:8]}"
    podman = ["podman", "--url", docker_host]
    for argv in (
        [
            *podman,
            "run",
            "--name",
            name,
            python_image,
            "ln",
            "-s",
            "/usr/bin/python3",
            "/usr/local/bin/python",
        ],
        [*podman, "commit", "--quiet", name, PYTHON_ALIAS_IMAGE],
        [*podman, "rm", name],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed:\n{done.stderr}", pytrace=False)
    return PYTHON_ALIAS_IMAGE


@pytest.fixture
async def stats_server() -> AsyncIterator[str]:
    """Stands in for Docker Hub's repository API that the seed's flow reads."""

    async def repository(request: web.Request) -> web.Response:
        return web.json_response({"name": "kestra", "pull_count": 4242})

    app = web.Application()
    app.router.add_get("/v2/repositories/kestra/kestra/", repository)
    runner_ = web.AppRunner(app)
    await runner_.setup()
    site = web.TCPSite(runner_, "127.0.0.1", 0)
    await site.start()
    port = runner_.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v2/repositories/kestra/kestra/"
    finally:
        await runner_.cleanup()


def seed_python_flow(image: str, env: dict[str, str]) -> str:
    """flows/02_python.yaml with what this machine needs: the local image (no Docker Hub),
    the host's network (the stats server and the package index are on its loopback) and
    pip pointed at the local index; the script, dependencies and runner are untouched."""
    flow = yaml.safe_load((FLOWS / "02_python.yaml").read_text())
    task = flow["tasks"][0]
    assert task["taskRunner"] == {"type": RUNNER}
    task["containerImage"] = image
    task["taskRunner"]["networkMode"] = "host"
    task["env"] = {**task.get("env", {}), **env}
    return yaml.safe_dump(flow, sort_keys=False)


async def test_seed_python_flow_ends_success_under_the_docker_runner(
    engine: str,
    h: Harness,
    python_alias_image: str,
    package_index: dict[str, str],
    stats_server: str,
) -> None:
    source = await asyncio.to_thread(seed_python_flow, python_alias_image, package_index)
    ex = await h.run(source, {"url": stats_server})
    assert ex.state.current == State.SUCCESS, (ex.error, await h.logs(ex))
    assert ex.task_runs[0].outputs["vars"] == {"downloads": 4242}
    logs = await h.logs(ex)
    assert "installing requests, kestra in the container with pip" in logs
    assert await podium_containers(engine) == []


async def test_shell_commands_write_into_working_dir_as_rendered_for_the_flow(
    engine: str, h: Harness, python_image: str
) -> None:
    ex = await h.run(f"""
        id: docker_shell
        namespace: test
        tasks:
          - id: write
            type: io.kestra.plugin.scripts.shell.Commands
            containerImage: {python_image}
            taskRunner:
              type: {RUNNER}
              pullPolicy: NEVER
            outputFiles: ["*.txt"]
            commands:
              - echo "made in $(pwd)" > {{{{ workingDir }}}}/out.txt
              - cat out.txt
          - id: read
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ outputs.write.outputFiles['out.txt'] }}}}"
    """)
    assert ex.state.current == State.SUCCESS, ex.error
    logs = await h.logs(ex)
    workdir = h.engine.data_dir / "tmp" / ex.id / ex.task_runs[0].id
    assert logs[0] == f"made in {workdir}"
    assert logs[1].startswith("kestra://")


async def test_runner_without_wait_leaves_a_script_container_running(
    engine: str, h: Harness, python_image: str
) -> None:
    """Kestra's Docker runner `wait: false` (script/.../runner/docker/Docker.java returns
    exit code 0 and the container id without following it): the shell task succeeds at
    once, reports `taskRunner.containerId`, and the container outlives the task and
    podium's reaper."""
    ex = await h.run(f"""
        id: docker_detached
        namespace: test
        tasks:
          - id: serve
            type: io.kestra.plugin.scripts.shell.Commands
            containerImage: {python_image}
            taskRunner:
              type: {RUNNER}
              pullPolicy: NEVER
              wait: false
            commands:
              - exec sleep 300
    """)
    assert ex.state.current == State.SUCCESS, (ex.error, await h.logs(ex))
    container_id = ex.task_runs[0].outputs["taskRunner"]["containerId"]
    assert await reap_orphans(engine, set()) == 0
    async with aiodocker.Docker(url=engine) as client:
        container = client.containers.container(container_id)
        assert (await container.show())["State"]["Running"]
        await container.delete(force=True)


async def test_python_task_under_a_timeout_leaves_no_container(
    engine: str, h: Harness, python_alias_image: str
) -> None:
    ex = await h.run(f"""
        id: docker_forever
        namespace: test
        tasks:
          - id: forever
            type: io.kestra.plugin.scripts.python.Script
            containerImage: {python_alias_image}
            timeout: PT2S
            taskRunner:
              type: {RUNNER}
            script: |
              import time
              while True:
                  time.sleep(1)
    """)
    assert ex.state.current == State.FAILED
    assert await podium_containers(engine) == []


async def test_a_failing_container_fails_the_task_with_its_stderr(
    engine: str, h: Harness, python_alias_image: str
) -> None:
    ex = await h.run(f"""
        id: docker_fail
        namespace: test
        tasks:
          - id: boom
            type: io.kestra.plugin.scripts.python.Script
            containerImage: {python_alias_image}
            taskRunner:
              type: {RUNNER}
            script: |
              import sys
              sys.exit("no figures today")
    """)
    assert ex.state.current == State.FAILED
    assert ex.error == (
        "task 'boom': command failed with exit code 1; last lines of stderr:\nno figures today"
    )
    assert await podium_containers(engine) == []


# --- parsing (no engine) ------------------------------------------------------------------


def test_sizes_in_kestra_notation() -> None:
    assert parse_size("512Mb") == 512 << 20
    assert parse_size("1GB") == 1 << 30
    assert parse_size("64k") == 64 << 10
    assert parse_size("1.5g") == 3 << 29
    assert parse_size(1024) == 1024
    with pytest.raises(ValueError) as failed:
        parse_size("lots")
    assert str(failed.value) == (
        "invalid size 'lots': expected bytes or a number with KB, MB or GB"
    )


def test_invalid_memory_is_a_load_error_naming_the_property() -> None:
    with pytest.raises(ValueError, match=r"memory\.memory\n.*invalid size 'big'"):
        runner(memory={"memory": "big"})


def test_port_bindings_in_docker_run_notation() -> None:
    assert port_bindings(["8080:80/udp", "127.0.0.1:8081:81", "82"]) == (
        {"80/udp": {}, "81/tcp": {}, "82/tcp": {}},
        {
            "80/udp": [{"HostIp": "", "HostPort": "8080"}],
            "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}],
            "82/tcp": [{"HostIp": "", "HostPort": ""}],
        },
    )
    with pytest.raises(TaskFailed) as failed:
        port_bindings(["http:80"])
    assert str(failed.value) == (
        "invalid port binding 'http:80': expected [[ip:]hostPort:]containerPort[/protocol]"
    )


def test_registry_auth_from_credentials_and_from_a_docker_config() -> None:
    creds = runner(credentials={"registry": "ghcr.io", "username": "u", "password": "p"})
    assert registry_auth("ghcr.io/org/img:1", creds.credentials, None) == {
        "username": "u",
        "password": "p",
        "serveraddress": "ghcr.io",
    }
    config = json.dumps(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": "dTpw"},
                "ghcr.io": {"identitytoken": "tok"},
            }
        }
    )
    assert registry_auth("python:3.11-slim", None, config) == {
        "username": "u",
        "password": "p",
        "serveraddress": "docker.io",
    }
    assert registry_auth("ghcr.io/kestra-io/kestrapy", None, config) == {
        "identitytoken": "tok",
        "serveraddress": "ghcr.io",
    }
    assert registry_auth("quay.io/x/y", None, config) is None
    with pytest.raises(TaskFailed) as failed:
        registry_auth("python", None, "{not json")
    assert str(failed.value).startswith("taskRunner.config is not valid JSON: ")


def test_pull_progress_is_one_line_per_layer_and_state() -> None:
    shown: dict[str, str] = {}
    progress: list[dict[str, Any]] = [
        {"status": "Pulling from library/python", "id": "3.11-slim"},
        {"status": "Downloading", "id": "a1", "progressDetail": {"current": 1}},
        {"status": "Downloading", "id": "a1", "progressDetail": {"current": 2}},
        {"status": "Pull complete", "id": "a1"},
        {"stream": "Copying blob sha256:b2\n"},  # podman's own wording
        {"progressDetail": {}},
        {"status": "Status: Downloaded newer image for python:3.11-slim"},
    ]
    lines = [line for p in progress if (line := pull_progress_line(p, shown))]
    assert lines == [
        "3.11-slim: Pulling from library/python",
        "a1: Downloading",
        "a1: Pull complete",
        "Copying blob sha256:b2",
        "Status: Downloaded newer image for python:3.11-slim",
    ]


def test_image_registry() -> None:
    assert [
        image_registry(i)
        for i in (
            "python",
            "library/python",
            "ghcr.io/a/b",
            "localhost/python:test",
            "127.0.0.1:5000/x",
        )
    ] == ["docker.io", "docker.io", "ghcr.io", "localhost", "127.0.0.1:5000"]


def test_unknown_runner_property_is_a_load_error() -> None:
    with pytest.raises(ValueError, match="privileged"):
        runner(privileged=True)


async def test_the_kestra_module_is_there_in_a_container_without_installing_it(
    engine: str, h: Harness, python_alias_image: str
) -> None:
    """Kestra's python tasks run with the `kestra` package at hand (its default images have
    it): without `dependencies`, podium's stand-in module is mounted and found."""
    ex = await h.run(f"""
        id: f
        namespace: ns
        tasks:
          - id: py
            type: io.kestra.plugin.scripts.python.Script
            containerImage: {python_alias_image}
            taskRunner:
              type: io.kestra.plugin.scripts.runner.docker.Docker
              pullPolicy: NEVER
            script: |
              from kestra import Kestra
              Kestra.outputs({{"n": 3}})
              Kestra.counter("rows", 2)
    """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs["vars"] == {"n": 3}
