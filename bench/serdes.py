"""A 1 GB CSV -> Parquet with Kestra's serdes tasks (CsvToIon, then IonToParquet) in a
fresh `podium run`, its peak RSS and time, beside DuckDB's own COPY of the same file.

    .venv/bin/python bench/serdes.py            # PODIUM_BENCH_CSV_MB=1024 by default

The CSV has taxi-trip-like rows (18 columns) made by DuckDB. Peak memory is measured by
GNU time around a fresh process (bench/_peak.py); the target is <= 200 MB for podium.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._peak import measured  # noqa: E402

SIZE_MB = int(os.environ.get("PODIUM_BENCH_CSV_MB", "1024"))
ROW_BYTES = 99  # about, for the columns below

FLOW = """
id: csv_to_parquet
namespace: bench
inputs:
  - id: csv
    type: FILE
tasks:
  - id: ion
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{{ inputs.csv }}"
  - id: parquet
    type: io.kestra.plugin.serdes.parquet.IonToParquet
    from: "{{ outputs.ion.uri }}"
    compressionCodec: SNAPPY
"""

MAKE_CSV = """
import duckdb, sys
rows = int(sys.argv[2])
duckdb.sql(f'''
COPY (SELECT (i % 2) + 1 AS VendorID,
  TIMESTAMP '2019-01-01' + INTERVAL (i % 2678400) SECOND AS tpep_pickup_datetime,
  TIMESTAMP '2019-01-01' + INTERVAL (i % 2678400 + 600) SECOND AS tpep_dropoff_datetime,
  (i % 6) + 1 AS passenger_count, round((i % 1000) / 37.0, 2) AS trip_distance,
  1 AS RatecodeID, 'N' AS store_and_fwd_flag, (i % 265) + 1 AS PULocationID,
  (i * 7 % 265) + 1 AS DOLocationID, (i % 4) + 1 AS payment_type,
  round((i % 5000) / 97.0, 2) AS fare_amount, 0.5 AS extra, 0.5 AS mta_tax,
  round((i % 300) / 41.0, 2) AS tip_amount, 0.0 AS tolls_amount,
  0.3 AS improvement_surcharge, round((i % 6000) / 89.0, 2) AS total_amount,
  2.5 AS congestion_surcharge
  FROM range({rows}) t(i)) TO '{sys.argv[1]}' (HEADER, DELIMITER ',')''')
"""

DUCKDB_COPY = """
import duckdb, sys
duckdb.sql("SET threads = 2")
duckdb.sql(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', header=true{sys.argv[3]}))"
           f" TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION snappy)")
"""


def main() -> None:
    python = str(ROOT / ".venv" / "bin" / "python")
    podium = str(ROOT / ".venv" / "bin" / "podium")
    base = Path(tempfile.mkdtemp(prefix="podium-bench-serdes-", dir="/var/tmp"))
    try:
        csv = base / "trips.csv"
        made = measured([python, "-c", MAKE_CSV, str(csv), str(SIZE_MB * 1024 * 1024 // ROW_BYTES)])
        if made.exit_code:
            raise SystemExit("could not make the CSV")
        size = csv.stat().st_size / 1024 / 1024
        print(f"CSV: {size:.0f} MB, {sum(1 for _ in csv.open('rb')) - 1:,} rows")
        flow = base / "flow.yaml"
        flow.write_text(FLOW)
        run = measured(
            [podium, "run", str(flow), "--data-dir", str(base / "data"), "-i", f"csv={csv}"]
        )
        state = "SUCCESS" if run.exit_code == 0 else f"exit {run.exit_code}"
        print(
            f"podium CsvToIon + IonToParquet: {run.wall:6.1f} s ({size / run.wall:5.1f} MB/s), "
            f"peak RSS {run.peak_mb:6.1f} MB, {state} (target <= 200 MB)"
        )
        for label, options in (("typed", ""), ("all_varchar", ", all_varchar=true")):
            copy = measured(
                [python, "-c", DUCKDB_COPY, str(csv), str(base / f"{label}.parquet"), options]
            )
            print(
                f"duckdb COPY ({label:<11}):     {copy.wall:6.1f} s "
                f"({size / copy.wall:5.1f} MB/s), "
                f"peak RSS {copy.peak_mb:6.1f} MB"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
