"""Remote file systems as Kestra's plugin-fs reaches them (io.kestra.plugin.fs.ftp, .ftps
and .sftp): the connection properties all tasks and the trigger of a protocol share, the
client each protocol's library implements (`ftpfs`: aioftp, `sftpfs`: asyncssh), paths as
a flow writes them, and Kestra's file object.

Paths are read from a root, a `/` added in front when missing (VfsService.uri): with
`rootDir` (the default) the root is the user's home directory (commons-vfs's
userDirIsRoot), else the server's `/`. Outputs write paths the same way, so a `regExp`
matches what the flow wrote (`.*/dir1/.*\\.csv`), as Kestra matches it on the full path.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.properties import Deprecated, Dynamic, Model, has_template
from daemon.sdk.state import iso

# Kestra's FtpInterface.Options and the SFTP session: every wait is bounded.
DEFAULT_TIMEOUT = timedelta(seconds=30)
BLOCK = 1 << 16  # bytes per read of a transfer
Sort = Literal["NONE", "LAST_MODIFIED_ASC", "LAST_MODIFIED_DESC", "NAME_ASC", "NAME_DESC"]


class RemoteError(OSError):
    """What the server said or did. `permanent` when trying again cannot help (the login
    refused, a file missing, a bad key); otherwise the server or the network may recover."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent

    def __str__(self) -> str:
        return str(self.args[0])

    def failed(self) -> TaskFailed:
        """The task run's failure, retried by the task's policy unless `permanent`."""
        return TaskFailed(str(self), non_retryable=self.permanent)


@dataclass(frozen=True)
class Entry:
    """A file or directory on the server; `path` as the flow writes it (see the module)."""

    path: str
    is_dir: bool = False
    is_link: bool = False
    size: int | None = None
    modified: datetime | None = None
    accessed: datetime | None = None
    uid: int | None = None
    gid: int | None = None
    permissions: int | None = None
    flags: int | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def fingerprint(self) -> tuple[int | None, datetime | None]:
        """What a listing says of a file's content without reading it."""
        return self.size, self.modified


def file_doc(entry: Entry, path: str | None = None) -> dict[str, Any]:
    """Kestra's vfs File: `path` is the stored copy's URI once downloaded (`path` given),
    the remote path otherwise. `updatedDate` is the modification time and `accessDate`
    the access time (Kestra's SFTP code swaps the two: podium says what they are); FTP
    servers tell size and time in MLSD, where Kestra leaves them null."""
    return {
        "path": path if path is not None else entry.path,
        "name": entry.name,
        "fileType": "FOLDER" if entry.is_dir else "FILE",
        "symbolicLink": entry.is_link,
        "size": entry.size,
        "userId": entry.uid,
        "groupId": entry.gid,
        "permissions": entry.permissions,
        "flags": entry.flags,
        "accessDate": iso(entry.accessed),
        "updatedDate": iso(entry.modified),
    }


def flow_path(path: str) -> str:
    """A path as the flow wrote it, read from the root: `in/` is `/in/`."""
    text = path.strip()
    if not text:
        raise RemoteError("an empty path", permanent=True)
    return "/" + text.lstrip("/")


def compiled(reg_exp: str | None) -> re.Pattern[str] | None:
    try:
        return None if reg_exp is None else re.compile(reg_exp)
    except re.error as exc:
        raise TaskFailed(f"invalid regExp {reg_exp!r}: {exc}", non_retryable=True) from None


def sorted_entries(entries: Iterable[Entry], sort: Sort) -> list[Entry]:
    """Kestra's List.Sort: NONE keeps the server's order; an unknown date sorts last."""
    items = list(entries)
    if sort == "NONE":
        return items
    if sort.startswith("NAME"):
        return sorted(items, key=lambda e: e.name, reverse=sort == "NAME_DESC")
    dated = [e for e in items if e.modified is not None]
    undated = [e for e in items if e.modified is None]
    dated.sort(key=lambda e: e.modified or datetime.min, reverse=sort == "LAST_MODIFIED_DESC")
    return dated + undated


async def write_local(target: Path, chunks: AsyncIterator[bytes]) -> None:
    """Write a transfer's chunks to a local file, the file's I/O off the event loop."""
    out = await asyncio.to_thread(target.open, "wb")
    try:
        async for chunk in chunks:
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)


@contextlib.asynccontextmanager
async def read_local(source: Path) -> AsyncIterator[AsyncIterator[bytes]]:
    """A local file's content in chunks, read off the event loop; closed after the block."""
    handle = await asyncio.to_thread(source.open, "rb")

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(handle.read, BLOCK):
            yield chunk

    try:
        yield chunks()
    finally:
        await asyncio.to_thread(handle.close)


class RemoteFs(ABC):
    """One open connection, paths as the flow writes them; every failure is a RemoteError."""

    scheme: str
    host: str

    def uri(self, path: str) -> str:
        """Kestra's uriWithoutAuth: no credentials, and no port either (as Kestra writes it)."""
        return f"{self.scheme}://{self.host}{path}"

    @abstractmethod
    async def list_dir(self, path: str) -> list[Entry]:
        """The entries of a directory; RemoteError(permanent) when it is not one."""

    @abstractmethod
    async def stat(self, path: str) -> Entry | None:
        """The entry at `path`, None when there is none."""

    @abstractmethod
    async def download(self, path: str, target: Path) -> None:
        """Write the file's content to the local `target`."""

    @abstractmethod
    async def upload(self, source: Path, path: str) -> None:
        """Write the local file `source` to `path`, replacing a file there."""

    @abstractmethod
    async def remove(self, path: str) -> None:
        """Delete one file."""

    @abstractmethod
    async def remove_tree(self, path: str) -> None:
        """Delete a directory and all it holds."""

    @abstractmethod
    async def rename(self, source: str, target: str) -> None:
        """Move a file; the target directory exists and the target name is free."""

    @abstractmethod
    async def make_dirs(self, path: str) -> None:
        """Create a directory and its missing parents; nothing when it exists."""

    async def walk(
        self, path: str, recursive: bool, keep: Callable[[Entry], bool] | None = None
    ) -> list[Entry]:
        """Files under a directory (its subdirectories' too when `recursive`), those `keep`
        accepts; directories are walked, never returned."""
        found: list[Entry] = []
        pending = [path]
        while pending:
            for entry in await self.list_dir(pending.pop(0)):
                if entry.is_dir:
                    if recursive:
                        pending.append(entry.path)
                elif keep is None or keep(entry):
                    found.append(entry)
        return found

    async def free_path(self, directory: str, name: str) -> str:
        """`directory/name`, or `name-1`, `name-2`... beside what is there already."""
        stem, suffix = posixpath.splitext(name)
        n = 0
        while True:
            candidate = posixpath.join(directory, name if n == 0 else f"{stem}-{n}{suffix}")
            if await self.stat(candidate) is None:
                return candidate
            n += 1

    async def move_into(self, path: str, directory: str) -> str:
        """Move a file into `directory` (created when missing) under a free name, never over
        another file; returns where it went."""
        await self.make_dirs(directory)
        target = await self.free_path(directory, posixpath.basename(path))
        await self.rename(path, target)
        return target

    async def list_files(self, path: str, reg_exp: str | None, recursive: bool) -> list[Entry]:
        """Kestra's VfsService.list: files only, `regExp` matched on the whole path."""
        pattern = compiled(reg_exp)
        return await self.walk(
            path, recursive, None if pattern is None else lambda e: bool(pattern.fullmatch(e.path))
        )


def _port(value: Any) -> Any:
    """Kestra's `port` is text: `21` and `"21"` are the same port."""
    if value is None or has_template(value):
        return value
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("must be a port number from 1 to 65535")
    return text


class RemoteConnection(Model):
    """Where the server is and who logs in: AbstractVfsInterface."""

    scheme: ClassVar[str]
    default_port: ClassVar[int]

    host: Annotated[str, Dynamic]
    port: Annotated[str | int | None, Dynamic] = None
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    root_dir: Annotated[bool, Dynamic] = True

    @field_validator("port", "proxy_port", mode="after", check_fields=False)
    @classmethod
    def _port_number(cls, value: Any) -> Any:
        return _port(value)

    def port_number(self) -> int:
        return int(self.port) if self.port is not None else self.default_port

    def address(self) -> str:
        """For messages: never the credentials."""
        return f"{self.scheme}://{self.host}:{self.port_number()}"

    def secrets(self) -> list[str]:
        """Values to mask in every log line."""
        names = ("password", "passphrase", "keyfile", "proxy_password")
        return [v for name in names if isinstance(v := getattr(self, name, None), str) and v]

    def connect(self) -> contextlib.AbstractAsyncContextManager[RemoteFs]:
        raise NotImplementedError


class FtpOptions(Model):
    """Kestra's FtpInterface.Options. The keep-alive pair is accepted for Kestra's flows:
    commons-net sends NOOPs on the control connection during a long transfer, which the
    client podium uses does not; the control connection waits `socketTimeout` at most."""

    connection_timeout: Annotated[Duration, Dynamic] = DEFAULT_TIMEOUT
    data_timeout: Annotated[Duration, Dynamic] = DEFAULT_TIMEOUT
    socket_timeout: Annotated[Duration, Dynamic] = DEFAULT_TIMEOUT
    control_keep_alive_timeout: Annotated[Duration, Dynamic] = DEFAULT_TIMEOUT
    control_keep_alive_reply_timeout: Annotated[Duration, Dynamic] = DEFAULT_TIMEOUT

    @field_validator("connection_timeout", "data_timeout", "socket_timeout", mode="after")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise ValueError("must be positive")
        return value


class FtpConnection(RemoteConnection):
    """Kestra's FtpInterface (io.kestra.plugin.fs.ftp): port 21, passive mode, the data
    connection only to the server's own address, paths from the home directory."""

    scheme = "ftp"
    default_port = 21

    proxy_host: Annotated[str | None, Dynamic] = None
    proxy_port: Annotated[str | int | None, Dynamic] = None
    proxy_type: Annotated[Literal["DIRECT", "HTTP", "SOCKS"] | None, Dynamic] = None
    passive_mode: Annotated[bool, Dynamic] = True
    remote_ip_verification: Annotated[bool, Dynamic] = True
    options: FtpOptions = Field(default_factory=FtpOptions)

    def connect(self) -> contextlib.AbstractAsyncContextManager[RemoteFs]:
        from daemon.sdk.ftpfs import ftp_session

        return ftp_session(self)


class FtpsConnection(FtpConnection):
    """Kestra's FtpsInterface on top: port 990, EXPLICIT (AUTH TLS) by default, the data
    channel private (PROT P), the server's certificate checked unless told otherwise."""

    scheme = "ftps"
    default_port = 990

    mode: Annotated[Literal["IMPLICIT", "EXPLICIT"], Dynamic] = "EXPLICIT"
    data_channel_protection_level: Annotated[Literal["C", "S", "E", "P"], Dynamic] = "P"
    insecure_trust_all_certificates: Annotated[bool | None, Dynamic] = None


class SftpConnection(RemoteConnection):
    """Kestra's SftpInterface: port 22, a password or a private key (its text, not a path),
    no host key check (StrictHostKeyChecking=no, as in Kestra)."""

    scheme = "sftp"
    default_port = 22

    keyfile: Annotated[str | None, Dynamic] = None
    passphrase: Annotated[str | None, Dynamic] = None
    proxy_host: Annotated[str | None, Dynamic, Deprecated("use 'proxyAddress'")] = None
    proxy_address: Annotated[str | None, Dynamic] = None
    proxy_port: Annotated[str | int | None, Dynamic] = None
    proxy_user: Annotated[str | None, Dynamic, Deprecated("use 'proxyUsername'")] = None
    proxy_username: Annotated[str | None, Dynamic] = None
    proxy_password: Annotated[str | None, Dynamic] = None
    proxy_type: Annotated[Literal["SOCKS5", "STREAM", "HTTP"] | None, Dynamic] = None
    key_exchange_algorithm: Annotated[str | None, Dynamic] = None

    def connect(self) -> contextlib.AbstractAsyncContextManager[RemoteFs]:
        from daemon.sdk.sftpfs import sftp_session

        return sftp_session(self, allow_ssh_rsa=getattr(self, "enable_ssh_rsa1", False))


@contextlib.asynccontextmanager
async def connected(conn: RemoteConnection) -> AsyncIterator[RemoteFs]:
    """`conn.connect()` for a task run: a RemoteError becomes the task's failure."""
    try:
        async with conn.connect() as fs:
            yield fs
    except RemoteError as exc:
        raise exc.failed() from None
