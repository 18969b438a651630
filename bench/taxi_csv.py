"""Realistic NYC-taxi trip CSVs, with the real yellow and green headers, for tests and bench.

    python bench/taxi_csv.py yellow 2019-01 10000 out.csv.gz   # gzipped when named .gz
    python bench/taxi_csv.py                                    # prints the generation rate

The rows look like the DataTalksClub release files the zoomcamp flows download: trips
inside the given month, the TLC's code values, amounts that add up, and what makes real
files awkward to load: unquoted empty fields (NULL: a few percent of rows have no vendor,
passenger count, rate code, flag or payment type; congestion_surcharge before 2019-02;
ehail_fee always), quoted values (some flags and distances), and quoted empty flags (an
empty string, not NULL). The same (colour, month) always gives the same rows, so a month
loaded twice is the same data; different months never share a row.
"""

from __future__ import annotations

import gzip
import io
import random
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

YELLOW_COLUMNS = (
    "VendorID",
    "tpep_pickup_datetime",
    "tpep_dropoff_datetime",
    "passenger_count",
    "trip_distance",
    "RatecodeID",
    "store_and_fwd_flag",
    "PULocationID",
    "DOLocationID",
    "payment_type",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
)
GREEN_COLUMNS = (
    "VendorID",
    "lpep_pickup_datetime",
    "lpep_dropoff_datetime",
    "store_and_fwd_flag",
    "RatecodeID",
    "PULocationID",
    "DOLocationID",
    "passenger_count",
    "trip_distance",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "ehail_fee",
    "improvement_surcharge",
    "total_amount",
    "payment_type",
    "trip_type",
    "congestion_surcharge",
)
COLUMNS = {"yellow": YELLOW_COLUMNS, "green": GREEN_COLUMNS}

_BATCH = 10_000  # rows joined per write
# Code values weighted roughly as in 2019's trips.
_PASSENGERS = (
    ("1",) * 70 + ("2",) * 14 + ("3",) * 4 + ("5",) * 4 + ("6",) * 3 + ("4",) * 2 + ("0",) * 3
)
_RATE_CODES = ("1",) * 96 + ("2",) * 2 + ("5", "3")
_PAYMENTS = ("1",) * 70 + ("2",) * 27 + ("3",) * 2 + ("4",)
_EXTRAS = ("0", "0.5", "0.5", "1", "2.5", "3")
_TIPS = (0, 0, 0.1, 0.15, 0.2, 0.25)


def month_start(month: str) -> datetime:
    """`2019-01` -> its first instant; anything else is a ValueError naming the format."""
    try:
        return datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"month must look like 2019-01, got {month!r}") from None


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def rows(colour: str, month: str, count: int) -> Iterator[str]:
    """`count` CSV lines (no header, each ending in a newline) for one colour and month;
    checks its arguments at once, not when the first line is read."""
    if colour not in COLUMNS:
        raise ValueError(f"colour must be yellow or green, got {colour!r}")
    return _rows(colour, month_start(month), count)


def _rows(colour: str, start: datetime, count: int) -> Iterator[str]:
    # Written for speed (a million rows for bench/load.py): one random() per choice, and
    # timestamps from precomputed day prefixes rather than datetime arithmetic.
    days = [f"{start + timedelta(days=d):%Y-%m-%d} " for d in range(40)]
    seconds = int((_next_month(start) - start).total_seconds())
    rng = random.Random(zlib.crc32(f"{colour}-{start:%Y-%m}".encode()))
    r = rng.random
    congestion = start >= datetime(2019, 2, 1)
    green = colour == "green"

    def stamp(second: int) -> str:
        day, rest = divmod(second, 86400)
        hour, rest = divmod(rest, 3600)
        return f"{days[day]}{hour:02d}:{rest // 60:02d}:{rest % 60:02d}"

    for _ in range(count):
        pickup = int(r() * seconds)
        distance = round(rng.expovariate(1 / 2.9), 2)
        fare = round(2.5 + distance * 2.5 + r() * 4, 1)
        if r() < 0.004:
            fare = -fare  # refunds and disputes come as negative amounts
        extra = _EXTRAS[int(r() * len(_EXTRAS))]
        tip = round(fare * _TIPS[int(r() * len(_TIPS))], 2)
        tolls = "6.12" if r() < 0.05 else "0"
        surcharge = ("2.5" if r() < 0.9 else "0") if congestion else ""
        total = fare + float(extra) + 0.5 + tip + float(tolls) + 0.3 + float(surcharge or 0)
        known = r() >= 0.03  # some rows carry no vendor and no codes at all
        vendor = flag = passengers = rate = payment = trip_type = ""
        if known:
            vendor = "1" if r() < 0.35 else "2"
            flag = "Y" if r() < 0.01 else "N"
            roll = r()
            if roll < 0.04:
                flag = f'"{flag}"'
            elif roll < 0.045:
                flag = '""'
            passengers = _PASSENGERS[int(r() * len(_PASSENGERS))]
            rate = _RATE_CODES[int(r() * len(_RATE_CODES))]
            payment = _PAYMENTS[int(r() * len(_PAYMENTS))]
            trip_type = "1" if r() < 0.8 else "2"
        trip = f'"{distance:.2f}"' if r() < 0.02 else f"{distance:.2f}"
        pu, do = str(int(r() * 265) + 1), str(int(r() * 265) + 1)
        times = (stamp(pickup), stamp(pickup + 60 + int(r() * 3540)))
        amounts = (f"{fare:.2f}", extra, "0.5", f"{tip:.2f}", tolls)
        cells: tuple[str, ...]
        if green:
            cells = (
                vendor,
                *times,
                flag,
                rate,
                pu,
                do,
                passengers,
                trip,
                *amounts,
                "",
                "0.3",
                f"{total:.2f}",
                payment,
                trip_type,
                surcharge,
            )
        else:
            cells = (
                vendor,
                *times,
                passengers,
                trip,
                rate,
                flag,
                pu,
                do,
                payment,
                *amounts,
                "0.3",
                f"{total:.2f}",
                surcharge,
            )
        yield ",".join(cells) + "\n"


def write_csv(out: TextIO, colour: str, month: str, count: int) -> None:
    """The header line, then `count` rows, written in batches."""
    lines = rows(colour, month, count)
    out.write(",".join(COLUMNS[colour]) + "\n")
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _BATCH:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))


def generate(path: Path, colour: str, month: str, count: int) -> Path:
    """Write a CSV file (gzipped when its name ends in .gz); blocking."""
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6) as out:
            write_csv(out, colour, month, count)
    else:
        with path.open("w", encoding="utf-8", newline="") as plain:
            write_csv(plain, colour, month, count)
    return path


def csv_bytes(colour: str, month: str, count: int, *, gzipped: bool = False) -> bytes:
    """The whole file in memory (small files: tests serve them over HTTP)."""
    text = io.StringIO()
    write_csv(text, colour, month, count)
    data = text.getvalue().encode()
    return gzip.compress(data, compresslevel=6) if gzipped else data


def _rate() -> None:
    count = 100_000
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("yellow.csv", "yellow.csv.gz"):
            started = time.perf_counter()
            path = generate(Path(tmp) / name, "yellow", "2019-01", count)
            seconds = time.perf_counter() - started
            print(
                f"{name:<14} {count:,} rows in {seconds:5.2f} s: {count / seconds:9,.0f} rows/s,"
                f" {path.stat().st_size / 2**20:6.1f} MiB"
            )


def main(argv: list[str]) -> int:
    if not argv:
        _rate()
        return 0
    if len(argv) != 4 or not argv[2].isdigit():
        print("usage: taxi_csv.py yellow|green YYYY-MM ROWS OUT.csv[.gz]", file=sys.stderr)
        return 2
    colour, month, count, out = argv
    try:
        generate(Path(out), colour, month, int(count))
    except ValueError as exc:
        print(f"taxi_csv: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
