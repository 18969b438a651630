"""Wall time and peak memory of a command, measured as a fresh process.

A child's own `ru_maxrss` counts the memory of the process it was forked from (the pages
it shares until it execs), so a bench that forks `podium run` from a Python process that
has imported podium reports podium's memory plus its own. GNU time forks from a process
that holds nearly nothing: its figure is the command's alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    peak_mb: float  # maximum resident set size of the command
    exit_code: int
    stdout: bytes


def measured(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run `argv` under GNU time; its stdout is captured, its stderr passed through."""
    if not (Path(TIME).is_file() and shutil.which(TIME)):
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", report.name, *argv],
            stdout=subprocess.PIPE,
            env=env if env is not None else dict(os.environ),
            cwd=cwd,
            check=False,
        )
        wall = time.perf_counter() - started
        kilobytes = int(report.read().strip().splitlines()[-1])
    return Measured(wall, kilobytes / 1024, done.returncode, done.stdout)
