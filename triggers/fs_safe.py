"""File operations under a watched directory that never follow a symlink, anywhere.

Checking a path once and then using it by name is a race an uploader wins: after a
recursive trigger has seen `sub/x`, `sub` can be swapped for a symlink to a directory
outside the allowed paths, and `open("root/sub/x")`, `unlink` or `rename` would act on
the outside file. Here every directory is opened one component at a time from `/` over
its resolved path with `O_NOFOLLOW`, and the file itself relative to that directory's fd:
a symlink met on the way is an error (ELOOP or ENOTDIR), never a detour. What is opened
is checked again against the fingerprint (size, mtime, inode, device) the watcher saw,
so a file swapped between the check and the use is refused too.

Symlinks under a watched directory are never followed, as `os.walk` already did for the
scans: a file reached through one is not a file of the trigger. Every function blocks:
call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

Fingerprint = tuple[int, int, int, int]  # size, mtime_ns, inode, device

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for the file must not block the thread on open.
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def fingerprint(st: os.stat_result) -> Fingerprint:
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


class Tree:
    """A watched directory, by the path the flow names and by its resolved path."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.real = os.path.realpath(root)

    def parts(self, path: str) -> tuple[str, str]:
        """(resolved parent directory, name) of a path under the root; ValueError outside."""
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel.startswith("..") or os.path.isabs(rel):
            raise ValueError(f"{path} is not under {self.root}")
        parent, name = os.path.split(rel)
        return os.path.join(self.real, parent) if parent else self.real, name

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry itself, reached without a symlink; None when there is none."""
        try:
            parent, name = self.parts(path)
            with opened_dir(parent) as fd:
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (OSError, ValueError):
            return None

    def open(self, path: str, expected: Fingerprint) -> int | None:
        """A read-only fd on the regular file `path` if it is still the one that settled
        (`expected`); None when it is gone, changed, or reached through a symlink."""
        try:
            parent, name = self.parts(path)
        except ValueError:
            return None
        try:
            with opened_dir(parent) as dir_fd:
                fd = os.open(name, _FILE, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _NOT_OURS:
                return None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or fingerprint(st) != expected:
            os.close(fd)
            return None
        return fd

    def unlink(self, path: str, expected: Fingerprint) -> None:
        """Delete `path` if it is still the file that was processed; OSError otherwise."""
        parent, name = self.parts(path)
        with opened_dir(parent) as dir_fd:
            _same(path, os.stat(name, dir_fd=dir_fd, follow_symlinks=False), expected)
            os.unlink(name, dir_fd=dir_fd)

    def move(self, path: str, expected: Fingerprint, directory: str) -> str:
        """Move `path` (still the file that was processed) into the resolved `directory`,
        next to what is there already: `a.csv`, then `a-1.csv`, `a-2.csv`...; the target."""
        parent, name = self.parts(path)
        with opened_dir(parent) as src, opened_dir(directory) as dst:
            _same(path, os.stat(name, dir_fd=src, follow_symlinks=False), expected)
            target = _free_name(name, dst)
            try:
                os.rename(name, target, src_dir_fd=src, dst_dir_fd=dst)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_across(name, src, target, dst, expected)
                os.unlink(name, dir_fd=src)
        return os.path.join(directory, target)


# ELOOP: the file is a symlink; ENOTDIR: a directory on the way is one (or a file now);
# ENOENT: gone. None of them is the trigger's file any more.
_NOT_OURS = (errno.ELOOP, errno.ENOTDIR, errno.ENOENT)


@contextlib.contextmanager
def opened_dir(real_path: str) -> Iterator[int]:
    """The directory at the resolved `real_path`, opened from `/` one component at a time
    without following a symlink."""
    fd = os.open("/", _DIR)
    try:
        for part in Path(real_path).parts[1:]:
            next_fd = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _same(path: str, st: os.stat_result, expected: Fingerprint) -> None:
    if not stat.S_ISREG(st.st_mode) or fingerprint(st) != expected:
        raise OSError(f"{path} changed since it was processed; left in place")


def _free_name(name: str, dir_fd: int) -> str:
    stem, suffix = os.path.splitext(name)
    n = 0
    while True:
        candidate = name if n == 0 else f"{stem}-{n}{suffix}"
        try:
            os.stat(candidate, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
        n += 1


def _copy_across(name: str, src: int, target: str, dst: int, expected: Fingerprint) -> None:
    """rename(2) cannot cross file systems: copy through fds, then the caller unlinks."""
    fd = os.open(name, _FILE, dir_fd=src)
    with os.fdopen(fd, "rb") as source:
        _same(name, os.fstat(fd), expected)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(target, flags, 0o644, dir_fd=dst)
        with os.fdopen(out, "wb") as copy:
            shutil.copyfileobj(source, copy)
