"""Cutting a stored text file into several at line ends, by size, rows, partitions or a
key: Kestra's StorageService.split, shared by the Split task and ForEachItem's batches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO

from daemon.sdk.errors import TaskFailed

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_size(text: str | int) -> int:
    """Kestra's readable sizes: 1024, 10KB, 10MB, 1GB (binary multiples)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match or int(match.group(1)) == 0:
        raise TaskFailed(
            f"invalid size '{text}': expected a positive number of bytes such as "
            "1048576, 512KB, 10MB or 1GB",
            non_retryable=True,
        )
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


class LineSplitter:
    """The files a text file is cut into at line ends, named after it: orders-0.csv,
    orders-1.csv… (`.tmp` when it has no extension). Blocking: call `split` in a thread."""

    def __init__(self, directory: Path, source: Path, separator: str) -> None:
        self.directory = directory
        self.source = source
        self.separator = separator
        self.paths: list[Path] = []

    def _new(self) -> IO[str]:
        name = f"{self.source.stem}-{len(self.paths)}{self.source.suffix or '.tmp'}"
        path = self.directory / name
        self.paths.append(path)
        return path.open("w", encoding="utf-8", newline="")

    def split(
        self,
        limit: int | None,
        rows: int | None,
        partitions: int | None,
        pattern: re.Pattern[str] | None,
    ) -> list[Path]:
        """The parts written, in order; empty ones (spare partitions) left out."""
        with self.source.open(encoding="utf-8") as lines:
            if partitions is not None:
                self._round_robin(lines, partitions)
            elif pattern is not None:
                self._by_key(lines, pattern)
            else:
                self._sequential(lines, limit, rows)
        return [path for path in self.paths if path.stat().st_size > 0]

    def _sequential(self, lines: IO[str], limit: int | None, rows: int | None) -> None:
        out: IO[str] | None = None
        size = count = 0
        try:
            for line in lines:
                if (
                    out is None
                    or (limit is not None and size >= limit)
                    or (rows is not None and count >= rows)
                ):
                    if out is not None:
                        out.close()
                    out, size, count = self._new(), 0, 0
                text = line.rstrip("\n") + self.separator
                out.write(text)
                size += len(text.encode())
                count += 1
        finally:
            if out is not None:
                out.close()

    def _round_robin(self, lines: IO[str], partitions: int) -> None:
        outs = [self._new() for _ in range(partitions)]
        try:
            for index, line in enumerate(lines):
                outs[index % partitions].write(line.rstrip("\n") + self.separator)
        finally:
            for out in outs:
                out.close()

    def _by_key(self, lines: IO[str], pattern: re.Pattern[str]) -> None:
        """Lines grouped by the pattern's first group; lines that do not match are dropped."""
        outs: dict[str, IO[str]] = {}
        try:
            for line in lines:
                match = pattern.search(line)
                if match is None or not match.groups():
                    continue
                key = match.group(1)
                if key not in outs:
                    outs[key] = self._new()
                outs[key].write(line.rstrip("\n") + self.separator)
        finally:
            for out in outs.values():
                out.close()
