"""PostgreSQL tasks on asyncpg: Queries, Query, CopyIn and CopyOut, with Kestra's properties.

Connections come from the shared pools in `pool.py`. Rows are handed on as Kestra's JDBC
tasks do: FETCH_ONE as `row`, FETCH as `rows`, STORE as a stored file of one JSON object
per line written by `daemon.sdk.ion` (the format of every stored file of rows), values as
`pgvalues.py` makes them JSON.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.ion import dumps
from daemon.sdk.pgtls import pem_tls
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Deprecated, Dynamic, JsonText
from daemon.sdk.sqldb import Target, parse_target
from tasks.sql.pgvalues import arguments, json_row
from tasks.sql.pool import close_pools, connection
from tasks.sql.sqltext import bind_named, split_statements

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]
    from asyncpg.prepared_stmt import PreparedStatement  # type: ignore[import-untyped]

FetchType = Literal["NONE", "FETCH_ONE", "FETCH", "STORE"]
SslMode = Literal["DISABLE", "ALLOW", "PREFER", "REQUIRE", "VERIFY_CA", "VERIFY_FULL"]
Format = Literal["TEXT", "CSV", "BINARY"]

COPY_CHUNK = 1 << 18  # bytes read per step of a CopyIn, and buffered per write of a CopyOut
STORE_BATCH = 1000  # rows written to a STORE file at once
SHOWN_SQL = 120  # characters of a failed statement quoted in its error


class PostgresTask(Task):
    """Kestra's connection properties, shared by every PostgreSQL task."""

    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    ssl: Annotated[bool | None, Dynamic] = None
    ssl_mode: Annotated[SslMode | None, Dynamic] = None
    # PEM texts, as Kestra takes them (daemon/sdk/pgtls.py makes the TLS context).
    ssl_root_cert: Annotated[str | None, Dynamic] = None
    ssl_cert: Annotated[str | None, Dynamic] = None
    ssl_key: Annotated[str | None, Dynamic] = None
    ssl_key_password: Annotated[str | None, Dynamic] = None

    def target(self) -> Target:
        pem = pem_tls(self.ssl_root_cert, self.ssl_cert, self.ssl_key, self.ssl_key_password)
        return parse_target(self.url, self.username, self.password, self.ssl, self.ssl_mode, pem)

    def connect(self, ctx: RunContext) -> AbstractAsyncContextManager[Any]:
        """A pooled connection; the pools close with the daemon."""
        ctx.on_close("postgresql pools", close_pools)
        return connection(self.target())


class _Statements(PostgresTask):
    sql: Annotated[str, Dynamic]
    parameters: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None
    fetch_type: Annotated[FetchType, Dynamic] = "NONE"
    fetch_size: Annotated[int, Dynamic] = Field(default=10000, ge=1)
    # Kestra's deprecated booleans, still read before fetchType as Kestra does: fetchOne
    # first, then store, then fetch (JdbcQueryInterface).
    fetch: Annotated[bool, Deprecated("use 'fetchType: FETCH'")] = False
    fetch_one: Annotated[bool, Deprecated("use 'fetchType: FETCH_ONE'")] = False
    store: Annotated[bool, Deprecated("use 'fetchType: STORE'")] = False

    def effective_fetch_type(self) -> FetchType:
        if self.fetch_one:
            return "FETCH_ONE"
        if self.store:
            return "STORE"
        if self.fetch:
            return "FETCH"
        return self.fetch_type

    async def _run_all(
        self,
        ctx: RunContext,
        conn: asyncpg.Connection,
        statements: list[str],
    ) -> list[dict[str, Any]]:
        """Each statement in order; one output per statement that returns rows."""
        import asyncpg

        fetch_type = self.effective_fetch_type()
        outputs: list[dict[str, Any]] = []
        for index, statement in enumerate(statements):
            try:
                output = await _run_statement(
                    ctx, conn, statement, self.parameters or {}, fetch_type, self.fetch_size, index
                )
            except asyncpg.PostgresError as exc:
                raise TaskFailed(_statement_error(exc, index, statements)) from None
            if output is not None:
                outputs.append(output)
        return outputs


class Queries(_Statements):
    """Several statements, in one transaction unless `transaction: false`."""

    types = ("io.kestra.plugin.jdbc.postgresql.Queries",)

    transaction: Annotated[bool, Dynamic] = True

    async def run(self, ctx: RunContext) -> Output:
        statements = split_statements(self.sql)
        async with self.connect(ctx) as conn:
            if self.transaction:
                async with conn.transaction():
                    outputs = await self._run_all(ctx, conn, statements)
            else:
                outputs = await self._run_all(ctx, conn, statements)
        _count(ctx, self.effective_fetch_type(), outputs)
        if self.effective_fetch_type() == "NONE":
            return None
        return {"outputs": outputs}


class Query(_Statements):
    """One statement, committed on its own; `afterSQL` runs in the same transaction."""

    types = ("io.kestra.plugin.jdbc.postgresql.Query",)

    after_sql: Annotated[str | None, Dynamic] = Field(default=None, alias="afterSQL")

    async def run(self, ctx: RunContext) -> Output:
        statements = split_statements(self.sql)
        if len(statements) > 1:
            raise TaskFailed(
                "Query task support only a single SQL statement. Use the Queries "
                "task to run multiple statements.",
                non_retryable=True,
            )
        after = split_statements(self.after_sql or "")
        async with self.connect(ctx) as conn:
            if after:
                async with conn.transaction():
                    outputs = await self._run_all(ctx, conn, statements + after)
            else:
                outputs = await self._run_all(ctx, conn, statements)
        fetch_type = self.effective_fetch_type()
        _count(ctx, fetch_type, outputs[:1])
        if fetch_type == "NONE":
            return None
        return outputs[0] if outputs else {"size": 0}


class _Copy(PostgresTask):
    table: Annotated[str | None, Dynamic] = None
    columns: Annotated[list[str] | None, Dynamic, JsonText] = None
    format: Annotated[Format, Dynamic] = "TEXT"
    header: Annotated[bool | None, Dynamic] = None
    delimiter: Annotated[str | None, Dynamic] = Field(default=None, min_length=1, max_length=1)
    null_string: Annotated[str | None, Dynamic] = None
    quote: Annotated[str | None, Dynamic] = Field(default=None, min_length=1, max_length=1)
    escape: Annotated[str | None, Dynamic] = Field(default=None, min_length=1, max_length=1)
    encoding: Annotated[str | None, Dynamic] = None

    def copy_options(self) -> dict[str, Any]:
        """asyncpg's COPY options; unset ones are left to PostgreSQL's defaults."""
        return {
            "format": None if self.format == "TEXT" else self.format.lower(),
            "header": self.header,
            "delimiter": self.delimiter,
            "null": self.null_string,
            "quote": self.quote,
            "escape": self.escape,
            "encoding": self.encoding,
        }


class CopyIn(_Copy):
    """Load a file into a table with COPY FROM STDIN, streamed in chunks: memory stays flat
    whatever the file's size, and a bad row leaves the table as it was (one statement)."""

    types = ("io.kestra.plugin.jdbc.postgresql.CopyIn",)

    from_: Annotated[str, Dynamic] = Field(alias="from")
    table: Annotated[str, Dynamic]
    force_not_null: Annotated[list[str] | None, Dynamic, JsonText] = None
    force_null: Annotated[list[str] | None, Dynamic, JsonText] = None
    freeze: Annotated[bool | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        import asyncpg

        path = await _source_path(ctx, self.from_)
        schema, table = _qualified(self.table)
        options = {
            **self.copy_options(),
            "freeze": self.freeze,
            "force_not_null": _folded_list(self.force_not_null),
            "force_null": _folded_list(self.force_null),
        }
        source = await asyncio.to_thread(path.open, "rb")
        try:
            async with self.connect(ctx) as conn, aclosing(_read_ahead(source)) as chunks:
                status = await conn.copy_to_table(
                    table,
                    schema_name=schema,
                    source=chunks,
                    columns=_folded_list(self.columns),
                    **options,
                )
        except asyncpg.PostgresError as exc:
            raise TaskFailed(_copy_error(exc, self.table, bool(self.header))) from None
        finally:
            await asyncio.to_thread(source.close)
        rows = _status_count(status)
        ctx.logger.info(f"copied {rows} rows into {self.table}")
        ctx.metric("rows", "counter", rows)
        return {"rowCount": rows}


class CopyOut(_Copy):
    """Write a table or a query's rows to a stored file with COPY TO STDOUT."""

    types = ("io.kestra.plugin.jdbc.postgresql.CopyOut",)

    sql: Annotated[str | None, Dynamic] = None
    force_quote: Annotated[list[str] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        import asyncpg

        if (self.sql is None) == (self.table is None):
            raise TaskFailed("CopyOut needs either 'sql' or 'table'", non_retryable=True)
        suffix = {"CSV": "csv", "TEXT": "txt", "BINARY": "bin"}[self.format]
        path = await ctx.working_dir() / f"{ctx.task_run.task_id}.{suffix}"
        options = self.copy_options()
        sink = _FileSink(await asyncio.to_thread(path.open, "wb"))
        try:
            async with self.connect(ctx) as conn:
                if self.sql is not None:
                    status = await conn.copy_from_query(
                        self.sql,
                        output=sink.write,
                        force_quote=_folded_list(self.force_quote),
                        **options,
                    )
                else:
                    schema, table = _qualified(self.table or "")
                    status = await conn.copy_from_table(
                        table,
                        schema_name=schema,
                        output=sink.write,
                        columns=_folded_list(self.columns),
                        force_quote=_folded_list(self.force_quote),
                        **options,
                    )
        except asyncpg.PostgresError as exc:
            raise TaskFailed(f"CopyOut failed: {_describe(exc)}") from None
        finally:
            await sink.close()
        rows = _status_count(status)
        ctx.metric("rows", "counter", rows)
        return {"uri": await ctx.put_file(path), "rowCount": rows}


# -- running statements -----------------------------------------------------------------


async def _run_statement(
    ctx: RunContext,
    conn: asyncpg.Connection,
    sql: str,
    parameters: dict[str, Any],
    fetch_type: FetchType,
    fetch_size: int,
    index: int,
) -> dict[str, Any] | None:
    """One statement; its output when it returns rows and `fetch_type` asks for them."""
    if fetch_type == "NONE" and not parameters:
        ctx.logger.info(await conn.execute(sql))  # the simple protocol: no round trip to prepare
        return None
    names: list[str] = []
    if parameters:
        sql, names = bind_named(sql)
    statement = await conn.prepare(sql)
    args = arguments(statement, names, parameters)
    if fetch_type == "NONE" or not statement.get_attributes():
        await statement.fetch(*args)
        ctx.logger.info(statement.get_statusmsg())
        return None
    if fetch_type == "FETCH_ONE":
        first = await statement.fetchrow(*args)
        return {
            "row": json_row(statement, first) if first is not None else None,
            "size": 0 if first is None else 1,
        }
    if fetch_type == "FETCH":
        rows = [json_row(statement, record) for record in await statement.fetch(*args)]
        return {"rows": rows, "size": len(rows)}
    return await _store(ctx, conn, statement, args, fetch_size, index)


async def _store(
    ctx: RunContext,
    conn: asyncpg.Connection,
    statement: PreparedStatement,
    args: list[Any],
    fetch_size: int,
    index: int,
) -> dict[str, Any]:
    """Rows streamed through a cursor into an Ion file, `fetch_size` at a time."""
    path = await ctx.working_dir() / f"{ctx.task_run.task_id}-{index + 1}.ion"
    size = 0
    out = await asyncio.to_thread(path.open, "wb")
    try:
        batch: list[bytes] = []
        # A cursor lives in a transaction; Queries is usually in one already.
        async with conn.transaction():
            async for record in statement.cursor(*args, prefetch=fetch_size):
                batch.append((dumps(json_row(statement, record)) + "\n").encode())
                if len(batch) >= STORE_BATCH:
                    await asyncio.to_thread(out.write, b"".join(batch))
                    size += len(batch)
                    batch.clear()
        await asyncio.to_thread(out.write, b"".join(batch))
        size += len(batch)
    finally:
        await asyncio.to_thread(out.close)
    return {"uri": await ctx.put_file(path), "size": size}


def _count(ctx: RunContext, fetch_type: FetchType, outputs: list[dict[str, Any]]) -> None:
    fetched = fetch_type in ("FETCH", "FETCH_ONE")
    ctx.metric(
        "fetch.size",
        "counter",
        sum(o.get("size") or 0 for o in outputs),
        {"fetch": str(fetched).lower(), "store": str(fetch_type == "STORE").lower()},
    )


# -- files and COPY ---------------------------------------------------------------------


async def _source_path(ctx: RunContext, source: str) -> Path:
    """`from`: a stored file's kestra:// URI, or a local path (relative ones in the task's
    working directory)."""
    if source.startswith("kestra://"):
        return await ctx.file_path(source)
    path = Path(source.removeprefix("file://"))
    if not path.is_absolute():
        path = await ctx.working_dir() / path
    if not await asyncio.to_thread(path.is_file):
        raise TaskFailed(f"CopyIn: no such file {source!r}", non_retryable=True)
    return path


async def _read_ahead(source: IO[bytes]) -> AsyncGenerator[bytes, None]:
    """The file in COPY_CHUNK pieces, the next one read (in a thread) while this one is sent."""
    pending = asyncio.ensure_future(asyncio.to_thread(source.read, COPY_CHUNK))
    try:
        while chunk := await pending:
            pending = asyncio.ensure_future(asyncio.to_thread(source.read, COPY_CHUNK))
            yield chunk
    finally:
        await asyncio.wait([pending])  # the file is closed only once no thread reads it


class _FileSink:
    """COPY TO output gathered into COPY_CHUNK writes, each done in a thread."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= COPY_CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        data, self.buffer = bytes(self.buffer), bytearray()
        await asyncio.to_thread(self.out.write, data)

    async def close(self) -> None:
        try:
            await self._flush()
        finally:
            await asyncio.to_thread(self.out.close)


_IDENTIFIER = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([^".\s]+))\s*(\.|$)')


def _folded(name: str) -> list[str]:
    """A possibly qualified SQL name split into parts as PostgreSQL reads it: unquoted
    parts fold to lower case, quoted ones stay as written. (asyncpg quotes every name it
    is given, while Kestra's `table` and `columns` are SQL as written.)"""
    parts: list[str] = []
    pos = 0
    while pos < len(name):
        match = _IDENTIFIER.match(name, pos)
        if match is None or match.end() == pos:
            raise TaskFailed(f"invalid table or column name {name!r}", non_retryable=True)
        quoted, plain, _ = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else plain.lower())
        pos = match.end()
    if not parts:
        raise TaskFailed("an empty table or column name", non_retryable=True)
    return parts


def _qualified(name: str) -> tuple[str | None, str]:
    parts = _folded(name)
    if len(parts) > 2:
        raise TaskFailed(
            f"invalid table name {name!r}: expected table or schema.table", non_retryable=True
        )
    return (parts[0] if len(parts) == 2 else None), parts[-1]


def _folded_list(names: Sequence[str] | None) -> list[str] | None:
    if not names:
        return None
    out = []
    for name in names:
        parts = _folded(name)
        if len(parts) != 1:
            raise TaskFailed(f"invalid column name {name!r}", non_retryable=True)
        out.append(parts[0])
    return out


def _status_count(status: str) -> int:
    """The row count at the end of a command tag such as `COPY 10000`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# -- errors -----------------------------------------------------------------------------


def _describe(exc: asyncpg.PostgresError) -> str:
    """PostgreSQL's message with its SQLSTATE, detail and hint."""
    text = f"{exc} (SQLSTATE {exc.sqlstate})"
    detail = getattr(exc, "detail", None)
    hint = getattr(exc, "hint", None)
    if detail:
        text += f"; detail: {detail}"
    if hint:
        text += f"; hint: {hint}"
    return text


def _statement_error(exc: asyncpg.PostgresError, index: int, statements: list[str]) -> str:
    shown = " ".join(statements[index].split())
    if len(shown) > SHOWN_SQL:
        shown = shown[: SHOWN_SQL - 3] + "..."
    where = "query" if len(statements) == 1 else f"statement {index + 1} of {len(statements)}"
    return f"{where} failed: {_describe(exc)}; statement: {shown}"


_COPY_LINE = re.compile(r"\bline (\d+)\b")


def _copy_error(exc: asyncpg.PostgresError, table: str, header: bool) -> str:
    """The row PostgreSQL stopped at (its `COPY t, line N` context), and why."""
    context = getattr(exc, "context", None) or ""
    found = _COPY_LINE.search(context)
    if found is None:
        return f"CopyIn into {table} failed: {_describe(exc)}"
    line = int(found.group(1))
    row = f" (data row {line - 1})" if header and line > 1 else ""
    return (
        f"CopyIn into {table} failed at line {line}{row}: {exc} (SQLSTATE {exc.sqlstate}); "
        f"context: {context}"
    )
