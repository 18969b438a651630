"""Local file triggers: Kestra's `fs.local.Trigger` and `fs.local.RealtimeTrigger`, on inotify.

Kestra polls the directory; podium reacts to watchdog (inotify) events and keeps `interval`
as the period of a fallback rescan, in case the kernel dropped events. Beyond Kestra:

- a file fires only once it has stopped changing for `stableFor` and its writer closed it
  (see `fs_watch`); `stableFor: PT0S` fires on the close;
- a file already processed (same absolute path, same sha256) never starts another
  execution, even across restarts: the trigger claims `file:<path>:<sha256>` in the store,
  so two daemons sharing one database and one folder also fire once; and a file claimed is
  never lost, even by a kill -9 between its claim and its execution (see `fs_delivery`);
- files that arrived while the daemon was down are picked up when the trigger starts;
- every file is copied into podium's storage before its execution exists: `trigger.file.uri`
  (`trigger.files[i].uri`) is readable even after MOVE or DELETE took the file away, while
  `path`/`localPath` say where it was found;
- `changeType` is CREATE for the first content processed at a path, UPDATE for later ones;
- a claimed file whose execution could not be created is remembered: after a passing
  failure (a full or refused disk, the store unreachable) it is retried at the next scan;
  after inputs that do not fit, when the trigger next starts (saving the fixed flow
  restarts it). A broken flow loses no file;
- no symlink is followed under the watched directory, the file's own or a directory's on
  the way, even one swapped in after the file was seen: files are read, deleted and moved
  through fds opened with O_NOFOLLOW one component at a time (see `fs_safe`);
- only directories under the configured allowed paths are watched, as in Kestra; a
  directory that is not there stops the trigger (podium does not create it: a typo would
  otherwise be watched silently forever). A trigger's own `allowedPaths` (plugin-fs's
  AbstractTrigger, before Kestra moved the list into the server's `allowed-paths`) narrows
  that list for its flow, never widens it: `from` and `moveDirectory`, symlinks resolved,
  must be under both.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.plugin import Emit, Trigger
from triggers.fs_delivery import Delivery, Done, LocalSource
from triggers.fs_safe import Tree, fingerprint
from triggers.fs_watch import Watcher, WatchError

# RealtimeTrigger has no `interval`; it still rescans this often in case events were lost.
REALTIME_RESCAN = timedelta(seconds=60)


def _absolute_directory(value: str) -> str:
    """A daemon's working directory is nobody's business: watched paths are absolute."""
    if not os.path.isabs(value):
        raise ValueError("must be an absolute directory path")
    return os.path.normpath(value)


class _LocalFiles(Trigger):
    """What both local file triggers share: where to look, which files, when a file is done."""

    regexp_on_path: ClassVar[bool] = False  # Kestra matches `regExp` on the name or the path

    from_: str = Field(alias="from")
    recursive: bool = False
    reg_exp: str | None = None
    filter: str | None = None  # podium: a glob on the file name, e.g. "*.csv"
    stable_for: Duration = timedelta(seconds=1)
    on: str = "CREATE_OR_UPDATE"  # each trigger narrows it to the values Kestra accepts
    allowed_paths: list[Annotated[str, AfterValidator(_absolute_directory)]] | None = Field(
        default=None, min_length=1
    )

    @field_validator("from_")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _absolute_directory(value)

    @field_validator("reg_exp")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @field_validator("stable_for")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    def exclusive(self) -> bool:
        """Every node of a cluster would see the same folder (a shared mount) and race
        for its files: one node at a time watches it."""
        return True

    # -- what subclasses decide ---------------------------------------------------------

    def watches_changes(self) -> bool:
        """False when only deletions matter: no scans, no stability waits."""
        return True

    def rescan_period(self) -> timedelta:
        raise NotImplementedError

    def fires_on(self, change: str) -> bool:
        return self.on == change or (self.on == "CREATE_OR_UPDATE" and change != "DELETE")

    def batch_size(self) -> int:
        return 1

    def variables(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    async def after(
        self, done: Done, log: logging.Logger, where: str, tree: Tree, move_to: str | None
    ) -> None:
        """Runs once files are settled (fired now, or before); the polling trigger's action."""

    def move_directory_path(self) -> str | None:
        return None

    # -- running ------------------------------------------------------------------------

    def accepts(self, path: str) -> bool:
        name = os.path.basename(path)
        if self.filter is not None and not fnmatch.fnmatchcase(name, self.filter):
            return False
        subject = path if self.regexp_on_path else name
        return self.reg_exp is None or re.fullmatch(self.reg_exp, subject) is not None

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        root = self.from_
        move_to, data_dir = await asyncio.to_thread(self._directories, ctx)
        ignored = tuple(str(p) + os.sep for p in (move_to, data_dir) if p is not None)
        tree = await asyncio.to_thread(Tree, root)
        real_move_to = None
        if move_to is not None:
            real_move_to = await asyncio.to_thread(os.path.realpath, move_to)

        def wanted(path: str) -> bool:
            if not self.recursive and os.path.dirname(path) != root:
                return False
            return not path.startswith(ignored) and self.accepts(path)

        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        delivery = Delivery(
            self, emit, ctx, where, LocalSource(self, ctx, where, tree, real_move_to)
        )
        watcher = Watcher(
            tree,
            self.recursive,
            wanted,
            self.stable_for,
            self.rescan_period(),
            ctx.clock,
            changes=self.watches_changes(),
        )
        subdirectories = " and its subdirectories" if self.recursive else ""
        async with watcher.observing():
            await watcher.run(
                delivery.settled,
                delivery.deleted,
                lambda: ctx.logger.info("%s: watching %s%s", where, root, subdirectories),
            )

    def _directories(self, ctx: TriggerContext) -> tuple[Path | None, Path]:
        """Check the watched (and move) directory against the allowed paths; blocking.

        Returns the move directory (created if missing) and podium's data directory, whose
        files (stored copies) must never be taken for arrivals."""
        roots = ctx.allowed_paths
        allowed = ", ".join(str(p) for p in roots) or "none are configured"
        fix = "add it to allowed-paths in podium.yaml or PODIUM_ALLOWED_PATHS"
        own = [Path(p) for p in self.allowed_paths or ()]
        listed = ", ".join(self.allowed_paths or ())
        root = Path(self.from_)
        if own and not _allowed(root, own):
            raise WatchError(f"directory {root} is not under the trigger's allowedPaths ({listed})")
        if not _allowed(root, roots):
            raise WatchError(f"directory {root} is not under the allowed paths ({allowed}); {fix}")
        if not root.exists():
            raise WatchError(
                f"directory {root} does not exist; create it, then save the flow "
                "again or restart podium (watched directories are not created)"
            )
        if not root.is_dir():
            raise WatchError(f"{root} is not a directory")
        move_to = None
        if (target := self.move_directory_path()) is not None:
            move_to = Path(target)
            if own and not _allowed(move_to, own):
                raise WatchError(
                    f"moveDirectory {move_to} is not under the trigger's allowedPaths ({listed})"
                )
            if not _allowed(move_to, roots):
                raise WatchError(
                    f"moveDirectory {move_to} is not under the allowed paths ({allowed}); {fix}"
                )
            try:
                move_to.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WatchError(f"cannot create moveDirectory {move_to}: {exc}") from None
        return move_to, Path(os.path.abspath(ctx.data_path()))


class LocalFileTrigger(_LocalFiles):
    """Kestra's polling local `Trigger`: one execution per batch of settled files."""

    types = ("io.kestra.plugin.fs.local.Trigger",)
    locks = True

    interval: Duration = timedelta(seconds=60)
    move_directory: str | None = None  # before `action`, whose check reads it
    action: Literal["NONE", "MOVE", "DELETE"] = "NONE"
    max_files: int = Field(default=25, ge=1)
    on: Literal["CREATE", "UPDATE", "CREATE_OR_UPDATE"] = "CREATE_OR_UPDATE"

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("move_directory")
    @classmethod
    def _absolute_target(cls, value: str) -> str:
        return _absolute_directory(value)

    @field_validator("action")
    @classmethod
    def _move_needs_directory(cls, value: str, info: ValidationInfo) -> str:
        if value == "MOVE" and info.data.get("move_directory") is None:
            raise ValueError("MOVE needs 'moveDirectory', the directory files are moved to")
        return value

    def rescan_period(self) -> timedelta:
        return self.interval

    def batch_size(self) -> int:
        return self.max_files

    def move_directory_path(self) -> str | None:
        return self.move_directory

    def variables(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"files": docs, "count": len(docs)}

    async def after(
        self, done: Done, log: logging.Logger, where: str, tree: Tree, move_to: str | None
    ) -> None:
        """DELETE or MOVE, through fds opened without following a symlink anywhere, and
        only while the path still holds the file that was processed (fs_safe)."""
        for path, st in done:
            try:
                if self.action == "DELETE":
                    await asyncio.to_thread(tree.unlink, path, fingerprint(st))
                    log.info("%s: deleted %s", where, path)
                elif move_to is not None:
                    target = await asyncio.to_thread(tree.move, path, fingerprint(st), move_to)
                    log.info("%s: moved %s to %s", where, path, target)
            except FileNotFoundError:
                continue  # already gone: someone else finished the job
            except OSError as exc:
                log.error("%s: cannot %s %s: %s", where, self.action.lower(), path, exc)


class LocalRealtimeTrigger(_LocalFiles):
    """Kestra's `RealtimeTrigger`: one execution per settled (or deleted) file."""

    types = ("io.kestra.plugin.fs.local.RealtimeTrigger",)
    regexp_on_path = True

    on: Literal["CREATE", "UPDATE", "DELETE", "CREATE_OR_UPDATE"] = "CREATE_OR_UPDATE"

    def watches_changes(self) -> bool:
        return self.on != "DELETE"

    def rescan_period(self) -> timedelta:
        return REALTIME_RESCAN

    def variables(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        (doc,) = docs
        change = doc.pop("changeType")
        return {"file": doc, "changeType": change}


# -- blocking helpers (run through asyncio.to_thread) ---------------------------------------


def _allowed(path: Path, roots: Sequence[Path]) -> bool:
    """Is `path` under one of the allowed paths (after resolving symlinks)?"""
    resolved = path.resolve()
    return any(resolved == root.resolve() or root.resolve() in resolved.parents for root in roots)
