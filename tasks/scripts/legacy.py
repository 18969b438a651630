"""Kestra's script tasks before its script plug-in (0.x, `io.kestra.core.tasks.scripts.*`):
`Bash` and `Python`, still found in older flows and blueprints.

What they do, as Kestra's AbstractBash, BashService, AbstractPython and Python did:
- `commands` run as one script through `interpreter` + `interpreterArgs` (`/bin/sh -c`),
  after `set -o errexit` unless `exitOnFailed: false`;
- `outputFiles` (or the older `outputsFiles`, `files`) name files, not globs: each name gets
  an empty file `<name>_<random>` in the working directory, its path is
  `{{ outputFiles.<name> }}` (also `{{ temp.<name> }}`) in `commands` and `inputFiles`, and
  once the commands ended it is stored: `outputs.<task>.outputFiles.<name>` (and `files`);
- `commands` and `inputFiles` are rendered when the task runs, with `{{ workingDir }}` and
  those paths besides the execution's variables;
- `runner: DOCKER` with `dockerOptions` runs them in a container;
- outputs are `exitCode`, `stdOutLineCount`, `stdErrLineCount` and `vars` (the
  `::{"outputs": ...}::` lines), as today's script tasks.

`Python` runs `./bin/python main.py` (plus `args`) with `main.py` from `inputFiles`, and
`requirements` installed. Kestra made a fresh virtualenv in the working directory for each
run; podium runs them with its Python environment (the task runner's cached environment
holding `requirements`, as `python.Commands` with `dependencies`), and `./bin/python` and
`./bin/pip` in the working directory are that environment's.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, model_validator

from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Deprecated, Dynamic, JsonText
from tasks.scripts.base import ScriptTask
from tasks.scripts.python import PythonTask

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext

# dockerOptions' names -> the Docker task runner's
_DOCKER_OPTIONS = {"dockerHost": "host", "dockerConfig": "config"}
SHIMS = {
    "bin/python": '#!/bin/sh\nexec python "$@"\n',
    "bin/pip": '#!/bin/sh\nexec python -m pip "$@"\n',
}


class LegacyScript(ScriptTask):
    """What Bash and Python share: AbstractBash's properties, mapped onto ScriptTask's."""

    superseded_by: ClassVar[str | None] = (
        "use 'io.kestra.plugin.scripts.shell.Commands' or "
        "'io.kestra.plugin.scripts.python.Commands' (outputFiles are globs there)"
    )

    # Rendered when the task runs, with workingDir and the output files' paths.
    commands: Annotated[list[str], JsonText] = Field(min_length=1)
    input_files: Annotated[dict[str, str] | None, JsonText] = None
    output_files: list[str] | None = None
    outputs_files: Annotated[list[str] | None, Deprecated("use 'outputFiles'")] = None
    files: Annotated[list[str] | None, Deprecated("use 'outputFiles'")] = None
    docker_options: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_form(cls, data: Any) -> Any:
        """`interpreter` + `interpreterArgs`, `exitOnFailed` and `dockerOptions`, as the
        script tasks of today write them."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        interpreter = out.get("interpreter", "/bin/sh")
        if isinstance(interpreter, str):
            args = out.pop("interpreterArgs", ["-c"])
            out["interpreter"] = [interpreter, *(args if isinstance(args, list) else [args])]
        if "exitOnFailed" in out:
            out["failFast"] = out.pop("exitOnFailed")
        options = out.get("dockerOptions")
        if isinstance(options, dict) and out.get("runner") == "DOCKER" and "docker" not in out:
            out["docker"] = {_DOCKER_OPTIONS.get(k, k): v for k, v in options.items()}
        return out

    def named_files(self) -> list[str]:
        names = [*(self.output_files or []), *(self.outputs_files or []), *(self.files or [])]
        for name in names:
            if name.startswith(("./", "..", "/")):
                raise TaskFailed(
                    f"outputFiles: only a relative name is allowed, not '{name}'",
                    non_retryable=True,
                )
        return list(dict.fromkeys(names))

    async def main_commands(self, working_dir: Path) -> list[str]:
        return list(self.commands)

    async def rendered(self, ctx: RunContext, extra: dict[str, Any]) -> dict[str, Any]:
        """The properties rendered when the task runs, with `extra` (Python adds `args`)."""
        return {
            "commands": [str(c) for c in await ctx.render_async(self.commands, extra)],
            "input_files": await ctx.render_async(self.input_files, extra),
        }

    async def run(self, ctx: RunContext) -> Output:
        working_dir = await ctx.working_dir()
        names = self.named_files()

        def create() -> dict[str, Path]:
            made = {}
            for name in names:
                path = working_dir / f"{name}_{secrets.token_hex(8)}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                made[name] = path
            return made

        paths = await asyncio.to_thread(create)
        named = {name: str(path) for name, path in paths.items()}
        extra = {"workingDir": str(working_dir), "outputFiles": named, "temp": named}
        unset = {"output_files": None, "outputs_files": None, "files": None}
        rendered = self.model_copy(update={**await self.rendered(ctx, extra), **unset})
        await rendered.prepare(working_dir)
        task = await rendered._with_local_files(ctx, working_dir)
        outputs = dict(await task._run_in(ctx, working_dir) or {})
        stored = {name: await ctx.put_file(path) for name, path in paths.items()}
        if stored:
            outputs["outputFiles"] = stored
            outputs["files"] = stored
        return outputs

    async def prepare(self, working_dir: Path) -> None:
        """What the working directory needs besides inputFiles (Python: ./bin/python)."""


class Bash(LegacyScript):
    """`io.kestra.core.tasks.scripts.Bash`: shell commands."""

    types = ("io.kestra.core.tasks.scripts.Bash",)


class Python(LegacyScript, PythonTask):
    """`io.kestra.core.tasks.scripts.Python`: `main.py` of `inputFiles`, with `requirements`."""

    types = ("io.kestra.core.tasks.scripts.Python",)

    commands: Annotated[list[str], JsonText] = Field(
        default_factory=lambda: ["./bin/python main.py"], min_length=1
    )
    args: Annotated[list[str] | None, JsonText] = None
    requirements: Annotated[list[str] | None, Dynamic, JsonText] = None
    python_path: Annotated[str, Dynamic] = "python"

    @model_validator(mode="after")
    def _needs_main(self) -> Python:
        if self.commands == ["./bin/python main.py"] and "main.py" not in (self.input_files or {}):
            raise ValueError(
                "inputFiles must hold a main.py key with the Python code to run (or set commands)"
            )
        return self

    def job_options(self) -> dict[str, Any]:
        options = super().job_options()
        options["dependencies"] = list(self.requirements or [])
        return options

    async def rendered(self, ctx: RunContext, extra: dict[str, Any]) -> dict[str, Any]:
        """Each command with `args` after it, as Kestra's `./bin/python main.py {{args}}`."""
        out = await super().rendered(ctx, extra)
        args = [str(a) for a in await ctx.render_async(self.args or [], extra)]
        out["commands"] = [" ".join([command, *args]) for command in out["commands"]]
        return out

    async def prepare(self, working_dir: Path) -> None:
        python = self.python_path

        def shims() -> None:
            for name, text in SHIMS.items():
                path = working_dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                text = text.replace("exec python", f"exec {python}")
                path.write_text(text, encoding="utf-8")
                os.chmod(path, 0o755)

        await asyncio.to_thread(shims)
