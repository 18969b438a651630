"""MySQL/MariaDB (a private mariadbd), SQLite and PostgreSQL Batch tasks, and the SQL
triggers (PostgreSQL and MariaDB), with Kestra's names and outputs.

Kestra's behaviour comes from kestra-io/plugin-jdbc: mysql/MysqlTest (Query, Queries,
fetchType), mysql/BatchTest and postgresql/BatchTest (rowCount), sqlite/SqliteTest
(sqliteFile, outputDbFile), postgresql/PgsqlTriggerTest and mysql/MysqlTriggerTest (one
execution per poll returning rows, `trigger.rows` and `trigger.size`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncmy
import asyncpg
import pytest

from daemon.sdk.ion import loads
from daemon.sdk.state import State
from tests.harness import Harness, running_triggers
from tests.services import MariaDB, PostgresServer, postgres_server

MARIADB = "jdbc:mariadb://127.0.0.1:{port}/podium"


@pytest.fixture
def table() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def conn(server: MariaDB) -> str:
    return f"url: {MARIADB.format(port=server.port)}\n    username: podium"


async def put(h: Harness, data: bytes, name: str) -> str:
    storage = h.engine.resources.storage
    return await storage.put(data, prefix="/test/in", name=name)


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def run(h: Harness, tasks: str) -> dict[str, object]:
    execution = await h.run(f"id: sql\nnamespace: test\ntasks:\n{tasks}")
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    return {tr.task_id: tr.outputs for tr in execution.task_runs}


async def test_mysql_queries_query_and_batch(h: Harness, mariadb: MariaDB, table: str) -> None:
    """MysqlTest and BatchTest: a table made, rows inserted from a stored file (rowCount),
    fetched (rows, size), one row (row), stored (uri), `:name` parameters."""
    rows = await put(h, b'{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n{"id":3,"name":"c"}\n', "r.ion")
    out = await run(
        h,
        f"""
  - id: create
    type: io.kestra.plugin.jdbc.mysql.Queries
    {conn(mariadb)}
    sql: CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(6,2) NULL)
  - id: batch
    type: io.kestra.plugin.jdbc.mariadb.Batch
    {conn(mariadb)}
    from: "{rows}"
    table: {table}
  - id: all
    type: io.kestra.plugin.jdbc.mysql.Query
    {conn(mariadb)}
    sql: SELECT id, name FROM {table} ORDER BY id
    fetchType: FETCH
  - id: one
    type: io.kestra.plugin.jdbc.mysql.Query
    {conn(mariadb)}
    sql: SELECT name FROM {table} WHERE id = :id
    parameters: {{id: 2}}
    fetchType: FETCH_ONE
  - id: stored
    type: io.kestra.plugin.jdbc.mariadb.Queries
    {conn(mariadb)}
    sql: UPDATE {table} SET price = 1.50 WHERE id = 1; SELECT id, price FROM {table} WHERE id = 1
    fetchType: STORE
""",
    )
    assert out["batch"] == {"rowCount": 3, "updatedCount": 3}
    assert out["all"] == {
        "rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        "size": 3,
    }
    assert out["one"] == {"row": {"name": "b"}, "size": 1}
    [stored] = out["stored"]["outputs"]  # type: ignore[index]
    assert [loads(line) for line in (await read(h, stored["uri"])).splitlines()] == [
        {"id": 1, "price": 1.5}
    ]


async def test_mysql_queries_roll_back_together(h: Harness, mariadb: MariaDB, table: str) -> None:
    """Queries runs in one transaction: a failing statement undoes the ones before."""
    await run(
        h,
        f"""
  - id: create
    type: io.kestra.plugin.jdbc.mysql.Query
    {conn(mariadb)}
    sql: CREATE TABLE {table} (id INT PRIMARY KEY) ENGINE=InnoDB
""",
    )
    execution = await h.run(
        f"""id: sql
namespace: test
tasks:
  - id: both
    type: io.kestra.plugin.jdbc.mysql.Queries
    {conn(mariadb)}
    sql: INSERT INTO {table} VALUES (1); INSERT INTO nowhere VALUES (2)
"""
    )
    assert execution.state.current == State.FAILED
    connection = await asyncmy.connect(
        host="127.0.0.1", port=mariadb.port, user="podium", database="podium"
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(f"SELECT COUNT(*) FROM {table}")
            assert await cursor.fetchone() == (0,)
    finally:
        connection.close()


async def test_an_unreachable_mysql_fails_the_task(h: Harness) -> None:
    execution = await h.run(
        """id: sql
namespace: test
tasks:
  - id: q
    type: io.kestra.plugin.jdbc.mysql.Query
    url: jdbc:mysql://127.0.0.1:1/db
    sql: SELECT 1
"""
    )
    assert execution.state.current == State.FAILED
    assert any("cannot connect to MySQL at 127.0.0.1:1/db" in x for x in await h.logs(execution))


async def test_sqlite_file_in_and_out(h: Harness) -> None:
    """SqliteTest: statements on a database file; `outputDbFile` stores it, and a later
    task opens it again through `sqliteFile`."""
    out = await run(
        h,
        """
  - id: make
    type: io.kestra.plugin.jdbc.sqlite.Queries
    url: jdbc:sqlite:shop.db
    sql: CREATE TABLE p (id INTEGER, name TEXT); INSERT INTO p VALUES (1, 'x'), (2, 'y')
    outputDbFile: true
  - id: read
    type: io.kestra.plugin.jdbc.sqlite.Query
    url: jdbc:sqlite:shop.db
    sqliteFile: "{{ outputs.make.databaseUri }}"
    sql: SELECT * FROM p WHERE id = :id
    parameters: {id: 2}
    fetchType: FETCH
""",
    )
    assert out["read"] == {"rows": [{"id": 2, "name": "y"}], "size": 1}


async def test_sqlite_query_refuses_two_statements(h: Harness) -> None:
    execution = await h.run(
        """id: sql
namespace: test
tasks:
  - id: q
    type: io.kestra.plugin.jdbc.sqlite.Query
    url: "jdbc:sqlite::memory:"
    sql: SELECT 1; SELECT 2
"""
    )
    assert execution.state.current == State.FAILED
    assert any("only a single SQL statement" in line for line in await h.logs(execution))


async def test_postgres_batch(h: Harness, postgres_dsn: str, table: str) -> None:
    """postgresql/BatchTest: `sql` with ? placeholders; text from a CSV becomes the
    column's type."""
    rows = await put(h, b'{"id":"1","at":"2024-01-31T10:00:00Z"}\n{"id":"2","at":null}\n', "r.ion")
    url = postgres_dsn.replace("postgresql://postgres@", "jdbc:postgresql://")
    out = await run(
        h,
        f"""
  - id: create
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {url}
    username: postgres
    sql: CREATE TABLE {table} (id int, at timestamptz)
  - id: batch
    type: io.kestra.plugin.jdbc.postgresql.Batch
    url: {url}
    username: postgres
    from: "{rows}"
    sql: INSERT INTO {table} (id, at) VALUES (?, ?)
    chunk: 1
""",
    )
    assert out["batch"] == {"rowCount": 2, "updatedCount": 2}
    connection = await asyncpg.connect(postgres_dsn)
    try:
        assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 2
    finally:
        await connection.close()


async def test_mariadb_trigger_starts_one_execution_per_poll_with_rows(
    h: Harness, mariadb: MariaDB, table: str
) -> None:
    """MysqlTriggerTest: rows as `trigger.rows`; the flow deletes what it handled, and a
    row inserted later comes in an execution of its own."""
    connection = await asyncmy.connect(
        host="127.0.0.1", port=mariadb.port, user="podium", database="podium", autocommit=True
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(f"CREATE TABLE {table} (id INT)")
            await cursor.execute(f"INSERT INTO {table} VALUES (1), (2)")
        source = f"""id: poll
namespace: test
tasks:
  - id: done
    type: io.kestra.plugin.jdbc.mysql.Query
    {conn(mariadb)}
    sql: DELETE FROM {table} WHERE id IN ({{{{ trigger.rows | jq('.[].id') | join(',') }}}})
triggers:
  - id: watch
    type: io.kestra.plugin.jdbc.mariadb.Trigger
    {conn(mariadb)}
    sql: SELECT id FROM {table} ORDER BY id
    fetchType: FETCH
    interval: PT0.2S
"""
        async with running_triggers(h, source) as th:
            [first] = await th.wait_for(1)
            await th.finished()
            async with connection.cursor() as cursor:
                await cursor.execute(f"INSERT INTO {table} VALUES (3)")
            while not any(e.trigger["variables"]["rows"] == [{"id": 3}] for e in th.executions):
                await th.wait_for(len(th.executions) + 1)
            await th.finished()
        # A poll that comes before the flow deleted its rows sees them again, as in Kestra.
        assert first.trigger["variables"] == {"rows": [{"id": 1}, {"id": 2}], "size": 2}
    finally:
        connection.close()


@pytest.fixture
def private() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, to restart."""
    with postgres_server() as server:
        yield server


@pytest.mark.services
async def test_postgres_trigger_survives_a_database_restart(
    h: Harness, table: str, private: PostgresServer
) -> None:
    """PgsqlTriggerTest, with the database restarted under the trigger: it reconnects
    and the rows inserted after the restart start their execution."""
    server = private
    if True:
        url = f"jdbc:postgresql://127.0.0.1:{server.port}/postgres"
        connection = await asyncpg.connect(server.dsn)
        await connection.execute(f"CREATE TABLE {table} (id int, done bool DEFAULT false)")
        await connection.execute(f"INSERT INTO {table} (id) VALUES (1)")
        await connection.close()
        source = f"""id: pg
namespace: test
tasks:
  - id: done
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {url}
    username: postgres
    sql: UPDATE {table} SET done = true WHERE id = {{{{ trigger.row.id }}}}
triggers:
  - id: watch
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    url: {url}
    username: postgres
    sql: SELECT id FROM {table} WHERE NOT done ORDER BY id LIMIT 1
    fetchType: FETCH_ONE
    interval: PT0.2S
"""
        async with running_triggers(h, source) as th:
            await th.wait_for(1)
            await th.finished()
            await asyncio.to_thread(server.restart)
            connection = await asyncpg.connect(server.dsn)
            await connection.execute(f"INSERT INTO {table} (id) VALUES (2)")
            await connection.close()
            while not any(e.trigger["variables"]["row"]["id"] == 2 for e in th.executions):
                await th.wait_for(len(th.executions) + 1, timeout=60)
            await th.finished()
        # Polls before the flow marked its row see it again, as in Kestra.
        assert {e.trigger["variables"]["row"]["id"] for e in th.executions} == {1, 2}


@pytest.fixture
def restartable_mariadb(mariadb: MariaDB) -> Iterator[MariaDB]:
    """The session's MariaDB, running again after the test whatever happened."""
    yield mariadb
    if not mariadb.running:
        mariadb.start()


async def test_mariadb_trigger_survives_a_database_restart(
    h: Harness, restartable_mariadb: MariaDB, table: str
) -> None:
    """MysqlTriggerTest with mariadbd restarted under the trigger: the row inserted after
    the restart starts its execution."""
    server = restartable_mariadb

    async def execute(sql: str) -> None:
        connection = await asyncmy.connect(
            host="127.0.0.1", port=server.port, user="podium", database="podium", autocommit=True
        )
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(sql)
        finally:
            connection.close()

    await execute(f"CREATE TABLE {table} (id INT, done BOOL DEFAULT false)")
    await execute(f"INSERT INTO {table} (id) VALUES (1)")
    source = f"""id: my
namespace: test
tasks:
  - id: done
    type: io.kestra.plugin.jdbc.mysql.Query
    {conn(server)}
    sql: UPDATE {table} SET done = true WHERE id = {{{{ trigger.row.id }}}}
triggers:
  - id: watch
    type: io.kestra.plugin.jdbc.mysql.Trigger
    {conn(server)}
    sql: SELECT id FROM {table} WHERE NOT done ORDER BY id LIMIT 1
    fetchType: FETCH_ONE
    interval: PT0.2S
"""
    async with running_triggers(h, source) as th:
        await th.wait_for(1)
        await th.finished()
        await asyncio.to_thread(server.restart)
        await execute(f"INSERT INTO {table} (id) VALUES (2)")
        while not any(e.trigger["variables"]["row"]["id"] == 2 for e in th.executions):
            await th.wait_for(len(th.executions) + 1, timeout=60)
        await th.finished()
    # Polls before the flow marked its row see it again, as in Kestra.
    assert {e.trigger["variables"]["row"]["id"] for e in th.executions} == {1, 2}
