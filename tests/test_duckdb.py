"""DuckDB Queries and Query on a real DuckDB, with real input and output files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.ion import dumps as to_ion
from daemon.sdk.state import State
from tests.harness import Harness

PRODUCTS_SQL = """
CREATE TABLE products (brand VARCHAR, price DOUBLE);
INSERT INTO products VALUES ('Apple', 10.0), ('Apple', 20.0), ('Essence', 9.99);
SELECT brand, round(avg(price), 2) AS avg_price FROM products GROUP BY brand ORDER BY brand;
"""


def queries(sql: str, kind: str = "Queries", task_id: str = "q", **props: Any) -> str:
    lines = [
        f"  - id: {task_id}",
        f"    type: io.kestra.plugin.jdbc.duckdb.{kind}",
        f"    sql: {json.dumps(sql)}",
    ]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in props.items()]
    return "\n".join(lines)


def flow(*tasks: str, inputs: str = "") -> str:
    return "id: f\nnamespace: ns\n" + inputs + "tasks:\n" + "\n".join(tasks) + "\n"


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def error(h: Harness, ex: Execution) -> str:
    assert ex.state.current == State.FAILED
    [message] = await h.logs(ex, "ERROR")
    return message


async def test_queries_fetch_gives_one_output_per_result_set(h: Harness) -> None:
    ex = await h.run(
        flow(queries(PRODUCTS_SQL + "SELECT count(*) AS n FROM products;", fetchType="FETCH"))
    )
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs == {
        "outputs": [
            {
                "rows": [
                    {"brand": "Apple", "avg_price": 15.0},
                    {"brand": "Essence", "avg_price": 9.99},
                ],
                "size": 2,
            },
            {"rows": [{"n": 3}], "size": 1},
        ]
    }


async def test_queries_fetch_one_and_none(h: Harness) -> None:
    ex = await h.run(
        flow(
            queries(PRODUCTS_SQL, task_id="one", fetchType="FETCH_ONE"),
            queries(PRODUCTS_SQL, task_id="none"),
        )
    )
    assert ex.task_runs[0].outputs == {
        "outputs": [{"row": {"brand": "Apple", "avg_price": 15.0}, "size": 1}]
    }
    assert ex.task_runs[1].outputs == {"outputs": [{}]}


async def test_queries_store_writes_ion_rows_to_storage(h: Harness) -> None:
    ex = await h.run(flow(queries(PRODUCTS_SQL, fetchType="STORE")))
    [out] = ex.task_runs[0].outputs["outputs"]
    assert out["size"] == 2
    assert out["uri"].endswith(".ion")
    assert await read(h, out["uri"]) == (
        '{"brand":"Apple","avg_price":15.0e0}\n{"brand":"Essence","avg_price":9.99e0}\n'
    )


async def test_store_on_an_empty_result_stores_an_empty_file(h: Harness) -> None:
    ex = await h.run(flow(queries("SELECT 1 AS a WHERE false", fetchType="STORE")))
    assert ex.state.current == State.SUCCESS
    [out] = ex.task_runs[0].outputs["outputs"]
    assert out["size"] == 0
    assert await read(h, out["uri"]) == ""


async def test_query_keeps_only_the_last_statement_result(h: Harness) -> None:
    ex = await h.run(
        flow(queries("SELECT 1 AS a; SELECT 2 AS b;", kind="Query", fetchType="FETCH_ONE"))
    )
    assert ex.task_runs[0].outputs == {"row": {"b": 2}, "size": 1}


async def test_values_become_json_for_fetch_and_ion_for_store(h: Harness) -> None:
    sql = (
        "SELECT 1.50::DECIMAL(10,2) AS d, 7::DECIMAL(10,0) AS i, DATE '2024-01-31' AS day, "
        "TIMESTAMP '2024-01-31 10:00:00' AS ts, TIMESTAMPTZ '2024-01-31 10:00:00Z' AS tz, "
        "INTERVAL 90 MINUTE AS span, NULL AS nothing, true AS yes, '\\x01'::BLOB AS raw, "
        "[1, 2] AS list, {'k': 'v'} AS struct, 'a\"b\n' AS text, 1 AS \"odd name\""
    )
    ex = await h.run(
        flow(
            queries(sql, task_id="fetch", fetchType="FETCH_ONE"),
            queries(sql, task_id="store", fetchType="STORE"),
        )
    )
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs["outputs"][0]["row"] == {
        "d": 1.5,
        "i": 7,
        "day": "2024-01-31",
        "ts": "2024-01-31T10:00:00",
        "tz": "2024-01-31T10:00:00Z",
        "span": "PT1H30M",
        "nothing": None,
        "yes": True,
        "raw": "AQ==",
        "list": [1, 2],
        "struct": {"k": "v"},
        "text": 'a"b\n',
        "odd name": 1,
    }
    uri = ex.task_runs[1].outputs["outputs"][0]["uri"]
    assert await read(h, uri) == (
        '{"d":1.50,"i":7.,"day":2024-01-31,"ts":2024-01-31T10:00:00-00:00,'
        '"tz":2024-01-31T10:00:00Z,"span":"PT1H30M","nothing":null,"yes":true,'
        '"raw":{{AQ==}},"list":[1,2],"struct":{"k":"v"},"text":"a\\"b\\n","odd name":1}\n'
    )


def test_ion_text_of_special_numbers_and_keywords() -> None:
    assert to_ion(float("nan")) == "nan"
    assert to_ion(float("-inf")) == "-inf"
    assert to_ion(1e20) == "1e+20"
    assert to_ion({"null": 1, "it's": 2}) == '{"null":1,"it\'s":2}'


async def test_input_files_are_in_the_working_dir_before_the_sql_is_rendered(
    h: Harness, tmp_path: Path
) -> None:
    csv = tmp_path / "upload.csv"
    await asyncio.to_thread(csv.write_text, "brand,price\nApple,10\nApple,30\n")
    source = flow(
        queries(
            "SELECT count(*) AS n FROM read_csv_auto('{{ workingDir }}/stored.csv');"
            "SELECT sum(price) AS total FROM read_csv_auto('inline.csv');",
            inputFiles={
                "stored.csv": "{{ inputs.file }}",
                "inline.csv": "brand,price\nEssence,2.5\n",
            },
            fetchType="FETCH_ONE",
        ),
        inputs="inputs:\n  - id: file\n    type: FILE\n",
    )
    ex = await h.run(source, {"file": str(csv)})
    assert ex.state.current == State.SUCCESS
    assert [o["row"] for o in ex.task_runs[0].outputs["outputs"]] == [{"n": 2}, {"total": 2.5}]


async def test_output_files_are_stored_after_the_sql_writes_them(h: Harness) -> None:
    ex = await h.run(
        flow(
            queries(
                PRODUCTS_SQL + "COPY products TO '{{ outputFiles.out }}' (HEADER, DELIMITER ',');",
                outputFiles=["out"],
            )
        )
    )
    assert ex.state.current == State.SUCCESS
    uri = ex.task_runs[0].outputs["outputFiles"]["out"]
    assert await read(h, uri) == "brand,price\nApple,10.0\nApple,20.0\nEssence,9.99\n"


async def test_an_output_file_the_sql_did_not_write_fails_the_task(h: Harness) -> None:
    ex = await h.run(flow(queries("SELECT 1", outputFiles=["out"])))
    assert (
        await error(h, ex)
        == "output file 'out' was not written by the SQL (expected at {{ outputFiles.out }})"
    )


async def test_database_file_is_output_and_read_back_by_database_uri(h: Harness) -> None:
    ex = await h.run(
        flow(
            queries("CREATE TABLE t AS SELECT 42 AS answer", task_id="make", outputDbFile=True),
            queries(
                "SELECT answer FROM t",
                task_id="use",
                fetchType="FETCH_ONE",
                databaseUri="{{ outputs.make.databaseUri }}",
            ),
        )
    )
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs["databaseUri"].startswith("kestra:///")
    assert ex.task_runs[1].outputs["outputs"] == [{"row": {"answer": 42}, "size": 1}]


async def test_a_failing_statement_rolls_back_the_whole_transaction(
    h: Harness, tmp_path: Path
) -> None:
    url = f"jdbc:duckdb:{tmp_path / 'shop.db'}"
    setup = await h.run(flow(queries("CREATE TABLE t (a INT); INSERT INTO t VALUES (1);", url=url)))
    assert setup.state.current == State.SUCCESS
    ex = await h.run(
        flow(queries("INSERT INTO t VALUES (2); INSERT INTO t VALUES ('x');", url=url))
    )
    assert await error(h, ex) == (
        "statement 2 failed: Conversion Error: Could not convert string 'x' to INT32"
    )
    after = await h.run(
        flow(queries("SELECT count(*) AS n FROM t", url=url, fetchType="FETCH_ONE"))
    )
    assert after.task_runs[0].outputs["outputs"] == [{"row": {"n": 1}, "size": 1}]


async def test_without_a_transaction_earlier_statements_stay(h: Harness, tmp_path: Path) -> None:
    url = f"jdbc:duckdb:{tmp_path / 'shop.db'}"
    ex = await h.run(
        flow(
            queries(
                "CREATE TABLE t (a INT); INSERT INTO t VALUES ('x');", url=url, transaction=False
            )
        )
    )
    assert ex.state.current == State.FAILED
    after = await h.run(
        flow(queries("SELECT count(*) AS n FROM t", url=url, fetchType="FETCH_ONE"))
    )
    assert after.task_runs[0].outputs["outputs"] == [{"row": {"n": 0}, "size": 1}]


async def test_sql_syntax_error_fails_with_duckdb_message_and_runs_nothing(
    h: Harness, tmp_path: Path
) -> None:
    url = f"jdbc:duckdb:{tmp_path / 'shop.db'}"
    ex = await h.run(flow(queries("CREATE TABLE t (a INT); SELEC 1;", url=url)))
    assert await error(h, ex) == (
        'Parser Error: syntax error at or near "SELEC"\n\n'
        "LINE 1: CREATE TABLE t (a INT); SELEC 1;\n"
        "                                ^^^^^"
    )
    after = await h.run(
        flow(queries("SELECT count(*) FROM duckdb_tables()", url=url, fetchType="FETCH_ONE"))
    )
    assert after.task_runs[0].outputs["outputs"][0]["row"] == {"count_star()": 0}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "jdbc:duckdb:shop.db",
            "invalid url 'jdbc:duckdb:shop.db': the database file path must be absolute",
        ),
        (
            "jdbc:postgresql://localhost/db",
            "invalid url 'jdbc:postgresql://localhost/db': expected jdbc:duckdb: or "
            "jdbc:duckdb:/absolute/path/to/file.db",
        ),
    ],
)
async def test_malformed_url_fails_with_the_expected_form(
    h: Harness, url: str, message: str
) -> None:
    ex = await h.run(flow(queries("SELECT 1", url=url)))
    assert await error(h, ex) == message


async def test_input_file_names_cannot_leave_the_working_dir(h: Harness) -> None:
    ex = await h.run(flow(queries("SELECT 1", inputFiles={"../escape.csv": "a"})))
    assert (
        await error(h, ex)
        == "invalid inputFiles name '../escape.csv': it must stay inside the working directory"
    )


async def test_unknown_fetch_type_is_a_load_error(h: Harness) -> None:
    with pytest.raises(FlowError, match="fetchType"):
        await h.flow(flow(queries("SELECT 1", fetchType="FETCH_ALL")))


async def test_install_of_a_built_in_extension_works_offline(h: Harness) -> None:
    ex = await h.run(
        flow(queries("INSTALL json; LOAD json; SELECT 1 AS ok;", fetchType="FETCH_ONE"))
    )
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs["outputs"] == [{"row": {"ok": 1}, "size": 1}]


async def test_time_zone_id_sets_the_session_time_zone(h: Harness) -> None:
    ex = await h.run(
        flow(
            queries(
                "SELECT current_setting('TimeZone') AS tz",
                timeZoneId="Europe/Paris",
                fetchType="FETCH_ONE",
            )
        )
    )
    assert ex.task_runs[0].outputs["outputs"][0]["row"] == {"tz": "Europe/Paris"}


async def test_task_timeout_interrupts_a_running_query(h: Harness) -> None:
    ex = await h.run(
        flow(
            queries(
                "SELECT sum(hash(a.range + b.range)) FROM range(1000000) a, range(1000000) b",
                timeout="PT0.5S",
            )
        )
    )
    assert await error(h, ex) == "timed out after PT0.5S"
