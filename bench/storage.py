"""A 2 GB output file through each storage backend: peak memory and throughput.

One `podium run` per backend (a fresh process, measured by GNU time) of a flow whose first
task hands a 2 GB file over as an output file (uploaded: multipart to S3, chunks to
PostgreSQL) and whose second task takes it as an input file (downloaded into the cache,
then into its working directory) and checks its sha256. The local directory is the
baseline. The target is a peak RSS under 150 MB whatever the file's size; this prints
figures, it asserts nothing.

S3 is moto's server and PostgreSQL a private server, both started here on free ports
(as the tests start them: `pip install 'moto[server]'`, Debian's postgresql).

Run: .venv/bin/python bench/storage.py [size in MiB, default 2048]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._peak import measured
from tests import services  # the tests' private PostgreSQL and S3 servers

TARGET_MB = 150
FLOW = textwrap.dedent("""\
    id: big_file
    namespace: bench.storage
    inputs:
      - id: source
        type: STRING
      - id: sha256
        type: STRING
    tasks:
      - id: produce
        type: io.kestra.plugin.scripts.shell.Commands
        outputFiles: ["big.bin"]
        commands:
          - ln "{{ inputs.source }}" big.bin
      - id: consume
        type: io.kestra.plugin.scripts.shell.Commands
        inputFiles:
          copy.bin: "{{ outputs.produce.outputFiles['big.bin'] }}"
        commands:
          - echo "{{ inputs.sha256 }}  copy.bin" | sha256sum --check --status
    """)


def make_file(path: Path, size: int) -> str:
    """`size` bytes of random data (incompressible, as most big outputs are); its sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            out.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def seconds(run: dict[str, Any]) -> float:
    """A task run's time from RUNNING to its end, as its state history records it."""
    dates = [datetime.fromisoformat(h["date"]) for h in run["state"]["histories"]]
    states = [h["state"] for h in run["state"]["histories"]]
    started = dates[states.index("RUNNING")] if "RUNNING" in states else dates[0]
    return (dates[-1] - started).total_seconds()


def run_flow(
    name: str, env: dict[str, str], work: Path, source: Path, digest: str, size: int
) -> None:
    data = work / f"data-{name}"
    flow = work / "big_file.yaml"
    flow.write_text(FLOW)
    podium = str(Path(sys.executable).with_name("podium"))
    argv = [
        podium, "run", str(flow), "--data-dir", str(data), "--json",
        "--input", f"source={source}", "--input", f"sha256={digest}",
    ]  # fmt: skip
    run = measured(argv, env={**os.environ, **env})
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        print(f"{name:<10} podium run failed (exit {run.exit_code})")
        return
    state = doc["state"]["current"]
    runs = {r["taskId"]: r for r in doc["taskRunList"]}
    mib = size / 2**20
    up, down = seconds(runs["produce"]), seconds(runs["consume"])
    verdict = "ok" if run.peak_mb < TARGET_MB else f"OVER {TARGET_MB} MB"
    print(
        f"{name:<10} {state:<8} peak RSS {run.peak_mb:7.1f} MB ({verdict})   "
        f"upload {mib / up:7.1f} MiB/s ({up:5.1f} s)   "
        f"download+copy+sha256 {mib / down:7.1f} MiB/s ({down:5.1f} s)   "
        f"wall {run.wall:5.1f} s"
    )
    shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    size = int(sys.argv[1]) * 2**20 if len(sys.argv) > 1 else 2 * 2**30
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="podium-bench-")))
        source = work / "big.bin"
        print(f"making a {size / 2**20:.0f} MiB file of random bytes...", flush=True)
        digest = make_file(source, size)
        moto = stack.enter_context(services.server_process(services.MotoS3))
        dsn = stack.enter_context(services.postgres())
        backends = {
            "local": {"PODIUM_STORAGE_TYPE": "local"},
            "s3": {
                "PODIUM_STORAGE_TYPE": "s3",
                "PODIUM_STORAGE_ENDPOINT": moto.endpoint,
                "PODIUM_STORAGE_REGION": "us-east-1",
                "PODIUM_STORAGE_BUCKET": moto.bucket,
                "PODIUM_STORAGE_ACCESS_KEY": moto.access_key,
                "PODIUM_STORAGE_SECRET_KEY": moto.secret_key,
                "PODIUM_STORAGE_PATH_STYLE": "true",
            },
            "postgres": {"PODIUM_STORAGE_TYPE": "postgres", "PODIUM_STORAGE_DSN": dsn},
        }
        print(f"{size / 2**20:.0f} MiB output file, peak RSS target < {TARGET_MB} MB "
              "(local: the baseline)")  # fmt: skip
        for name, env in backends.items():
            run_flow(name, env, work, source, digest, size)


if __name__ == "__main__":
    main()
