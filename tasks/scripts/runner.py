"""How a script task's commands are run: the runner interface and the job it is handed.

The script tasks (shell, python) build a `ScriptJob` — files in a working directory and
command lines for an interpreter — and hand it to the runner named by `taskRunner`
(`Process` by default, or `Docker`). A runner streams every output line to `on_line` as it
is produced, returns the exit code, and on cancellation (kill, timeout) leaves nothing
running: the process group is killed, the container removed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from daemon.sdk.properties import Model

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext

Stream = Literal["stdout", "stderr"]

# A line longer than this reaches `on_line` in pieces of at most this many bytes: a script
# that prints megabytes without a newline must not grow memory without bound.
MAX_LINE_BYTES = 1024 * 1024


@dataclass
class ScriptJob:
    """Everything a runner needs; paths are on the host."""

    working_dir: Path
    # The interpreter and its arguments; the script file or command string is appended.
    interpreter: Sequence[str]
    # Lines joined into one script file that the interpreter runs (beforeCommands first).
    commands: Sequence[str]
    env: Mapping[str, str]
    on_line: Callable[[Stream, str], None]
    image: str | None = None  # containerImage, for runners that use one
    dependencies: Sequence[str] = ()
    package_manager: Literal["PIP", "UV"] = "PIP"
    labels: Mapping[str, str] = field(default_factory=dict)  # execution, task run ids
    # `pythonVersion` of the python tasks ("3.11"): the interpreter dependencies are installed
    # for; None means the runner's default python3.
    python_version: str | None = None
    # `dependencyCacheEnabled`: False installs the dependencies afresh for this run only.
    dependency_cache: bool = True
    # Host directories on PYTHONPATH (podium's stand-in `kestra` module); a container runner
    # mounts them read-only at the same path.
    python_path: Sequence[Path] = ()

    def argv(self) -> list[str]:
        """The command line, as Kestra builds it: interpreter + the commands as one string."""
        return [*self.interpreter, "\n".join(self.commands)]


@dataclass
class ScriptResult:
    exit_code: int
    # What the runner reports about the run (Docker: `containerId`), Kestra's `taskRunner`
    # output of a script task.
    details: Mapping[str, Any] | None = None


class ScriptRunner(Model):
    """Base of the `taskRunner:` models (`Process` in process.py, `Docker` in docker.py);
    the script tasks choose between them by `type:`."""

    type: str

    async def run(self, job: ScriptJob, ctx: RunContext) -> ScriptResult:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")


class LineSplitter:
    """Bytes as they arrive -> complete text lines, for runners reading a pipe or a log stream.

    A line is cut at `max_bytes` (on a UTF-8 character boundary) rather than held until its
    newline comes; undecodable bytes become U+FFFD instead of failing the task.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_bytes

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        lines: list[str] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            lines.append(_text(self._buffer[:end]))
            del self._buffer[: end + 1]
        while len(self._buffer) > self._max:
            cut = self._max
            while cut > 0 and (self._buffer[cut] & 0xC0) == 0x80:  # cut at a character's start
                cut -= 1
            cut = cut or self._max
            lines.append(_text(self._buffer[:cut]))
            del self._buffer[:cut]
        return lines

    def close(self) -> list[str]:
        """What is left once the stream ended: a last line without its newline."""
        if not self._buffer:
            return []
        rest = _text(self._buffer)
        self._buffer.clear()
        return [rest]


def _text(raw: bytes | bytearray) -> str:
    return raw.removesuffix(b"\r").decode("utf-8", errors="replace")
