"""The flows directory, kept live: files added, changed or removed load, re-revision or
unload their flow and restart only its triggers. A file that does not validate is logged
with file:line:col and the flow's previous revision keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path
from typing import Any

from daemon.flows.catalog import FlowCatalog
from daemon.flows.loader import load_flow_file
from daemon.flows.registry import Plugins
from daemon.sdk.errors import FlowError, Problem

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml")
# Editors write a file in several steps: wait this long after the last event before reading.
DEBOUNCE = 0.2


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    """The file as it is now, or None when it is no file."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def flow_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())


class FlowDirectory:
    def __init__(
        self,
        root: Path,
        catalog: FlowCatalog,
        plugins: Plugins,
        max_size: int | None = None,
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.plugins = plugins
        self.max_size = max_size
        self._by_path: dict[Path, tuple[str, str]] = {}
        # Files that did not validate at their last reading, with why: the UI flags them.
        self.invalid: dict[Path, list[Problem]] = {}
        # ...and the file as it was then (size, mtime, inode): unchanged, it is not read,
        # validated and logged again.
        self._invalid_as: dict[Path, tuple[int, int, int]] = {}
        self._pending: dict[Path, asyncio.TimerHandle] = {}
        self._observer: Any = None
        self._lock = asyncio.Lock()

    @property
    def count(self) -> int:
        return len(self._by_path)

    async def load_all(self) -> None:
        """(Re)read every file: new and changed flows load, vanished files unload."""
        files = await asyncio.to_thread(flow_files, self.root)
        if not files:
            log.warning("no flow files under %s", self.root)
        for path in sorted(set(files) | set(self._by_path)):
            await self.reload(path)

    async def reload(self, path: Path) -> None:
        async with self._lock:
            await self._reload(path)

    async def _reload(self, path: Path) -> None:
        old_uid = self._by_path.get(path)
        seen = await asyncio.to_thread(_fingerprint, path)
        if seen is None:
            self.invalid.pop(path, None)
            self._invalid_as.pop(path, None)
            if old_uid is not None:
                del self._by_path[path]
                await self._unload(old_uid, f"{path} was removed")
            return
        if self._invalid_as.get(path) == seen:
            return  # the same invalid file: said once already
        try:
            flow = await asyncio.to_thread(
                load_flow_file, path, self.plugins, self.max_size, self.catalog.plugin_defaults
            )
            self.catalog.check(flow)
        except FlowError as exc:
            self.invalid[path] = list(exc.problems)
            self._invalid_as[path] = seen
            kept = f"; {old_uid[0]}.{old_uid[1]} keeps its previous revision" if old_uid else ""
            log.error(
                "flow file %s does not validate%s:\n%s",
                path,
                kept,
                "\n".join(f"  {p}" for p in exc.problems),
            )
            return
        self.invalid.pop(path, None)
        self._invalid_as.pop(path, None)
        owner = next((p for p, uid in self._by_path.items() if uid == flow.uid and p != path), None)
        if owner is not None:
            log.error(
                "%s: flow %s.%s is already defined in %s; ignoring this file",
                path,
                flow.namespace,
                flow.id,
                owner,
            )
            return
        if old_uid is not None and old_uid != flow.uid:
            await self._unload(old_uid, f"{path} now defines {flow.namespace}.{flow.id}")
        current = self.catalog.get(*flow.uid)
        if current is not None and current.source == flow.source and old_uid == flow.uid:
            return
        self._by_path[path] = flow.uid
        await self.catalog.install(flow)
        enabled = sum(1 for trigger in flow.triggers if not trigger.disabled)
        state = "disabled" if flow.disabled else f"{enabled} triggers"
        log.info(
            "loaded flow %s.%s revision %d from %s (%s)",
            flow.namespace,
            flow.id,
            flow.revision,
            path,
            state,
        )

    def path_of(self, uid: tuple[str, str]) -> Path | None:
        """The file that defines a loaded flow."""
        return next((path for path, known in self._by_path.items() if known == uid), None)

    def defined_by(self, path: Path) -> tuple[str, str] | None:
        """The flow a file defined when it last validated."""
        return self._by_path.get(path)

    async def _unload(self, uid: tuple[str, str], why: str) -> None:
        """No file defines the flow any more: it is deleted (old revisions stay readable)."""
        await self.catalog.remove(uid, delete=True)
        log.info("unloaded flow %s.%s: %s", uid[0], uid[1], why)

    # -- watching -----------------------------------------------------------------------

    async def watch(self) -> None:
        """Start reacting to changes under the directory (watchdog, inotify)."""
        from watchdog.events import (
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        loop = asyncio.get_running_loop()
        directory = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    path = Path(str(raw)) if raw else None
                    if path is not None and path.suffix in SUFFIXES:
                        loop.call_soon_threadsafe(directory._changed, path)

        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        observer = Observer()
        # Changes only: podium reading a file (opened, closed without writing) is none, or
        # each reading would bring the next one.
        changes = [
            FileCreatedEvent,
            FileModifiedEvent,
            FileClosedEvent,
            FileMovedEvent,
            FileDeletedEvent,
        ]
        observer.schedule(Handler(), str(self.root), recursive=True, event_filter=changes)
        await asyncio.to_thread(observer.start)
        self._observer = observer

    async def stop_watching(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join, 5)

    def _changed(self, path: Path) -> None:
        if self._observer is None:
            return
        loop = asyncio.get_running_loop()
        previous = self._pending.pop(path, None)
        if previous is not None:
            previous.cancel()
        self._pending[path] = loop.call_later(DEBOUNCE, self._due, path)

    def _due(self, path: Path) -> None:
        self._pending.pop(path, None)
        task = asyncio.ensure_future(self.reload(path))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reloading a flow failed", exc_info=task.exception())
