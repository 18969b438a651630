"""The watching half of `triggers/fs.py`: watchdog events and scans in, settled files out.

A file is settled once it has stopped changing (size, mtime, inode, re-stat'ed) for
`stable_for` and no writer is known to hold it open. inotify's IN_CLOSE_WRITE is the
writer saying "done"; it is a hint, never proof: a writer may close and reopen, so the
stat must still be quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from daemon.sdk.clock import Clock
from daemon.sdk.errors import PodiumError
from triggers.fs_safe import Fingerprint, Tree, fingerprint

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver

# A file modified and not yet closed is still being written: it waits for the close, or for
# this much quiet when a writer keeps it open without writing (a pause longer than
# `stableFor` must not pass for the end of a slow copy).
OPEN_WRITER_QUIET = timedelta(seconds=60)
# inotify reports closes; FSEvents and the polling observers do not, and there the close
# cannot be waited for: stat stability alone decides.
_CLOSE_REPORTED = sys.platform.startswith("linux")
_READ_CHUNK = 1 << 20

Settled = list[tuple[str, os.stat_result]]


class WatchError(PodiumError):
    """A directory the trigger may not or cannot use; the supervisor logs it and stops it."""


@dataclass
class _Pending:
    writing: bool  # modified and not closed since: a writer may still be at it
    fingerprint: Fingerprint | None = None
    since: datetime | None = None  # when the fingerprint last changed


class Watcher:
    """One watched directory: settled files (or, in deletion mode, deleted ones) as they come.

    `changes=False` is the deletion mode: no scans, no stability waits, only deletions.
    """

    def __init__(
        self,
        tree: Tree,
        recursive: bool,
        wanted: Callable[[str], bool],
        stable_for: timedelta,
        rescan: timedelta,
        clock: Clock,
        *,
        changes: bool,
    ) -> None:
        self.tree = tree
        self.root = tree.root
        self.recursive = recursive
        self.wanted = wanted
        self.stable_for = stable_for
        self.rescan = rescan
        self.clock = clock
        self.changes = changes
        self.pending: dict[str, _Pending] = {}
        self.known: dict[str, Fingerprint] = {}  # as last settled: rescans skip these
        self.deletions: list[str] = []
        self.new_dirs: set[str] = set()  # created while watched
        self.wake = asyncio.Event()

    @contextlib.asynccontextmanager
    async def observing(self) -> AsyncIterator[None]:
        """The watchdog observer thread runs inside this block, and is joined after it."""
        observer = await asyncio.to_thread(self._observer, asyncio.get_running_loop())
        try:
            await asyncio.to_thread(_start, observer, self.root)
            yield
        finally:
            await asyncio.to_thread(_stop, observer)

    async def run(
        self,
        settled: Callable[[Settled], Awaitable[set[str]]],
        deleted: Callable[[str], Awaitable[None]],
        caught_up: Callable[[], None],
    ) -> None:
        """Forever: catch up with what is there (then `caught_up()`), hand over files as they
        settle. A file found by a scan has no known writer: only `stable_for` holds it.
        `settled` returns the paths to offer again at the next scan (their execution could
        not be created for a passing reason, a full disk)."""
        next_scan = self.clock.now()
        if self.changes:
            await self._scan()
            next_scan += self.rescan
        caught_up()
        while True:
            self.wake.clear()
            if self.changes and self.clock.now() >= next_scan:
                await self._scan()
                next_scan = self.clock.now() + self.rescan
            while self.deletions:
                await deleted(self.deletions.pop(0))
            ready = await self._settle() if self.pending else []
            if ready:
                again = await settled(ready)
                for path, st in ready:
                    if path not in again:
                        self.known[path] = fingerprint(st)
                continue
            await self._sleep(self._next_due(next_scan))

    # -- events (on the loop, handed over by the observer thread) ---------------------------

    def _observer(self, loop: asyncio.AbstractEventLoop) -> BaseObserver:
        from watchdog.events import (
            DirCreatedEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        on_event = self._on_event

        class Relay(FileSystemEventHandler):
            def dispatch(self, event: FileSystemEvent) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                    loop.call_soon_threadsafe(on_event, event)

        observer = Observer()
        kinds = [
            FileCreatedEvent,
            FileModifiedEvent,
            FileClosedEvent,
            FileMovedEvent,
            FileDeletedEvent,
            DirCreatedEvent,
        ]
        observer.schedule(Relay(), self.root, recursive=self.recursive, event_filter=kinds)
        return observer

    def _on_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if kind == "created":
                self.new_dirs.add(src)
            return
        if kind in ("deleted", "moved"):
            self._gone(src)
            if kind == "moved":
                self._touch(os.fsdecode(event.dest_path), writing=False)
        elif kind == "closed":
            self._touch(src, writing=False)
        elif kind == "created":
            # In a directory that has just appeared, watchdog reports the files it finds
            # there as created; their writers may be long gone, and no close will follow.
            self._touch(src, writing=_CLOSE_REPORTED and os.path.dirname(src) not in self.new_dirs)
        else:
            self._touch(src, writing=_CLOSE_REPORTED)

    def _touch(self, path: str, *, writing: bool) -> None:
        if not self.changes or not self.wanted(path):
            return
        entry = self.pending.get(path)
        if entry is None:
            self.pending[path] = _Pending(writing)
        else:
            entry.writing = writing
        self.wake.set()

    def _gone(self, path: str) -> None:
        self.pending.pop(path, None)
        self.known.pop(path, None)
        if not self.changes and self.wanted(path):
            self.deletions.append(path)
            self.wake.set()

    # -- settling --------------------------------------------------------------------------

    async def _scan(self) -> None:
        try:
            found = await asyncio.to_thread(_list_files, self.root, self.recursive)
        except FileNotFoundError:
            raise WatchError(f"directory {self.root} disappeared") from None
        for path, print_ in found:
            if path not in self.pending and self.known.get(path) != print_ and self.wanted(path):
                self.pending[path] = _Pending(writing=False)

    async def _settle(self) -> Settled:
        """Re-stat every pending file; return those quiet long enough, oldest first."""
        stats = await asyncio.to_thread(_lstat_all, self.tree, list(self.pending))
        now = self.clock.now()
        ready = []
        for path, st in stats.items():
            entry = self.pending.get(path)
            if entry is None:
                continue
            if st is None or not stat.S_ISREG(st.st_mode):
                del self.pending[path]
                continue
            print_ = fingerprint(st)
            if print_ != entry.fingerprint or entry.since is None:
                entry.fingerprint, entry.since = print_, now
            if now - entry.since >= self._quiet_needed(entry):
                del self.pending[path]
                ready.append((path, st))
        ready.sort(key=lambda item: (item[1].st_mtime_ns, item[0]))
        return ready

    def _quiet_needed(self, entry: _Pending) -> timedelta:
        return max(self.stable_for, OPEN_WRITER_QUIET) if entry.writing else self.stable_for

    def _next_due(self, next_scan: datetime) -> float:
        due = next_scan if self.changes else self.clock.now() + self.rescan
        for entry in self.pending.values():
            if entry.since is None:
                return 0.0
            due = min(due, entry.since + self._quiet_needed(entry))
        return max((due - self.clock.now()).total_seconds(), 0.0)

    async def _sleep(self, seconds: float) -> None:
        """Until an event arrives or `seconds` pass on the clock."""
        waker = asyncio.ensure_future(self.wake.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()


# -- blocking helpers (run through asyncio.to_thread) ---------------------------------------


def sha256_of(tree: Tree, path: str, expected: Fingerprint) -> str | None:
    """The content hash; None when the file is gone, is no longer the one that settled, or
    is reached through a symlink (which never leads out of the allowed paths)."""
    fd = tree.open(path, expected)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as file:
        digest = hashlib.sha256()
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
        if fingerprint(os.fstat(fd)) != expected:
            return None
    return digest.hexdigest()


def _start(observer: BaseObserver, root: str) -> None:
    try:
        observer.start()
    except OSError as exc:  # e.g. the inotify watch limit
        raise WatchError(f"cannot watch {root}: {exc}") from None


def _stop(observer: BaseObserver) -> None:
    observer.stop()
    if observer.ident is not None:  # it was started
        observer.join()


def _lstat_all(tree: Tree, paths: list[str]) -> dict[str, os.stat_result | None]:
    """No symlink is followed, the last component or any directory on the way: a file
    reached through one is none of the trigger's (see fs_safe)."""
    return {path: tree.lstat(path) for path in paths}


def _list_files(root: str, recursive: bool) -> list[tuple[str, Fingerprint]]:
    if not os.path.isdir(root):
        raise FileNotFoundError(root)
    found = []
    for directory, _, names in _walk(root, recursive):
        for name in names:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode):
                    found.append((path, fingerprint(st)))
    return found


def _walk(root: str, recursive: bool) -> Iterator[tuple[str, list[str], list[str]]]:
    for entry in os.walk(root):  # does not follow symlinked directories
        yield entry
        if not recursive:
            return
