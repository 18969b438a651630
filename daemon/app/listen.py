"""Where the API listens, and whether it may.

Without basic-auth credentials the API is open: whoever reaches the port can run flows and
read every execution. So an address beyond loopback (0.0.0.0, a LAN address, a host name
that resolves to one) is refused unless `insecure-no-auth` says the admin means it, and
then a warning is logged at every start. The start line names the sockets really bound,
not the setting, so that nobody reads "loopback only" while the port is open to all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from daemon.config.settings import ConfigError, Settings

log = logging.getLogger("podium")


async def check_exposure(settings: Settings) -> None:
    """ConfigError when `listen_host` reaches beyond loopback with no credentials (unless
    allowed, then a warning): called before anything is opened."""
    if settings.basic_auth is not None:
        return
    host = settings.listen_host
    beyond = await _non_loopback(host)
    if not beyond:
        return
    if not settings.insecure_no_auth:
        raise ConfigError(
            f"refusing to listen on {host} ({', '.join(beyond)}) without basic-auth "
            "credentials: anyone who reaches the port could run flows and read executions. "
            "Set basic-auth (PODIUM_BASIC_AUTH_USERNAME and PODIUM_BASIC_AUTH_PASSWORD, or "
            "`basic-auth:` in podium.yaml), listen on 127.0.0.1, or pass --insecure-no-auth "
            "(PODIUM_INSECURE_NO_AUTH=true) if an open API is really meant"
        )
    log.warning(
        "insecure-no-auth: the API on %s (%s) has NO credentials: anyone who reaches the "
        "port can run flows and read executions",
        host,
        ", ".join(beyond),
    )


async def _non_loopback(host: str) -> list[str]:
    """The addresses `host` stands for that are not loopback (a name is resolved)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [] if literal.is_loopback else [str(literal)]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc}") from None
    addresses = {str(info[4][0]) for info in found}
    return sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)


def bound_urls(addresses: Iterable[Sequence[Any]]) -> list[str]:
    """`http://host:port` of each socket the server bound (IPv4 first), with IPv6
    addresses in brackets and the wildcard addresses named."""
    urls = []
    for address in sorted(addresses, key=lambda a: (":" in str(a[0]), str(a[0]))):
        host, port = str(address[0]), int(address[1])
        shown = f"[{host}]" if ":" in host else host
        note = {"0.0.0.0": " (all IPv4 interfaces)", "::": " (all interfaces)"}.get(host, "")
        urls.append(f"http://{shown}:{port}{note}")
    return urls
