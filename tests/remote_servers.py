"""Real servers for the FTP, FTPS and SFTP tests, each run by a test in a process of its own
(`python -m tests.remote_servers ftp|sftp|proxy ...`), on a free port it picks itself and
prints as `READY <port>` once it listens:

- ftp: aioftp's server over a directory (a user and password, the home directory a path
  under it); with a certificate, implicit TLS (`--tls implicit`) or explicit TLS, AUTH TLS
  added here (aioftp's server has none), PROT P making its data connections TLS too;
- sftp: asyncssh's server, the directory as its root: a password and/or an authorized
  public key, the home directory under it, host key algorithms and key exchanges
  narrowed on demand, TCP forwarding (a jump host) when asked;
- proxy: SOCKS5 (no authentication, or a user and password) and HTTP CONNECT on one port,
  writing each target it connects to in a log file the test reads.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import posixpath
import ssl
import struct
import sys
import warnings
from pathlib import Path
from typing import Any


def ready(port: int) -> None:
    print(f"READY {port}", flush=True)


# -- FTP -----------------------------------------------------------------------------------


async def ftp(args: argparse.Namespace) -> None:
    import aioftp

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    user = aioftp.User(
        args.user,
        args.password,
        base_path=Path(args.root),
        home_path=args.home,
        permissions=[aioftp.Permission("/", readable=True, writable=True)],
    )

    class Server(aioftp.Server):  # type: ignore[misc]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.commands_mapping["auth"] = self.auth
            self.commands_mapping["prot"] = self.prot

        async def auth(self, connection: Any, rest: str) -> bool:
            """AUTH TLS: answer 234, then the control connection turns TLS at once (before
            the client's hello can be read as a command)."""
            if context is None or args.tls != "explicit" or str(rest).upper() != "TLS":
                connection.response("504", "AUTH TLS only, on a server with a certificate")
                return True
            writer = connection.command_connection.writer
            transport = writer.transport
            protocol = transport.get_protocol()
            transport.write(b"234 AUTH TLS ok\r\n")
            loop = asyncio.get_running_loop()
            tls = await loop.start_tls(transport, protocol, context, server_side=True)
            writer._transport = tls
            protocol._replace_writer(writer)
            connection.tls = True
            return True

        async def prot(self, connection: Any, rest: str) -> bool:
            level = str(rest).upper()
            if level not in ("C", "P") or (args.tls == "implicit" and level == "C"):
                connection.response("502", f"PROT {level} not supported")
            else:
                connection.private = level == "P"
                connection.response("200", f"PROT {level}")
            return True

        async def _start_passive_server(self, connection: Any, handler: Any) -> Any:
            data_tls = self.ssl
            if args.tls == "explicit" and "private" in connection and connection.private:
                data_tls = context
            server = await asyncio.start_server(handler, connection.server_host, 0, ssl=data_tls)
            return server

    server = Server(
        [user],
        ssl=context if args.tls == "implicit" else None,
        ipv4_pasv_forced_response_address=args.pasv_address,
    )
    await server.start(host="127.0.0.1", port=args.port)
    ready(server.server_port)
    await server.serve_forever()


# -- SFTP ----------------------------------------------------------------------------------


async def sftp(args: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh

    host_key = asyncssh.load_keypairs([asyncssh.generate_private_key(args.host_key)])[0]
    if args.host_key_algs:  # what the host key may sign with, e.g. ssh-rsa alone
        host_key.host_key_algorithms = [a.encode() for a in args.host_key_algs.split(",")]
    authorized = None
    if args.authorized_key_text:
        authorized = asyncssh.import_authorized_keys(args.authorized_key_text)
    root = args.root
    home = args.home.encode()

    class Server(asyncssh.SSHServer):  # type: ignore[misc]
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return args.password is not None

        def validate_password(self, username: str, password: str) -> bool:
            return username == args.user and password == args.password

        def public_key_auth_supported(self) -> bool:
            return authorized is not None

        def validate_public_key(self, username: str, key: Any) -> bool:
            return (
                username == args.user
                and authorized is not None
                and authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None
            )

        def connection_requested(self, *_: Any) -> bool:
            return bool(args.forwarding)

    class Files(asyncssh.SFTPServer):  # type: ignore[misc]
        def __init__(self, chan: Any) -> None:
            super().__init__(chan, chroot=root)

        def map_path(self, path: bytes) -> bytes:
            if not path.startswith(b"/"):
                path = posixpath.join(home, path)
            return super().map_path(path)  # type: ignore[no-any-return]

    options: dict[str, Any] = {}
    if args.kex:
        options["kex_algs"] = args.kex.split(",")
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=Server,
        sftp_factory=Files,
        authorized_client_keys=None,
        allow_scp=False,
        **options,
    )
    ready(server.sockets[0].getsockname()[1])
    await server.wait_closed()


# -- proxy ---------------------------------------------------------------------------------


async def proxy(args: argparse.Namespace) -> None:
    log = Path(args.log)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(1)
            if first == b"\x05":
                target = await socks(reader, writer)
            else:
                target = await connect(first, reader, writer)
            if target is None:
                writer.close()
                return
            kind = "SOCKS5" if first == b"\x05" else "HTTP"
            await asyncio.to_thread(_append, log, f"{kind} {target[0]}:{target[1]}\n")
            up_reader, up_writer = await asyncio.open_connection(*target)
        except Exception:
            writer.close()
            return
        if first == b"\x05":
            writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        else:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def socks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        methods = await reader.readexactly((await reader.readexactly(1))[0])
        if args.user:
            if 2 not in methods:
                writer.write(b"\x05\xff")
                return None
            writer.write(b"\x05\x02")
            await reader.readexactly(1)
            user = await reader.readexactly((await reader.readexactly(1))[0])
            secret = await reader.readexactly((await reader.readexactly(1))[0])
            good = user.decode() == args.user and secret.decode() == args.password
            writer.write(b"\x01" + (b"\x00" if good else b"\x01"))
            if not good:
                return None
        else:
            writer.write(b"\x05\x00")
        _, _, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            return None
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        return host, port

    async def connect(first: bytes, reader: asyncio.StreamReader, writer: Any) -> Any:
        head = first + await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, authority, _ = lines[0].split(" ", 2)
        if args.user:
            token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
            if f"Proxy-Authorization: Basic {token}" not in lines:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return None
        host, _, port = authority.rpartition(":")
        return (host, int(port)) if method == "CONNECT" else None

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def _append(log: Path, line: str) -> None:
    with log.open("a") as out:
        out.write(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="kind", required=True)
    f = sub.add_parser("ftp")
    f.add_argument("--root", required=True)
    f.add_argument("--home", default="/")
    f.add_argument("--user", default="foo")
    f.add_argument("--password", default="bar")
    f.add_argument("--cert")
    f.add_argument("--key")
    f.add_argument("--tls", choices=["implicit", "explicit"])
    f.add_argument("--pasv-address")
    f.add_argument("--port", type=int, default=0)
    s = sub.add_parser("sftp")
    s.add_argument("--root", required=True)
    s.add_argument("--home", default="/")
    s.add_argument("--user", default="foo")
    s.add_argument("--password")
    s.add_argument("--authorized-key")
    s.add_argument("--host-key", default="ssh-ed25519")
    s.add_argument("--host-key-algs")
    s.add_argument("--kex")
    s.add_argument("--forwarding", action="store_true")
    p = sub.add_parser("proxy")
    p.add_argument("--log", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    args = parser.parse_args()
    if args.kind in ("ftp", "sftp"):  # what the servers need on disk, before they run
        args.root = os.path.realpath(args.root)
        Path(args.root, args.home.lstrip("/")).mkdir(parents=True, exist_ok=True)
    if args.kind == "sftp":
        key = args.authorized_key
        args.authorized_key_text = Path(key).read_text() if key else None
    run = {"ftp": ftp, "sftp": sftp, "proxy": proxy}[args.kind]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
