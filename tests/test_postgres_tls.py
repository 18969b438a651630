"""The PostgreSQL tasks and trigger over TLS, with Kestra's PEM properties (sslRootCert,
sslCert, sslKey, sslKeyPassword; plugin-jdbc-postgres PostgresConnectionInterface and
PostgresService.handleSsl), against a private PostgreSQL started with ssl on.

Its pg_hba.conf refuses every connection without TLS, and lets the role `certuser` in only
with a client certificate of that name, signed by the test's own certificate authority.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon.sdk.state import State
from tasks.sql.pool import close_pools
from tests.harness import Harness, running_triggers
from tests.services import PostgresServer, postgres_server

KEY_PASSWORD = "s3cret pass"


@dataclass(frozen=True)
class Pem:
    ca: str
    other_ca: str  # a certificate authority that signed nothing here
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str  # encrypted with KEY_PASSWORD, OpenSSL's traditional form
    client_key_pkcs8: str  # the same key, unencrypted PKCS#8


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def make_pem() -> Pem:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for `certuser`."""
    ca_key, other_key, server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    ca = _certificate("podium test CA", ca_key)
    server = _certificate(
        "localhost",
        server_key,
        ("podium test CA", ca_key),
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = _certificate("certuser", client_key, ("podium test CA", ca_key))
    plain = serialization.NoEncryption()
    return Pem(
        ca=_pem(ca),
        other_ca=_pem(_certificate("another CA", other_key)),
        server_cert=_pem(server),
        server_key=server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, plain
        ).decode(),
        client_cert=_pem(client),
        client_key=client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        ).decode(),
        client_key_pkcs8=client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, plain
        ).decode(),
    )


@pytest.fixture(scope="module")
def pem() -> Pem:
    return make_pem()


@pytest.fixture(scope="module")
def tls_server(pem: Pem) -> Iterator[PostgresServer]:
    """A private PostgreSQL with ssl on: TLS only, `certuser` by client certificate."""

    def configure(server: PostgresServer) -> None:
        files = {"server.crt": pem.server_cert, "server.key": pem.server_key, "ca.crt": pem.ca}
        for name, text in files.items():
            path = server.root / name
            path.write_text(text)
            path.chmod(0o600)
            if os.geteuid() == 0:  # the cluster runs as `postgres`, who must own its key
                user = pwd.getpwnam("postgres")
                os.chown(path, user.pw_uid, user.pw_gid)
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "ssl = on\n"
                f"ssl_cert_file = '{server.root / 'server.crt'}'\n"
                f"ssl_key_file = '{server.root / 'server.key'}'\n"
                f"ssl_ca_file = '{server.root / 'ca.crt'}'\n"
            )

    hba = (
        "hostnossl all all all reject",
        "hostssl all certuser 127.0.0.1/32 cert",
    )
    with postgres_server(hba=hba, configure=configure) as server:
        yield server


@pytest.fixture
async def url(tls_server: PostgresServer) -> str:
    """The server's JDBC url, with the role `certuser` in place."""
    connection = await asyncpg.connect(
        host=str(tls_server.root), port=tls_server.port, user="postgres"
    )  # the unix socket: no TLS needed there
    try:
        await connection.execute(
            "DO $$ BEGIN CREATE ROLE certuser LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    finally:
        await connection.close()
    return f"jdbc:postgresql://127.0.0.1:{tls_server.port}/postgres"


@pytest.fixture(autouse=True)
async def pools() -> AsyncIterator[None]:
    """Each test's pools closed at its end (they belong to its event loop)."""
    yield
    await close_pools()


def block(text: str, indent: int = 6) -> str:
    """A PEM text as a YAML block scalar's lines."""
    pad = " " * indent
    return "|\n" + "".join(f"{pad}{line}\n" for line in text.strip().splitlines())


def query_flow(url: str, properties: str, sql: str = "SELECT 1 AS one") -> str:
    return f"""
id: tls
namespace: test
tasks:
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {url}
    {properties}
    sql: {sql}
    fetchType: FETCH_ONE
"""


SSL_INFO = (
    "SELECT s.ssl, current_user AS who, s.client_dn FROM pg_stat_ssl s "
    "WHERE s.pid = pg_backend_pid()"
)


async def test_verify_full_with_the_servers_ca_connects_over_tls(
    h: Harness, url: str, pem: Pem
) -> None:
    """PostgresService.handleSsl: sslRootCert (PEM text) is the trust anchor of
    sslMode VERIFY_FULL; the server's certificate names 127.0.0.1, so the name check
    passes too."""
    execution = await h.run(
        query_flow(
            url,
            f"username: postgres\n    sslMode: VERIFY_FULL\n    sslRootCert: {block(pem.ca)}",
            SSL_INFO,
        )
    )
    run = execution.task_runs[0]
    assert run.state.current == State.SUCCESS, await h.logs(execution)
    assert run.outputs["row"] == {"ssl": True, "who": "postgres", "client_dn": None}


async def test_a_client_certificate_with_an_encrypted_key_logs_in(
    h: Harness, url: str, pem: Pem
) -> None:
    """sslCert and sslKey (an encrypted PEM key, as Kestra's PEMEncryptedKeyPair) with
    sslKeyPassword: the server's `cert` rule lets `certuser` in by that certificate."""
    properties = (
        "username: certuser\n    sslMode: VERIFY_CA\n"
        f"    sslRootCert: {block(pem.ca)}"
        f"    sslCert: {block(pem.client_cert)}"
        f"    sslKey: {block(pem.client_key)}"
        f"    sslKeyPassword: {KEY_PASSWORD!r}"
    )
    execution = await h.run(query_flow(url, properties, SSL_INFO))
    run = execution.task_runs[0]
    assert run.state.current == State.SUCCESS, await h.logs(execution)
    assert run.outputs["row"] == {"ssl": True, "who": "certuser", "client_dn": "/CN=certuser"}


async def test_an_unencrypted_pkcs8_key_without_verification_logs_in(
    h: Harness, url: str, pem: Pem
) -> None:
    """A PKCS#8 key needs no password; REQUIRE without sslRootCert does not check the
    server (the drivers' REQUIRE), and the client certificate is still sent."""
    properties = (
        "username: certuser\n    sslMode: REQUIRE\n"
        f"    sslCert: {block(pem.client_cert)}"
        f"    sslKey: {block(pem.client_key_pkcs8)}"
    )
    execution = await h.run(query_flow(url, properties, SSL_INFO))
    run = execution.task_runs[0]
    assert run.state.current == State.SUCCESS, await h.logs(execution)
    assert run.outputs["row"]["who"] == "certuser"


@pytest.mark.parametrize("mode", ["VERIFY_CA", "REQUIRE"])
async def test_a_server_signed_by_another_ca_is_refused(
    h: Harness, url: str, pem: Pem, mode: str
) -> None:
    """VERIFY_CA, and REQUIRE given a root certificate (libpq: then it checks the chain),
    against a root that did not sign the server's: the task fails, not retried, saying
    the certificate is not trusted."""
    flow = query_flow(
        url,
        f"username: postgres\n    sslMode: {mode}\n"
        "    retry: {type: constant, interval: PT0S, maxAttempts: 3}\n"
        f"    sslRootCert: {block(pem.other_ca)}",
    )
    execution = await h.run(flow)
    run = execution.task_runs[0]
    assert run.state.current == State.FAILED
    assert len(run.attempts) == 1
    errors = await h.logs(execution, "ERROR")
    assert any("the server's certificate is not trusted" in line for line in errors), errors


async def test_disable_ignores_the_certificates_and_the_server_refuses_plain_text(
    h: Harness, url: str, pem: Pem
) -> None:
    """sslMode DISABLE connects without TLS whatever certificates are given (libpq's
    meaning); this server's hostnossl rule refuses that."""
    execution = await h.run(
        query_flow(
            url, f"username: postgres\n    sslMode: DISABLE\n    sslRootCert: {block(pem.ca)}"
        )
    )
    assert execution.state.current == State.FAILED
    errors = await h.logs(execution, "ERROR")
    assert any("no encryption" in line for line in errors), errors


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ("sslMode: VERIFY_CA\n    sslRootCert: not a certificate", "sslRootCert must be a PEM"),
        ("sslMode: REQUIRE\n    sslKey: {key}", "sslKey is the private key of sslCert"),
        (
            "sslMode: REQUIRE\n    sslCert: {cert}    sslKey: {key}",
            "sslKey is encrypted: set sslKeyPassword",
        ),
        (
            "sslMode: REQUIRE\n    sslCert: {cert}    sslKey: {key}    sslKeyPassword: wrong",
            "sslKey cannot be decrypted with sslKeyPassword: wrong password",
        ),
        (
            "sslMode: REQUIRE\n    sslCert: {ca}    sslKey: {plain}",
            "sslKey is not the private key of sslCert",
        ),
        ("sslMode: REQUIRE\n    sslCert: '-----BEGIN CERTIFICATE-----'", "sslCert must be"),
    ],
)
async def test_malformed_tls_settings_fail_with_the_property_named(
    h: Harness, url: str, pem: Pem, properties: str, message: str
) -> None:
    """Each malformed PEM setting fails the task once (retrying cannot mend it), naming
    the property and what is wrong with it."""
    filled = properties.format(
        key=block(pem.client_key),
        cert=block(pem.client_cert),
        ca=block(pem.ca),
        plain=block(pem.client_key_pkcs8),
    )
    execution = await h.run(
        query_flow(
            url,
            "username: certuser\n"
            "    retry: {type: constant, interval: PT0S, maxAttempts: 3}\n"
            f"    {filled}",
        )
    )
    run = execution.task_runs[0]
    assert run.state.current == State.FAILED
    assert len(run.attempts) == 1
    errors = await h.logs(execution, "ERROR")
    assert any(message in line for line in errors), errors


async def test_the_trigger_polls_over_tls_with_a_client_certificate(
    h: Harness, url: str, pem: Pem, tls_server: PostgresServer
) -> None:
    """plugin-jdbc-postgres Trigger takes the same PEM properties (PostgresConnection-
    Interface): its poll logs in by certificate and starts an execution with the row."""
    table = f"t_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(
        host=str(tls_server.root), port=tls_server.port, user="postgres"
    )
    try:
        await connection.execute(f"CREATE TABLE {table} (id int)")
        await connection.execute(f"INSERT INTO {table} VALUES (7)")
        await connection.execute(f"GRANT SELECT ON {table} TO certuser")
    finally:
        await connection.close()
    source = f"""id: poll
namespace: test
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.row.id }}}}"
triggers:
  - id: watch
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    url: {url}
    username: certuser
    sslMode: VERIFY_FULL
    sslRootCert: {block(pem.ca)}
    sslCert: {block(pem.client_cert)}
    sslKey: {block(pem.client_key)}
    sslKeyPassword: {KEY_PASSWORD!r}
    sql: SELECT id, current_user AS who FROM {table}
    fetchType: FETCH_ONE
    interval: PT1H
"""
    async with running_triggers(h, source) as th:
        [execution] = await th.wait_for(1)
        await th.finished()
    assert execution.trigger["variables"] == {"row": {"id": 7, "who": "certuser"}, "size": 1}


def test_pem_settings_are_never_printed(pem: Pem) -> None:
    """The target's repr (in tracebacks, debug logs) shows no key, password or cert."""
    from daemon.sdk.pgtls import pem_tls
    from daemon.sdk.sqldb import parse_target

    settings = pem_tls(pem.ca, pem.client_cert, pem.client_key, KEY_PASSWORD)
    target = parse_target("jdbc:postgresql://127.0.0.1/db", "u", "pw", None, "REQUIRE", settings)
    text = repr(target)
    assert "BEGIN" not in text and KEY_PASSWORD not in text
    assert target.key != parse_target("jdbc:postgresql://127.0.0.1/db", "u", "pw").key
