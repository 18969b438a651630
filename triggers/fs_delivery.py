"""From settled files to executions, for the file triggers: hash, claim, store a copy, emit.

Where the files are is a `Source`'s business: a watched local directory (`LocalSource`,
for `triggers/fs.py`) or a remote server (`triggers/fs_remote.py`). It hashes a file,
copies it into storage, and runs the trigger's action on files settled for good.

A file is claimed in the store (`file:<path>:<sha256>`) so that it never runs twice, and
its execution is created after; a crash between the two would lose it: claimed, so never
offered again, yet without an execution. So each batch is written down before its files
are claimed: a `pending:<path>:<sha256>` record per file names the batch, and the batch's
execution is emitted with the batch as its idempotency key (its id derives from it). The
records are cleared once the execution exists. When a file comes up with its record still
there, the daemon stopped in between: the batch is emitted again under the same key,
which creates the execution if it was not, and returns it, starting nothing, if it was.
A file the returned execution does not carry (its batch was emitted again with fewer
files) goes out in a batch of its own. Nothing is claimed that is not written down first,
and only files nobody claimed before are written down (`claimed` is read first): a crash
anywhere loses no file and runs none twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import format_duration
from daemon.sdk.errors import FlowDisabled, InputError, PodiumError
from daemon.sdk.execution import Execution, new_id
from daemon.sdk.plugin import Emit
from daemon.sdk.state import iso
from triggers.fs_safe import Tree, fingerprint
from triggers.fs_watch import sha256_of

if TYPE_CHECKING:
    from triggers.fs import _LocalFiles

# Files settled for good (the action may run), with what their source said of them (a
# local file's stat, a remote listing's entry).
Done = list[tuple[str, Any]]


class Batching(Protocol):
    """What Delivery asks of the trigger it works for."""

    id: str

    @property
    def on(self) -> str: ...

    def fires_on(self, change: str) -> bool: ...

    def batch_size(self) -> int: ...

    def rescan_period(self) -> timedelta: ...

    def variables(self, docs: list[dict[str, Any]]) -> dict[str, Any]: ...

    async def admits(self, ctx: TriggerContext, variables: Mapping[str, Any]) -> bool: ...


class Source(Protocol):
    """Where the files are: how to hash one, store a copy, and settle those done with."""

    async def digest(self, path: str, st: Any) -> str | None:
        """The sha256 of the file's content; None when it is gone or changed meanwhile."""
        ...

    async def store(self, path: str, st: Any, digest: str, prefix: str) -> dict[str, Any]:
        """Copy the file into storage under `prefix`; the trigger's document of it."""
        ...

    def path_of(self, doc: Mapping[str, Any]) -> str:
        """The path a document of an execution's `trigger.files` stands for."""
        ...

    async def settle(self, done: Done) -> None:
        """The trigger's action on files settled for good (fired now, or before)."""
        ...


@dataclass
class _Claimed:
    path: str
    st: Any
    digest: str
    change: str  # CREATE (first content seen at this path) or UPDATE
    attempt: int  # earlier failed attempts to create its execution
    claims: tuple[str, ...]  # keys to claim, the deciding one first; none when resumed
    batch: str | None = None  # the batch it was in flight with when the daemon stopped


class Delivery:
    """One trigger's way from settled files to executions, then to its action."""

    def __init__(
        self,
        trigger: Batching,
        emit: Emit,
        ctx: TriggerContext,
        where: str,
        source: Source,
    ) -> None:
        self.trigger = trigger
        self.emit = emit
        self.ctx = ctx
        self.where = where
        self.source = source

    async def settled(self, ready: Done) -> set[str]:
        """Paths whose execution failed for a passing reason: offered again next scan."""
        hashed = []
        for path, st in ready:
            try:
                digest = await self.source.digest(path, st)
            except OSError as exc:
                self.ctx.logger.warning("%s: cannot read %s: %s", self.where, path, exc)
                continue
            if digest is not None:  # changed or gone meanwhile: its own events bring it back
                hashed.append((path, st, digest))
        if not hashed:
            return set()
        # Shielded: once a file is written down, its execution must be created even if the
        # trigger is being cancelled (flow saved again, daemon stopping).
        return await asyncio.shield(self._deliver(hashed))

    async def deleted(self, path: str) -> None:
        if not self.trigger.fires_on("DELETE"):
            return
        variables = self.trigger.variables(
            [{**file_doc(path, None, None, None), "changeType": "DELETE"}]
        )
        if not await self.trigger.admits(self.ctx, variables):
            self._refused([path])
            return
        try:
            await self.emit({}, variables)
        except PodiumError as exc:
            self.ctx.logger.error("%s: no execution for deleted %s: %s", self.where, path, exc)

    async def _deliver(self, hashed: list[tuple[str, Any, str]]) -> set[str]:
        done: Done = []
        again: set[str] = set()
        fresh: list[_Claimed] = []
        resumed: dict[str, list[_Claimed]] = {}
        for path, st, digest in hashed:
            claimed = await self._plan(path, st, digest)
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
                for key in claimed.claims:  # no execution to lose: claimed at once
                    await self.ctx.state.claim(key)
                if claimed.batch is not None:  # in flight once; `on:` changed since
                    await self.ctx.state.set(self.ctx.state_key("pending", path, digest), {})
            elif claimed.batch is not None:
                resumed.setdefault(claimed.batch, []).append(claimed)
                continue
            else:
                fresh.append(claimed)
                continue
            done.append((path, st))
        if resumed:
            count = sum(len(chunk) for chunk in resumed.values())
            self.ctx.logger.info(
                "%s: %d file(s) were claimed when podium stopped; making sure each has its "
                "execution",
                self.where,
                count,
            )
        size = self.trigger.batch_size()
        batches = [*resumed.items()]
        batches += [(new_id(), fresh[i : i + size]) for i in range(0, len(fresh), size)]
        for batch, chunk in batches:
            outcome = await self._emit(batch, chunk)
            if outcome == "again":
                again.update(c.path for c in chunk)
            elif outcome is True:
                done.extend((c.path, c.st) for c in chunk)
        if done:
            await self.source.settle(done)
        return again

    async def _plan(self, path: str, st: Any, digest: str) -> _Claimed | None:
        """The file to process now, or None when this content was processed before."""
        state, key = self.ctx.state, self.ctx.state_key
        pending = await state.get(key("pending", path, digest))
        if pending and pending.get("batch"):
            change, attempt = str(pending["changeType"]), int(pending["attempt"])
            return _Claimed(path, st, digest, change, attempt, (), str(pending["batch"]))
        file_key, path_key = key("file", path, digest), key("path", path)
        if not await state.claimed(file_key):
            if await state.claimed(path_key):
                return _Claimed(path, st, digest, "UPDATE", 0, (file_key,))
            return _Claimed(path, st, digest, "CREATE", 0, (file_key, path_key))
        failure = await state.get(key("failed", path, digest))
        if not failure or not failure.get("retry"):
            return None
        attempt = int(failure["attempt"])
        retry_key = key("file", path, digest, f"retry{attempt}")
        if await state.claimed(retry_key):
            return None  # another daemon is retrying it
        return _Claimed(path, st, digest, str(failure["changeType"]), attempt, (retry_key,))

    async def _emit(self, batch: str, chunk: list[_Claimed]) -> bool | Literal["again"]:
        """Write `chunk` down as in flight under `batch`, claim it, create its execution.

        On failure, remember the files so that they are retried: "again" when the reason
        may pass by itself (the next scan retries them), False when the flow has to change
        first."""
        state, key = self.ctx.state, self.ctx.state_key
        while True:
            for c in chunk:
                record = {"batch": batch, "changeType": c.change, "attempt": c.attempt}
                await state.set(key("pending", c.path, c.digest), record)
            taken = []
            for c in chunk:
                if c.claims and not await state.claim(c.claims[0]):
                    await state.set(key("pending", c.path, c.digest), {})  # another daemon's
                    continue
                for extra in c.claims[1:]:
                    await state.claim(extra)
                taken.append(c)
            if not taken:
                return True
            try:
                docs = [await self._stored(c) for c in taken]
                variables = self.trigger.variables(docs)
                # Refused by `when` or conditions: settled all the same, the action runs
                # (Kestra's polling trigger moves or deletes files before they are tested).
                if not await self.trigger.admits(self.ctx, variables):
                    self._refused([c.path for c in taken])
                    carried = {c.path for c in taken}
                else:
                    carried = self._paths_of(await self.emit({}, variables, key=batch))
            except Exception as exc:
                return await self._failed(taken, exc)
            for c in taken:
                await state.set(key("pending", c.path, c.digest), {})
                if c.attempt:
                    await state.set(
                        key("failed", c.path, c.digest),
                        {"retry": False, "attempt": c.attempt, "changeType": c.change},
                    )
            # An execution of the batch existed with fewer files (emitted again after a crash
            # with only some of them): the others go out in a batch of their own.
            chunk = [c for c in taken if c.path not in carried]
            if not chunk:
                return True
            batch = new_id()
            for c in chunk:
                c.claims, c.batch = (), None

    def _refused(self, paths: list[str]) -> None:
        self.ctx.logger.info(
            "%s: the trigger's conditions do not hold; %s starts no execution",
            self.where,
            ", ".join(paths),
        )
        self.ctx.count_rejected()

    async def _failed(self, chunk: list[_Claimed], exc: Exception) -> bool | Literal["again"]:
        state, key = self.ctx.state, self.ctx.state_key
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
            await state.set(key("pending", c.path, c.digest), {})
        if not isinstance(exc, PodiumError | OSError):
            raise exc
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
        doc = await self.source.store(claimed.path, claimed.st, claimed.digest, prefix)
        return {**doc, "changeType": claimed.change}

    def _paths_of(self, execution: Execution) -> set[str]:
        """The files an execution was started for, from its trigger variables."""
        variables = (execution.trigger or {}).get("variables") or {}
        docs = variables.get("files") or [variables.get("file") or {}]
        return {self.source.path_of(doc) for doc in docs if isinstance(doc, dict)}


class LocalSource:
    """A watched local directory: files read through fds that never follow a symlink
    (fs_safe), the action the trigger's own (`after`)."""

    def __init__(
        self, trigger: _LocalFiles, ctx: TriggerContext, where: str, tree: Tree, move_to: str | None
    ) -> None:
        self.trigger = trigger
        self.ctx = ctx
        self.where = where
        self.tree = tree
        self.move_to = move_to

    async def digest(self, path: str, st: os.stat_result) -> str | None:
        return await asyncio.to_thread(sha256_of, self.tree, path, fingerprint(st))

    async def store(
        self, path: str, st: os.stat_result, digest: str, prefix: str
    ) -> dict[str, Any]:
        """Copy the file into storage through an fd opened without following a symlink,
        and only if it is still the file that was hashed."""
        expected = fingerprint(st)
        fd = await asyncio.to_thread(self.tree.open, path, expected)
        if fd is None:
            raise OSError(f"{path} changed before it could be stored")
        try:
            # The open fd, by its /proc name: the storage copies this very file.
            uri = await self.ctx.files.put(
                Path(f"/proc/self/fd/{fd}"), prefix=prefix, name=os.path.basename(path)
            )
            if fingerprint(await asyncio.to_thread(os.fstat, fd)) != expected:
                raise OSError(f"{path} changed while it was stored")
        finally:
            os.close(fd)
        return file_doc(path, st, uri, digest)

    def path_of(self, doc: Mapping[str, Any]) -> str:
        return str(doc.get("path"))

    async def settle(self, done: Done) -> None:
        await self.trigger.after(done, self.ctx.logger, self.where, self.tree, self.move_to)


def _instant(seconds: float) -> str | None:
    return iso(datetime.fromtimestamp(seconds, UTC))


def file_doc(
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
