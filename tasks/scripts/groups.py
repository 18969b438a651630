"""Script processes die with the daemon, even when it is killed with SIGKILL.

Each script runs in a process group of its own (`start_new_session`); a daemon that stops
normally kills the groups of the tasks it cancels. A daemon killed with SIGKILL cannot:
its scripts would run on beside the retry of their task. So the daemon writes the groups
it runs down in `<data>/process-groups/<host>~<boot id>~<pid>~<start>.groups` (one line
per group: pgid and the start time of its leader), and two things read that file:

* a small `sh` watcher, started before the first group, in a session of its own: the
  daemon tells it each group as it starts and ends, on a pipe whose only writer is the
  daemon. When the daemon dies, however it dies, the kernel closes the pipe, and the
  watcher kills every group it was told of and not told the end of.
  `prctl(PR_SET_PDEATHSIG)` would reach only the direct child (a shell's own children
  would survive it) and fires when the *thread* that forked exits, not the process;
* `on_daemon_start` (tasks/scripts/process.py): what a previous run left, should its
  watcher have died too (the OOM killer, a `kill -9` of both), is killed at start.

A pgid is only the id of a group: by the time a file is read at start the number may
belong to someone else. A group is killed only while it is provably the one written down:
its leader still runs with the start time written down, or its leader is gone and the
group lives on (Linux never gives a pid away while a group of that id exists).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER = "process-groups"

# Reads "+pgid" / "-pgid" lines from the daemon until its end of the pipe closes, then
# kills the groups still listed. Builtins only: it must not depend on anything but `sh`.
_WATCHER = """
groups=""
while read -r line; do
  pgid=${line#?}
  case $line in
    +*) groups="$groups $pgid" ;;
    -*) kept=""; for g in $groups; do [ "$g" = "$pgid" ] || kept="$kept $g"; done
        groups=$kept ;;
  esac
done
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
"""


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])


def _group_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


class ProcessGroups:
    """The groups one daemon runs, told to its watcher and written down for the next start.

    `start_watcher`, `write_down` and `close` block (call them through
    `asyncio.to_thread`); `track` and `untrack` only write a line to a non-blocking pipe,
    on the loop, right after the spawn: no window in which a group is nobody's."""

    def __init__(self, data_dir: Path) -> None:
        me = os.getpid()
        self.file = data_dir / FOLDER / f"{_machine()}~{me}~{start_time(me)}.groups"
        self._groups: dict[int, int | None] = {}
        self._watcher: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start_watcher(self) -> None:
        with self._lock:
            if self._watcher is None:
                self._watcher = subprocess.Popen(
                    ["sh", "-c", _WATCHER, "podium-process-groups", str(self.file)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                assert self._watcher.stdin is not None
                os.set_blocking(self._watcher.stdin.fileno(), False)

    def track(self, pgid: int) -> None:
        self._tell(f"+{pgid}\n")

    def untrack(self, pgid: int) -> None:
        self._tell(f"-{pgid}\n")

    def write_down(self, pgid: int, running: bool) -> None:
        """Add or remove `pgid` in the file the next start reads."""
        with self._lock:
            if running:
                self._groups[pgid] = start_time(pgid)
            elif self._groups.pop(pgid, 0) == 0:
                return
            tmp = self.file.with_suffix(".tmp")
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text("".join(f"{g} {t}\n" for g, t in self._groups.items()))
                os.replace(tmp, self.file)  # never half a file
            except OSError as exc:
                # Bookkeeping for the next start's reaper (the watcher covers this run): a
                # full or read-only disk must not fail the task whose group it records.
                log.warning("process groups not written down in %s: %s", self.file, exc)
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """The daemon stops: the watcher ends (killing what is left, nothing normally)."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            assert watcher.stdin is not None
            watcher.stdin.close()
            watcher.wait()
        self.file.unlink(missing_ok=True)

    def _tell(self, line: str) -> None:
        watcher = self._watcher
        if watcher is None or watcher.stdin is None:
            return
        try:
            os.write(watcher.stdin.fileno(), line.encode())
        except OSError as exc:  # a watcher gone or stuck: the next start still reaps
            log.warning("cannot tell the process-group watcher about %s: %s", line.strip(), exc)


_registries: dict[Path, ProcessGroups] = {}
_registries_lock = threading.Lock()


def groups_for(data_dir: Path) -> ProcessGroups:
    """This process's registry for a data directory (one per daemon running on it), its
    watcher started. Blocking."""
    with _registries_lock:
        found = _registries.get(data_dir)
        if found is None:
            found = _registries[data_dir] = ProcessGroups(data_dir)
    found.start_watcher()
    return found


def close_groups(data_dir: Path) -> None:
    with _registries_lock:
        found = _registries.pop(data_dir, None)
    if found is not None:
        found.close()


def reap(data_dir: Path, log: logging.Logger) -> int:
    """Kill the groups that daemons no longer running left behind; how many. Blocking."""
    folder = data_dir / FOLDER
    if not folder.is_dir():
        return 0
    killed = 0
    host, boot = _machine().split("~")
    for file in folder.glob("*.groups"):
        parts = file.stem.split("~")
        if len(parts) != 4 or parts[0] != host:
            continue  # another machine's daemon, on a shared data directory: not ours
        if parts[1] == boot:
            pid, started = parts[2], parts[3]
            if pid.isdigit() and str(start_time(int(pid))) == started:
                continue  # its daemon still runs (this one, or another on the same data)
            killed += _kill_left(file, log)
        file.unlink(missing_ok=True)  # dealt with; or a previous boot's, long gone
    return killed


def _kill_left(file: Path, log: logging.Logger) -> int:
    killed = 0
    with contextlib.suppress(OSError):
        for line in file.read_text().splitlines():
            pgid, _, leader = line.partition(" ")
            if pgid.isdigit() and _still_ours(int(pgid), leader):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pgid), signal.SIGKILL)
                    killed += 1
                    log.warning(
                        "killed process group %s, left running by a podium that stopped "
                        "without stopping its script tasks",
                        pgid,
                    )
    return killed


def _machine() -> str:
    """`host~boot id`: a pid means something only on its machine, during its boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
    except OSError:
        boot_id = "unknown"
    return f"{socket.gethostname().replace('~', '-')}~{boot_id}"


def _still_ours(pgid: int, leader_start: str) -> bool:
    now = start_time(pgid)
    if now is not None:  # the leader (or a process that took its pid) runs
        return str(now) == leader_start and _group_of(pgid) == pgid
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _group_of(int(entry.name)) == pgid:
                return True
    return False
