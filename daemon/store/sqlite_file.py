"""Whether the SQLite file podium opened is still the one at its path, and still SQLite.

An open SQLite connection keeps writing to its file after the file was deleted or
replaced (the inode lives on until the last descriptor closes), so a `rm podium.db`
while serving goes unnoticed by SQLite itself: every commit "succeeds" into a file
nobody will ever open again. What is checked here, cheaply enough to do before every
group commit: the path still names the inode that was opened, with a link left, and
(less often) the file still starts with SQLite's header.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

HEADER = b"SQLite format 3\x00"
# SQLite's result codes for a file that is not (or no longer) a usable database.
_BROKEN_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_READONLY_DBMOVED"})


class DatabaseFile:
    """The identity of the database file as opened; `problem` says what changed since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def remember(self) -> None:
        """Called once the file is open: this inode is the database from now on."""
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

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
            with open(self.path, "rb") as f:
                start = f.read(len(HEADER))
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
