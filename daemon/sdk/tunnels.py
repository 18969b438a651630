"""TCP connections through a proxy, as Kestra's FTP (java.net.Proxy: SOCKS, HTTP) and SFTP
(JSch: SOCKS5, HTTP) clients open them: a SOCKS5 CONNECT (RFC 1928, with RFC 1929's
user and password when given) or an HTTP CONNECT. The target's name is left to the proxy
to resolve. What comes back is a connected socket, for the protocol's client to run on.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import struct
from typing import Literal

ProxyKind = Literal["SOCKS5", "HTTP"]

_SOCKS_REPLIES = {
    1: "general failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class ProxyError(ConnectionError):
    """The proxy refused, or is not the kind of proxy it was said to be."""


async def open_tunnel(
    kind: ProxyKind,
    proxy: tuple[str, int],
    target: tuple[str, int],
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float,
) -> socket.socket:
    """A socket connected to `target` through the proxy at `proxy`."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(*proxy, type=socket.SOCK_STREAM)
        if not infos:
            raise ProxyError(f"proxy {proxy[0]} has no address")
        family, kind_, proto, _, address = infos[0]
        sock = socket.socket(family, kind_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            if kind == "SOCKS5":
                await _socks5(loop, sock, target, username, password)
            else:
                await _http_connect(loop, sock, target, username, password)
        except BaseException:
            sock.close()
            raise
    return sock


async def _read(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ProxyError("the proxy closed the connection")
        data += chunk
    return data


async def _socks5(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    target: tuple[str, int],
    username: str | None,
    password: str | None,
) -> None:
    methods = b"\x00\x02" if username is not None else b"\x00"
    await loop.sock_sendall(sock, b"\x05" + bytes([len(methods)]) + methods)
    version, method = await _read(loop, sock, 2)
    if version != 5:
        raise ProxyError("not a SOCKS5 proxy")
    if method == 2:
        user, secret = (username or "").encode(), (password or "").encode()
        await loop.sock_sendall(
            sock, b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret
        )
        if (await _read(loop, sock, 2))[1] != 0:
            raise ProxyError("the SOCKS5 proxy refused the user name and password")
    elif method != 0:
        raise ProxyError("the SOCKS5 proxy accepts none of our authentication methods")
    host, port = target
    try:
        ip = ipaddress.ip_address(host)
        address = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:
        name = host.encode("idna")
        address = b"\x03" + bytes([len(name)]) + name
    await loop.sock_sendall(sock, b"\x05\x01\x00" + address + struct.pack("!H", port))
    version, reply, _, kind = await _read(loop, sock, 4)
    if reply != 0:
        reason = _SOCKS_REPLIES.get(reply, f"reply {reply}")
        raise ProxyError(f"the SOCKS5 proxy cannot reach {host}:{port}: {reason}")
    length = {1: 4, 4: 16}.get(kind) or (await _read(loop, sock, 1))[0]
    await _read(loop, sock, length + 2)  # the address the proxy bound: not needed


async def _http_connect(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    target: tuple[str, int],
    username: str | None,
    password: str | None,
) -> None:
    host, port = target
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:  # byte by byte: nothing past the head may be consumed
        head += await _read(loop, sock, 1)
        if len(head) > 16384:
            raise ProxyError("the HTTP proxy's answer has no end")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
        raise ProxyError(f"the HTTP proxy refused CONNECT {authority}: {status}")
