"""MySQL and MariaDB tasks on asyncmy (asyncio) with Kestra's names and properties
(kestra-io/plugin-jdbc plugin-jdbc-mysql, plugin-jdbc-mariadb): Query, Queries and Batch.

`url` is Kestra's `jdbc:mysql://host:port/database` (or `jdbc:mariadb://...`); Queries runs
its statements in one transaction (`transaction: false` commits each), Query commits its
one statement. Batch inserts the rows of a stored Ion file, `chunk` rows per round trip.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from pydantic import Field

from daemon.sdk.brokers import import_module, read_from
from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic
from daemon.sdk.sqldb import parse_mysql
from tasks.sql.dbapi import Cursor, SqlStatements, run_all

CONNECT_TIMEOUT = 10


class MysqlConnection(Task):
    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None

    @contextlib.asynccontextmanager
    async def connection(self, ctx: RunContext) -> AsyncIterator[Any]:
        target = parse_mysql(self.url, self.username, self.password)
        if target.password:
            ctx.secrets.add(target.password)
        asyncmy = await import_module("asyncmy")
        errors = await import_module("asyncmy.errors")
        try:
            conn = await asyncmy.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password or "",
                database=target.database,
                connect_timeout=CONNECT_TIMEOUT,
                autocommit=False,
            )
        except (OSError, errors.Error) as exc:
            raise TaskFailed(
                f"cannot connect to MySQL at {target.where} as {target.user}: {exc}"
            ) from None
        try:
            yield conn
        except errors.ProgrammingError as exc:
            raise TaskFailed(f"MySQL: {exc}", non_retryable=True) from None
        except errors.Error as exc:
            raise TaskFailed(f"MySQL: {exc}") from None
        finally:
            conn.close()


async def _run(task: SqlStatements, ctx: RunContext, conn: Any, single: bool) -> Output:
    async with conn.cursor() as cursor:

        async def execute(sql: str, args: Sequence[Any]) -> Cursor:
            await cursor.execute(sql, args or None)
            return cursor  # type: ignore[no-any-return]

        return await run_all(task, ctx, execute, "%s", single)


class Queries(SqlStatements, MysqlConnection):
    """Kestra's MySQL/MariaDB Queries."""

    types = ("io.kestra.plugin.jdbc.mysql.Queries", "io.kestra.plugin.jdbc.mariadb.Queries")

    transaction: bool = True

    async def run(self, ctx: RunContext) -> Output:
        async with self.connection(ctx) as conn:
            if not self.transaction:
                await conn.autocommit(True)
            try:
                output = await _run(self, ctx, conn, single=False)
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        return output


class Query(SqlStatements, MysqlConnection):
    """Kestra's MySQL/MariaDB Query: one statement."""

    types = ("io.kestra.plugin.jdbc.mysql.Query", "io.kestra.plugin.jdbc.mariadb.Query")

    async def run(self, ctx: RunContext) -> Output:
        async with self.connection(ctx) as conn:
            output = await _run(self, ctx, conn, single=True)
            await conn.commit()
        return output


class Batch(MysqlConnection):
    """Kestra's MySQL Batch: each row of the stored file `from` bound to `sql`'s `?`
    placeholders (a map's values in its key order, `columns` picking them), or written
    to `table` (its columns from the first row, or `columns`); `rowCount`."""

    types = ("io.kestra.plugin.jdbc.mysql.Batch", "io.kestra.plugin.jdbc.mariadb.Batch")

    from_: Annotated[str, Dynamic] = Field(alias="from")
    sql: Annotated[str | None, Dynamic] = None
    table: Annotated[str | None, Dynamic] = None
    columns: Annotated[list[str] | None, Dynamic] = None
    chunk: int = Field(default=1000, ge=1)

    async def run(self, ctx: RunContext) -> Output:
        rows = await read_from(ctx, self.from_)
        sql, values = batch_statement(self.sql, self.table, self.columns, rows, "%s", "`")
        async with self.connection(ctx) as conn:
            async with conn.cursor() as cursor:
                for start in range(0, len(values), self.chunk):
                    await cursor.executemany(sql, values[start : start + self.chunk])
            await conn.commit()
        ctx.metric("records", "counter", len(values))
        ctx.logger.info(f"Successfully inserted {len(values)} records")
        return {"rowCount": len(values), "updatedCount": len(values)}


def batch_statement(
    sql: str | None,
    table: str | None,
    columns: list[str] | None,
    rows: list[Any],
    mark: str,
    quote: str,
) -> tuple[str, list[list[Any]]]:
    """The insert statement (with the driver's `mark`) and each row's values."""
    if sql is None and table is None:
        raise TaskFailed("Batch needs sql (with ? placeholders) or table", non_retryable=True)
    first = rows[0] if rows else {}
    names = columns or (list(first) if isinstance(first, dict) else [])
    values: list[list[Any]] = []
    for row in rows:
        if isinstance(row, dict):
            values.append([row.get(name) for name in names] if names else list(row.values()))
        elif isinstance(row, list):
            values.append(row)
        else:
            raise TaskFailed(f"a row is a {type(row).__name__}, not a map or a list")
    if sql is None:
        if not names:
            raise TaskFailed("with table, the rows must be maps or columns be given")
        quoted = ", ".join(quote + n.replace(quote, quote * 2) + quote for n in names)
        sql = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join([mark] * len(names))})"
    else:
        sql = sql.replace("?", mark)
    return sql, values
