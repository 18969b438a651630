"""Shell tasks: `shell.Commands` (command lines) and `shell.Script` (a multi-line script)."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from daemon.sdk.properties import Dynamic, JsonText
from tasks.scripts.base import CONTEXT_FILE, ScriptTask

SCRIPT_FILE = ".script.sh"


class Commands(ScriptTask):
    """Run shell command lines, `beforeCommands` first, through the interpreter (`sh -c`)."""

    types = ("io.kestra.plugin.scripts.shell.Commands",)

    commands: Annotated[list[str], Dynamic, JsonText] = Field(min_length=1)
    container_image: Annotated[str | None, Dynamic] = "ubuntu"

    async def main_commands(self, working_dir: Path) -> list[str]:
        return list(self.commands)


class Script(ScriptTask):
    """Run a multi-line shell script, written to a file and run by the interpreter's shell."""

    types = ("io.kestra.plugin.scripts.shell.Script",)
    internal_files: ClassVar[tuple[str, ...]] = (CONTEXT_FILE, SCRIPT_FILE)

    script: Annotated[str, Dynamic]
    container_image: Annotated[str | None, Dynamic] = "ubuntu"

    async def main_commands(self, working_dir: Path) -> list[str]:
        await asyncio.to_thread(
            (working_dir / SCRIPT_FILE).write_text, self.script, encoding="utf-8"
        )
        return [f"{shlex.quote(self.interpreter[0])} {SCRIPT_FILE}"]
