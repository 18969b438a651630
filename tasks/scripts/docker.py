"""The Docker task runner: a script task's commands in a container, through the Engine API.

Any Docker-compatible engine works (Docker, podman's API service) at the runner's `host`,
else DOCKER_HOST, else /var/run/docker.sock. The task's working directory is bind-mounted
at the same path inside the container and is the container's working directory, so
`{{ workingDir }}` and WORKING_DIR mean the same place on both sides (as with Kestra's
MOUNT strategy); the engine must therefore run on the daemon's machine.

Every container carries podium's labels (managed, execution, task run) and is removed when
the run ends however it ends: exit, failure, timeout or kill. `reap_orphans` removes those
that a crashed daemon left behind.

`wait: false` (Kestra's runner property, which docker.Run passes on) starts the container
and returns at once with its id, leaving it running: it is then the flow's, not podium's
(no managed label, never reaped; docker.Stop ends it). Its working directory is copied into
the container instead of mounted, as Kestra's VOLUME strategy does, since the task's own
directory is removed when the task ends.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import shlex
import tarfile
import uuid
from base64 import b64decode
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.properties import Dynamic, Model, templated_values, with_rendered
from tasks.scripts.runner import LineSplitter, ScriptJob, ScriptResult, ScriptRunner, Stream

if TYPE_CHECKING:
    from aiodocker import Docker as DockerClient
    from aiodocker.containers import DockerContainer

    from daemon.sdk.context import RunContext, StartupContext

log = logging.getLogger(__name__)

DEFAULT_HOST = "unix:///var/run/docker.sock"
MANAGED_LABEL = "podium.managed"
EXECUTION_LABEL = "podium.execution"
TASKRUN_LABEL = "podium.taskrun"
# Inside the container, not the working directory: any user may write there, nothing lands
# among the task's output files, and it goes away with the container.
DEPS_DIR = "/tmp/podium-deps"
TOOLS_DIR = "/tmp/podium-tools"
CACHE_DIR = "/tmp/podium-cache"
CLEANUP_TIMEOUT = 30.0
INSTALL_TAIL = 5  # installer lines repeated on stderr when it fails
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")

_api_versions: dict[str, str] = {}  # engine URL -> negotiated API version ("v1.41")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: Any) -> Any:
    """Kestra writes sizes as "512Mb", "1GB" or bytes; the Engine API wants bytes."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"invalid size {value!r}: expected bytes or a number with KB, MB or GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


Bytes = Annotated[int, BeforeValidator(parse_size)]


class Cpu(Model):
    cpus: float = Field(gt=0)


class Memory(Model):
    memory: Bytes | None = Field(default=None, gt=0)
    memory_swap: Bytes | None = Field(default=None, ge=-1)  # -1: unlimited swap
    memory_swappiness: int | None = Field(default=None, ge=0, le=100)
    memory_reservation: Bytes | None = Field(default=None, gt=0)
    kernel_memory: Bytes | None = Field(default=None, gt=0)
    oom_kill_disable: bool | None = None


class Credentials(Model):
    """A private registry's login, sent with pulls as the X-Registry-Auth header."""

    registry: str | None = None
    username: str | None = None
    password: str | None = None
    registry_token: str | None = None
    identity_token: str | None = None
    auth: str | None = None  # base64 of "username:password", as in ~/.docker/config.json


class Docker(ScriptRunner):
    """`taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}`."""

    type: Literal[
        "io.kestra.plugin.scripts.runner.docker.Docker",
        "io.kestra.plugin.scripts.runner.docker.DockerTaskRunner",  # its name before 0.17
    ]
    host: Annotated[str | None, Dynamic] = None
    image: Annotated[str | None, Dynamic] = None  # Kestra's fallback when no containerImage
    config: Annotated[str | dict[str, Any] | None, Dynamic] = None  # a docker config.json
    credentials: Annotated[Credentials | None, Dynamic] = None
    user: Annotated[str | None, Dynamic] = None
    entry_point: Annotated[list[str] | None, Dynamic] = None
    extra_hosts: Annotated[list[str] | None, Dynamic] = None
    network_mode: Annotated[str | None, Dynamic] = None
    port_bindings: Annotated[list[str] | None, Dynamic] = None
    volumes: Annotated[list[str] | None, Dynamic] = None
    pull_policy: Annotated[Literal["IF_NOT_PRESENT", "ALWAYS", "NEVER"], Dynamic] = "IF_NOT_PRESENT"
    cpu: Annotated[Cpu | None, Dynamic] = None
    memory: Annotated[Memory | None, Dynamic] = None
    shm_size: Annotated[Bytes | None, Dynamic] = None
    kill_grace_period: Duration = timedelta(0)
    wait: Annotated[bool, Dynamic] = True
    # Accepted so Kestra flows load unchanged: both strategies put the task's files at the
    # same path in the container; podium always does it with a bind mount.
    file_handling_strategy: Literal["MOUNT", "VOLUME"] = "VOLUME"

    async def run(self, job: ScriptJob, ctx: RunContext) -> ScriptResult:
        runner = await self._rendered(ctx, job.working_dir)
        image = job.image or runner.image
        if not image:
            raise TaskFailed(
                "the Docker runner needs an image: set containerImage on the task",
                non_retryable=True,
            )
        if runner.volumes:
            raise TaskFailed(
                "volumes are not allowed: mounting host paths into containers needs "
                "`docker-volumes-allowed: true` in podium's settings, which this podium "
                "does not have yet",
                non_retryable=True,
            )
        if runner.user:
            # The container user must be able to write its outputs into the mounted directory.
            await asyncio.to_thread(job.working_dir.chmod, 0o777)
        url, origin = engine_address(runner.host)
        docker = connect(url, origin)
        name = container_name(ctx.task_run.id)
        container: DockerContainer | None = None
        exited = left_running = False
        try:
            await runner._ensure_image(docker, image, url, origin, ctx)
            if job.dependencies:
                ctx.logger.info(
                    f"installing {', '.join(job.dependencies)} in the container "
                    f"with {job.package_manager.lower()}"
                )
            config = runner._container_config(job, ctx, image)
            if not runner.wait:
                config = _detached(config, job)
            container = await _engine_call(
                docker.containers.create(config=config, name=name),
                url,
                origin,
                f"cannot create a container from {image}",
            )
            details = {"containerId": container.id}
            if not runner.wait:
                await _start_detached(docker, container, job.working_dir, url, origin)
                left_running = True
                ctx.logger.info(
                    f"container {container.id[:12]} ({name}) started; "
                    "not waiting for it to exit (wait: false)"
                )
                return ScriptResult(0, details)
            exit_code = await _run_to_exit(docker, container, job.on_line, url, origin)
            exited = True
            if exit_code != 0:
                await _explain_exit(container, exit_code, ctx)
            return ScriptResult(exit_code, details)
        finally:
            if left_running:
                await asyncio.shield(close(docker, url))
            else:
                grace = timedelta(0) if exited else runner.kill_grace_period
                await asyncio.shield(_cleanup(docker, container, name, url, grace, ctx))

    async def _rendered(self, ctx: RunContext, working_dir: Path) -> Docker:
        """This runner with its templated properties rendered for this task run: the
        executor renders the task's own properties, not the ones nested in taskRunner."""
        templated = templated_values(self)
        if not templated:
            return self
        rendered = await ctx.render_async(templated, {"workingDir": str(working_dir)})
        return with_rendered(self, rendered, "taskRunner.")

    async def _ensure_image(
        self, docker: DockerClient, image: str, url: str, origin: str, ctx: RunContext
    ) -> None:
        from aiodocker import DockerError

        if self.pull_policy != "ALWAYS":
            try:
                await docker.images.inspect(image)
                return
            except DockerError as exc:
                if exc.status == 900:
                    raise engine_failure(exc, url, origin) from None
                if exc.status != 404:
                    raise TaskFailed(f"cannot inspect image {image}: {exc.message}") from None
            if self.pull_policy == "NEVER":
                raise TaskFailed(
                    f"image {image} is not on the Docker engine at {url} and pullPolicy is NEVER",
                    non_retryable=True,
                )
        ctx.logger.info(f"pulling image {image}")
        auth = registry_auth(image, self.credentials, self.config)
        shown: dict[str, str] = {}
        try:
            async for progress in docker.images.pull(image, auth=auth, stream=True):
                line = pull_progress_line(progress, shown)
                if line:
                    ctx.logger.info(line)
        except DockerError as exc:
            if exc.status == 900:
                raise engine_failure(exc, url, origin) from None
            raise TaskFailed(f"cannot pull image {image}: {exc.message}") from None

    def _container_config(self, job: ScriptJob, ctx: RunContext, image: str) -> dict[str, Any]:
        workdir = str(job.working_dir)
        host: dict[str, Any] = {
            "Mounts": [
                {"Type": "bind", "Source": workdir, "Target": workdir, "ReadOnly": False},
                *(
                    {"Type": "bind", "Source": str(path), "Target": str(path), "ReadOnly": True}
                    for path in job.python_path
                ),
            ],
        }
        if self.network_mode:
            host["NetworkMode"] = self.network_mode
        if self.extra_hosts:
            host["ExtraHosts"] = list(self.extra_hosts)
        if self.cpu:
            host["NanoCpus"] = int(self.cpu.cpus * 1_000_000_000)
        if self.memory:
            host.update(
                {
                    key: value
                    for key, value in (
                        ("Memory", self.memory.memory),
                        ("MemorySwap", self.memory.memory_swap),
                        ("MemorySwappiness", self.memory.memory_swappiness),
                        ("MemoryReservation", self.memory.memory_reservation),
                        ("KernelMemory", self.memory.kernel_memory),
                        ("OomKillDisable", self.memory.oom_kill_disable),
                    )
                    if value is not None
                }
            )
        if self.shm_size:
            host["ShmSize"] = self.shm_size
        config: dict[str, Any] = {
            "Image": image,
            "Cmd": container_command(job),
            # As Kestra: the image's entrypoint is reset unless the runner names one.
            "Entrypoint": list(self.entry_point) if self.entry_point is not None else [""],
            "Env": [f"{key}={value}" for key, value in job.env.items()],
            "WorkingDir": workdir,
            "Labels": {
                **job.labels,
                MANAGED_LABEL: "true",
                EXECUTION_LABEL: ctx.execution.id,
                TASKRUN_LABEL: ctx.task_run.id,
            },
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": host,
        }
        if self.user:
            config["User"] = self.user
        if self.port_bindings:
            exposed, bindings = port_bindings(self.port_bindings)
            config["ExposedPorts"] = exposed
            host["PortBindings"] = bindings
        return config


def engine_address(host: str | None) -> tuple[str, str]:
    """The engine's URL and where it came from, for messages that say what was tried."""
    if host:
        return host, "the runner's host property"
    from_env = os.environ.get("DOCKER_HOST")
    if from_env:
        return from_env, "from DOCKER_HOST"
    return DEFAULT_HOST, "DOCKER_HOST is not set"


def connect(url: str, origin: str) -> DockerClient:
    """A client for one run. The API version is negotiated once per engine and process:
    podman answers /version by running its OCI runtime and conmon, half a second each time.
    """
    from aiodocker import Docker as DockerClient

    try:
        return DockerClient(url=url, api_version=_api_versions.get(url, "auto"))
    except ValueError as exc:
        raise TaskFailed(f"cannot reach a Docker engine at {url} ({origin}): {exc}") from None


def engine_failure(exc: Exception, url: str, origin: str) -> TaskFailed:
    """A TaskFailed naming the engine and why it could not be reached.

    aiodocker folds connection errors into DockerError(900, ...); the OS's own reason is
    kept on the aiohttp error it was raised from.
    """
    cause = exc.__context__
    os_error = getattr(cause, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        reason = os_error.strerror
    elif cause is not None:
        reason = str(cause) or type(cause).__name__
    else:
        reason = str(exc)
    return TaskFailed(f"cannot reach a Docker engine at {url} ({origin}): {reason}")


async def _engine_call(call: Any, url: str, origin: str, what: str) -> Any:
    from aiodocker import DockerError

    try:
        return await call
    except DockerError as exc:
        if exc.status == 900:
            raise engine_failure(exc, url, origin) from None
        raise TaskFailed(f"{what}: {exc.message}") from None


def _detached(config: dict[str, Any], job: ScriptJob) -> dict[str, Any]:
    """A container left running after the task: without podium's managed label (the
    reaper must not remove it) and without the working-directory mount (the directory goes
    with the task; `_start_detached` copies it in)."""
    labels = {k: v for k, v in config["Labels"].items() if k != MANAGED_LABEL}
    host = dict(config["HostConfig"])
    workdir = str(job.working_dir)
    host["Mounts"] = [m for m in host["Mounts"] if m["Target"] != workdir]
    return {**config, "Labels": labels, "HostConfig": host}


async def _start_detached(
    docker: DockerClient, container: DockerContainer, working_dir: Path, url: str, origin: str
) -> None:
    """Copy the working directory to the same path in the container, then start it."""
    from aiodocker import DockerError

    def pack() -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(working_dir, arcname=str(working_dir).lstrip("/"))
        return buffer.getvalue()

    archive = await asyncio.to_thread(pack)
    try:
        async with docker._query(
            f"containers/{container.id}/archive",
            method="PUT",
            data=archive,
            headers={"content-type": "application/x-tar"},
            params={"path": "/"},
        ):
            pass
        await container.start()
    except DockerError as exc:
        if exc.status == 900:
            raise engine_failure(exc, url, origin) from None
        raise TaskFailed(f"the container failed to start: {exc.message}") from None


def container_name(task_run_id: str) -> str:
    """Known before the create call, so a kill during that call can still remove it."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", task_run_id)
    return f"podium-{safe}-{uuid.uuid4().hex[:8]}"


def container_command(job: ScriptJob) -> list[str]:
    """The job's command line behind a small shell step that first installs its
    dependencies, when it has any."""
    if not job.dependencies:
        return job.argv()
    return ["/bin/sh", "-c", install_script(job), "podium-install", *job.argv()]


def install_script(job: ScriptJob) -> str:
    """Install into a directory of the container that the script then imports from.

    Always afresh (the container's /tmp goes with it), whatever `dependencyCacheEnabled`
    says. pip's --target bypasses PEP 668's externally-managed check of Debian-based images;
    uv gets a cache dir that any container user can write (the seed's uv failed on a
    read-only default cache). The installers' output is stdout (uv reports progress on
    stderr, which would turn a good run into a WARNING); if they fail, their last lines are
    repeated on stderr, so that the task's error quotes them.
    """
    deps = " ".join(shlex.quote(d) for d in job.dependencies)
    pythons = (f"python{job.python_version}",) if job.python_version else ("python3", "python")
    manager = job.package_manager.lower()
    if job.package_manager == "UV":
        install = [
            f"export UV_CACHE_DIR={CACHE_DIR}/uv",
            "UV=$(command -v uv) || { "
            f'"$PY" -m pip install --quiet --cache-dir {CACHE_DIR}/pip --target {TOOLS_DIR} uv'
            f" && UV={TOOLS_DIR}/bin/uv; }} &&",
            f'"$UV" pip install --python "$PY" --target {DEPS_DIR} {deps}',
        ]
    else:
        install = [f'"$PY" -m pip install --cache-dir {CACHE_DIR}/pip --target {DEPS_DIR} {deps}']
    found = " || ".join(f"command -v {p}" for p in pythons)
    return "\n".join(
        [
            f'PY=$({found}) || {{ echo "podium: the image has no {" or ".join(pythons)} to '
            'install dependencies with" >&2; exit 127; }',
            f"mkdir -p {CACHE_DIR}",
            "{ {",
            "export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "
            "PIP_NO_WARN_SCRIPT_LOCATION=1",
            *install,
            f"}} 2>&1; echo $? > {CACHE_DIR}/rc; }} | tee {CACHE_DIR}/install.log",
            f"rc=$(cat {CACHE_DIR}/rc)",
            'if [ "$rc" != 0 ]; then',
            f'  echo "podium: installing the dependencies with {manager} failed (exit $rc):" >&2',
            f"  tail -n {INSTALL_TAIL} {CACHE_DIR}/install.log >&2",
            '  exit "$rc"',
            "fi",
            f'export PYTHONPATH="{DEPS_DIR}${{PYTHONPATH:+:$PYTHONPATH}}"',
            f'export PATH="{DEPS_DIR}/bin:$PATH"',
            'exec "$@"',
        ]
    )


def port_bindings(specs: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`[[ip:]hostPort:]containerPort[/protocol]` (docker run -p) as ExposedPorts and
    PortBindings."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        ports, _, protocol = spec.partition("/")
        parts = ports.split(":")
        host_ip, host_port, port = ["", "", *parts][-3:]
        if len(parts) > 3 or not port.isdigit() or (host_port and not host_port.isdigit()):
            raise TaskFailed(
                f"invalid port binding {spec!r}: expected [[ip:]hostPort:]containerPort[/protocol]",
                non_retryable=True,
            )
        key = f"{port}/{protocol or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return exposed, bindings


def registry_auth(
    image: str, credentials: Credentials | None, config: str | dict[str, Any] | None
) -> dict[str, str] | None:
    """The X-Registry-Auth document for pulling `image`: the credentials, else the entry
    for the image's registry in a docker config.json's `auths`."""
    if credentials is not None:
        return _auth_document(credentials) or None
    if config is None:
        return None
    try:
        parsed = json.loads(config) if isinstance(config, str) else config
    except json.JSONDecodeError as exc:
        raise TaskFailed(
            f"taskRunner.config is not valid JSON: {exc}", non_retryable=True
        ) from None
    registry = image_registry(image)
    auths = parsed.get("auths") if isinstance(parsed, dict) else None
    for key, entry in (auths or {}).items():
        if _registry_key(key) == registry and isinstance(entry, dict):
            return (
                _auth_document(
                    Credentials(
                        registry=registry,
                        username=entry.get("username"),
                        password=entry.get("password"),
                        auth=entry.get("auth"),
                        identity_token=entry.get("identitytoken"),
                    )
                )
                or None
            )
    return None


def _auth_document(credentials: Credentials) -> dict[str, str]:
    auth: dict[str, str] = {}
    if credentials.auth:
        try:
            user, _, password = b64decode(credentials.auth).decode().partition(":")
        except ValueError:
            raise TaskFailed(
                "registry credentials: auth is not base64 of username:password", non_retryable=True
            ) from None
        auth.update(username=user, password=password)
    for key, value in (
        ("username", credentials.username),
        ("password", credentials.password),
        ("identitytoken", credentials.identity_token),
        ("registrytoken", credentials.registry_token),
        ("serveraddress", credentials.registry),
    ):
        if value:
            auth[key] = value
    return auth


def _registry_key(key: str) -> str:
    """A config.json `auths` key ("https://index.docker.io/v1/", "ghcr.io") as a host."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def image_registry(image: str) -> str:
    """The registry host of an image reference (docker.io when it names none)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pull_progress_line(progress: Mapping[str, Any], shown: dict[str, str]) -> str | None:
    """One log line per layer and state: a pull reports byte counts many times a second."""
    status = progress.get("status") or progress.get("stream")
    if not isinstance(status, str) or not status.strip():
        return None
    layer = str(progress.get("id") or "")
    if layer and shown.get(layer) == status:
        return None
    shown[layer] = status
    return f"{layer}: {status.strip()}" if layer else status.strip()


async def _run_to_exit(
    docker: DockerClient,
    container: DockerContainer,
    on_line: Callable[[Stream, str], None],
    url: str,
    origin: str,
) -> int:
    """Start the container and stream its output until it exits; its exit code.

    The exit wait and the attach are both in place before the start, as the docker CLI
    does it: no line is missed, and the exit code comes as soon as the engine knows it
    (podman answers a wait asked after the exit only half a second later, and a
    `next-exit` wait asked after a quick exit would never return). aiodocker's public
    wait() cannot be registered first, hence its `_query`.
    """
    from aiodocker import DockerError

    splitters = {stream: LineSplitter() for stream in STREAMS}
    try:
        async with docker._query(
            f"containers/{container.id}/wait",
            method="POST",
            params={"condition": "next-exit"},
            timeout=None,
        ) as exited:
            # The response too is a context: unread (a failed start), it must still be let go.
            async with exited, container.attach(stdout=True, stderr=True) as output:
                await container.start()
                while (message := await output.read_out()) is not None:
                    stream: Stream = "stderr" if message.stream == 2 else "stdout"
                    for line in splitters[stream].feed(message.data):
                        on_line(stream, line)
                for stream, splitter in splitters.items():
                    for line in splitter.close():
                        on_line(stream, line)
                result = await exited.json()
    except DockerError as exc:
        if exc.status == 900:
            raise engine_failure(exc, url, origin) from None
        raise TaskFailed(f"the container failed to run: {exc.message}") from None
    return int(result["StatusCode"])


async def _explain_exit(container: DockerContainer, exit_code: int, ctx: RunContext) -> None:
    """Say when the engine, not the script, ended it: the exit code alone does not."""
    from aiodocker import DockerError

    try:
        state = (await container.show())["State"]
    except DockerError:
        return
    if state.get("OOMKilled"):
        ctx.logger.error(
            f"the container was killed (exit {exit_code}) for going over its memory limit"
        )


async def _cleanup(
    docker: DockerClient,
    container: DockerContainer | None,
    name: str,
    url: str,
    grace: timedelta,
    ctx: RunContext,
) -> None:
    """Stop (within the grace period) and remove the container, then close the client.

    Shielded by the caller: a kill or timeout must not leave a container running.
    """
    from aiodocker import DockerError

    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT + grace.total_seconds()):
            target = container or docker.containers.container(name)
            if grace > timedelta(0):
                try:
                    await target.stop(t=int(grace.total_seconds()))
                except DockerError as exc:
                    if exc.status not in (304, 404):
                        raise
            await target.delete(force=True, v=True)
    except DockerError as exc:
        if exc.status != 404:
            ctx.logger.warning(f"could not remove container {name}: {exc.message}")
    except TimeoutError:
        ctx.logger.warning(
            f"could not remove container {name} within "
            f"{CLEANUP_TIMEOUT:.0f}s; podium removes it at its next start"
        )
    finally:
        await close(docker, url)


async def close(docker: DockerClient, url: str) -> None:
    """Close a client from `connect`, remembering the API version it negotiated."""
    if docker.api_version != "auto":
        _api_versions[url] = docker.api_version
    await docker.close()


async def reap_orphans(docker_host: str | None, running_execution_ids: set[str]) -> int:
    """Remove podium's containers whose execution is not running; returns how many.

    A daemon that crashed (or was killed) left them; called once at start. An engine that
    cannot be reached has nothing of ours to reap, so that is not an error.
    """
    from aiodocker import DockerError

    url, origin = engine_address(docker_host)
    try:
        docker = connect(url, origin)
    except TaskFailed as exc:
        log.warning("not reaping containers: %s", exc)
        return 0
    removed = 0
    try:
        containers = await docker.containers.list(
            all=True, filters=json.dumps({"label": [f"{MANAGED_LABEL}=true"]})
        )
        for container in containers:
            labels = container["Labels"] or {}
            if labels.get(EXECUTION_LABEL) in running_execution_ids:
                continue
            try:
                await container.delete(force=True, v=True)
            except DockerError as exc:
                if exc.status != 404:
                    raise
            removed += 1
            log.info(
                "removed container %s left by execution %s",
                container.id[:12],
                labels.get(EXECUTION_LABEL),
            )
    except DockerError as exc:
        if exc.status != 900:
            raise
        log.debug("no Docker engine at %s to reap containers from: %s", url, exc.message)
    finally:
        await docker.close()
    return removed


async def on_daemon_start(ctx: StartupContext) -> None:
    """Containers a crashed podium left behind: every execution it ran is either over or
    resumed in new containers, so none of the old ones is still wanted."""
    await reap_orphans(None, set())
