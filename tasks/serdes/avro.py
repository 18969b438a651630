"""Avro <-> Ion with Kestra's properties (kestra-io/plugin-serdes avro.AvroToIon,
IonToAvro), on fastavro, streamed (the writer flushes a block every `BATCH_ROWS` rows).
Without a `schema`, IonToAvro infers one from the first row (every field nullable)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from daemon.sdk.ion import dumps, iter_values
from tasks.serdes.base import BATCH_ROWS, Convert
from tasks.serdes.schema import infer, parse, row_converter


class AvroToIon(Convert):
    """Kestra's AvroToIon."""

    types = ("io.kestra.plugin.serdes.avro.AvroToIon", "io.kestra.plugin.serdes.avro.AvroReader")

    def convert(self, source: Path, target: Path) -> int:
        import fastavro

        count = 0
        with source.open("rb") as data, target.open("w", encoding="utf-8") as out:
            for record in fastavro.reader(data):
                out.write(dumps(record) + "\n")
                count += 1
        return count


class IonToAvro(Convert):
    """Kestra's IonToAvro."""

    types = ("io.kestra.plugin.serdes.avro.IonToAvro", "io.kestra.plugin.serdes.avro.AvroWriter")
    suffix = ".avro"

    schema_: str | dict[str, Any] | None = Field(default=None, alias="schema")
    compression_codec: Literal["null", "deflate", "snappy", "zstandard", "bzip2", "xz"] = "null"

    def convert(self, source: Path, target: Path) -> int:
        import fastavro
        from fastavro.write import Writer

        rows = iter_values(source)
        first = next(rows, None)
        if first is not None and not isinstance(first, dict):
            raise ValueError(f"a row is a {type(first).__name__}, not a map")
        schema = parse(self.schema_) if self.schema_ else infer(first or {})
        convert = row_converter(schema)
        parsed = fastavro.parse_schema(schema)
        count = 0
        with target.open("wb") as out:
            writer = Writer(out, parsed, codec=self.compression_codec, sync_interval=1 << 20)
            for row in itertools.chain([first] if first is not None else [], rows):
                writer.write(convert(row))
                count += 1
                if count % BATCH_ROWS == 0:
                    writer.flush()
            writer.flush()
        return count
