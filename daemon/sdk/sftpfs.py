"""SFTP for `remotefs`, on asyncssh: an asyncio SSH client with its SFTP subsystem.

As Kestra's SftpService sets JSch up: no host key check, a `keyfile` (the key's text,
PEM or OpenSSH, with its `passphrase`) authenticates by public key only, else the password
does (keyboard-interactive answering with it too); `keyExchangeAlgorithm` is the one key
exchange offered; ssh-rsa (SHA-1) signatures only when a trigger's `enableSshRsa1` says
so. A proxy is a SOCKS5 or HTTP CONNECT tunnel, or with STREAM another SSH server the
connection jumps through (JSch's stream proxy), logged into with the proxy's user and
password.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import posixpath
import stat as stat_
import sys
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from daemon.sdk.remotefs import (
    BLOCK,
    Entry,
    RemoteError,
    RemoteFs,
    SftpConnection,
    read_local,
    write_local,
)
from daemon.sdk.tunnels import open_tunnel

# JSch's SftpATTRS flags, which Kestra's File reports: the attributes the server sent.
_SIZE, _UIDGID, _PERMISSIONS, _ACMODTIME = 0x1, 0x2, 0x4, 0x8
_WEAK = ("ssh-rsa", "ssh-rsa-cert-v01@openssh.com")


def _load() -> ModuleType:
    """asyncssh, imported without the DSA deprecation warnings `cryptography` gives as it
    loads (DSA keys are no use here; the warnings would only reach the daemon's log)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*DSA.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*DSA.*", category=UserWarning)
        return importlib.import_module("asyncssh")


async def _asyncssh() -> ModuleType:
    module = sys.modules.get("asyncssh")
    return module if module is not None else await asyncio.to_thread(_load)


def _when(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _options(
    asyncssh: ModuleType, conn: SftpConnection, allow_ssh_rsa: bool, timeout: float
) -> Any:
    """The client's options; reads the key and looks at the environment: off the loop."""
    keys = None
    if conn.keyfile:
        try:
            keys = [asyncssh.import_private_key(conn.keyfile, conn.passphrase)]
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise RemoteError(
                f"keyfile is not a usable private key: {exc}", permanent=True
            ) from None
    kwargs: dict[str, Any] = {}
    if conn.key_exchange_algorithm:
        kwargs["kex_algs"] = [conn.key_exchange_algorithm]
    if not allow_ssh_rsa:
        default = asyncssh.public_key.get_default_public_key_algs()
        kwargs["signature_algs"] = [a.decode() for a in default if a.decode() not in _WEAK]
        kwargs["server_host_key_algs"] = kwargs["signature_algs"]
    try:
        return asyncssh.SSHClientConnectionOptions(
            username=conn.username,
            password=None if keys else conn.password,
            client_keys=keys,
            preferred_auth=("publickey",) if keys else ("password", "keyboard-interactive"),
            known_hosts=None,
            config=[],
            agent_path=None,
            x509_trusted_certs=None,
            x509_trusted_cert_paths=None,
            connect_timeout=timeout,
            login_timeout=timeout,
            **kwargs,
        )
    except ValueError as exc:  # an unknown algorithm name
        raise RemoteError(f"{conn.address()}: {exc}", permanent=True) from None


def _failure(asyncssh: ModuleType, exc: BaseException, what: str) -> RemoteError:
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, asyncssh.PermissionDenied):
        return RemoteError(f"{what}: the server refused the login ({exc.reason})", permanent=True)
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPPermissionDenied):
        return RemoteError(f"{what}: {exc.reason}", permanent=True)
    if isinstance(exc, asyncssh.SFTPError):
        return RemoteError(f"{what}: {exc.reason}", permanent=isinstance(exc, asyncssh.SFTPFailure))
    if isinstance(exc, asyncssh.KeyExchangeFailed):
        return RemoteError(f"{what}: no key exchange in common ({exc.reason})", permanent=True)
    if isinstance(exc, asyncssh.Error):
        return RemoteError(f"{what}: {exc.reason}")
    if isinstance(exc, TimeoutError):
        return RemoteError(f"{what}: timed out")
    if isinstance(exc, OSError | EOFError):
        return RemoteError(f"{what}: {exc or type(exc).__name__}")
    raise exc


@contextlib.asynccontextmanager
async def sftp_session(conn: SftpConnection, *, allow_ssh_rsa: bool) -> AsyncIterator[RemoteFs]:
    """A logged-in SFTP session with the server `conn` names, closed after the block."""
    asyncssh = await _asyncssh()
    timeout = 30.0
    options = await asyncio.to_thread(_options, asyncssh, conn, allow_ssh_rsa, timeout)
    where = conn.address()
    async with contextlib.AsyncExitStack() as stack:
        try:
            route = await _route(asyncssh, conn, timeout, stack)
            ssh = await asyncio.wait_for(
                asyncssh.connect(conn.host, conn.port_number(), options=options, **route),
                timeout,
            )
            stack.push_async_callback(_close, ssh)
            sftp = await asyncio.wait_for(ssh.start_sftp_client(), timeout)
            stack.callback(sftp.exit)
            home = await sftp.realpath(".")
        except Exception as exc:
            raise _failure(asyncssh, exc, f"{where}: cannot log in") from None
        yield SftpFs(asyncssh, sftp, conn, str(home))


async def _close(ssh: Any) -> None:
    ssh.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ssh.wait_closed(), 5)


async def _route(
    asyncssh: ModuleType, conn: SftpConnection, timeout: float, stack: contextlib.AsyncExitStack
) -> dict[str, Any]:
    """How to reach the server: straight (nothing), a tunnelled socket, or a jump host."""
    proxy_host = conn.proxy_address or conn.proxy_host
    if not proxy_host or conn.proxy_type is None:
        return {}
    user = conn.proxy_username or conn.proxy_user
    if conn.proxy_type == "STREAM":
        port = int(conn.proxy_port) if conn.proxy_port else 22
        jump_options = await asyncio.to_thread(
            asyncssh.SSHClientConnectionOptions,
            username=user, password=conn.proxy_password, client_keys=None, known_hosts=None,
            config=[], agent_path=None, x509_trusted_certs=None, x509_trusted_cert_paths=None,
            preferred_auth=("password", "keyboard-interactive"),
        )  # fmt: skip
        jump = await asyncio.wait_for(
            asyncssh.connect(proxy_host, port, options=jump_options), timeout
        )
        stack.push_async_callback(_close, jump)
        return {"tunnel": jump}
    port = int(conn.proxy_port) if conn.proxy_port else 1080
    sock = await open_tunnel(
        conn.proxy_type,
        (proxy_host, port),
        (conn.host, conn.port_number()),
        username=user,
        password=conn.proxy_password,
        timeout=timeout,
    )
    return {"sock": sock}


class SftpFs(RemoteFs):
    def __init__(self, asyncssh: ModuleType, sftp: Any, conn: SftpConnection, home: str) -> None:
        self.asyncssh = asyncssh
        self.sftp = sftp
        self.scheme = conn.scheme
        self.host = conn.host
        self.root = home if conn.root_dir else "/"

    def _server(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, path.lstrip("/")))

    @contextlib.asynccontextmanager
    async def _doing(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except Exception as exc:
            raise _failure(self.asyncssh, exc, f"{self.uri('')}: {what}") from None

    def _entry(self, path: str, attrs: Any) -> Entry:
        mode = attrs.permissions
        kind = attrs.type
        constants = self.asyncssh.constants
        is_dir = kind == constants.FILEXFER_TYPE_DIRECTORY or (
            mode is not None and stat_.S_ISDIR(mode)
        )
        is_link = kind == constants.FILEXFER_TYPE_SYMLINK or (
            mode is not None and stat_.S_ISLNK(mode)
        )
        flags = (
            (_SIZE if attrs.size is not None else 0)
            | (_UIDGID if attrs.uid is not None else 0)
            | (_PERMISSIONS if mode is not None else 0)
            | (_ACMODTIME if attrs.mtime is not None else 0)
        )
        return Entry(
            path=path,
            is_dir=is_dir,
            is_link=is_link,
            size=attrs.size,
            modified=_when(attrs.mtime),
            accessed=_when(attrs.atime),
            uid=attrs.uid,
            gid=attrs.gid,
            permissions=mode,
            flags=flags,
        )

    async def list_dir(self, path: str) -> list[Entry]:
        async with self._doing(f"cannot list {path}"):
            names = await self.sftp.readdir(self._server(path))
        return [
            self._entry(posixpath.join(path, n.filename), n.attrs)
            for n in names
            if n.filename not in (".", "..")
        ]

    async def stat(self, path: str) -> Entry | None:
        try:
            attrs = await self.sftp.stat(self._server(path))
        except self.asyncssh.SFTPNoSuchFile:
            return None
        except Exception as exc:
            raise _failure(self.asyncssh, exc, f"{self.uri(path)}: cannot stat") from None
        return self._entry(path, attrs)

    async def download(self, path: str, target: Path) -> None:
        async with (
            self._doing(f"cannot download {path}"),
            self.sftp.open(self._server(path), "rb") as remote,
        ):

            async def chunks() -> AsyncIterator[bytes]:
                while data := await remote.read(BLOCK):
                    yield data

            await write_local(target, chunks())

    async def upload(self, source: Path, path: str) -> None:
        async with (
            self._doing(f"cannot upload to {path}"),
            read_local(source) as chunks,
            self.sftp.open(self._server(path), "wb") as remote,
        ):
            async for chunk in chunks:
                await remote.write(chunk)

    async def remove(self, path: str) -> None:
        async with self._doing(f"cannot delete {path}"):
            await self.sftp.remove(self._server(path))

    async def remove_tree(self, path: str) -> None:
        async with self._doing(f"cannot delete {path}"):
            await self.sftp.rmtree(self._server(path))

    async def rename(self, source: str, target: str) -> None:
        async with self._doing(f"cannot move {source} to {target}"):
            await self.sftp.rename(self._server(source), self._server(target))

    async def make_dirs(self, path: str) -> None:
        async with self._doing(f"cannot create the directory {path}"):
            await self.sftp.makedirs(self._server(path), exist_ok=True)
