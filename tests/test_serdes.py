"""serdes tasks: CSV, JSON lines, Avro, Parquet and Excel to and from Ion.

Kestra's behaviour comes from kestra-io/plugin-serdes: csv/CsvToIonTest and IonToCsvTest
(header, fieldSeparator, `\\N` as null, round trip), json/JsonToIonTest and IonToJsonTest
(newLine), avro/AvroConverterTest, parquet/ParquetToIonTest and excel/ExcelToIonTest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from daemon.sdk.ion import loads
from daemon.sdk.state import State
from tests.harness import Harness

CSV = (
    'id,name,price,note\n1,"Smith, John",12.50,\n2,Ann,3,"say ""hi"""\n'
    '3,Bob,0.1,\\N\n4,émile,7,"multi\nline"\n'
).encode()


async def put(h: Harness, data: bytes, name: str) -> str:
    storage = h.engine.resources.storage
    return await storage.put(data, prefix="/test/in", name=name)


async def read(h: Harness, uri: str) -> bytes:
    path = await h.engine.resources.storage.path(uri)
    return await asyncio.to_thread(path.read_bytes)


async def run(h: Harness, tasks: str) -> dict[str, Any]:
    execution = await h.run(f"id: serdes\nnamespace: test\ntasks:\n{tasks}")
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    return {tr.task_id: tr.outputs for tr in execution.task_runs}


async def test_csv_to_ion_and_back_is_byte_for_byte(h: Harness) -> None:
    """CsvToIonTest / IonToCsvTest: header -> map of texts, `\\N` -> null, quoting kept."""
    uri = await put(h, CSV, "in.csv")
    out = await run(
        h,
        f"""
  - id: ion
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{uri}"
  - id: csv
    type: io.kestra.plugin.serdes.csv.IonToCsv
    from: "{{{{ outputs.ion.uri }}}}"
""",
    )
    rows = [loads(line) for line in (await read(h, out["ion"]["uri"])).decode().splitlines()]
    assert rows[0] == {"id": "1", "name": "Smith, John", "price": "12.50", "note": ""}
    assert rows[2]["note"] is None
    assert rows[3]["note"] == "multi\nline"
    back = await read(h, out["csv"]["uri"])
    assert back == CSV.replace(b"\\N", b"")  # null is written as an empty field


async def test_csv_properties(h: Harness) -> None:
    """fieldSeparator, textDelimiter, header false (rows as lists), skipRows."""
    uri = await put(h, b"a;b\n'x;y';2\nz;3\n", "semi.csv")
    out = await run(
        h,
        f"""
  - id: ion
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{uri}"
    fieldSeparator: ";"
    textDelimiter: "'"
    header: false
    skipRows: 1
  - id: csv
    type: io.kestra.plugin.serdes.csv.IonToCsv
    from: "{{{{ outputs.ion.uri }}}}"
    header: false
    fieldSeparator: "|"
    quoteMode: ALWAYS
""",
    )
    rows = [loads(line) for line in (await read(h, out["ion"]["uri"])).decode().splitlines()]
    assert rows == [["x;y", "2"], ["z", "3"]]
    assert await read(h, out["csv"]["uri"]) == b'"x;y"|"2"\n"z"|"3"\n'


async def test_a_bad_csv_line_fails_with_its_number(h: Harness) -> None:
    uri = await put(h, b"a,b\n1,2\n3\n", "bad.csv")
    execution = await h.run(
        f"id: s\nnamespace: test\ntasks:\n  - id: ion\n"
        f'    type: io.kestra.plugin.serdes.csv.CsvToIon\n    from: "{uri}"\n'
    )
    assert execution.state.current == State.FAILED
    assert any("line 3: expected 2 fields, got 1" in line for line in await h.logs(execution))


async def test_json_lines_round_trip_byte_for_byte(h: Harness) -> None:
    """JsonToIonTest / IonToJsonTest: JSON lines in, compact JSON lines out; decimals kept."""
    data = '{"a":1,"b":"é","c":[1.10,null,true],"d":{"e":2.5}}\n{"a":2,"b":null}\n'.encode()
    uri = await put(h, data, "in.jsonl")
    out = await run(
        h,
        f"""
  - id: ion
    type: io.kestra.plugin.serdes.json.JsonToIon
    from: "{uri}"
  - id: json
    type: io.kestra.plugin.serdes.json.IonToJson
    from: "{{{{ outputs.ion.uri }}}}"
  - id: array
    type: io.kestra.plugin.serdes.json.IonToJson
    from: "{{{{ outputs.ion.uri }}}}"
    newLine: false
""",
    )
    assert await read(h, out["json"]["uri"]) == data
    assert json.loads(await read(h, out["array"]["uri"]))[1] == {"a": 2, "b": None}


async def test_a_json_array_is_read_element_by_element(h: Harness) -> None:
    uri = await put(h, b'[{"a": 1}, {"a": 2}]', "array.json")
    out = await run(
        h,
        f"""
  - id: ion
    type: io.kestra.plugin.serdes.json.JsonToIon
    from: "{uri}"
    newLine: false
""",
    )
    rows = [loads(line) for line in (await read(h, out["ion"]["uri"])).decode().splitlines()]
    assert rows == [{"a": 1}, {"a": 2}]


SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Product",
        "fields": [
            {"name": "id", "type": "int"},
            {"name": "name", "type": "string"},
            {"name": "price", "type": ["null", "double"]},
            {"name": "note", "type": ["null", "string"]},
        ],
    }
)


async def test_avro_and_parquet_round_trips_keep_every_value(h: Harness) -> None:
    """AvroConverterTest / ParquetToIonTest: a schema types the CSV's texts; Ion -> Avro ->
    Ion and Ion -> Parquet -> Ion give the same rows."""
    uri = await put(h, CSV, "in.csv")
    schema = SCHEMA.replace('"', '\\"')
    out = await run(
        h,
        f"""
  - id: ion
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{uri}"
  - id: avro
    type: io.kestra.plugin.serdes.avro.IonToAvro
    from: "{{{{ outputs.ion.uri }}}}"
    schema: "{schema}"
  - id: from_avro
    type: io.kestra.plugin.serdes.avro.AvroToIon
    from: "{{{{ outputs.avro.uri }}}}"
  - id: parquet
    type: io.kestra.plugin.serdes.parquet.IonToParquet
    from: "{{{{ outputs.from_avro.uri }}}}"
    compressionCodec: ZSTD
  - id: from_parquet
    type: io.kestra.plugin.serdes.parquet.ParquetToIon
    from: "{{{{ outputs.parquet.uri }}}}"
""",
    )
    avro_rows = [loads(x) for x in (await read(h, out["from_avro"]["uri"])).decode().splitlines()]
    assert avro_rows[0] == {"id": 1, "name": "Smith, John", "price": 12.5, "note": ""}
    assert avro_rows[2] == {"id": 3, "name": "Bob", "price": 0.1, "note": None}
    parquet = (await read(h, out["from_parquet"]["uri"])).decode()
    assert [loads(x) for x in parquet.splitlines()] == avro_rows


async def test_excel_round_trip(h: Harness) -> None:
    """ExcelToIonTest / IonToExcelTest: one sheet per file, `uris` by sheet title."""
    uri = await put(h, CSV, "in.csv")
    out = await run(
        h,
        f"""
  - id: ion
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{uri}"
  - id: excel
    type: io.kestra.plugin.serdes.excel.IonToExcel
    from: "{{{{ outputs.ion.uri }}}}"
    sheetsTitle: Products
  - id: back
    type: io.kestra.plugin.serdes.excel.ExcelToIon
    from: "{{{{ outputs.excel.uri }}}}"
""",
    )
    original = [loads(x) for x in (await read(h, out["ion"]["uri"])).decode().splitlines()]
    back = [
        loads(x) for x in (await read(h, out["back"]["uris"]["Products"])).decode().splitlines()
    ]
    assert [{k: (v or None) for k, v in r.items()} for r in back] == [
        {k: (v or None) for k, v in r.items()} for r in original
    ]


async def test_an_ion_file_that_is_not_ion_fails_naming_the_line(h: Harness) -> None:
    uri = await put(h, b'{"a": 1}\n{a: }\n', "bad.ion")
    execution = await h.run(
        f"id: s\nnamespace: test\ntasks:\n  - id: csv\n"
        f'    type: io.kestra.plugin.serdes.csv.IonToCsv\n    from: "{uri}"\n'
    )
    assert execution.state.current == State.FAILED
    assert any("line 2" in line for line in await h.logs(execution))


async def test_what_duckdb_stores_is_what_serdes_reads(h: Harness) -> None:
    """One Ion: DuckDB's `fetchType: STORE` file (typed values: decimals, dates,
    timestamps) converts with IonToCsv and IonToJson, as Kestra's IonToCsv example does
    with a query's stored result."""
    out = await run(
        h,
        """
  - id: query
    type: io.kestra.plugin.jdbc.duckdb.Query
    fetchType: STORE
    sql: >
      SELECT 1.50::DECIMAL(10,2) AS price, DATE '2024-01-31' AS day,
      TIMESTAMPTZ '2024-01-31 10:00:00.123Z' AS at, 'x,y' AS label
  - id: csv
    type: io.kestra.plugin.serdes.csv.IonToCsv
    from: "{{ outputs.query.uri }}"
  - id: json
    type: io.kestra.plugin.serdes.json.IonToJson
    from: "{{ outputs.query.uri }}"
""",
    )
    csv_text = (await read(h, out["csv"]["uri"])).decode()
    assert csv_text == 'price,day,at,label\n1.50,2024-01-31,2024-01-31T10:00:00.123Z,"x,y"\n'
    assert json.loads(await read(h, out["json"]["uri"])) == {
        "price": 1.5,
        "day": "2024-01-31",
        "at": "2024-01-31T10:00:00.123Z",
        "label": "x,y",
    }


async def test_large_files_take_duckdb_and_give_the_same_rows(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Above 1 MB, CsvToIon and IonToParquet run in DuckDB: the same Ion bytes as the
    Python path (forced here by onBadLines: WARN) and the same Parquet rows."""
    caplog.set_level(logging.DEBUG, logger="tasks.serdes.fast")
    body = "".join(
        f'{n},"name {n}, {chr(233)}",{n / 7:.3f},{"" if n % 3 else chr(92) + "N"}\n'
        for n in range(40_000)
    )
    uri = await put(h, ("id,name,value,note\n" + body).encode(), "big.csv")
    out = await run(
        h,
        f"""
  - id: fast
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{uri}"
  - id: slow
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{uri}"
    onBadLines: WARN
  - id: parquet
    type: io.kestra.plugin.serdes.parquet.IonToParquet
    from: "{{{{ outputs.fast.uri }}}}"
  - id: back
    type: io.kestra.plugin.serdes.parquet.ParquetToIon
    from: "{{{{ outputs.parquet.uri }}}}"
""",
    )
    fast, slow = await read(h, out["fast"]["uri"]), await read(h, out["slow"]["uri"])
    assert len(fast) > 1 << 20
    assert fast == slow
    assert await read(h, out["back"]["uri"]) == fast
    converted = [r.getMessage() for r in caplog.records if "DuckDB converted" in r.getMessage()]
    assert len(converted) == 2, [r.getMessage() for r in caplog.records]
