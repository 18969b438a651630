"""DuckDB, a dependency already, converts the common cases at its own speed and in a
bounded memory (`MEMORY_LIMIT`): a UTF-8 CSV with a header to Ion, and an Ion file whose
lines are all JSON (what podium writes for text rows) to Parquet. It gives the same rows
as the Python path of each task, which runs whenever DuckDB cannot (other options, Ion
that is not JSON, a malformed line: the Python path then reports it with its line).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MEMORY_LIMIT = "64MB"
ROW_GROUP_ROWS = 32768  # rows a Parquet row group holds at most: what the writer buffers
BUFFER = 4 << 20  # the CSV reader's buffer: a line longer than this falls back to Python
THREADS = 1  # two threads need more than MEMORY_LIMIT for the ordered CSV reader


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _connect(work: Path) -> Any:
    """DuckDB spills what exceeds its memory limit to files, in the task's directory."""
    import duckdb

    con = duckdb.connect(
        config={
            "temp_directory": str(work / ".duckdb-spill"),
            "memory_limit": MEMORY_LIMIT,
            "threads": THREADS,
            "preserve_insertion_order": True,
            "allocator_flush_threshold": "8MB",
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    con.execute("SET enable_progress_bar = false")
    return con


def csv_to_ion(source: Path, target: Path, separator: str, quote: str) -> int | None:
    """Rows as maps of header -> text, `\\N` as null; None when DuckDB cannot."""
    import duckdb

    sql = (
        f"COPY (SELECT * FROM read_csv({_quoted(str(source))}, header=true, all_varchar=true, "
        f"delim={_quoted(separator)}, quote={_quoted(quote)}, escape={_quoted(quote)}, "
        f"nullstr='\\N', strict_mode=true, auto_detect=true, buffer_size={BUFFER})) "
        f"TO {_quoted(str(target))} (FORMAT json)"
    )
    try:
        with _connect(target.parent) as con:
            count = con.execute(sql).fetchone()
    except duckdb.Error as exc:
        log.info("DuckDB did not convert %s (%s); converting in Python", source.name, exc)
        return None
    log.debug("DuckDB converted %s to Ion", source.name)
    return int(count[0]) if count else 0


def json_lines_to_parquet(
    source: Path, target: Path, codec: str, row_group_size: int | None
) -> int | None:
    """None when a line is not JSON or the rows do not share one shape."""
    import duckdb

    options = f"FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
    if row_group_size:  # Kestra's rowGroupSize is in bytes, as parquet-mr's
        options += f", ROW_GROUP_SIZE_BYTES {int(row_group_size)}"
    sql = (
        f"COPY (SELECT * FROM read_json({_quoted(str(source))}, format='newline_delimited')) "
        f"TO {_quoted(str(target))} ({options})"
    )
    try:
        with _connect(target.parent) as con:
            count = con.execute(sql).fetchone()
    except duckdb.Error as exc:
        target.unlink(missing_ok=True)
        log.info("DuckDB did not convert %s (%s); converting in Python", source.name, exc)
        return None
    log.debug("DuckDB converted %s to Parquet", source.name)
    return int(count[0]) if count else 0
