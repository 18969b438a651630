"""Starting the servers of tests/remote_servers.py for a test, and the credentials they use:
a self-signed certificate for FTPS, SSH keys for SFTP, all made in the test's directory."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


@dataclass
class Running:
    port: int
    root: Path
    process: subprocess.Popen[str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def serving(kind: str, root: Path, *args: str) -> Iterator[Running]:
    """A server of tests/remote_servers.py over `root`, stopped after the block."""
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tests.remote_servers", kind]
    if kind != "proxy":
        command += ["--root", str(root)]
    errors = root.parent / f"{root.name}.{kind}.stderr"
    with errors.open("w") as err:
        process = subprocess.Popen(
            [*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
        )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT)
    line = lines[0] if lines else ""
    running = Running(int(line.split()[1]) if line.startswith("READY ") else 0, root, process)
    if not running.port:
        running.stop()
        said = errors.read_text()[-3000:]
        raise AssertionError(f"the {kind} server did not start: {line!r}\n{said}")
    try:
        yield running
    finally:
        running.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class SshKey:
    private: str  # the text a flow's `keyfile` holds
    public: str  # an authorized_keys line


def rsa_pem_key(passphrase: str | None = None) -> SshKey:
    """An RSA key as `ssh-keygen -m PEM` writes it (Kestra's documented form)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase is not None:
        encryption = serialization.BestAvailableEncryption(passphrase.encode())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return SshKey(private.decode(), public.decode())


def ed25519_openssh_key() -> SshKey:
    """An Ed25519 key in OpenSSH's own format (what ssh-keygen writes by default)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return SshKey(private.decode(), public.decode())
