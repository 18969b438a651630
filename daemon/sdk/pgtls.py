"""TLS for PostgreSQL from Kestra's PEM properties: `sslRootCert`, `sslCert`, `sslKey`,
`sslKeyPassword` (plugin-jdbc-postgres's PostgresConnectionInterface), shared by the
PostgreSQL tasks and trigger.

Kestra hands the PEM texts to the JDBC driver as temporary files. podium builds one
`ssl.SSLContext` from them for asyncpg instead, which the connection pool keeps, and
removes the files it needed the moment OpenSSL has read them: the private key is on disk
(in a 0700 directory) only while the context is made.

The mode (`sslMode`, else `ssl: true` as REQUIRE, else PREFER, the drivers' default)
decides what is checked, as libpq and asyncpg do: VERIFY_FULL checks the server's chain
and name, VERIFY_CA its chain, REQUIRE its chain only when sslRootCert is given; DISABLE
uses no TLS and ignores the certificates. With certificates given, ALLOW and PREFER also
require TLS (asyncpg cannot fall back to plain text with a context of its own). The chain
is checked against sslRootCert, else the system's certificate authorities.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.sdk.errors import TaskFailed

# TLS 1.2 at least, as asyncpg's own contexts.
_MIN_VERSION = ssl.TLSVersion.TLSv1_2


@dataclass(frozen=True)
class PemTls:
    """The PEM texts of a connection (never printed)."""

    root_cert: str | None = field(default=None, repr=False)
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    key_password: str | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """Tells two settings apart (a pool per settings) without keeping them readable."""
        parts = (self.root_cert, self.cert, self.key, self.key_password)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(b"\0" if part is None else b"\1" + part.encode() + b"\0")
        return digest.hexdigest()


def pem_tls(
    root_cert: str | None, cert: str | None, key: str | None, key_password: str | None
) -> PemTls | None:
    """The PEM settings of a task, None when it has none (the url and mode decide alone)."""
    if not (root_cert or cert or key):
        return None
    return PemTls(root_cert or None, cert or None, key or None, key_password or None)


def ssl_argument(mode: str | None, pem: PemTls) -> ssl.SSLContext | Literal[False]:
    """asyncpg's `ssl` argument for a libpq `mode` (lower case, dashes) and PEM settings.

    Blocking (OpenSSL reads files): call it in a thread.
    """
    mode = mode or "prefer"
    if mode == "disable":
        return False
    if pem.key and not pem.cert:
        raise TaskFailed(
            "sslKey is the private key of sslCert: set sslCert (a PEM certificate) too",
            non_retryable=True,
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = _MIN_VERSION
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and bool(pem.root_cert))
    context.check_hostname = mode == "verify-full"
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        if pem.root_cert:
            try:
                context.load_verify_locations(cadata=pem.root_cert)
            except (ssl.SSLError, ValueError) as exc:
                raise _invalid("sslRootCert", "PEM certificate", exc) from None
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context.verify_mode = ssl.CERT_NONE
    if pem.cert:
        _load_client_certificate(context, pem)
    return context


def _load_client_certificate(context: ssl.SSLContext, pem: PemTls) -> None:
    """sslCert, with its key (sslKey, else a key after the certificate in sslCert itself),
    into the context. The key is read here, so that each mistake gets its own words, and
    handed to OpenSSL decrypted, through a file that is gone when this returns."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    assert pem.cert is not None
    try:
        chain = x509.load_pem_x509_certificates(pem.cert.encode())
    except ValueError:
        raise TaskFailed("sslCert must be a PEM certificate", non_retryable=True) from None
    key_text = pem.key or pem.cert
    if "PRIVATE KEY-----" not in key_text:
        raise TaskFailed(
            "sslCert has no private key with it: set sslKey (a PEM private key)",
            non_retryable=True,
        )
    key = _private_key(key_text.encode(), pem.key_password)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != chain[0].public_key().public_bytes(der, spki):
        raise TaskFailed("sslKey is not the private key of sslCert", non_retryable=True)
    folder = Path(tempfile.mkdtemp(prefix="podium-pgtls-"))  # 0700: this user's alone
    try:
        cert_file = folder / "client.crt"
        cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        key_file = folder / "client.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:  # a key type OpenSSL's TLS cannot use
            raise _invalid("sslKey", "key OpenSSL can sign with", exc) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _private_key(text: bytes, password: str | None) -> Any:
    """The PEM key (PKCS#1, SEC1 or PKCS#8; encrypted or not), decrypted. A password given
    for a key that is not encrypted is not needed, as with the JDBC driver."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(text, None)
    except TypeError:  # encrypted
        if not password:
            raise TaskFailed(
                "sslKey is encrypted: set sslKeyPassword", non_retryable=True
            ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TaskFailed("sslKey must be a PEM private key", non_retryable=True) from None
    try:
        return serialization.load_pem_private_key(text, password.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TaskFailed(
            "sslKey cannot be decrypted with sslKeyPassword: wrong password",
            non_retryable=True,
        ) from None


def _invalid(name: str, what: str, exc: Exception) -> TaskFailed:
    reason = getattr(exc, "reason", None) or str(exc)
    return TaskFailed(f"{name} must be a {what} ({reason})", non_retryable=True)
