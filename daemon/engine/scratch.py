"""The executions' scratch directories under `<data-dir>/tmp`, removed once they end.

Task runs remove their own working directories as they end; what stays is the execution's
directory (empty, or a `logToFile` file, or what a previous process left). Removing it is
blocking file-system work, so it happens off the event loop; one thread hop per execution
was a good part of what a short execution cost (issue #18), so the directories of the
executions that end within BATCH_DELAY of each other go to the thread together (webhooks
one at a time: ~17% more executions a second in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

BATCH_DELAY = 0.2
"""Seconds an ended execution's directory waits for the next ones to end (unless `settle`
is waiting): executions ending one after the other then share one thread hop."""


def _remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


class ScratchDirs:
    """`<root>/<execution id>` of each ended execution, removed in batches."""

    def __init__(self, root: Path, keep: Callable[[], bool]) -> None:
        self.root = root
        self._keep = keep  # the `keep-working-dirs` setting, read when an execution ends
        self._ended: set[str] = set()  # execution ids, until handed to the thread
        self._remover: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # set while `settle` waits: no more delay

    def ended(self, execution_id: str) -> None:
        """The execution ended: its directory goes with the next batch."""
        if self._keep():
            return
        self._ended.add(execution_id)
        if self._remover is None or self._remover.done():
            self._remover = asyncio.get_running_loop().create_task(self._remove_ended())

    def wanted(self, execution_id: str) -> None:
        """The execution's directory is in use again (the execution restarted, or a task run
        of it makes its working directory): kept out of the batch still waiting."""
        self._ended.discard(execution_id)

    async def _remove_ended(self) -> None:
        while self._ended:
            if not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BATCH_DELAY):
                        await self._hurry.wait()
            batch = [self.root / ident for ident in self._ended]
            self._ended = set()
            if not batch:  # every one of them wanted again meanwhile
                return
            try:
                await asyncio.to_thread(_remove, batch)
            except Exception:  # rmtree ignores errors; a thread pool closed at exit does not
                log.exception("removing %d execution directories failed", len(batch))

    async def settle(self) -> None:
        """Until every ended execution's directory is gone (engine close, tests)."""
        self._hurry.set()
        try:
            while self._remover is not None and not self._remover.done():
                await asyncio.shield(self._remover)
        finally:
            self._hurry.clear()
