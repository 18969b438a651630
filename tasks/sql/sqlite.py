"""SQLite tasks on aiosqlite with Kestra's names and properties (kestra-io/plugin-jdbc
plugin-jdbc-sqlite): Query and Queries.

`url` is `jdbc:sqlite:<file>` (a relative file is in the task's working directory) or
`jdbc:sqlite::memory:`; `sqliteFile` (a stored database) is copied to that file first,
and `outputDbFile: true` stores the database afterwards as `databaseUri`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any

from daemon.sdk.brokers import import_module
from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic
from tasks.sql.dbapi import Cursor, SqlStatements, run_all

_PREFIX = "jdbc:sqlite:"


class SqliteTask(SqlStatements):
    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    sqlite_file: Annotated[str | None, Dynamic] = None
    output_db_file: bool = False

    async def database(self, ctx: RunContext) -> str:
        if not self.url.startswith(_PREFIX):
            raise TaskFailed(
                f"the url must be {_PREFIX}<file>, got '{self.url}'", non_retryable=True
            )
        name = self.url[len(_PREFIX) :].split("?", 1)[0]
        if name in ("", ":memory:"):
            if self.sqlite_file or self.output_db_file:
                raise TaskFailed("sqliteFile and outputDbFile need a database file in the url")
            return ":memory:"
        path = Path(name)
        if not path.is_absolute():
            path = await ctx.working_dir() / path
        if self.sqlite_file:
            source = await ctx.file_path(self.sqlite_file)
            await asyncio.to_thread(shutil.copyfile, source, path)
        return str(path)

    @contextlib.asynccontextmanager
    async def connection(self, ctx: RunContext) -> AsyncIterator[Any]:
        aiosqlite = await import_module("aiosqlite")
        database = await self.database(ctx)
        try:
            async with aiosqlite.connect(database, isolation_level=None) as db:
                yield db
        except aiosqlite.Error as exc:
            raise TaskFailed(f"SQLite: {exc}", non_retryable=True) from None

    async def execute(self, ctx: RunContext, single: bool) -> Output:
        async with self.connection(ctx) as db:
            await db.execute("BEGIN")

            async def execute(sql: str, args: Sequence[Any]) -> Cursor:
                return await db.execute(sql, args)  # type: ignore[no-any-return]

            try:
                output = await run_all(self, ctx, execute, "?", single)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        if self.output_db_file:
            path = Path(await self.database_path(ctx))
            output = {**(output or {}), "databaseUri": await ctx.put_file(path)}
        return output

    async def database_path(self, ctx: RunContext) -> str:
        name = self.url[len(_PREFIX) :].split("?", 1)[0]
        path = Path(name)
        return str(path if path.is_absolute() else await ctx.working_dir() / path)


class Queries(SqliteTask):
    """Kestra's SQLite Queries: every statement in one transaction."""

    types = ("io.kestra.plugin.jdbc.sqlite.Queries",)

    async def run(self, ctx: RunContext) -> Output:
        return await self.execute(ctx, single=False)


class Query(SqliteTask):
    """Kestra's SQLite Query: one statement."""

    types = ("io.kestra.plugin.jdbc.sqlite.Query",)

    async def run(self, ctx: RunContext) -> Output:
        return await self.execute(ctx, single=True)
