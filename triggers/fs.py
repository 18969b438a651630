"""Local file triggers: Kestra's `fs.local.Trigger` and `fs.local.RealtimeTrigger`, on inotify.

Kestra polls the directory; podium reacts to watchdog (inotify) events and keeps `interval`
as the period of a fallback rescan, in case the kernel dropped events. Beyond Kestra:

- a file fires only once it has stopped changing for `stableFor` and its writer closed it
  (see `fs_watch`); `stableFor: PT0S` fires on the close;
- a file already processed (same absolute path, same sha256) never starts another
  execution, even across restarts: the trigger claims `file:<path>:<sha256>` in the store
  before emitting, so two daemons sharing one database and one folder also fire once;
- files that arrived while the daemon was down are picked up when the trigger starts;
- every file is copied into podium's storage before its execution exists: `trigger.file.uri`
  (`trigger.files[i].uri`) is readable even after MOVE or DELETE took the file away, while
  `path`/`localPath` say where it was found;
- `changeType` is CREATE for the first content processed at a path, UPDATE for later ones;
- a claimed file whose execution could not be created is remembered: after a passing
  failure (a full or refused disk, the store unreachable) it is retried at the next scan;
  after inputs that do not fit, when the trigger next starts (saving the fixed flow
  restarts it). A broken flow loses no file;
- only directories under the configured allowed paths are watched, as in Kestra; a
  directory that is not there stops the trigger (podium does not create it: a typo would
  otherwise be watched silently forever).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import FlowDisabled, InputError, PodiumError
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.state import iso
from triggers.fs_watch import Settled, Watcher, WatchError, fingerprint, sha256_of

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
        self, paths: list[str], log: logging.Logger, where: str, move_to: Path | None
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

        def wanted(path: str) -> bool:
            if not self.recursive and os.path.dirname(path) != root:
                return False
            return not path.startswith(ignored) and self.accepts(path)

        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        delivery = _Delivery(self, emit, ctx, where, move_to)
        watcher = Watcher(
            root,
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
        root = Path(self.from_)
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
        self, paths: list[str], log: logging.Logger, where: str, move_to: Path | None
    ) -> None:
        for path in paths:
            try:
                if self.action == "DELETE":
                    await asyncio.to_thread(os.unlink, path)
                    log.info("%s: deleted %s", where, path)
                elif move_to is not None:
                    target = await asyncio.to_thread(_move_into, Path(path), move_to)
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


@dataclass
class _Claimed:
    path: str
    st: os.stat_result
    digest: str
    change: str  # CREATE (first content seen at this path) or UPDATE
    attempt: int  # earlier failed attempts to create its execution


class _Delivery:
    """From settled files to executions: hash, claim, store a copy, emit, then the action."""

    def __init__(
        self,
        trigger: _LocalFiles,
        emit: Emit,
        ctx: TriggerContext,
        where: str,
        move_to: Path | None,
    ) -> None:
        self.trigger = trigger
        self.emit = emit
        self.ctx = ctx
        self.where = where
        self.move_to = move_to

    async def settled(self, ready: Settled) -> set[str]:
        """Paths whose execution failed for a passing reason: offered again next scan."""
        hashed = []
        for path, st in ready:
            try:
                digest = await asyncio.to_thread(sha256_of, path, fingerprint(st))
            except OSError as exc:
                self.ctx.logger.warning("%s: cannot read %s: %s", self.where, path, exc)
                continue
            if digest is not None:  # changed or gone meanwhile: its own events bring it back
                hashed.append((path, st, digest))
        if not hashed:
            return set()
        # Shielded: once a file is claimed, its execution must be created even if the
        # trigger is being cancelled (flow saved again, daemon stopping).
        return await asyncio.shield(self._claim_and_emit(hashed))

    async def deleted(self, path: str) -> None:
        if not self.trigger.fires_on("DELETE"):
            return
        try:
            await self.emit(
                {},
                self.trigger.variables(
                    [{**_file_doc(path, None, None, None), "changeType": "DELETE"}]
                ),
            )
        except PodiumError as exc:
            self.ctx.logger.error("%s: no execution for deleted %s: %s", self.where, path, exc)

    async def _claim_and_emit(self, hashed: list[tuple[str, os.stat_result, str]]) -> set[str]:
        settled: list[str] = []
        again: set[str] = set()
        fire: list[_Claimed] = []
        for path, st, digest in hashed:
            claimed = await self._claim(path, st, digest)
            if claimed is None:
                self.ctx.logger.debug("%s: %s was processed before", self.where, path)
            elif not self.trigger.fires_on(claimed.change):
                self.ctx.logger.debug(
                    "%s: %s is a %s, not fired (on: %s)",
                    self.where,
                    path,
                    claimed.change,
                    self.trigger.on,
                )
            else:
                fire.append(claimed)
                continue
            settled.append(path)
        size = self.trigger.batch_size()
        for start in range(0, len(fire), size):
            chunk = fire[start : start + size]
            outcome = await self._emit(chunk)
            if outcome is True:
                settled.extend(c.path for c in chunk)
            elif outcome == "again":
                again.update(c.path for c in chunk)
        if settled:
            await self.trigger.after(settled, self.ctx.logger, self.where, self.move_to)
        return again

    async def _claim(self, path: str, st: os.stat_result, digest: str) -> _Claimed | None:
        """The file to process now, or None when this content was processed before."""
        state, key = self.ctx.state, self.ctx.state_key
        if await state.claim(key("file", path, digest)):
            first = await state.claim(key("path", path))
            return _Claimed(path, st, digest, "CREATE" if first else "UPDATE", 0)
        failure = await state.get(key("failed", path, digest))
        if not failure or not failure.get("retry"):
            return None
        attempt = int(failure["attempt"])
        if not await state.claim(key("file", path, digest, f"retry{attempt}")):
            return None  # another daemon is retrying it
        return _Claimed(path, st, digest, str(failure["changeType"]), attempt)

    async def _emit(self, chunk: list[_Claimed]) -> bool | Literal["again"]:
        """Create one execution for `chunk`; on failure remember it so that it is retried:
        "again" when the reason may pass by itself (the next scan retries it), False when
        the flow has to change first."""
        state, key = self.ctx.state, self.ctx.state_key
        try:
            docs = [await self._stored(c) for c in chunk]
            await self.emit({}, self.trigger.variables(docs))
        except Exception as exc:
            for c in chunk:
                await state.set(
                    key("failed", c.path, c.digest),
                    {
                        "retry": True,
                        "attempt": c.attempt + 1,
                        "changeType": c.change,
                        "error": str(exc),
                    },
                )
            if not isinstance(exc, PodiumError | OSError):
                raise
            names = ", ".join(c.path for c in chunk)
            if not isinstance(exc, InputError | FlowDisabled):
                self.ctx.logger.error(
                    "%s: no execution for %s: %s; it is retried at the next scan (%s)",
                    self.where,
                    names,
                    exc,
                    format_duration(self.trigger.rescan_period()),
                )
                return "again"
            self.ctx.logger.error(
                "%s: no execution for %s: %s; it is retried when the trigger "
                "restarts or the file changes",
                self.where,
                names,
                exc,
            )
            return False
        for c in chunk:
            if c.attempt:
                await state.set(
                    key("failed", c.path, c.digest),
                    {"retry": False, "attempt": c.attempt, "changeType": c.change},
                )
        return True

    async def _stored(self, claimed: _Claimed) -> dict[str, Any]:
        ctx = self.ctx
        prefix = "/".join(
            (
                "",
                *ctx.flow.namespace.split("."),
                ctx.flow.id,
                "triggers",
                self.trigger.id,
                claimed.digest,
            )
        )
        await asyncio.to_thread(_still_the_same, claimed)
        uri = await ctx.files.put(
            Path(claimed.path), prefix=prefix, name=os.path.basename(claimed.path)
        )
        return {
            **_file_doc(claimed.path, claimed.st, uri, claimed.digest),
            "changeType": claimed.change,
        }


# -- blocking helpers (run through asyncio.to_thread) ---------------------------------------


def _still_the_same(claimed: _Claimed) -> None:
    """Refuse a file that is no longer the one that was hashed (before storing it)."""
    st = os.lstat(claimed.path)
    if not stat.S_ISREG(st.st_mode) or fingerprint(st) != fingerprint(claimed.st):
        raise OSError(f"{claimed.path} changed before it could be stored")


def _allowed(path: Path, roots: Sequence[Path]) -> bool:
    """Is `path` under one of the allowed paths (after resolving symlinks)?"""
    resolved = path.resolve()
    return any(resolved == root.resolve() or root.resolve() in resolved.parents for root in roots)


def _move_into(source: Path, directory: Path) -> Path:
    """Move next to what is there already: `a.csv`, then `a-1.csv`, `a-2.csv`..."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        name = source.name if n == 0 else f"{source.stem}-{n}{source.suffix}"
        target = directory / name
        if not target.exists():
            shutil.move(source, target)
            return target
        n += 1


def _instant(seconds: float) -> str | None:
    return iso(datetime.fromtimestamp(seconds, UTC))


def _file_doc(
    path: str, st: os.stat_result | None, uri: str | None, digest: str | None
) -> dict[str, Any]:
    """Kestra's local file object (`localPath`, `modifiedDate`...) plus `path`, `lastModified`
    and `sha256`; `uri` is podium's stored copy."""
    doc: dict[str, Any] = {
        "path": path,
        "localPath": path,
        "name": os.path.basename(path),
        "parent": os.path.dirname(path),
        "uri": uri,
        "size": None,
        "lastModified": None,
        "modifiedDate": None,
        "createdDate": None,
        "accessedDate": None,
        "sha256": digest,
    }
    if st is not None:
        modified = _instant(st.st_mtime)
        created = getattr(st, "st_birthtime", None)  # Linux has none: Java reports mtime too
        doc.update(
            size=st.st_size,
            lastModified=modified,
            modifiedDate=modified,
            createdDate=modified if created is None else _instant(created),
            accessedDate=_instant(st.st_atime),
        )
    return doc
