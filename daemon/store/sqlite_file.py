"""Whether the SQLite file podium opened is still the one at its path, and still SQLite.

An open SQLite connection keeps writing to its file after the file was deleted or
replaced (the inode lives on until the last descriptor closes), so a `rm podium.db`
while serving goes unnoticed by SQLite itself: every commit "succeeds" into a file
nobody will ever open again. What is checked here, cheaply enough to do before every
group commit: the path still names the inode that was opened, with a link left, and
(less often) the file still starts with SQLite's header.

The header is read through one descriptor opened once per file per process and closed
only when the last store on that file closed, never through a fresh `open()`: closing any
descriptor of the database file drops every POSIX lock the process holds on it, SQLite's
included (https://www.sqlite.org/howtocorrupt.html, 2.2). Another process closing its
connection (`podium executions list`, the sqlite3 shell) then believes it is the last one,
checkpoints and deletes the WAL under the daemon, and the commits that follow live in a
deleted file until the daemon's own close: a crash before that loses them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

HEADER = b"SQLite format 3\x00"
# SQLite's result codes for a file that is not (or no longer) a usable database.
_BROKEN_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_READONLY_DBMOVED"})


# (device, inode) -> (descriptor, stores using it): one per file, however many stores
_descriptors: dict[tuple[int, int], tuple[int, int]] = {}
_descriptors_lock = threading.Lock()


def _acquire(path: Path) -> tuple[tuple[int, int], int]:
    """The file's identity and its one descriptor here. Stat first: a second descriptor
    opened only to learn the inode could not be closed again without dropping the locks
    the first store's connections hold."""
    st = os.stat(path)
    identity = (st.st_dev, st.st_ino)
    with _descriptors_lock:
        held = _descriptors.get(identity)
        if held is not None:
            _descriptors[identity] = (held[0], held[1] + 1)
            return identity, held[0]
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        _descriptors[identity] = (fd, 1)
        return identity, fd


def _release(identity: tuple[int, int]) -> None:
    with _descriptors_lock:
        fd, users = _descriptors[identity]
        if users > 1:
            _descriptors[identity] = (fd, users - 1)
            return
        del _descriptors[identity]
    os.close(fd)


class DatabaseFile:
    """The identity of the database file as opened; `problem` says what changed since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None
        self._fd = -1

    def remember(self) -> None:
        """Called once the file is open: this inode is the database from now on."""
        self._identity, self._fd = _acquire(self.path)

    def forget(self) -> None:
        """Called once every connection of the store is closed: its descriptor may go."""
        if self._identity is not None:
            _release(self._identity)
            self._identity, self._fd = None, -1

    def problem(self, *, header: bool = True) -> str | None:
        """None while the file is the one opened; else what happened to it, for messages."""
        if self._identity is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as exc:
            return f"cannot be checked: {exc.strerror or exc}"
        if (st.st_dev, st.st_ino) != self._identity:
            return "was replaced by another file"
        if st.st_nlink == 0:  # unlinked between the stat and now is caught next time
            return "was deleted"
        if not header:
            return None
        try:
            start = os.pread(self._fd, len(HEADER), 0)
        except OSError as exc:
            return f"cannot be read: {exc.strerror or exc}"
        if start != HEADER:
            return "is corrupted (it no longer starts with SQLite's header)"
        return None


def broken(exc: BaseException) -> str | None:
    """What an SQLite error says of the file itself (corrupt, not a database, moved), or
    None for the errors of one statement (a constraint, a full disk, a busy lock)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    if getattr(exc, "sqlite_errorname", None) in _BROKEN_CODES:
        return f"is unusable: {exc}"
    return None
