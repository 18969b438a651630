"""Namespace files: upload and download throughput of one large file through a real
`podium serve`, and the server's peak RSS, which must stay far below the file's size
(contents stream in chunks between the socket and the store; nothing holds a whole file).

    .venv/bin/python bench/namespace_files.py [--size-mb 512] [--store postgresql://...]

Baseline in the same run: a plain `cp` of the same file on the same disk. The upload is
`podium namespace files update` (the CLI streams from disk); the download a streamed GET
to a file. The server runs under GNU time, so its peak RSS is its own (bench/_peak.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._peak import TIME  # noqa: E402

NAMESPACE = "bench.files"
CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size_mb: int) -> str:
    """Incompressible content (so no layer can cheat), and its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        for i in range(size_mb):
            chunk = hashlib.sha256(block + i.to_bytes(8, "big")).digest() * (CHUNK // 32)
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"podium serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("podium serve did not answer within 60 s")


def stop(timer: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server itself: GNU time would die of it without writing its report."""
    children = Path(f"/proc/{timer.pid}/task/{timer.pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGTERM)
    timer.wait(timeout=120)


def main(size_mb: int, store: str | None) -> None:
    if not Path(TIME).is_file():
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    with tempfile.TemporaryDirectory(prefix="podium-bench-nsfiles-") as scratch:
        root = Path(scratch)
        folder = root / "push"
        folder.mkdir()
        source = folder / "big.bin"
        print(f"writing a {size_mb} MiB file...", flush=True)
        expected = make_file(source, size_mb)
        started = time.perf_counter()
        shutil.copyfile(source, root / "copy.bin")
        copy_s = time.perf_counter() - started
        (root / "copy.bin").unlink()

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        (root / "flows").mkdir()
        report = root / "serve.time"
        argv = [sys.executable, "-m", "daemon", "serve", "--flows", str(root / "flows"),
                "--data-dir", str(root / "data"), "--port", str(port)]  # fmt: skip
        if store:
            argv += ["--store", store]
        server = subprocess.Popen(
            [TIME, "-f", "%M", "-o", str(report), *argv],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_ready(url, server)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "daemon", "namespace", "files", "update", NAMESPACE,
                 str(folder), "--url", url],
                cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            upload_s = time.perf_counter() - started

            target = root / "downloaded.bin"
            digest = hashlib.sha256()
            started = time.perf_counter()
            query = f"{url}/api/v1/namespaces/{NAMESPACE}/files?path=/big.bin"
            with urllib.request.urlopen(query, timeout=600) as response, target.open("wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
            download_s = time.perf_counter() - started
        finally:
            stop(server)
        peak_mb = int(report.read_text().strip().splitlines()[-1]) / 1024
        if digest.hexdigest() != expected:
            raise SystemExit("the downloaded file differs from the uploaded one")
    backend = "postgresql" if store else "sqlite"
    print(f"file: {size_mb} MiB, store: {backend}")
    print(f"baseline cp on the same disk: {size_mb / copy_s:8.1f} MiB/s")
    print(f"upload (CLI -> API -> store): {size_mb / upload_s:8.1f} MiB/s  ({upload_s:.1f} s)")
    print(
        f"download (store -> API -> file): {size_mb / download_s:5.1f} MiB/s  ({download_s:.1f} s)"
    )
    print(f"server peak RSS: {peak_mb:.0f} MB ({peak_mb / size_mb:.2f} x the file's size)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--store", default=None, help="a postgresql:// URL (default: SQLite)")
    options = parser.parse_args()
    main(options.size_mb, options.store)
