"""Kestra's polling triggers for remote servers (kestra-io/plugin-fs vfs.Trigger):
io.kestra.plugin.fs.ftp.Trigger, .ftps.Trigger and .sftp.Trigger.

Every `interval` the trigger logs in, lists `from` (`recursive`, `regExp` on the whole
path), downloads the new files, starts one execution per batch of at most `maxFiles`
with `trigger.files` (Kestra's vfs File of each, `path` the stored copy's URI, and its
`changeType`), then MOVEs them into `moveDirectory` or DELETEs them (`action`), so that
the next poll does not take them again. With NONE the flow must handle them itself.

What podium does beyond Kestra, as its local file trigger does (see fs_delivery):
- exactly once by content: a file whose path and sha256 were processed before starts no
  execution again, even across restarts or from another node; a changed content is an
  UPDATE (Kestra tells changes by size and date only);
- the copy is in storage before the execution exists, and the action runs after it: a
  crash in between loses no file (its action runs at the next poll). A MOVE never
  replaces a file already in `moveDirectory` (the new one goes beside it, `a-1.csv`),
  and a file changed on the server since it was read is left in place;
- a server that cannot be reached (or refuses the login) is said once in the daemon's log
  when the outage starts and once when it ends; polling goes on at every interval;
- while the trigger runs, a file a listing shows unchanged (size, date) is not downloaded
  again (with NONE); after a restart each is read once more, and found processed.
Besides Kestra's, `trigger.files[i]` has `uri` (the stored copy), `remotePath` (where it
was on the server) and `sha256`.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Dynamic, has_template, templated_values, with_rendered
from daemon.sdk.remotefs import (
    Entry,
    FtpConnection,
    FtpsConnection,
    RemoteConnection,
    RemoteError,
    RemoteFs,
    SftpConnection,
    Sort,
    compiled,
    file_doc,
    flow_path,
    sorted_entries,
)
from triggers.fs_delivery import Delivery, Done


class _RemoteTrigger(Trigger):
    """vfs.Trigger's properties; the connection's come from the protocol's class. A
    polling trigger: it waits for the end of the execution it started before starting
    another (Kestra's locked triggers), unless `allowConcurrent`."""

    locks = True
    interval: Duration = timedelta(seconds=60)
    from_: Annotated[str, Dynamic] = Field(alias="from")
    move_directory: Annotated[str | None, Dynamic] = None  # before `action`, which reads it
    action: Annotated[Literal["MOVE", "DELETE", "NONE"], Dynamic]
    reg_exp: Annotated[str | None, Dynamic] = None
    recursive: Annotated[bool, Dynamic] = False
    enable_ssh_rsa1: Annotated[bool, Dynamic] = False
    on: Annotated[Literal["CREATE", "UPDATE", "CREATE_OR_UPDATE"], Dynamic] = "CREATE_OR_UPDATE"
    max_files: Annotated[int, Dynamic] = Field(default=25, ge=1)
    sort: Annotated[Sort, Dynamic] = "NONE"

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("reg_exp")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None and not has_template(value):
            try:
                compiled(value)
            except Exception as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("action")
    @classmethod
    def _move_needs_directory(cls, value: str, info: ValidationInfo) -> str:
        if value == "MOVE" and info.data.get("move_directory") is None:
            raise ValueError("MOVE needs 'moveDirectory', the directory files are moved to")
        return value

    def exclusive(self) -> bool:
        """Every node would list the same server: one at a time polls it."""
        return True

    def fires_on(self, change: str) -> bool:
        return self.on == change or self.on == "CREATE_OR_UPDATE"

    def batch_size(self) -> int:
        return self.max_files

    def rescan_period(self) -> timedelta:
        return self.interval

    def variables(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"files": docs}

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        templated = templated_values(self)
        trigger = self
        if templated:
            rendered = await ctx.render_async(templated)
            trigger = with_rendered(self, rendered, f"trigger {self.id}: ")
        await trigger._poll(emit, ctx)

    async def _poll(self, emit: Emit, ctx: TriggerContext) -> None:
        if not isinstance(self, RemoteConnection):
            raise TypeError(f"{type(self).__name__} has no connection properties")
        conn: RemoteConnection = self
        for secret in conn.secrets():
            ctx.secrets.add(secret)
        flow = ctx.flow
        where = f"{flow.namespace}.{flow.id} trigger {self.id}"
        root = flow_path(self.from_)
        source = RemoteSource(self, conn, ctx, where)
        await source.prepare(ctx.data_path("triggers", flow.namespace, flow.id, self.id))
        delivery = Delivery(self, emit, ctx, where, source)
        known: dict[str, tuple[Any, ...]] = {}
        failing: str | None = None
        every = format_duration(self.interval)
        ctx.logger.info("%s: polling %s%s every %s", where, conn.address(), root, every)
        while True:
            try:
                async with conn.connect() as fs:
                    source.fs = fs
                    files = await fs.list_files(root, self.reg_exp, self.recursive)
                    if failing is not None:
                        ctx.logger.info("%s: %s answers again", where, conn.address())
                        failing = None
                    await self._round(files, source, delivery, known)
            except RemoteError as exc:
                if str(exc) != failing:
                    ctx.logger.warning("%s: %s; polled again every %s", where, exc, every)
                failing = str(exc)
            finally:
                source.fs = None
                await source.clean()
            _raise_if_cancelled()
            await ctx.clock.sleep(self.interval.total_seconds())

    async def _round(
        self,
        files: list[Entry],
        source: RemoteSource,
        delivery: Delivery,
        known: dict[str, tuple[Any, ...]],
    ) -> None:
        """The files of one listing: those new or changed go through delivery, in batches."""
        moved = flow_path(self.move_directory).rstrip("/") + "/" if self.move_directory else None
        files = [f for f in files if moved is None or not f.path.startswith(moved)]
        listed = {source.key(f): f for f in sorted_entries(files, self.sort)}
        for key in [k for k in known if k not in listed]:
            del known[key]
        # Without an action, files stay: one a listing shows unchanged is not read again.
        # With one, a file still there is one whose action failed: it is taken again.
        ready = [
            (key, f)
            for key, f in listed.items()
            if self.action != "NONE" or known.get(key) != f.fingerprint()
        ]
        for i in range(0, len(ready), self.max_files):
            chunk = ready[i : i + self.max_files]
            again = await delivery.settled(chunk)
            for key, entry in chunk:
                if key not in again:
                    known[key] = entry.fingerprint()
            await source.clean()


class RemoteSource:
    """A remote directory as Delivery's Source: a file is downloaded to hash it, that copy
    is the one stored, and the action runs on the server."""

    def __init__(
        self, trigger: _RemoteTrigger, conn: RemoteConnection, ctx: TriggerContext, where: str
    ) -> None:
        self.trigger = trigger
        self.ctx = ctx
        self.where = where
        self.base = conn.address()
        self.fs: RemoteFs | None = None
        self.scratch = Path()
        self.local: dict[str, Path] = {}

    def key(self, entry: Entry) -> str:
        """A file's identity in the trigger's state: server and path, never credentials."""
        return f"{self.base}{entry.path}"

    async def prepare(self, scratch: Path) -> None:
        def fresh() -> None:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)

        await asyncio.to_thread(fresh)
        self.scratch = scratch

    def _fs(self) -> RemoteFs:
        if self.fs is None:
            raise RemoteError("not connected")
        return self.fs

    async def digest(self, key: str, entry: Entry) -> str | None:
        local = self.scratch / str(len(self.local))
        self.local[key] = local
        await self._fs().download(entry.path, local)
        return await asyncio.to_thread(_sha256, local)

    async def store(self, key: str, entry: Entry, digest: str, prefix: str) -> dict[str, Any]:
        uri = await self.ctx.files.put(self.local[key], prefix=prefix, name=entry.name)
        return {**file_doc(entry, uri), "uri": uri, "remotePath": entry.path, "sha256": digest}

    def path_of(self, doc: Mapping[str, Any]) -> str:
        return f"{self.base}{doc.get('remotePath')}"

    async def settle(self, done: Done) -> None:
        """MOVE or DELETE each file, if the server still has it as it was read."""
        action = self.trigger.action
        if action == "NONE":
            return
        fs = self._fs()
        log = self.ctx.logger
        for key, entry in done:
            try:
                now = await fs.stat(entry.path)
                if now is None:
                    continue  # gone already: someone else finished the job
                if now.fingerprint() != entry.fingerprint():
                    log.warning("%s: %s changed since it was read; left in place", self.where, key)
                elif action == "DELETE":
                    await fs.remove(entry.path)
                    log.info("%s: deleted %s", self.where, key)
                else:
                    target = await fs.move_into(
                        entry.path, flow_path(self.trigger.move_directory or "/")
                    )
                    log.info("%s: moved %s to %s", self.where, key, target)
            except RemoteError as exc:
                log.error("%s: cannot %s %s: %s", self.where, action.lower(), key, exc)

    async def clean(self) -> None:
        """Drop the downloaded copies (stored by now, or not wanted)."""
        paths, self.local = list(self.local.values()), {}
        await asyncio.to_thread(lambda: [p.unlink(missing_ok=True) for p in paths])


def _raise_if_cancelled() -> None:
    """Python 3.11's asyncio.wait_for (which the clients' reads go through) can swallow a
    cancellation that arrives as its inner call completes: the trigger would poll on after
    being stopped."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class FtpTrigger(_RemoteTrigger, FtpConnection):
    """Start an execution when files land in a directory of an FTP server."""

    types = ("io.kestra.plugin.fs.ftp.Trigger",)


class FtpsTrigger(_RemoteTrigger, FtpsConnection):
    """Start an execution when files land in a directory of an FTPS server."""

    types = ("io.kestra.plugin.fs.ftps.Trigger",)


class SftpTrigger(_RemoteTrigger, SftpConnection):
    """Start an execution when files land in a directory of an SFTP server."""

    types = ("io.kestra.plugin.fs.sftp.Trigger",)
