"""Python tasks: `python.Script` (inline code) and `python.Commands` (command lines).

`dependencies` are installed by the runner before the script runs: into a cached virtual
environment with the Process runner, inside the container with the Docker runner.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from daemon.sdk.properties import Dynamic, JsonText
from tasks.scripts.base import CONTEXT_FILE, ScriptTask

SCRIPT_FILE = ".script.py"
DEFAULT_IMAGE = "python:3.13-slim"  # Kestra's default for its python tasks


class PythonTask(ScriptTask):
    """The properties Kestra's python tasks add to every script task."""

    dependencies: Annotated[list[str] | None, Dynamic, JsonText] = None
    package_manager: Literal["PIP", "UV"] = "UV"
    python_version: Annotated[str | None, Dynamic] = None
    dependency_cache_enabled: Annotated[bool, Dynamic] = True
    container_image: Annotated[str | None, Dynamic] = DEFAULT_IMAGE

    def job_options(self) -> dict[str, Any]:
        return {
            "dependencies": list(self.dependencies or []),
            "package_manager": self.package_manager,
            "python_version": self.python_version,
            "dependency_cache": self.dependency_cache_enabled,
        }

    def default_env(self) -> dict[str, str]:
        # print() into a pipe is block-buffered: lines would reach the logs only at the end.
        return {"PYTHONUNBUFFERED": "1"}


class Script(PythonTask):
    """Run inline Python code, written to a file in the working directory."""

    types = ("io.kestra.plugin.scripts.python.Script",)
    internal_files: ClassVar[tuple[str, ...]] = (CONTEXT_FILE, SCRIPT_FILE)

    script: Annotated[str, Dynamic]

    async def main_commands(self, working_dir: Path) -> list[str]:
        await asyncio.to_thread(
            (working_dir / SCRIPT_FILE).write_text, self.script, encoding="utf-8"
        )
        return [f"python {SCRIPT_FILE}"]


class Commands(PythonTask):
    """Run command lines (`python main.py`...) with the task's Python environment."""

    types = ("io.kestra.plugin.scripts.python.Commands",)

    commands: Annotated[list[str], Dynamic, JsonText] = Field(min_length=1)

    async def main_commands(self, working_dir: Path) -> list[str]:
        return list(self.commands)
