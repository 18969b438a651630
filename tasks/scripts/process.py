"""The Process task runner: commands run on the host, in their own process group.

`dependencies` are installed into a virtual environment cached under
`<data_dir>/venvs/<key>`, keyed by the base interpreter, the package manager and the
sorted dependency list, so that every later run with the same needs starts at once. Two
runs that need the same new environment build it once: an asyncio lock per key inside a
daemon, an fcntl lock file across daemons sharing the data directory. An environment is
built where it will live (pip writes absolute paths into the scripts it installs, so a
venv cannot be renamed into place) and is usable only once its ready marker exists; a
build cut short leaves no marker and is redone from scratch by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from daemon.sdk.errors import TaskFailed
from tasks.scripts.environment import script_environment
from tasks.scripts.groups import ProcessGroups, close_groups, groups_for, reap
from tasks.scripts.runner import LineSplitter, ScriptJob, ScriptResult, ScriptRunner, Stream

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext, StartupContext

# Real seconds (not the flow clock): a process ignoring SIGTERM gets this long before SIGKILL.
KILL_GRACE = 2.0
# Real seconds between two tries of another daemon's venv lock.
LOCK_POLL = 0.1
READY_MARKER = ".podium-ready"
INSTALL_TAIL = 10

OnLine = Callable[[Stream, str], None]


class Process(ScriptRunner):
    """Run the commands as a child process of podium, with the task's working directory."""

    type: Literal[
        "io.kestra.plugin.core.runner.Process",
        "io.kestra.core.models.tasks.runners.types.ProcessTaskRunner",
    ] = "io.kestra.plugin.core.runner.Process"

    async def run(self, job: ScriptJob, ctx: RunContext) -> ScriptResult:
        env = script_environment(job.env)  # never the daemon's own secrets
        groups = await _groups(ctx)
        argv, cwd, on_line = job.argv(), job.working_dir, job.on_line
        if not job.dependencies:
            return ScriptResult(await run_streaming(argv, cwd, env, on_line, groups))
        if job.dependency_cache:
            venv = await venv_for(job, ctx)
            return ScriptResult(
                await run_streaming(argv, cwd, _activate(env, venv), on_line, groups)
            )
        venv = ctx.data_path("venvs", f"run-{ctx.task_run.id}")
        try:
            await _build(
                job, ctx, venv, await _base_python(job.python_version), await _manager(job, ctx)
            )
            return ScriptResult(
                await run_streaming(argv, cwd, _activate(env, venv), on_line, groups)
            )
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, venv, True))


async def _groups(ctx: RunContext) -> ProcessGroups:
    """This daemon's written-down process groups (tasks/scripts/groups.py), closed with it."""
    data_dir = ctx.data_path()

    async def close() -> None:
        await asyncio.to_thread(close_groups, data_dir)

    ctx.on_close("scripts.process-groups", close)
    return await asyncio.to_thread(groups_for, data_dir)


async def on_daemon_start(ctx: StartupContext) -> None:
    """Kill the script processes a podium killed before left running (groups.py)."""
    await asyncio.to_thread(reap, ctx.data_dir, ctx.logger)


def _activate(env: Mapping[str, str], venv: Path) -> dict[str, str]:
    """What `source bin/activate` does, for a child process."""
    out = {k: v for k, v in env.items() if k != "PYTHONHOME"}
    out["VIRTUAL_ENV"] = str(venv)
    out["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    return out


# -- running a process ------------------------------------------------------------------


async def run_streaming(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    on_line: OnLine,
    groups: ProcessGroups | None = None,
) -> int:
    """Run `argv` in a new session, every output line to `on_line` as it comes; the exit code.

    When the command ends, whatever it left running in its process group is killed (it would
    hold the pipes open); when the caller is cancelled (kill, timeout) the whole group gets
    SIGTERM, then SIGKILL after `KILL_GRACE`, before `CancelledError` goes on. A group
    written down in `groups` is killed too if the daemon dies meanwhile.
    """
    loop = asyncio.get_running_loop()
    lines = _Lines(on_line, loop)
    spawn = asyncio.ensure_future(
        loop.subprocess_exec(
            lambda: lines,
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        # Shielded: a kill landing while the child starts would have asyncio kill the
        # leader alone and wait for the pipes its children keep open (a `sleep 30` run by
        # the shell: the kill took 30 seconds); the whole group goes instead.
        transport, _ = await asyncio.shield(spawn)
    except OSError as exc:
        raise TaskFailed(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    except asyncio.CancelledError:
        await asyncio.shield(_abandon(spawn, lines))
        raise
    pgid = transport.get_pid()
    if groups is not None:
        groups.track(pgid)
    try:
        if groups is not None:
            await asyncio.to_thread(groups.write_down, pgid, True)
        await lines.wait(lines.exited)
        _signal_group(pgid, signal.SIGKILL)
        await lines.wait(lines.closed)
        code = transport.get_returncode()
        assert code is not None
        return code
    except BaseException:
        await asyncio.shield(_terminate(pgid, lines))
        raise
    finally:
        transport.close()
        if groups is not None:
            groups.untrack(pgid)
            await asyncio.shield(asyncio.to_thread(groups.write_down, pgid, False))


class _Lines(asyncio.SubprocessProtocol):
    """The child's pipes, split into lines for `on_line`, and when it exited.

    The leader's exit is its own event (`process_exited`): `Process.wait()` would also wait
    for the pipes, which a forgotten background job can hold open forever.
    """

    def __init__(self, on_line: OnLine, loop: asyncio.AbstractEventLoop) -> None:
        self.on_line = on_line
        self.splitters: dict[int, tuple[Stream, LineSplitter]] = {
            1: ("stdout", LineSplitter()),
            2: ("stderr", LineSplitter()),
        }
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.failed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        name, splitter = self.splitters[fd]
        self._emit(name, splitter.feed(data if isinstance(data, bytes) else data.encode()))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        name, splitter = self.splitters.pop(fd)
        self._emit(name, splitter.close())
        if not self.splitters and not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _emit(self, name: Stream, lines: list[str]) -> None:
        if self.failed.done():
            return
        try:
            for line in lines:
                self.on_line(name, line)
        except Exception as exc:  # the loop would only log it; the run must fail with it
            self.failed.set_exception(exc)

    async def wait(self, event: asyncio.Future[None]) -> None:
        """Until `event`, or raise what a line handler raised."""
        await asyncio.wait([event, self.failed], return_when=asyncio.FIRST_COMPLETED)
        if self.failed.done():
            self.failed.result()


async def _abandon(
    spawn: asyncio.Future[tuple[asyncio.SubprocessTransport, object]], lines: _Lines
) -> None:
    """A command killed while it was starting: once started, its whole group is stopped."""
    try:
        transport, _ = await spawn
    except OSError:
        return
    try:
        await _terminate(transport.get_pid(), lines)
    finally:
        transport.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _terminate(pgid: int, lines: _Lines) -> None:
    _signal_group(pgid, signal.SIGTERM)
    # The whole group has this long: the pipes close when the last of its processes is gone.
    await asyncio.wait([lines.exited, lines.closed], timeout=KILL_GRACE)
    _signal_group(pgid, signal.SIGKILL)
    await asyncio.wait([lines.exited, lines.closed], timeout=KILL_GRACE)
    if lines.failed.done():
        lines.failed.exception()  # seen: the caller is raising already


# -- cached virtual environments --------------------------------------------------------

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_pythons: dict[str | None, tuple[str, str]] = {}


async def venv_for(job: ScriptJob, ctx: RunContext) -> Path:
    """The cached virtual environment with `job.dependencies`, built on first use."""
    base = await _base_python(job.python_version)
    manager = await _manager(job, ctx)
    key = hashlib.sha256(json.dumps([*base, manager, sorted(job.dependencies)]).encode())
    name = key.hexdigest()[:16]
    root = ctx.data_path("venvs")
    venv = root / name
    if await asyncio.to_thread((venv / READY_MARKER).exists):
        return venv
    locks = _locks.setdefault(asyncio.get_running_loop(), {})
    async with locks.setdefault(name, asyncio.Lock()), _file_lock(root / f"{name}.lock", ctx):
        if not await asyncio.to_thread((venv / READY_MARKER).exists):
            await _build(job, ctx, venv, base, manager)
    return venv


@contextlib.asynccontextmanager
async def _file_lock(path: Path, ctx: RunContext) -> AsyncIterator[None]:
    """An exclusive fcntl lock, polled so that waiting for it stays cancellable."""

    def open_lock() -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_CREAT | os.O_RDWR, 0o644)

    fd = await asyncio.to_thread(open_lock)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    ctx.logger.info(
                        "waiting for another podium process building the same virtual environment"
                    )
                    told = True
                await asyncio.sleep(LOCK_POLL)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _manager(job: ScriptJob, ctx: RunContext) -> Literal["PIP", "UV"]:
    if job.package_manager == "UV" and await _uv() is None:
        ctx.logger.warning(
            "uv is not installed (neither on PATH nor beside podium's python); "
            "installing the dependencies with pip"
        )
        return "PIP"
    return job.package_manager


async def _build(
    job: ScriptJob,
    ctx: RunContext,
    venv: Path,
    base: tuple[str, str],
    manager: Literal["PIP", "UV"],
) -> None:
    await asyncio.to_thread(shutil.rmtree, venv, True)  # what a cut-short build left
    await asyncio.to_thread(venv.parent.mkdir, parents=True, exist_ok=True)
    deps = list(job.dependencies)
    ctx.logger.info(
        f"installing {', '.join(deps)} with {manager.lower()} into a new virtual "
        f"environment (Python {base[1]})"
    )
    env = script_environment({})  # the installer runs packages' build code: no secrets
    python = str(venv / "bin" / "python")
    if manager == "UV":
        uv = await _uv()
        assert uv is not None
        env.update(
            UV_CACHE_DIR=str(ctx.data_path("cache", "uv")),
            UV_PYTHON_DOWNLOADS="never",
            UV_NO_PROGRESS="1",
        )
        steps = [
            [uv, "venv", "--python", base[0], str(venv)],
            [uv, "pip", "install", "--python", python, *deps],
        ]
    else:
        env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_PROGRESS_BAR="off")
        steps = [[base[0], "-m", "venv", str(venv)], [python, "-m", "pip", "install", *deps]]
    for argv in steps:
        tail: deque[str] = deque(maxlen=INSTALL_TAIL)

        def log(stream: Stream, line: str, tail: deque[str] = tail) -> None:
            tail.append(line)
            ctx.logger.info(line)

        code = await run_streaming(argv, venv.parent, env, log, await _groups(ctx))
        if code != 0:
            await asyncio.to_thread(shutil.rmtree, venv, True)
            last = "\n".join(tail)
            raise TaskFailed(
                f"installing the dependencies failed: {Path(argv[0]).name} "
                f"exited with code {code}" + (f":\n{last}" if last else "")
            )
    await asyncio.to_thread((venv / READY_MARKER).write_text, "")


async def _base_python(version: str | None) -> tuple[str, str]:
    """(executable, version) of `python<version>` (python3 by default) on PATH.

    Asked of the interpreter itself: PATH may hold a pyenv shim, whose own path says nothing
    about the Python behind it.
    """
    found = _pythons.get(version)
    if found is None:
        name = f"python{version}" if version else "python3"
        lines: list[str] = []
        code = await run_streaming(
            [name, "-c", "import sys; print(sys.executable); print(sys.version.split()[0])"],
            Path("/"),
            script_environment({}),
            lambda _, line: lines.append(line),
        )
        if code != 0 or len(lines) < 2:
            raise TaskFailed(f"{name} cannot run (exit code {code}): {' '.join(lines)[-300:]}")
        found = _pythons[version] = (lines[-2], lines[-1])
    return found


async def _uv() -> str | None:
    """uv on PATH, or installed beside podium's own python (`pip install uv`)."""

    def find() -> str | None:
        beside = Path(sys.executable).parent / "uv"
        return shutil.which("uv") or (str(beside) if beside.is_file() else None)

    return await asyncio.to_thread(find)
