"""PostgreSQL Batch (kestra-io/plugin-jdbc AbstractJdbcBatch): the rows of a stored Ion
file inserted with `sql` (`?` placeholders) or into `table`, `chunk` rows per round
trip, in one transaction; `rowCount`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from daemon.sdk.brokers import read_from
from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic
from tasks.sql.mysql import batch_statement
from tasks.sql.postgres import PostgresTask


class Batch(PostgresTask):
    """Kestra's PostgreSQL Batch."""

    types = ("io.kestra.plugin.jdbc.postgresql.Batch",)

    from_: Annotated[str, Dynamic] = Field(alias="from")
    sql: Annotated[str | None, Dynamic] = None
    table: Annotated[str | None, Dynamic] = None
    columns: Annotated[list[str] | None, Dynamic] = None
    chunk: int = Field(default=1000, ge=1)

    async def run(self, ctx: RunContext) -> Output:
        import asyncpg

        rows = await read_from(ctx, self.from_)
        sql, values = batch_statement(self.sql, self.table, self.columns, rows, "?", '"')
        numbered, count = "", 0
        for part in sql.split("?"):
            numbered += part if not count else f"${count}{part}"
            count += 1
        async with self.connect(ctx) as conn:
            try:
                async with conn.transaction():
                    statement = await conn.prepare(numbered)
                    types = [p.name for p in statement.get_parameters()]
                    for start in range(0, len(values), self.chunk):
                        chunk = [_typed(row, types) for row in values[start : start + self.chunk]]
                        await statement.executemany(chunk)
            except asyncpg.PostgresError as exc:
                raise TaskFailed(f"PostgreSQL: {exc}", non_retryable=True) from None
        ctx.metric("records", "counter", len(values))
        ctx.logger.info(f"Successfully inserted {len(values)} records")
        return {"rowCount": len(values), "updatedCount": len(values)}


def _typed(row: list[Any], types: list[str]) -> list[Any]:
    """Text from a CSV-born file converted to what the column takes (asyncpg is strict)."""
    from datetime import date, datetime
    from decimal import Decimal

    out = []
    for value, kind in zip(row, types, strict=False):
        if isinstance(value, str):
            if kind in ("int2", "int4", "int8"):
                value = int(value)
            elif kind in ("float4", "float8"):
                value = float(value)
            elif kind == "numeric":
                value = Decimal(value)
            elif kind == "bool":
                value = value.lower() in ("true", "t", "1", "yes")
            elif kind in ("timestamp", "timestamptz"):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif kind == "date":
                value = date.fromisoformat(value)
        out.append(value)
    return out
