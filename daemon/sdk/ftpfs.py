"""FTP and FTPS for `remotefs`, on aioftp: an asyncio client that lists with MLSD (LIST when
the server has none), streams transfers, and speaks TLS implicitly or after AUTH TLS, its
data connections resuming the control connection's TLS session as servers demand.

What Kestra's commons-net options become here: `passiveMode` (PASV first, as commons-net,
then EPSV), `remoteIpVerification` (the data connection goes to the server's own address,
whatever address a PASV reply names), the proxy (both connections through it), the
timeouts (`connectionTimeout` for the control connection, `dataTimeout` to open a data
connection, `socketTimeout` for every read), `dataChannelProtectionLevel` C or P (RFC 4217
knows no other). Active mode (`passiveMode: false`) is not offered: the client does not
open ports for the server to call back; a flow that asks for it fails, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from pathlib import PurePosixPath as Remote
from types import ModuleType
from typing import Any

from daemon.sdk.brokers import import_module
from daemon.sdk.remotefs import (
    BLOCK,
    Entry,
    FtpConnection,
    FtpsConnection,
    RemoteError,
    RemoteFs,
    read_local,
    write_local,
)
from daemon.sdk.tunnels import ProxyKind, open_tunnel

_PROXY_KINDS: dict[str, ProxyKind] = {"SOCKS": "SOCKS5", "HTTP": "HTTP"}


def _tls_context(insecure: bool) -> ssl.SSLContext:
    """Reads the system's CA files: call it off the loop."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _modified(text: str | None) -> datetime | None:
    """MLSD's `modify` fact: YYYYMMDDHHMMSS[.sss], in UTC."""
    if not text:
        return None
    try:
        return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _number(text: Any, base: int = 10) -> int | None:
    try:
        return int(str(text), base)
    except (TypeError, ValueError):
        return None


def _client_class(aioftp: ModuleType) -> type[Any]:
    """aioftp's Client, opening every connection podium's way (timeouts, proxy, TLS)."""
    bound_context = aioftp.common.SSLSessionBoundContext

    class Client(aioftp.Client):  # type: ignore[misc, name-defined]
        def __init__(
            self,
            *,
            opener: Callable[..., Any],
            data_timeout: float,
            protection: str,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.opener = opener
            self.data_timeout = data_timeout
            self.protection = protection

        async def _open_connection(
            self, host: str, port: int
        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            control = self._stream is None
            context: ssl.SSLContext | None = self.ssl or None
            if not control:
                tls = self._stream.writer.transport.get_extra_info("ssl_object")
                context = None
                if tls is not None and self.protection == "P":
                    context = bound_context(
                        ssl.PROTOCOL_TLS_CLIENT, context=tls.context, session=tls.session
                    )
            timeout = self.connection_timeout if control else self.data_timeout
            async with asyncio.timeout(timeout):
                return await self.opener(host, port, context)  # type: ignore[no-any-return]

        async def _send_tls_protection_commands(self) -> None:
            await self.command("PBSZ 0", "200")
            await self.command(f"PROT {self.protection}", "200")

    return Client


@contextlib.asynccontextmanager
async def ftp_session(conn: FtpConnection) -> AsyncIterator[RemoteFs]:
    """A logged-in connection to the server `conn` names, closed after the block."""
    if not conn.passive_mode:
        raise RemoteError(
            "passiveMode: false (active FTP) is not supported: podium opens no port for the "
            "server to connect back to; use passive mode",
            permanent=True,
        )
    aioftp = await import_module("aioftp")
    tls, implicit, protection = None, False, "P"
    if isinstance(conn, FtpsConnection):
        protection = conn.data_channel_protection_level
        if protection not in ("C", "P"):
            raise RemoteError(
                f"dataChannelProtectionLevel {protection} is not supported: FTPS (RFC 4217) "
                "protects the data channel with C (clear) or P (private)",
                permanent=True,
            )
        tls = await asyncio.to_thread(_tls_context, bool(conn.insecure_trust_all_certificates))
        implicit = conn.mode == "IMPLICIT"
    options = conn.options
    opened: list[asyncio.StreamWriter] = []
    client = _client_class(aioftp)(
        opener=_opener(conn, options.connection_timeout.total_seconds(), opened),
        data_timeout=options.data_timeout.total_seconds(),
        protection=protection,
        socket_timeout=options.socket_timeout.total_seconds(),
        connection_timeout=options.connection_timeout.total_seconds(),
        ssl=tls if implicit else None,
        passive_commands=("pasv", "epsv"),
        trust_server_pasv_ipv4_address=not conn.remote_ip_verification,
    )
    where = conn.address()
    try:
        try:
            await client.connect(conn.host, conn.port_number())
            if tls is not None and not implicit:  # explicit: AUTH TLS, as RFC 4217 says
                await client.command("AUTH TLS", "234")
                await client.stream.start_tls(sslcontext=tls, server_hostname=conn.host)
            await client.login(conn.username or "anonymous", conn.password or "anonymous@")
            if tls is not None:  # after the login, where every server takes them
                await client._send_tls_protection_commands()
            home = await client.get_current_directory()
        except Exception as exc:
            raise _failure(aioftp, exc, f"{where}: cannot log in") from None
        yield FtpFs(aioftp, client, conn, str(home))
    finally:
        try:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await client.quit()
        finally:  # even when cancelled again while saying goodbye
            client.close()
            for writer in opened:  # a data connection a cancelled transfer left open
                writer.close()


def _opener(
    conn: FtpConnection, timeout: float, opened: list[asyncio.StreamWriter]
) -> Callable[..., Any]:
    """How a connection (control or data) is opened: straight, or through the proxy. Each
    is noted in `opened`, to be closed with the session whatever happened."""
    kind = _PROXY_KINDS.get(conn.proxy_type or "DIRECT")
    proxy = (conn.proxy_host or "", int(conn.proxy_port) if conn.proxy_port else 1080)

    async def open_(host: str, port: int, context: ssl.SSLContext | None) -> Any:
        if kind is None or not conn.proxy_host:
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
        else:
            sock: socket.socket = await open_tunnel(kind, proxy, (host, port), timeout=timeout)
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname=host if context else None
            )
        opened.append(writer)
        return reader, writer

    return open_


def _failure(aioftp: ModuleType, exc: BaseException, what: str) -> RemoteError:
    """One message for what went wrong; permanent when the server said no (5xx), when TLS
    refused the server's certificate, or when the path is no path."""
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, aioftp.StatusCodeError):
        code = str(exc.received_codes[-1]) if exc.received_codes else "?"
        info = " ".join(str(line).strip() for line in exc.info or ()).strip()
        return RemoteError(
            f"{what}: the server answered {code} {info}".rstrip(), permanent=code[:1] == "5"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RemoteError(
            f"{what}: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "set insecureTrustAllCertificates: true only for a test server",
            permanent=True,
        )
    if isinstance(exc, TimeoutError):
        return RemoteError(f"{what}: timed out")
    if isinstance(exc, OSError | ssl.SSLError | EOFError | ConnectionError):
        return RemoteError(f"{what}: {exc or type(exc).__name__}")
    if isinstance(exc, aioftp.AIOFTPException | ValueError):
        return RemoteError(f"{what}: {exc}", permanent=True)
    raise exc


class FtpFs(RemoteFs):
    def __init__(self, aioftp: ModuleType, client: Any, conn: FtpConnection, home: str) -> None:
        self.aioftp = aioftp
        self.client = client
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
            raise _failure(self.aioftp, exc, f"{self.uri('')}: {what}") from None

    def _entry(self, path: str, info: dict[str, Any]) -> Entry:
        kind = str(info.get("type", "file")).lower()
        return Entry(
            path=path,
            is_dir=kind in ("dir", "cdir", "pdir"),
            is_link=kind in ("link", "os.unix=symlink") or kind.startswith("os.unix=slink"),
            size=_number(info.get("size")),
            modified=_modified(info.get("modify")),
            uid=_number(info.get("unix.uid", info.get("unix.owner"))),
            gid=_number(info.get("unix.gid", info.get("unix.group"))),
            permissions=_number(info.get("unix.mode"), 8),
        )

    async def list_dir(self, path: str) -> list[Entry]:
        async with self._doing(f"cannot list {path}"):
            found = await self.client.list(self._server(path))
        return [self._entry(posixpath.join(path, Remote(p).name), info) for p, info in found]

    async def stat(self, path: str) -> Entry | None:
        try:
            info = await self.client.stat(self._server(path))
        except self.aioftp.StatusCodeError as exc:
            if exc.received_codes and str(exc.received_codes[-1]).startswith("5"):
                return None
            raise _failure(self.aioftp, exc, f"{self.uri(path)}: cannot stat") from None
        except Exception as exc:
            raise _failure(self.aioftp, exc, f"{self.uri(path)}: cannot stat") from None
        return self._entry(path, info)

    async def download(self, path: str, target: Path) -> None:
        async with (
            self._doing(f"cannot download {path}"),
            self.client.download_stream(self._server(path)) as stream,
        ):
            await write_local(target, stream.iter_by_block(BLOCK))

    async def upload(self, source: Path, path: str) -> None:
        async with (
            self._doing(f"cannot upload to {path}"),
            read_local(source) as chunks,
            self.client.upload_stream(self._server(path)) as stream,
        ):
            async for chunk in chunks:
                await stream.write(chunk)

    async def remove(self, path: str) -> None:
        async with self._doing(f"cannot delete {path}"):
            await self.client.remove_file(self._server(path))

    async def remove_tree(self, path: str) -> None:
        async with self._doing(f"cannot delete {path}"):
            await self.client.remove(self._server(path))

    async def rename(self, source: str, target: str) -> None:
        async with self._doing(f"cannot move {source} to {target}"):
            await self.client.rename(self._server(source), self._server(target))

    async def make_dirs(self, path: str) -> None:
        async with self._doing(f"cannot create the directory {path}"):
            await self.client.make_directory(self._server(path), parents=True)
