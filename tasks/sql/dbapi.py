"""Query and Queries for the DB-API-shaped asyncio drivers (asyncmy for MySQL/MariaDB,
aiosqlite for SQLite), with Kestra's JDBC properties and outputs: `fetchType` NONE,
FETCH_ONE (`row`), FETCH (`rows`), STORE (`uri`, an Ion file), `size`; Queries gives
`outputs`, one per statement that returns rows. `parameters` bind `:name` placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.ion import dumps
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText
from daemon.sdk.sqldb import jsonable
from tasks.sql.sqltext import bind_named, split_statements

FetchType = Literal["NONE", "FETCH_ONE", "FETCH", "STORE"]
_NUMBERED = re.compile(r"\$(\d+)")


class Cursor(Protocol):
    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Awaitable[Any]: ...

    def fetchmany(self, size: int) -> Awaitable[Sequence[Any]]: ...


Execute = Callable[[str, Sequence[Any]], Awaitable[Cursor]]


def positional(sql: str, parameters: dict[str, Any] | None, mark: str) -> tuple[str, list[Any]]:
    """`:name` placeholders as the driver's positional `mark` (%s, ?), and the values."""
    if not parameters:
        return sql, []
    numbered, names = bind_named(sql)
    missing = [name for name in names if name not in parameters]
    if missing:
        raise TaskFailed(f"no value in parameters for {missing}", non_retryable=True)
    args: list[Any] = []

    def replace(match: re.Match[str]) -> str:
        args.append(parameters[names[int(match.group(1)) - 1]])
        return mark

    return _NUMBERED.sub(replace, numbered), args


class SqlStatements(Task):
    """The properties every Query/Queries shares."""

    sql: Annotated[str, Dynamic]
    parameters: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None
    fetch_type: Annotated[FetchType, Dynamic] = "NONE"
    fetch_size: Annotated[int, Dynamic] = Field(default=10000, ge=1)
    time_zone_id: str | None = None
    fetch: bool = False
    fetch_one: bool = False
    store: bool = False

    def effective_fetch_type(self) -> FetchType:
        if self.fetch:
            return "FETCH"
        if self.fetch_one:
            return "FETCH_ONE"
        if self.store:
            return "STORE"
        return self.fetch_type


async def run_statement(
    ctx: RunContext,
    execute: Execute,
    sql: str,
    args: Sequence[Any],
    fetch_type: FetchType,
    fetch_size: int,
    name: str,
) -> dict[str, Any] | None:
    """One statement; its output when it returns rows and `fetch_type` asks for them."""
    cursor = await execute(sql, args)
    description = cursor.description
    if fetch_type == "NONE" or not description:
        ctx.logger.info(f"{max(cursor.rowcount, 0)} rows affected")
        return None
    columns = [str(column[0]) for column in description]

    def row(values: Sequence[Any]) -> dict[str, Any]:
        return {c: jsonable(v) for c, v in zip(columns, values, strict=True)}

    if fetch_type == "FETCH_ONE":
        first = await cursor.fetchone()
        return {"row": row(first) if first is not None else None, "size": int(first is not None)}
    if fetch_type == "FETCH":
        rows: list[dict[str, Any]] = []
        while batch := await cursor.fetchmany(fetch_size):
            rows += [row(values) for values in batch]
        return {"rows": rows, "size": len(rows)}
    path = await ctx.working_dir() / name
    size = 0
    import asyncio

    out = await asyncio.to_thread(path.open, "w", encoding="utf-8")
    try:
        while batch := await cursor.fetchmany(fetch_size):
            text = "".join(dumps(row(values)) + "\n" for values in batch)
            await asyncio.to_thread(out.write, text)
            size += len(batch)
    finally:
        await asyncio.to_thread(out.close)
    return {"uri": await ctx.put_file(path), "size": size}


async def run_all(
    task: SqlStatements, ctx: RunContext, execute: Execute, mark: str, single: bool
) -> Output:
    """Queries' `outputs`, or (single) Query's one output."""
    statements = split_statements(task.sql)
    if single and len(statements) > 1:
        raise TaskFailed(
            "Query task support only a single SQL statement. Use the Queries task to run "
            "multiple statements.",
            non_retryable=True,
        )
    fetch_type = task.effective_fetch_type()
    outputs = []
    for index, statement in enumerate(statements):
        sql, args = positional(statement, task.parameters, mark)
        name = f"{ctx.task_run.task_id}-{index + 1}.ion"
        output = await run_statement(ctx, execute, sql, args, fetch_type, task.fetch_size, name)
        if output is not None:
            outputs.append(output)
    counted = outputs[:1] if single else outputs
    ctx.metric(
        "fetch.size",
        "counter",
        sum(o.get("size") or 0 for o in counted),
        {
            "fetch": str(fetch_type in ("FETCH", "FETCH_ONE")).lower(),
            "store": str(fetch_type == "STORE").lower(),
        },
    )
    if fetch_type == "NONE":
        return None
    if single:
        return outputs[0] if outputs else {"size": 0}
    return {"outputs": outputs}
