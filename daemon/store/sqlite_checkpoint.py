"""WAL checkpoints on their own thread, so that no commit waits for one.

In WAL mode every commit appends pages to the `-wal` file; a checkpoint copies them back
into the database file and fsyncs it. SQLite's automatic checkpoint runs inside the
commit that takes the WAL past 1,000 pages, on the writer thread: that group commit, and
every webhook and task run waiting on it, takes several milliseconds longer, once every
few hundred commits (issue #18: the p99 of a webhook was 6x its p50).

So this thread, with its own connection, copies the WAL back with PASSIVE checkpoints
(which wait for neither the writer nor readers) shortly after commits happened, once it
checked the file is still the database opened (daemon/store/sqlite_file.py). Once a
checkpoint has copied every frame and no reader still uses the WAL, SQLite's next commit
starts the WAL from its beginning: the file stops growing. Like SQLite's automatic
checkpoint, these never wait: a reader that holds an old snapshot through every checkpoint
lets the WAL grow until it lets go (a RESTART checkpoint would wait for it with every
writer held back, up to the busy timeout).

Under writes without a pause this thread never copies *every* frame (more are appended
while it copies), so the writer keeps SQLite's automatic checkpoint, at a far larger WAL
than SQLite's 1,000 pages (`sqlite_io.WRITER_CHECKPOINT_PAGES`): between two of its
transactions it copies what this thread has not yet, and the WAL starts over.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

INTERVAL = 0.5
"""Seconds between checkpoints while commits happen (none while nothing is written)."""


class Checkpointer:
    """One thread and one connection that checkpoint the WAL whenever `commits()` moved."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        commits: Callable[[], int],
        problem: Callable[[], str | None],
    ) -> None:
        self._connect = connect
        self._commits = commits
        self._problem = problem
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """Checkpoints run (tests and benches read it)."""

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="podium-store-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Waits for a checkpoint under way; the writer's close does the last one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        seen = self._commits()
        failing = False
        try:
            while not self._stop.wait(INTERVAL):
                now = self._commits()
                if now == seen:
                    continue
                seen = now
                try:
                    if conn is None:
                        conn = self._connect()
                    # Checked last thing before copying: a checkpoint would write pages over
                    # a file found deleted, replaced or overwritten, and could even mend its
                    # header, so that the loss went unseen.
                    if self._problem() is not None:
                        break
                    self.checkpoint(conn)
                except sqlite3.Error as exc:
                    # The writer reports a lost or broken file; this only must not spin.
                    if not failing:
                        logger.warning("store: WAL checkpoint failed: %s", exc)
                    failing = True
                else:
                    failing = False
        finally:
            if conn is not None:
                conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """(frames in the WAL, frames copied back) after a passive checkpoint."""
        _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(frames), int(copied)
