"""What the SQL task and trigger families share (they may not import each other):
Kestra's PostgreSQL and MySQL/MariaDB url forms (`jdbc:postgresql://host:port/db`,
`jdbc:mysql://...`, `jdbc:mariadb://...`, or the drivers' own forms) and a column value
as flows see it (JSON).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit
from uuid import UUID

from daemon.sdk.durations import format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.pgtls import PemTls, ssl_argument

CONNECT_TIMEOUT = 10.0  # seconds; the PostgreSQL JDBC driver's default connectTimeout
_JDBC = "jdbc:postgresql:"
_SCHEMES = ("postgresql://", "postgres://")
_EXPECTED = "expected jdbc:postgresql://host:port/database or postgresql://host:port/database"
# JDBC url parameters with a libpq/asyncpg meaning; the driver's other tuning knobs
# (prepareThreshold, tcpKeepAlive, loggerLevel...) mean nothing here and are dropped.
_JDBC_PARAMETERS = {
    "user": "user",
    "password": "password",
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
}
_JDBC_SETTINGS = {
    "currentSchema": "search_path",
    "ApplicationName": "application_name",
    "options": "options",
}


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect; `where` and `user` are safe to print."""

    dsn: str
    user: str | None
    password: str | None = field(repr=False)
    ssl: str | None
    server_settings: tuple[tuple[str, str], ...]
    timeout: float
    where: str
    pem: PemTls | None = None  # sslRootCert, sslCert, sslKey, sslKeyPassword (pgtls.py)

    @property
    def key(self) -> tuple[Any, ...]:
        """The pool this target shares: a password or certificate change gets a pool of its
        own."""
        secret = hashlib.sha256((self.password or "").encode()).hexdigest()
        pem = self.pem.fingerprint if self.pem else None
        return (self.dsn, self.user, secret, self.ssl, self.server_settings, pem)

    @property
    def who(self) -> str:
        return self.user or "the default user"

    async def ssl_argument(self) -> Any:
        """asyncpg's `ssl`: the mode, or a context made from the PEM settings (off the
        event loop: OpenSSL reads the key from a file)."""
        if self.pem is None:
            return self.ssl
        return await asyncio.to_thread(ssl_argument, self.ssl, self.pem)


def parse_target(
    url: str,
    username: str | None,
    password: str | None,
    ssl: bool | None = None,
    ssl_mode: str | None = None,
    pem: PemTls | None = None,
) -> Target:
    """A Kestra `url` (JDBC or libpq form) plus the task's credentials and TLS choice.

    `username`/`password` properties win over credentials written in the url.
    """
    text = url.strip()
    jdbc = text.startswith(_JDBC)
    if jdbc:
        rest = text[len(_JDBC) :]
        text = "postgresql:" + (rest if rest.startswith("//") else "//localhost:5432/" + rest)
    if not text.startswith(_SCHEMES):
        raise TaskFailed(
            f"invalid PostgreSQL url '{_without_credentials(url)}': {_EXPECTED}", non_retryable=True
        )
    parts = urlsplit(text)
    query: list[tuple[str, str]] = []
    settings: list[tuple[str, str]] = []
    timeout = CONNECT_TIMEOUT
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if not jdbc:
            query.append((name, value))
        elif name in _JDBC_PARAMETERS:
            query.append((_JDBC_PARAMETERS[name], value))
        elif name in _JDBC_SETTINGS:
            settings.append((_JDBC_SETTINGS[name], value))
        elif name == "ssl" and value.lower() == "true" and ssl_mode is None:
            ssl_mode = "require"
        elif name == "connectTimeout" and value.isdigit() and int(value) > 0:
            timeout = float(value)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    url_user = userinfo.partition(":")[0] or None
    for name, value in query:
        if name == "user":
            url_user = value
    dsn = parts._replace(query=urlencode(query)).geturl()
    mode = ssl_mode or ("require" if ssl else None)
    database = parts.path.lstrip("/") or (username or url_user or "")
    return Target(
        dsn=dsn,
        user=username or url_user,
        password=password or None,
        ssl=mode.lower().replace("_", "-") if mode else None,
        server_settings=tuple(settings),
        timeout=timeout,
        where=f"{hosts or 'localhost'}/{database}",
        pem=pem,
    )


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{tail}"


def jsonable(value: Any, type_name: str = "") -> Any:
    """A column value as Kestra's JDBC tasks hand it on, as JSON: numerics as numbers (as
    text when a float would change them), timestamps as ISO-8601 (UTC with a Z when they
    have a zone), intervals as ISO-8601 durations, json columns as their value, bytes as
    base64."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return json.loads(value) if type_name in ("json", "jsonb") else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [jsonable(item, type_name.removesuffix("[]")) for item in value]
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def _number(value: Decimal) -> int | float | str:
    """A numeric as a JSON number, or as text when a float would change its value."""
    if not value.is_finite():
        return str(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


@dataclass(frozen=True)
class MysqlTarget:
    host: str
    port: int
    database: str | None
    user: str | None
    password: str | None = field(repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.database or ''}"


def parse_mysql(url: str, username: str | None, password: str | None) -> MysqlTarget:
    """`jdbc:mysql://host:port/db`, `jdbc:mariadb://...` or `mysql://...`; the task's
    `username`/`password` win over the url's."""
    text = url.strip()
    for prefix in ("jdbc:mysql:", "jdbc:mariadb:", "mysql:", "mariadb:"):
        if text.startswith(prefix):
            text = "mysql:" + text[len(prefix) :]
            break
    else:
        raise TaskFailed(
            f"invalid MySQL url '{_without_credentials(url)}': expected "
            "jdbc:mysql://host:port/database or jdbc:mariadb://host:port/database",
            non_retryable=True,
        )
    parts = urlsplit(text)
    query = dict(parse_qsl(parts.query))
    return MysqlTarget(
        host=parts.hostname or "localhost",
        port=parts.port or 3306,
        database=parts.path.lstrip("/") or None,
        user=username or (unquote(parts.username) if parts.username else query.get("user")),
        password=password or (unquote(parts.password) if parts.password else query.get("password")),
    )
