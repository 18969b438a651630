"""Broker addresses as Kestra's plug-ins write them: `tcp://[user:password@]host[:port]`
or `ssl://...`, and the TLS context for the secure ones.

Shared by the task and the trigger of a broker family (which may not import each other).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# Scheme -> TLS or not.
SCHEMES = {"tcp": False, "mqtt": False, "ssl": True, "mqtts": True}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def __str__(self) -> str:
        """For logs: never the credentials a URL may carry."""
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def parse_endpoint(url: str, default_ports: tuple[int, int]) -> Endpoint:
    """The address in `url`; the port defaults to `default_ports` (plain, TLS).

    Raises ValueError with what is wrong, for a load-time error.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or parts.path not in ("", "/") or parts.query:
        raise ValueError("must be tcp://host:port or ssl://host:port")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("the server URL has no host")
    tls = SCHEMES[parts.scheme.lower()]
    return Endpoint(
        parts.hostname,
        port or default_ports[tls],
        tls,
        unquote(parts.username) if parts.username is not None else None,
        unquote(parts.password) if parts.password is not None else None,
    )


def tls_context(crt: str | None, verify_hostname: bool | None) -> ssl.SSLContext:
    """Reads CA files: call it off the loop. `crt` is a CA file's path or its PEM text."""
    if crt and "-----BEGIN" in crt:
        context = ssl.create_default_context(cadata=crt)
    else:
        context = ssl.create_default_context(cafile=crt or None)
    if verify_hostname is False:
        context.check_hostname = False
    return context
