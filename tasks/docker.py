"""Kestra's docker plug-in (kestra-io/plugin-docker): Run (a container, its `commands` as
the container's command), Build (an image from a Dockerfile and `inputFiles`) and Stop (a
container by id or name), on the same Engine API client as the script tasks' Docker runner
(tasks/scripts/docker.py): any Docker-compatible engine at `host`, else DOCKER_HOST.

Run with `wait: false` starts the container and returns its id as
`outputs.<id>.taskRunner.containerId` (as Kestra's ScriptOutput does), leaving it running
for a later Stop.

Run keeps the image's own entrypoint unless `entryPoint` is set (the runner of the script
tasks resets it, as Kestra's does); its working directory is bind-mounted as with the
runner, `inputFiles` written there first and `outputFiles` collected after; lines of the
form `::{"outputs":...}::` become `vars`, as with every script task.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.brokers import import_module
from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText
from tasks.scripts.base import LineHandler, ScriptTask
from tasks.scripts.docker import (
    Cpu,
    Credentials,
    Docker,
    Memory,
    close,
    connect,
    engine_address,
    engine_failure,
    registry_auth,
)
from tasks.scripts.runner import ScriptJob

PullPolicy = Literal["IF_NOT_PRESENT", "ALWAYS", "NEVER"]


@dataclass
class _CommandJob(ScriptJob):
    """A job whose commands are the container's command line itself, word by word."""

    def argv(self) -> list[str]:
        return list(self.commands)


class _RunRunner(Docker):
    def _container_config(self, job: ScriptJob, ctx: RunContext, image: str) -> dict[str, Any]:
        config = super()._container_config(job, ctx, image)
        if self.entry_point is None:
            del config["Entrypoint"]  # the image's own
        if not job.commands:
            del config["Cmd"]  # the image's own
        return config


class Run(ScriptTask):
    """Kestra's docker Run."""

    types = ("io.kestra.plugin.docker.Run",)

    container_image: Annotated[str, Dynamic]
    commands: Annotated[list[str] | None, Dynamic, JsonText] = None
    entry_point: Annotated[list[str] | None, Dynamic, JsonText] = None
    host: Annotated[str | None, Dynamic] = None
    config: Annotated[str | dict[str, Any] | None, Dynamic] = None
    credentials: Annotated[Credentials | None, Dynamic] = None
    user: Annotated[str | None, Dynamic] = None
    extra_hosts: Annotated[list[str] | None, Dynamic] = None
    network_mode: Annotated[str | None, Dynamic] = None
    port_bindings: Annotated[list[str] | None, Dynamic] = None
    pull_policy: PullPolicy = "IF_NOT_PRESENT"
    cpu: Cpu | None = None
    memory: Memory | None = None
    shm_size: Annotated[str | int | None, Dynamic] = None
    fail_fast: bool = False
    wait: Annotated[bool, Dynamic] = True

    async def run(self, ctx: RunContext) -> Output:
        await import_module("aiodocker")  # reads package metadata: not on the event loop
        working_dir = await ctx.working_dir()
        await self._write_input_files(ctx, working_dir)
        runner = _RunRunner(
            type="io.kestra.plugin.scripts.runner.docker.Docker",
            host=self.host,
            config=self.config,
            credentials=self.credentials,
            user=self.user,
            entry_point=self.entry_point,
            extra_hosts=self.extra_hosts,
            network_mode=self.network_mode,
            port_bindings=self.port_bindings,
            pull_policy=self.pull_policy,
            cpu=self.cpu,
            memory=self.memory,
            shm_size=self.shm_size,
            wait=self.wait,
        )
        lines = LineHandler(ctx)
        job = _CommandJob(
            working_dir=working_dir,
            interpreter=[],
            commands=list(self.commands or []),
            env={"WORKING_DIR": str(working_dir), **(self.env or {})},
            on_line=lines,
            image=self.container_image,
            labels={"podium.execution-id": ctx.execution.id, "podium.taskrun-id": ctx.task_run.id},
        )
        result = await runner.run(job, ctx)
        if result.exit_code != 0:
            raise TaskFailed(lines.failure(result.exit_code))
        outputs: dict[str, Any] = {
            "vars": lines.vars,
            "exitCode": result.exit_code,
            "stdOutLineCount": lines.counts["stdout"],
            "stdErrLineCount": lines.counts["stderr"],
        }
        if result.details:
            outputs["taskRunner"] = dict(result.details)
        if self.output_files:
            outputs["outputFiles"] = await self._collect(ctx, working_dir)
        if self.warning_on_std_err and lines.counts["stderr"]:
            ctx.warning = True
        return outputs

    async def main_commands(self, working_dir: Path) -> list[str]:
        return list(self.commands or [])


class Build(Task):
    """Kestra's docker Build: `dockerfile` (its text) and `inputFiles` as the build context;
    `tags`, `buildArgs`, `labels`, `pull`; `push` sends the tags to their registry.
    Output: `imageId`."""

    types = ("io.kestra.plugin.docker.Build",)

    dockerfile: Annotated[str, Dynamic]
    tags: Annotated[list[str], Dynamic, JsonText] = Field(min_length=1)
    build_args: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    labels: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    platforms: Annotated[list[str] | None, Dynamic, JsonText] = None
    pull: bool = True
    push: bool = False
    input_files: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    host: Annotated[str | None, Dynamic] = None
    config: Annotated[str | dict[str, Any] | None, Dynamic] = None
    credentials: Annotated[Credentials | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        DockerError = (await import_module("aiodocker")).DockerError

        context = await self._context(ctx)
        url, origin = engine_address(self.host)
        docker = connect(url, origin)
        image_id: str | None = None
        try:
            params: dict[str, Any] = {
                "fileobj": context,
                "encoding": "application/x-tar",
                "tag": self.tags[0],
                "pull": self.pull,
                "rm": True,
                "forcerm": True,
                "stream": True,
            }
            if self.build_args:
                params["buildargs"] = dict(self.build_args)
            if self.labels:
                params["labels"] = dict(self.labels)
            if self.platforms:
                params["platform"] = ",".join(self.platforms)
            async for progress in docker.images.build(**params):
                if "error" in progress:
                    raise TaskFailed(f"the build failed: {progress['error'].strip()}")
                text = str(progress.get("stream") or progress.get("status") or "").rstrip()
                if text:
                    ctx.logger.info(text)
                found = (progress.get("aux") or {}).get("ID")
                if found:
                    image_id = found
            if image_id is None:
                image_id = (await docker.images.inspect(self.tags[0]))["Id"]
            for tag in self.tags[1:]:
                repository, label = _split_tag(tag)
                await docker.images.tag(self.tags[0], repository, tag=label)
            if self.push:
                for tag in self.tags:
                    auth = registry_auth(tag, self.credentials, self.config)
                    async for progress in docker.images.push(tag, auth=auth, stream=True):
                        if "error" in progress:
                            raise TaskFailed(f"cannot push {tag}: {progress['error']}")
        except DockerError as exc:
            if exc.status == 900:
                raise engine_failure(exc, url, origin) from None
            raise TaskFailed(f"the build failed: {exc.message}") from None
        finally:
            await docker.close()
        return {"imageId": image_id}

    async def _context(self, ctx: RunContext) -> io.BytesIO:
        """The build context: the Dockerfile and the input files, as a tar archive."""
        files: dict[str, bytes | Path] = {"Dockerfile": self.dockerfile.encode()}
        for name, content in (self.input_files or {}).items():
            stored = content.startswith("kestra://")
            files[name] = await ctx.file_path(content) if stored else content.encode()

        def pack() -> io.BytesIO:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                for name, content in files.items():
                    if ".." in Path(name).parts or Path(name).is_absolute():
                        raise TaskFailed(f"inputFiles: '{name}' would land outside the context")
                    if isinstance(content, Path):
                        archive.add(content, name)
                    else:
                        info = tarfile.TarInfo(name)
                        info.size = len(content)
                        archive.addfile(info, io.BytesIO(content))
            buffer.seek(0)
            return buffer

        return await asyncio.to_thread(pack)


def _split_tag(tag: str) -> tuple[str, str]:
    """`registry:5000/name:label` -> (`registry:5000/name`, `label`); no label is latest."""
    repository, colon, label = tag.rpartition(":")
    if not colon or "/" in label:
        return tag, "latest"
    return repository, label


class Stop(Task):
    """Kestra's docker Stop: stop (`kill: true`: SIGKILL) the container `containerId` (an
    id, an id prefix or a name), then remove it unless `delete: false`. No outputs.

    As Kestra's (docker-java's stop and kill commands), a container that is not running is
    an error, and so is one that does not exist."""

    types = ("io.kestra.plugin.docker.Stop",)

    container_id: Annotated[str, Dynamic] = Field(min_length=1)
    kill: Annotated[bool, Dynamic] = False
    delete: Annotated[bool, Dynamic] = True
    host: Annotated[str | None, Dynamic] = None
    config: Annotated[str | dict[str, Any] | None, Dynamic] = None
    credentials: Annotated[Credentials | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        DockerError = (await import_module("aiodocker")).DockerError

        url, origin = engine_address(self.host)
        docker = connect(url, origin)
        step = "kill" if self.kill else "stop"
        try:
            # aiodocker's stop() passes over the engine's 304 (not running) in silence.
            async with docker._query(
                f"containers/{self.container_id}/{step}", method="POST", timeout=None
            ) as response:
                if response.status == 304:
                    raise TaskFailed(_stop_failure(self.container_id, step, 304))
            ctx.logger.info(f"container {self.container_id}: {step} done")
            if self.delete:
                step = "remove"
                await docker.containers.container(self.container_id).delete(v=True)
                ctx.logger.info(f"container {self.container_id}: removed")
        except DockerError as exc:
            if exc.status == 900:
                raise engine_failure(exc, url, origin) from None
            raise TaskFailed(
                _stop_failure(self.container_id, step, exc.status, exc.message)
            ) from None
        finally:
            await close(docker, url)
        return {}


def _stop_failure(container: str, step: str, status: int, message: str = "") -> str:
    if status == 404:
        return f"cannot {step} container {container}: no such container on the engine"
    if status == 304 or (status == 409 and step == "kill"):
        return f"cannot {step} container {container}: it is not running"
    return f"cannot {step} container {container}: {message}"
