"""What every script task shares: the properties Kestra's script tasks have, the working
directory they fill (namespace files, input files, the script), the output protocol and the
output files they collect.

A task subclass only says which command lines run its script (`main_commands`); the runner
named by `taskRunner` runs them and streams every line back to `LineHandler`, which logs it
(stdout INFO, stderr WARN, as Kestra does) or, for a `::{...}::` line, applies it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from collections import deque
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from daemon.sdk.errors import TaskFailed
from daemon.sdk.nsworkdir import NamespaceFilesSpec, inject_namespace_files
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Deprecated, Dynamic, JsonText
from tasks.scripts.docker import Docker
from tasks.scripts.process import Process
from tasks.scripts.protocol import ProtocolError, framed, parse
from tasks.scripts.runner import ScriptJob, Stream

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext

# `taskRunner:`, chosen by its `type:`; a new runner is one more member of this union.
TaskRunner = Annotated[Process | Docker, Field(discriminator="type")]

CONTEXT_FILE = ".kestra-execution-context.json"
# podium's stand-in `kestra` module, first on PYTHONPATH whatever the runner (a container
# gets the directory mounted read-only at the same path): see pylib/kestra.py.
KESTRA_LIB = Path(__file__).resolve().parent / "pylib"
# A stored file named in a command or script is downloaded and named by its local path
# (Kestra's ScriptService.replaceInternalStorage).
_STORAGE_URI = re.compile(r"kestra://[-\w.+~#=/]*")
STDERR_TAIL = 10  # stderr lines quoted in the error of a failed command
# The variables the `kestra` package's `context` exposes; envs and secrets stay out.
CONTEXT_KEYS = (
    "inputs",
    "outputs",
    "labels",
    "vars",
    "trigger",
    "flow",
    "execution",
    "task",
    "taskrun",
)


def _text_values(value: Any) -> Any:
    """`env: {PORT: 8080}` means the text "8080", as in Kestra."""
    if isinstance(value, dict):
        return {
            k: v if isinstance(v, str) or v is None or isinstance(v, dict | list) else json.dumps(v)
            for k, v in value.items()
        }
    return value


class ScriptTask(Task):
    """Base of shell and python Script/Commands: fills the working directory, runs, collects."""

    before_commands: Annotated[list[str] | None, Dynamic, JsonText] = None
    interpreter: Annotated[list[str], Dynamic, JsonText] = Field(
        default_factory=lambda: ["/bin/sh", "-c"], min_length=1
    )
    env: Annotated[dict[str, str] | None, Dynamic, BeforeValidator(_text_values), JsonText] = None
    input_files: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    output_files: Annotated[list[str] | None, Dynamic, JsonText] = None
    namespace_files: NamespaceFilesSpec | None = None
    warning_on_std_err: Annotated[bool, Dynamic] = True
    fail_fast: Annotated[bool, Dynamic] = True
    execution_context: Annotated[bool, Dynamic] = False
    container_image: Annotated[str | None, Dynamic] = None
    # Kestra's AbstractExecScript.targetOS: how the command lines are joined (LF, or CRLF
    # for WINDOWS) and whether failFast adds `set -e` (not for WINDOWS). AUTO is the OS the
    # script runs on, here always Linux; WINDOWS is refused when the task runs (_run_in).
    target_os: Annotated[Literal["AUTO", "LINUX", "WINDOWS"], Dynamic] = Field(
        default="AUTO", alias="targetOS"
    )
    task_runner: TaskRunner = Field(default_factory=Process)
    # Kestra before 0.18 (its migration guide "runner"): `runner: PROCESS | DOCKER` and
    # `docker: {image, pullPolicy...}` mean the Process or Docker task runner.
    runner: Annotated[
        Literal["PROCESS", "DOCKER"] | None,
        Deprecated("use 'taskRunner' (io.kestra.plugin.core.runner.Process or ...docker.Docker)"),
    ] = None
    docker: Annotated[
        dict[str, Any] | None,
        Deprecated("use 'taskRunner' of type io.kestra.plugin.scripts.runner.docker.Docker "
                   "and 'containerImage'"),
    ] = None  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _legacy_runner(cls, data: Any) -> Any:
        """`runner`/`docker` become the `taskRunner` (and `containerImage`) they stand for."""
        if not isinstance(data, dict) or ("runner" not in data and "docker" not in data):
            return data
        if "taskRunner" in data or "task_runner" in data:
            return data  # the current form wins; the deprecated one is only reported
        kind = data.get("runner") or ("DOCKER" if data.get("docker") else None)
        out = dict(data)
        if kind == "PROCESS":
            out["taskRunner"] = {"type": "io.kestra.plugin.core.runner.Process"}
        elif kind == "DOCKER":
            options = dict(data.get("docker") or {})
            image = options.pop("image", None)
            if image is not None and "containerImage" not in data:
                out["containerImage"] = image
            out["taskRunner"] = {"type": "io.kestra.plugin.scripts.runner.docker.Docker",
                                 **options}  # fmt: skip
        return out

    # Files podium writes into the working directory; never collected by `outputFiles`.
    internal_files: ClassVar[tuple[str, ...]] = (CONTEXT_FILE,)

    async def main_commands(self, working_dir: Path) -> list[str]:
        """The command lines that run this task's script (after beforeCommands)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement main_commands()")

    def job_options(self) -> dict[str, Any]:
        """Extra `ScriptJob` fields (dependencies, package manager...) of a task family."""
        return {}

    def default_env(self) -> dict[str, str]:
        return {}

    async def run(self, ctx: RunContext) -> Output:
        working_dir = await ctx.working_dir()
        task = await self._with_local_files(ctx, working_dir)
        return await task._run_in(ctx, working_dir)

    async def _with_local_files(self, ctx: RunContext, working_dir: Path) -> ScriptTask:
        """This task with every `kestra://` URI of its commands or script replaced by the
        path of a local copy in the working directory."""
        update: dict[str, Any] = {}
        copies: dict[str, str] = {}
        for name in ("before_commands", "commands", "script"):
            value = getattr(self, name, None)
            if value is None:
                continue
            texts = [value] if isinstance(value, str) else list(value)
            if not any(_STORAGE_URI.search(text) for text in texts):
                continue
            replaced = [await _localize(ctx, working_dir, text, copies) for text in texts]
            update[name] = replaced[0] if isinstance(value, str) else replaced
        return self.model_copy(update=update) if update else self

    async def _run_in(self, ctx: RunContext, working_dir: Path) -> Output:
        if self.target_os == "WINDOWS":
            raise TaskFailed(
                "targetOS WINDOWS: podium runs scripts on Linux only (the Process runner on "
                "this machine, the Docker runner in Linux containers), where Kestra's Windows "
                "form (CRLF between the commands, no `set -e`) breaks /bin/sh; use AUTO or LINUX",
                non_retryable=True,
            )
        await inject_namespace_files(self.namespace_files, ctx, working_dir)
        await self._write_input_files(ctx, working_dir)
        if self.execution_context:
            await _write_context(ctx, working_dir)
        lines = LineHandler(ctx)
        job = ScriptJob(
            working_dir=working_dir,
            interpreter=self.interpreter,
            commands=[
                *(["set -e"] if self.fail_fast else []),
                *(self.before_commands or []),
                *await self.main_commands(working_dir),
            ],
            env={
                "WORKING_DIR": str(working_dir),
                "PYTHONPATH": _python_path(self.env),
                **self.default_env(),
                **{k: v for k, v in (self.env or {}).items() if k != "PYTHONPATH"},
            },
            on_line=lines,
            image=self.container_image,
            labels={"podium.execution-id": ctx.execution.id, "podium.taskrun-id": ctx.task_run.id},
            python_path=[KESTRA_LIB],
            **self.job_options(),
        )
        try:
            result = await self.task_runner.run(job, ctx)
        finally:
            if self.execution_context:
                await asyncio.shield(
                    asyncio.to_thread((working_dir / CONTEXT_FILE).unlink, missing_ok=True)
                )
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

    async def _write_input_files(self, ctx: RunContext, working_dir: Path) -> None:
        """Each `inputFiles` entry: a stored file (kestra:// URI) copied, or text written."""
        for name, content in (self.input_files or {}).items():
            target = _inside(working_dir, name, "inputFiles")
            source = await ctx.file_path(content) if content.startswith("kestra://") else None

            def write(
                target: Path = target, content: str = content, source: Path | None = source
            ) -> None:
                target.parent.mkdir(parents=True, exist_ok=True)
                if source is not None:
                    shutil.copyfile(source, target)
                else:
                    target.write_text(content, encoding="utf-8")

            await asyncio.to_thread(write)

    async def _collect(self, ctx: RunContext, working_dir: Path) -> dict[str, str]:
        """Files matching `outputFiles` globs, stored; relative path -> kestra:// URI."""
        patterns = [glob_regex("/" + p.lstrip("/")) for p in self.output_files or []]
        internal = set(self.internal_files)

        def matching() -> list[str]:
            # Symbolic links are never followed: a script (or a container) could point one
            # at a host file that podium, not the script, may read.
            found = []
            for directory, _, names in os.walk(working_dir):
                for name in names:
                    path = Path(directory) / name
                    rel = path.relative_to(working_dir).as_posix()
                    if (
                        rel not in internal
                        and not path.is_symlink()
                        and path.is_file()
                        and any(p.match("/" + rel) for p in patterns)
                    ):
                        found.append(rel)
            return sorted(found)

        return {
            rel: await ctx.put_file(working_dir / rel, rel)
            for rel in await asyncio.to_thread(matching)
        }


class LineHandler:
    """Every output line of the script: logged, or applied when it is a protocol line."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.vars: dict[str, Any] = {}
        self.counts: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)

    def __call__(self, stream: Stream, line: str) -> None:
        self.counts[stream] += 1
        text = framed(line)
        if text is None:
            self._log(stream, line)
            return
        try:
            message = parse(text)
        except ProtocolError as exc:
            self._log(stream, line)
            self.ctx.logger.warning(
                f"the line above looks like a Kestra output line "
                f"(::{{...}}::) but was not used: {exc}"
            )
            return
        self.vars.update(message.outputs)
        for metric in message.metrics:
            self.ctx.metric(metric.name, metric.type, metric.value, metric.tags)
        for log in message.logs:
            self.ctx.logger.log(log.level, log.message)

    def _log(self, stream: Stream, line: str) -> None:
        if stream == "stderr":
            self.stderr_tail.append(line)
            self.ctx.logger.warning(line)
        else:
            self.ctx.logger.info(line)

    def failure(self, exit_code: int) -> str:
        """The error of a command that failed: its exit code and the end of its stderr."""
        if exit_code < 0:
            head = f"command was killed by signal {_signal_name(-exit_code)}"
        else:
            head = f"command failed with exit code {exit_code}"
        if not self.stderr_tail:
            return f"{head} (nothing on stderr)"
        return f"{head}; last lines of stderr:\n" + "\n".join(self.stderr_tail)


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


def _inside(root: Path, name: str, what: str) -> Path:
    """`root / name`, refused when the name would leave the working directory (checked on
    the name itself: the working directory is fresh, nothing in it links elsewhere)."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise TaskFailed(
            f"{what}: {name!r} is not a relative path inside the working directory",
            non_retryable=True,
        )
    return root.joinpath(*parts)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Java's glob syntax, which Kestra's patterns use: `*` and `?` stay within a directory,
    `**` crosses directories, `{a,b}` is either, `[...]` a character class (`[!...]` negated)."""
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 1
        elif char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            out.append("(?:")
            depth += 1
        elif char == "}" and depth:
            out.append(")")
            depth -= 1
        elif char == "," and depth:
            out.append("|")
        elif char == "[" and pattern.find("]", i + 2) > 0:
            end = pattern.find("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


async def _localize(ctx: RunContext, working_dir: Path, text: str, copies: dict[str, str]) -> str:
    """`text` with its `kestra://` URIs replaced by local copies (one copy per URI)."""
    for uri in dict.fromkeys(_STORAGE_URI.findall(text)):
        if uri not in copies:
            source = await ctx.file_path(uri)
            name = PurePosixPath(uri).name or "file"

            def copy(source: Path = source, name: str = name) -> Path:
                target = working_dir / name
                if target.exists():  # two stored files of the same name
                    target = working_dir / f"{len(copies)}-{name}"
                shutil.copyfile(source, target)
                return target

            copies[uri] = str(await asyncio.to_thread(copy))
        text = text.replace(uri, copies[uri])
    return text


def _python_path(env: dict[str, str] | None) -> str:
    """The stand-in `kestra` module first, then the task's own PYTHONPATH, if any."""
    extra = (env or {}).get("PYTHONPATH") or os.environ.get("PYTHONPATH")
    return os.pathsep.join(p for p in (str(KESTRA_LIB), extra) if p)


async def _write_context(ctx: RunContext, working_dir: Path) -> None:
    """The file the `kestra` package's `context` reads: the task's variables as JSON."""
    data = {key: ctx.variables[key] for key in CONTEXT_KEYS if key in ctx.variables}
    text = json.dumps(data, default=str)
    await asyncio.to_thread((working_dir / CONTEXT_FILE).write_text, text, encoding="utf-8")
