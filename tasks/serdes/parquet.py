"""Parquet <-> Ion with Kestra's properties (kestra-io/plugin-serdes parquet.ParquetToIon,
IonToParquet), on pyarrow, one row group of `BATCH_ROWS` rows at a time: a file of any
size converts in bounded memory. Without a `schema` (Avro JSON, as in Kestra),
IonToParquet takes the types of the first rows."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from daemon.sdk.ion import dumps, iter_values
from tasks.serdes import fast
from tasks.serdes.base import BATCH_ROWS, Convert
from tasks.serdes.schema import parse, row_converter

# Files smaller than this convert in Python: DuckDB's start costs more than it saves.
FAST_FROM_BYTES = 1 << 20


class ParquetToIon(Convert):
    """Kestra's ParquetToIon."""

    types = (
        "io.kestra.plugin.serdes.parquet.ParquetToIon",
        "io.kestra.plugin.serdes.parquet.ParquetReader",
    )

    def convert(self, source: Path, target: Path) -> int:
        import pyarrow.parquet as pq

        count = 0
        with target.open("w", encoding="utf-8") as out:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS):
                for row in batch.to_pylist():
                    out.write(dumps(row) + "\n")
                count += batch.num_rows
        return count


def _arrow_type(avro: Any) -> Any:
    import pyarrow as pa

    if isinstance(avro, list):
        rest = [t for t in avro if t != "null"]
        return _arrow_type(rest[0])
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "date":
            return pa.date32()
        if logical in ("timestamp-millis", "timestamp-micros"):
            return pa.timestamp("ms" if logical.endswith("millis") else "us", tz="UTC")
        if logical == "decimal":
            return pa.decimal128(int(avro.get("precision", 38)), int(avro.get("scale", 0)))
        return _arrow_type(avro.get("type"))
    return {
        "string": pa.string(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
        "double": pa.float64(), "boolean": pa.bool_(), "bytes": pa.binary(), "null": pa.null(),
    }[avro]  # fmt: skip


class IonToParquet(Convert):
    """Kestra's IonToParquet."""

    types = (
        "io.kestra.plugin.serdes.parquet.IonToParquet",
        "io.kestra.plugin.serdes.parquet.ParquetWriter",
    )
    suffix = ".parquet"

    schema_: str | dict[str, Any] | None = Field(default=None, alias="schema")
    compression_codec: Literal["UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD"] = (
        "GZIP"
    )
    version: Literal["V1", "V2"] = "V2"
    row_group_size: int | None = Field(default=None, ge=1)  # bytes, as Kestra's
    page_size: int | None = Field(default=None, ge=1)
    dictionary_page_size: int | None = Field(default=None, ge=1)

    def convert(self, source: Path, target: Path) -> int:
        codec = {"UNCOMPRESSED": "none", "LZO": "snappy"}.get(self.compression_codec)
        codec = codec or self.compression_codec.lower()
        if not self.schema_ and self.version == "V2" and source.stat().st_size > FAST_FROM_BYTES:
            count = fast.json_lines_to_parquet(source, target, codec, self.row_group_size)
            if count is not None:
                return count
        import pyarrow as pa  # after DuckDB's try: its import alone takes ~80 MB
        import pyarrow.parquet as pq

        rows = iter_values(source)
        convert = None
        schema = None
        if self.schema_:
            avro = parse(self.schema_)
            convert = row_converter(avro)
            schema = pa.schema(
                [pa.field(f["name"], _arrow_type(f["type"])) for f in avro["fields"]]
            )
        writer = None
        count = 0
        try:
            while batch := list(itertools.islice(rows, BATCH_ROWS)):
                if convert is not None:
                    batch = [convert(row) for row in batch]
                table = pa.Table.from_pylist(batch, schema=schema)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(
                        target,
                        schema,
                        compression=codec,
                        version="1.0" if self.version == "V1" else "2.6",
                        data_page_size=self.page_size,
                        dictionary_pagesize_limit=self.dictionary_page_size,
                    )
                writer.write_table(table)  # one row group per batch
                count += len(batch)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"row {count + 1}...: {exc}") from None
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            pq.write_table(pa.table({}), target)
        return count
