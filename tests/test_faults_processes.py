"""Script processes die with a `podium serve` killed by SIGKILL (issue #13 finding 9).

A shell task runs `sleep` as a child of its shell (the shell's own child, which
PR_SET_PDEATHSIG on the shell would not reach). Killed with SIGKILL, podium cannot stop
its task: the watcher it started kills the task's process group at once; and should the
watcher have been killed too, the next start kills what was left. Kestra runs scripts in
containers or as processes of its worker (plugin-scripts `ProcessTaskRunner`); a worker
killed there leaves its processes to the OS: the guarantee is podium's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
from pathlib import Path

from tasks.scripts.groups import FOLDER, _machine, reap, start_time
from tests.daemon_process import ServeProcess
from tests.harness import eventually


def pids_of(*argv: str) -> list[int]:
    """Processes whose command line is exactly `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                    if cmdline.read() == wanted:
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    """Running (a zombie has ended: only its parent's wait is missing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


async def start_sleeping(tmp_path: Path) -> tuple[ServeProcess, int, str]:
    """podium serve running a task whose `sleep` is under way: (daemon, sleep's pid, arg)."""
    seconds = str(random.randrange(500_000, 900_000))
    flows, data = tmp_path / "flows", tmp_path / "data"
    await asyncio.to_thread(flows.mkdir)
    await asyncio.to_thread(
        (flows / "sleepy.yaml").write_text,
        "id: sleepy\nnamespace: faults\ntasks:\n"
        "  - id: wait\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    taskRunner:\n      type: io.kestra.plugin.core.runner.Process\n"
        f"    commands:\n      - sleep {seconds}\n      - echo done\n",
    )
    daemon = await asyncio.to_thread(ServeProcess, tmp_path, flows, data)
    await asyncio.to_thread(daemon.start)
    await asyncio.to_thread(daemon.create_execution, "faults", "sleepy")
    found: list[int] = []

    async def sleeping() -> bool:
        nonlocal found
        found = await asyncio.to_thread(pids_of, "sleep", seconds)
        return bool(found)

    await eventually(sleeping, "the task's sleep", timeout=30)
    return daemon, found[0], seconds


async def test_script_processes_die_with_a_daemon_killed_by_sigkill(tmp_path: Path) -> None:
    daemon, pid, seconds = await start_sleeping(tmp_path)
    try:
        await asyncio.to_thread(daemon.kill)

        async def gone() -> bool:
            return not await asyncio.to_thread(alive, pid)

        await eventually(gone, f"the end of the task's sleep (pid {pid})", timeout=15)
    finally:
        for left in await asyncio.to_thread(pids_of, "sleep", seconds):
            os.kill(left, signal.SIGKILL)


async def test_script_processes_a_killed_daemon_left_are_killed_at_the_next_start(
    tmp_path: Path,
) -> None:
    daemon, pid, seconds = await start_sleeping(tmp_path)
    again: ServeProcess | None = None
    folder = tmp_path / "data" / "process-groups"

    async def written_down() -> bool:
        files = await asyncio.to_thread(lambda: list(folder.glob("*.groups")))
        return bool(files) and bool(await asyncio.to_thread(files[0].read_text))

    try:
        await eventually(written_down, "the task's process group written down")
        # The watcher too, as when the OOM killer takes both: only the next start is left.
        (groups,) = await asyncio.to_thread(lambda: list(folder.glob("*.groups")))
        watchers = await asyncio.to_thread(lambda: [p for p in all_pids() if str(groups) in p[1]])
        assert watchers, "no watcher of the process groups"
        for watcher, _ in watchers:
            os.kill(watcher, signal.SIGKILL)
        await asyncio.to_thread(daemon.kill)
        assert await asyncio.to_thread(alive, pid)

        again = await asyncio.to_thread(ServeProcess, tmp_path, daemon.flows, daemon.data)
        await asyncio.to_thread(again.start)
        await asyncio.to_thread(again.wait_line, "killed process group")
        assert not await asyncio.to_thread(alive, pid)
    finally:
        if again is not None:
            await asyncio.to_thread(again.kill)  # its watcher ends the resumed sleep
        for left in await asyncio.to_thread(pids_of, "sleep", seconds):
            os.kill(left, signal.SIGKILL)


def all_pids() -> list[tuple[int, str]]:
    """(pid, command line with spaces) of every process."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                    found.append((int(entry.name), cmdline.read().replace(b"\0", b" ").decode()))
            except OSError:
                continue
    return found


def test_the_start_reaper_kills_only_the_groups_provably_left_behind(tmp_path: Path) -> None:
    """A pgid written down by a dead podium may name someone else's group by the next start
    (pids are reused): the group is killed only while its leader runs with the start time
    written down. podium's own (tasks/scripts/groups.py)."""
    leader = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        folder = tmp_path / FOLDER
        folder.mkdir()
        dead = folder / f"{_machine()}~999999999~1.groups"  # a podium gone
        dead.write_text(f"{leader.pid} {start_time(leader.pid) + 1}\n")  # not this leader
        assert reap(tmp_path, logging.getLogger("test")) == 0
        assert leader.poll() is None
        dead.write_text(f"{leader.pid} {start_time(leader.pid)}\n")
        alive_file = folder / f"{_machine()}~{os.getpid()}~{start_time(os.getpid())}.groups"
        alive_file.write_text(f"{leader.pid} {start_time(leader.pid)}\n")  # a live podium's
        other_host = folder / "elsewhere~boot~1~1.groups"
        other_host.write_text(f"{leader.pid} {start_time(leader.pid)}\n")
        assert reap(tmp_path, logging.getLogger("test")) == 1
        assert leader.wait(timeout=10) == -signal.SIGKILL
        assert not dead.exists()
        assert alive_file.exists() and other_host.exists()
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
