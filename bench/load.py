"""The taxi load, measured: CopyIn against psql's \\copy, memory, and the whole 04 flow.

    .venv/bin/python bench/load.py [ROWS, default 1000000]

On one generated yellow month, against one private PostgreSQL (started as the tests start
theirs), side by side in one run:

* CopyIn's rows/s (the task's own time, from its stored state history) against
  `psql -c "\\copy ..."` of the same file into the same table, alternating, best of
  ROUNDS each. Target: CopyIn >= 0.9x psql.
* The peak RSS of the `podium run` process doing the CopyIn (its rusage), beside that of a
  run doing one `SELECT 1`: what the load itself costs. Target: <= 150 MB.
* `flows/04_postgres_taxi.yaml` unchanged, downloading the gzipped month from a local HTTP
  server: wall time, peak RSS, and each task's share, from the stored task runs.

Figures are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._peak import measured  # noqa: E402
from bench.taxi_csv import YELLOW_COLUMNS, generate  # noqa: E402
from daemon.store import open_store  # noqa: E402
from tests import services  # noqa: E402  (the tests' private PostgreSQL)

ROUNDS = 3
MONTH = "2019-01"
TABLE = "bench_copy"
COLUMNS = ", ".join(YELLOW_COLUMNS)
TYPES = {
    "VendorID": "text",
    "passenger_count": "integer",
    "RatecodeID": "text",
    "store_and_fwd_flag": "text",
    "PULocationID": "text",
    "DOLocationID": "text",
    "payment_type": "integer",
}


def column_type(name: str) -> str:
    return "timestamp" if name.endswith("_datetime") else TYPES.get(name, "double precision")


def psql(dsn: str, command: str) -> float:
    """Run one psql command; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        ["psql", dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def podium_run(
    flow: Path, data_dir: Path, env: dict[str, str], *inputs: str
) -> tuple[dict[str, Any], float, float]:
    """`podium run --json` in a fresh process: the stored execution, wall seconds, peak RSS
    in MB (bench/_peak.py)."""
    argv = [sys.executable, "-m", "daemon", "run", "--json", "--data-dir", str(data_dir), str(flow)]
    for value in inputs:
        argv += ["-i", value]
    run = measured(argv, env=env, cwd=ROOT)
    seconds, out = run.wall, run.stdout
    execution_id = json.loads(out)["id"]
    stored = asyncio.run(stored_execution(data_dir, execution_id))
    if stored["state"]["current"] != "SUCCESS":
        raise SystemExit(f"{flow.name} ended {stored['state']['current']}: {stored.get('error')}")
    return stored, seconds, run.peak_mb


async def stored_execution(data_dir: Path, execution_id: str) -> dict[str, Any]:
    store = open_store(data_dir)
    await store.open()
    try:
        doc = await store.get_execution(execution_id)
    finally:
        await store.close()
    assert doc is not None
    return doc


def seconds_of(run: dict[str, Any]) -> float:
    """A task run's time from its first RUNNING to its end, from its state history."""
    history = run["state"]["histories"]
    running = next(h["date"] for h in history if h["state"] == "RUNNING")
    return (
        datetime.fromisoformat(history[-1]["date"]) - datetime.fromisoformat(running)
    ).total_seconds()


@contextmanager
def release_server(directory: Path) -> Iterator[str]:
    """The release layout (<colour>/<file>.gz) over HTTP, as the flow's base_url."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def copy_in_flow(path: Path, csv: Path) -> Path:
    columns = ",".join(YELLOW_COLUMNS)
    path.write_text(f"""id: copy_in
namespace: bench
tasks:
  - id: copy_in
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    url: "{{{{ envs.pg_url }}}}"
    username: postgres
    from: {csv}
    table: {TABLE}
    format: CSV
    header: true
    columns: [{columns}]
""")
    return path


def select_flow(path: Path) -> Path:
    path.write_text("""id: select
namespace: bench
tasks:
  - id: one
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: "{{ envs.pg_url }}"
    username: postgres
    sql: SELECT 1
""")
    return path


def compare(dsn: str, base: Path, csv: Path, rows: int, env: dict[str, str]) -> None:
    table = ", ".join(f"{c} {column_type(c)}" for c in YELLOW_COLUMNS)
    psql(dsn, f"CREATE TABLE {TABLE} (unique_row_id text, filename text, {table})")
    flow = copy_in_flow(base / "copy_in.yaml", csv)
    best_psql = best_copy = 0.0
    peak = 0.0
    for round_ in range(1, ROUNDS + 1):
        psql(dsn, f"TRUNCATE {TABLE}")
        psql_seconds = psql(
            dsn, f"\\copy {TABLE} ({COLUMNS}) FROM '{csv}' WITH (FORMAT csv, HEADER true)"
        )
        psql(dsn, f"TRUNCATE {TABLE}")
        stored, _, rss = podium_run(flow, base / f"data-copy-{round_}", env)
        run = stored["taskRunList"][0]
        assert run["outputs"]["rowCount"] == rows, run["outputs"]
        copy_seconds = seconds_of(run)
        best_psql, best_copy = (
            max(best_psql, rows / psql_seconds),
            max(best_copy, rows / copy_seconds),
        )
        peak = max(peak, rss)
        print(
            f"  round {round_}: psql \\copy {psql_seconds:6.2f} s {rows / psql_seconds:9,.0f} "
            f"rows/s | CopyIn {copy_seconds:6.2f} s {rows / copy_seconds:9,.0f} rows/s, "
            f"peak RSS {rss:5.1f} MB"
        )
    _, _, baseline = podium_run(select_flow(base / "select.yaml"), base / "data-select", env)
    ratio = best_copy / best_psql
    print(
        f"CopyIn vs psql \\copy (best of {ROUNDS}): {best_copy:,.0f} vs {best_psql:,.0f} "
        f"rows/s = {ratio:.2f}x (target >= 0.90: {'met' if ratio >= 0.9 else 'MISSED'})"
    )
    print(
        f"peak RSS of `podium run` doing the CopyIn: {peak:.1f} MB (one SELECT 1: "
        f"{baseline:.1f} MB; target <= 150: {'met' if peak <= 150 else 'MISSED'})"
    )
    psql(dsn, f"DROP TABLE {TABLE}")


def whole_flow(dsn: str, base: Path, csv: Path, rows: int, env: dict[str, str]) -> None:
    release = base / "release"
    (release / "yellow").mkdir(parents=True)
    with (
        csv.open("rb") as plain,
        gzip.open(
            release / "yellow" / f"yellow_tripdata_{MONTH}.csv.gz", "wb", compresslevel=6
        ) as gz,
    ):
        shutil.copyfileobj(plain, gz, 1 << 20)
    year, month = MONTH.split("-")
    with release_server(release) as base_url:
        stored, wall, rss = podium_run(
            ROOT / "flows" / "04_postgres_taxi.yaml",
            base / "data-flow",
            env,
            "taxi=yellow",
            f"year={year}",
            f"month={month}",
            f"base_url={base_url}",
        )
    state = stored["state"]
    total = (
        datetime.fromisoformat(state["endDate"]) - datetime.fromisoformat(state["startDate"])
    ).total_seconds()
    print(
        f"04_postgres_taxi, yellow {MONTH}, {rows:,} rows: {wall:.2f} s wall for `podium run`,"
        f" execution {total:.2f} s, peak RSS {rss:.1f} MB"
    )
    runs = stored["taskRunList"]
    depth: dict[str, int] = {}
    for run in runs:
        depth[run["id"]] = depth.get(run["parentTaskRunId"] or "", -1) + 1
        took = seconds_of(run)
        label = "  " * depth[run["id"]] + run["taskId"]
        print(f"  {label:<42} {took:7.2f} s  {100 * took / total:5.1f}%")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with services.postgres() as dsn, tempfile.TemporaryDirectory(prefix="podium-load-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        csv = generate(base / f"yellow_tripdata_{MONTH}.csv", "yellow", MONTH, rows)
        print(
            f"generated {rows:,} yellow rows ({csv.stat().st_size / 2**20:.0f} MiB) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        netloc = dsn.split("@", 1)[1]
        env = {
            **os.environ,
            "ENV_PG_URL": f"jdbc:postgresql://{netloc}",
            "ENV_PG_USERNAME": "postgres",
            "ENV_PG_PASSWORD": "unused",
        }
        compare(dsn, base, csv, rows, env)
        whole_flow(dsn, base, csv, rows, env)


if __name__ == "__main__":
    main()
