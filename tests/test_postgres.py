"""The PostgreSQL tasks against a real private PostgreSQL: statements, parameters, every
fetchType, COPY in and out, pooled connections, pluginDefaults and connection errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tasks.sql.pool import close_pools, open_pools
from tests.harness import Harness, task_states
from tests.services import free_port


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness.open(tmp_path)
    try:
        yield harness
    finally:
        await harness.close()
        await close_pools()  # the daemon's shutdown does this; a test's loop ends here


@pytest.fixture
async def admin(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def schema(admin: asyncpg.Connection) -> AsyncIterator[str]:
    """A fresh schema per test, so that tests sharing the session's database never meet."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        await admin.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def url(postgres_dsn: str, schema: str) -> str:
    """The test database in Kestra's JDBC form, its schema first on the search path."""
    parts = urlsplit(postgres_dsn)
    return f"jdbc:postgresql://{parts.hostname}:{parts.port}/postgres?currentSchema={schema}"


def flow(url: str, tasks: str, extra: str = "") -> str:
    """A flow whose PostgreSQL tasks connect to `url` through pluginDefaults."""
    return (
        f"id: pg\nnamespace: test\n{extra}tasks:\n{tasks}\npluginDefaults:\n"
        f"  - type: io.kestra.plugin.jdbc.postgresql\n    values:\n"
        f'      url: "{url}"\n      username: postgres\n'
    )


def outputs(execution: Any, task_id: str) -> dict[str, Any]:
    run = next(tr for tr in execution.task_runs if tr.task_id == task_id)
    return dict(run.outputs)


# -- Queries and Query ------------------------------------------------------------------


async def test_queries_run_every_statement_and_output_each_result_set(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Queries
    fetchType: FETCH
    sql: |
      CREATE TABLE trips (id int, note text);
      -- a comment; with a semicolon
      INSERT INTO trips VALUES (1, 'a;b'), (2, $$c;d$$);
      SELECT id, note, id::text AS label FROM trips ORDER BY id;
      UPDATE trips SET note = 'e' WHERE id = 2;
      SELECT count(*) AS n FROM trips WHERE note = 'e';
""",
        )
    )
    assert task_states(ex) == {"q": "SUCCESS"}
    assert outputs(ex, "q") == {
        "outputs": [
            {
                "rows": [
                    {"id": 1, "note": "a;b", "label": "1"},
                    {"id": 2, "note": "c;d", "label": "2"},
                ],
                "size": 2,
            },
            {"rows": [{"n": 1}], "size": 1},
        ]
    }
    assert await h.logs(ex) == ["CREATE TABLE", "INSERT 0 2", "UPDATE 1"]


async def test_queries_roll_back_every_statement_when_one_fails(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Queries
    sql: |
      CREATE TABLE kept (id int);
      INSERT INTO kept VALUES (1);
      SELECT *   FROM
        nope;
""",
        )
    )
    assert task_states(ex) == {"q": "FAILED"}
    assert ex.error == (
        "task 'q': statement 3 of 3 failed: relation \"nope\" does not exist "
        "(SQLSTATE 42P01); statement: SELECT * FROM nope"
    )
    assert await admin.fetchval("SELECT to_regclass($1)", f"{schema}.kept") is None


async def test_queries_without_transaction_keep_what_ran_before_a_failure(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Queries
    transaction: false
    sql: CREATE TABLE kept (id int); INSERT INTO kept VALUES (1); INSERT INTO kept VALUES ('x')
""",
        )
    )
    assert task_states(ex) == {"q": "FAILED"}
    assert ex.error == (
        "task 'q': statement 3 of 3 failed: invalid input syntax for type "
        "integer: \"x\" (SQLSTATE 22P02); statement: INSERT INTO kept VALUES ('x')"
    )
    assert await admin.fetchval(f"SELECT count(*) FROM {schema}.kept") == 1


async def test_parameters_bind_by_name_and_rendered_text_fits_the_column_type(
    h: Harness, url: str
) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Queries
    fetchType: FETCH_ONE
    parameters:
      year: "{{ inputs.year }}"
      amount: "12.50"
      name: "it's :not_a_parameter"
      day: "2019-01-31"
      flag: "true"
      missing: null
    sql: |
      CREATE TABLE p (year int, amount numeric(10, 2), name text, day date, flag boolean,
                      other text);
      INSERT INTO p VALUES (:year, :amount, :name, :day, :flag, :missing);
      SELECT year, amount, name, day, flag, other, year::text || ':' AS y,
             ':year' AS literal FROM p WHERE year = :year;
""",
            "inputs:\n  - id: year\n    type: INT\n",
        ),
        {"year": 2019},
    )
    assert task_states(ex) == {"q": "SUCCESS"}
    assert outputs(ex, "q")["outputs"] == [
        {
            "row": {
                "year": 2019,
                "amount": 12.5,
                "name": "it's :not_a_parameter",
                "day": "2019-01-31",
                "flag": True,
                "other": None,
                "y": "2019:",
                "literal": ":year",
            },
            "size": 1,
        }
    ]


async def test_a_parameter_the_sql_uses_but_nobody_gave_is_named(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH
    parameters: {a: 1}
    sql: SELECT :a AS a, :b AS b
""",
        )
    )
    assert ex.error == "task 'q': the SQL uses :b, which is not in parameters (a)"


async def test_a_parameter_that_does_not_fit_its_type_is_named(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    parameters: {n: "seven"}
    sql: SELECT 1 WHERE 1 = :n
""",
        )
    )
    assert ex.error == "task 'q': parameter :n is 'seven', which is not a valid int4"


async def test_every_fetch_type_hands_rows_on_its_own_way(h: Harness, url: str) -> None:
    select = "SELECT g AS n, 'r' || g AS label FROM generate_series(1, 3) AS g ORDER BY g"
    ex = await h.run(
        flow(
            url,
            f"""
  - id: none
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: {select}
  - id: one
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: {select}
  - id: empty
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: SELECT 1 AS n WHERE false
  - id: all
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH
    sql: {select}
  - id: stored
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: STORE
    fetchSize: 2
    sql: {select}
  - id: legacy
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchOne: true
    sql: {select}
""",
        )
    )
    assert set(task_states(ex).values()) == {"SUCCESS"}
    assert outputs(ex, "none") == {}
    assert outputs(ex, "one") == {"row": {"n": 1, "label": "r1"}, "size": 1}
    assert outputs(ex, "empty") == {"row": None, "size": 0}
    assert outputs(ex, "all") == {
        "rows": [{"n": 1, "label": "r1"}, {"n": 2, "label": "r2"}, {"n": 3, "label": "r3"}],
        "size": 3,
    }
    stored = outputs(ex, "stored")
    assert stored["size"] == 3 and stored["uri"].endswith("/stored-1.ion")
    text = await h.engine.resources.storage.read_text(stored["uri"])
    assert [json.loads(line) for line in text.splitlines()] == [
        {"n": 1, "label": "r1"},
        {"n": 2, "label": "r2"},
        {"n": 3, "label": "r3"},
    ]
    assert outputs(ex, "legacy") == outputs(ex, "one")


async def test_queries_store_one_file_per_result_set(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Queries
    fetchType: STORE
    sql: SELECT 1 AS a; CREATE TABLE s (id int); SELECT 'x' AS b UNION ALL SELECT 'y'
""",
        )
    )
    stored = outputs(ex, "q")["outputs"]
    assert [o["size"] for o in stored] == [1, 2]
    texts = [await h.engine.resources.storage.read_text(o["uri"]) for o in stored]
    assert texts == ['{"a":1}\n', '{"b":"x"}\n{"b":"y"}\n']


async def test_values_become_json_as_kestra_hands_them_on(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: >-
      SELECT 1.50::numeric AS amount, 12345678901234567890.123456789::numeric AS big,
             10::numeric AS whole, 'NaN'::float8 AS nan, 2.5::float8 AS real,
             '2019-01-01 00:10:00'::timestamp AS ts,
             '2019-01-01 00:10:00+02'::timestamptz AS tz, '2019-01-31'::date AS day,
             '10:30:00'::time AS at, '1 day 2 hours 3.5 seconds'::interval AS span,
             '{"k": [1, null]}'::jsonb AS doc, '\\x0102ff'::bytea AS raw,
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
             ARRAY[1, 2] AS ints, ARRAY['{"a": 1}'::json] AS docs, true AS yes,
             NULL::text AS nothing
""",
        )
    )
    assert outputs(ex, "q")["row"] == {
        "amount": 1.5,
        "big": "12345678901234567890.123456789",
        "whole": 10,
        "nan": "nan",
        "real": 2.5,
        "ts": "2019-01-01T00:10:00",
        "tz": "2018-12-31T22:10:00Z",
        "day": "2019-01-31",
        "at": "10:30:00",
        "span": "P1DT2H3.5S",
        "doc": {"k": [1, None]},
        "raw": "AQL/",
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "ints": [1, 2],
        "docs": [{"a": 1}],
        "yes": True,
        "nothing": None,
    }


async def test_query_takes_one_statement_as_kestra_does(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: SELECT 1; SELECT 2
""",
        )
    )
    assert ex.error == (
        "task 'q': Query task support only a single SQL statement. Use the "
        "Queries task to run multiple statements."
    )


async def test_query_after_sql_commits_with_the_query_or_not_at_all(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    await admin.execute(
        f"CREATE TABLE {schema}.inbox (id int, done bool DEFAULT false);"
        f"INSERT INTO {schema}.inbox (id) VALUES (1), (2)"
    )
    ex = await h.run(
        flow(
            url,
            """
  - id: take
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH
    sql: SELECT id FROM inbox WHERE NOT done ORDER BY id
    afterSQL: UPDATE inbox SET done = true
  - id: broken
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: INSERT INTO inbox (id) VALUES (3)
    afterSQL: UPDATE inbox SET done = 'maybe'
""",
        )
    )
    assert outputs(ex, "take") == {"rows": [{"id": 1}, {"id": 2}], "size": 2}
    assert task_states(ex) == {"take": "SUCCESS", "broken": "FAILED"}
    assert await admin.fetch(f"SELECT id, done FROM {schema}.inbox ORDER BY id") == [
        (1, True),
        (2, True),
    ]


async def test_a_killed_query_is_cancelled_on_the_server_and_its_connection_reused(
    h: Harness, url: str, admin: asyncpg.Connection
) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: slow
    type: io.kestra.plugin.jdbc.postgresql.Query
    timeout: PT0.3S
    sql: SELECT pg_sleep(60)
""",
        )
    )
    assert ex.error == "task 'slow': timed out after PT0.3S"
    # The task ends once its connection is back in the pool, which waits for the server
    # to have cancelled the statement.
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' "
            "AND state = 'active'"
        )
        == 0
    )
    again = await h.run(
        flow(
            url,
            """
  - id: after
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: SELECT 1 AS ok
""",
        )
    )
    assert outputs(again, "after") == {"row": {"ok": 1}, "size": 1}


# -- CopyIn and CopyOut -----------------------------------------------------------------


async def store(h: Harness, name: str, data: bytes) -> str:
    return await h.engine.resources.storage.put(data, prefix="/test/files", name=name)


async def test_copy_in_reads_header_delimiter_null_string_and_columns(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    await admin.execute(
        f"CREATE TABLE {schema}.t (id int, name text, amount float8, extra text DEFAULT 'default')"
    )
    uri = await store(
        h, "t.csv", b"amount;id;name\n1.5;1;\"semi;colon\"\nNULL;2;\n2.5;3;'quoted ''q'''\n"
    )
    quoted = await store(h, "q.csv", b"4|'a|b'|\n")
    ex = await h.run(
        flow(
            url,
            f"""
  - id: load
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: "{uri}"
    table: t
    format: CSV
    header: true
    delimiter: ";"
    nullString: "NULL"
    columns: [amount, id, name]
  - id: quoted
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: "{quoted}"
    table: t
    format: CSV
    delimiter: "|"
    quote: "'"
    escape: "'"
    columns: [id, name, amount]
""",
        )
    )
    assert task_states(ex) == {"load": "SUCCESS", "quoted": "SUCCESS"}
    assert outputs(ex, "load") == {"rowCount": 3}
    assert await admin.fetch(f"SELECT id, name, amount, extra FROM {schema}.t ORDER BY id") == [
        (1, "semi;colon", 1.5, "default"),
        (2, "", None, "default"),
        (3, "'quoted ''q'''", 2.5, "default"),
        (4, "a|b", None, "default"),
    ]


async def test_copy_in_folds_unquoted_names_and_keeps_quoted_ones(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str, tmp_path: Path
) -> None:
    await admin.execute(f'CREATE TABLE {schema}.mixed (vendorid int, "PULocationID" int)')
    source = tmp_path / "m.txt"
    await asyncio.to_thread(source.write_text, "1\t2\n")
    ex = await h.run(
        flow(
            url,
            f"""
  - id: load
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: "{source}"
    table: {schema}.MIXED
    columns: [VendorID, '"PULocationID"']
""",
        )
    )
    assert outputs(ex, "load") == {"rowCount": 1}
    assert await admin.fetch(f"SELECT * FROM {schema}.mixed") == [(1, 2)]


async def test_a_malformed_row_fails_the_copy_with_its_line_and_leaves_the_table_unchanged(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    await admin.execute(
        f"CREATE TABLE {schema}.bad_rows (n int, label text);"
        f"INSERT INTO {schema}.bad_rows VALUES (0, 'before')"
    )
    lines = (
        [b"n,label"]
        + [f"{i},row {i}".encode() for i in range(1, 7)]
        + [b"seven,oops"]
        + [f"{i},row {i}".encode() for i in range(8, 11)]
    )
    uri = await store(h, "bad.csv", b"\n".join(lines) + b"\n")
    ex = await h.run(
        flow(
            url,
            f"""
  - id: load
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: "{uri}"
    table: bad_rows
    format: CSV
    header: true
""",
        )
    )
    assert task_states(ex) == {"load": "FAILED"}
    assert ex.error == (
        "task 'load': CopyIn into bad_rows failed at line 8 (data row 7): invalid input syntax "
        'for type integer: "seven" (SQLSTATE 22P02); context: COPY bad_rows, line 8, '
        'column n: "seven"'
    )
    assert await admin.fetch(f"SELECT * FROM {schema}.bad_rows") == [(0, "before")]


async def test_a_row_with_too_few_columns_names_its_line(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    await admin.execute(f"CREATE TABLE {schema}.short (a int, b int)")
    uri = await store(h, "short.csv", b"1,2\n3\n")
    ex = await h.run(
        flow(
            url,
            f"""
  - id: load
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: "{uri}"
    table: short
    format: CSV
""",
        )
    )
    assert ex.error == (
        "task 'load': CopyIn into short failed at line 2: missing data for "
        'column "b" (SQLSTATE 22P04); context: COPY short, line 2: "3"'
    )


async def test_a_copy_cut_by_its_timeout_loads_nothing_and_frees_its_connection(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    await admin.execute(f"CREATE TABLE {schema}.big (n int, label text)")
    uri = await store(h, "big.csv", b"1,some label\n" * 3_000_000)
    ex = await h.run(
        flow(
            url,
            f"""
  - id: load
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    timeout: PT0.2S
    from: "{uri}"
    table: big
    format: CSV
""",
        )
    )
    assert ex.error == "task 'load': timed out after PT0.2S"
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%' AND state = 'active'"
        )
        == 0
    )
    after = await h.run(
        flow(
            url,
            """
  - id: count
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: SELECT count(*) AS n FROM big
""",
        )
    )
    assert outputs(after, "count") == {"row": {"n": 0}, "size": 1}


async def test_copy_in_from_a_missing_file_is_named(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: load
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: /nonexistent/podium.csv
    table: t
""",
        )
    )
    assert ex.error == "task 'load': CopyIn: no such file '/nonexistent/podium.csv'"


async def test_copy_out_writes_a_query_or_a_table_to_a_stored_file(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    await admin.execute(
        f"CREATE TABLE {schema}.src (id int, name text);"
        f"INSERT INTO {schema}.src VALUES (1, 'a,b'), (2, NULL)"
    )
    ex = await h.run(
        flow(
            url,
            """
  - id: query
    type: io.kestra.plugin.jdbc.postgresql.CopyOut
    format: CSV
    header: true
    sql: SELECT id, name FROM src ORDER BY id
  - id: table
    type: io.kestra.plugin.jdbc.postgresql.CopyOut
    table: src
    columns: [name]
    delimiter: "|"
    nullString: "-"
""",
        )
    )
    assert task_states(ex) == {"query": "SUCCESS", "table": "SUCCESS"}
    query, table = outputs(ex, "query"), outputs(ex, "table")
    assert query["rowCount"] == 2 and query["uri"].endswith("/query.csv")
    read = h.engine.resources.storage.read_text
    assert await read(query["uri"]) == 'id,name\n1,"a,b"\n2,\n'
    assert sorted((await read(table["uri"])).splitlines()) == ["-", "a,b"]


async def test_copy_out_needs_sql_or_table(h: Harness, url: str) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: out
    type: io.kestra.plugin.jdbc.postgresql.CopyOut
""",
        )
    )
    assert ex.error == "task 'out': CopyOut needs either 'sql' or 'table'"


# -- connections ------------------------------------------------------------------------


async def test_two_executions_share_one_pool_and_its_connection(h: Harness, url: str) -> None:
    source = flow(
        url,
        """
  - id: pid
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: SELECT pg_backend_pid() AS pid
  - id: again
    type: io.kestra.plugin.jdbc.postgresql.Queries
    fetchType: FETCH_ONE
    sql: SELECT pg_backend_pid() AS pid
""",
    )
    first = await h.run(source)
    pools = open_pools()
    second = await h.run(source)
    assert len(pools) == 1 and open_pools() == pools and open_pools()[0] is pools[0]
    pids = {
        outputs(first, "pid")["row"]["pid"],
        outputs(second, "pid")["row"]["pid"],
        outputs(first, "again")["outputs"][0]["row"]["pid"],
    }
    assert len(pids) == 1


async def test_plugin_defaults_by_type_prefix_reach_every_postgresql_task(
    h: Harness, url: str, admin: asyncpg.Connection, schema: str
) -> None:
    ex = await h.run(
        flow(
            url,
            """
  - id: create
    type: io.kestra.plugin.jdbc.postgresql.Queries
    sql: CREATE TABLE a (id int); CREATE TABLE b (id int); INSERT INTO a VALUES (7)
  - id: read
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: SELECT id FROM a
  - id: out
    type: io.kestra.plugin.jdbc.postgresql.CopyOut
    table: a
  - id: in
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    from: "{{ outputs.out.uri }}"
    table: b
""",
        )
    )
    assert set(task_states(ex).values()) == {"SUCCESS"}
    assert outputs(ex, "read")["row"] == {"id": 7}
    assert await admin.fetchval(f"SELECT id FROM {schema}.b") == 7


async def test_an_url_of_another_kind_is_refused_without_its_credentials(h: Harness) -> None:
    ex = await h.run(
        flow(
            "mysql://root:hunter2@localhost:3306/db",
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: SELECT 1
""",
        )
    )
    assert ex.error == (
        "task 'q': invalid PostgreSQL url 'mysql://localhost:3306/db': expected "
        "jdbc:postgresql://host:port/database or postgresql://host:port/database"
    )


async def test_nothing_listening_is_a_refused_connection_naming_the_target(h: Harness) -> None:
    port = free_port()
    ex = await h.run(
        flow(
            f"jdbc:postgresql://127.0.0.1:{port}/taxi",
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: SELECT 1
""",
        )
    )
    assert ex.error == (
        f"task 'q': cannot connect to PostgreSQL at 127.0.0.1:{port}/taxi as "
        "postgres: connection refused (is PostgreSQL running and listening there?)"
    )


async def test_an_unknown_database_is_named(h: Harness, postgres_dsn: str) -> None:
    parts = urlsplit(postgres_dsn)
    ex = await h.run(
        flow(
            f"postgresql://{parts.netloc}/no_such_db",
            """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    sql: SELECT 1
""",
        )
    )
    assert ex.error == (
        f"task 'q': cannot connect to PostgreSQL at {parts.hostname}:{parts.port}"
        '/no_such_db as postgres: database "no_such_db" does not exist'
    )


PASSWORD_ROLE = "podium_pw"


async def password_role(admin: asyncpg.Connection, dsn: str) -> None:
    """A role that must give its password (the session's cluster trusts everyone else):
    one pg_hba.conf line in front of the trust lines, then wait until the server reads it."""
    hba = Path(await admin.fetchval("SHOW hba_file"))
    text = await asyncio.to_thread(hba.read_text)
    line = f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
    if line not in text:
        await asyncio.to_thread(hba.write_text, line + text)
        await admin.execute("SELECT pg_reload_conf()")
    await admin.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
    await admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-horse-battery'")
    async with asyncio.timeout(10):
        while True:
            try:
                conn = await asyncpg.connect(dsn, user=PASSWORD_ROLE, password="probe")
            except asyncpg.InvalidPasswordError:
                return
            await conn.close()
            await asyncio.sleep(0.05)


async def test_a_wrong_password_is_refused_without_showing_it(
    h: Harness, admin: asyncpg.Connection, postgres_dsn: str
) -> None:
    await password_role(admin, postgres_dsn)
    parts = urlsplit(postgres_dsn)
    tasks = """
  - id: q
    type: io.kestra.plugin.jdbc.postgresql.Query
    fetchType: FETCH_ONE
    sql: SELECT current_user AS who
    username: podium_pw
    password: "{{ inputs.password }}"
"""
    source = flow(
        f"jdbc:postgresql://{parts.hostname}:{parts.port}/postgres",
        tasks,
        "inputs:\n  - id: password\n    type: STRING\n",
    )
    wrong = await h.run(source, {"password": "wrong-staple-9"})
    assert wrong.error == (
        f"task 'q': cannot connect to PostgreSQL at {parts.hostname}:"
        f"{parts.port}/postgres as podium_pw: password authentication failed "
        'for user "podium_pw"'
    )
    assert "wrong-staple-9" not in " ".join(await h.logs(wrong))
    right = await h.run(source, {"password": "right-horse-battery"})
    assert outputs(right, "q") == {"row": {"who": "podium_pw"}, "size": 1}
