"""SQL triggers (kestra-io/plugin-jdbc AbstractJdbcTrigger): every `interval`, `sql` runs,
and a poll whose query returns rows starts one execution with the rows as Kestra's Query
gives them: `trigger.row` (FETCH_ONE), `trigger.rows` (FETCH) or `trigger.uri` (STORE, an
Ion file), and `trigger.size`. A poll that returns nothing starts nothing.

As in Kestra, the flow is expected to mark the rows it handled (an UPDATE, a DELETE) so
that the next poll does not return them again. A database that goes away is retried
with backoff (one log line when the outage starts, one when it ends); the poll after it
comes back runs as usual. In a cluster one node polls (`exclusive`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

from daemon.sdk.brokers import Reconnector, import_module
from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.ion import dumps
from daemon.sdk.pgtls import pem_tls
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Dynamic, templated_values, with_rendered
from daemon.sdk.sqldb import Target, jsonable, parse_mysql, parse_target

FetchType = Literal["NONE", "FETCH_ONE", "FETCH", "STORE"]


class SqlPollError(ConnectionError):
    """The database refused the query: retried like a lost connection."""


class SqlTrigger(Trigger):
    locks = True

    url: Annotated[str, Dynamic]
    username: Annotated[str | None, Dynamic] = None
    password: Annotated[str | None, Dynamic] = None
    time_zone_id: str | None = None
    sql: Annotated[str, Dynamic]
    fetch_type: FetchType = "NONE"
    fetch_size: int = Field(default=10000, ge=1)
    interval: Duration = timedelta(seconds=60)
    fetch: bool = False
    fetch_one: bool = False
    store: bool = False

    def exclusive(self) -> bool:
        return True

    def effective_fetch_type(self) -> FetchType:
        if self.fetch:
            return "FETCH"
        if self.fetch_one:
            return "FETCH_ONE"
        if self.store:
            return "STORE"
        return self.fetch_type

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        templated = templated_values(self)
        if templated:
            rendered = await asyncio.to_thread(ctx.render, templated)
            return await with_rendered(self, rendered)._poll(emit, ctx)
        return await self._poll(emit, ctx)

    async def _poll(self, emit: Emit, ctx: TriggerContext) -> None:
        if self.password:
            ctx.secrets.add(self.password)
        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        fetch_type = self.effective_fetch_type()
        if fetch_type == "NONE":
            ctx.logger.warning(
                "%s: fetchType is NONE, so a poll never returns rows: no execution starts",
                where,
            )

        async def session(connected: Callable[[], None]) -> None:
            async with self._connection() as query:
                connected()
                while True:
                    rows = await query()
                    if rows and fetch_type != "NONE":
                        await self._emit(rows, fetch_type, emit, ctx, where)
                    await ctx.clock.sleep(self.interval.total_seconds())

        errors = (OSError, TimeoutError, SqlPollError)
        await Reconnector(ctx, where, self._address(), errors).run(session)

    async def _emit(
        self,
        rows: list[dict[str, Any]],
        fetch_type: FetchType,
        emit: Emit,
        ctx: TriggerContext,
        where: str,
    ) -> None:
        if fetch_type == "FETCH_ONE":
            variables: dict[str, Any] = {"row": rows[0], "size": 1}
        elif fetch_type == "FETCH":
            variables = {"rows": rows, "size": len(rows)}
        else:
            flow = ctx.flow
            prefix = f"/{flow.namespace.replace('.', '/')}/{flow.id}/triggers/{self.id}"
            lines = "".join(dumps(row) + "\n" for row in rows).encode()
            uri = await ctx.files.put(lines, prefix=prefix, name=f"{uuid.uuid4().hex}.ion")
            variables = {"uri": uri, "size": len(rows)}
        if not await self.admits(ctx, variables, where=where):
            return
        await emit({}, variables)

    def _address(self) -> str:
        raise NotImplementedError

    def _connection(self) -> Any:
        raise NotImplementedError


class _PostgresQuery:
    def __init__(self, trigger: PostgresTrigger) -> None:
        self.trigger = trigger
        self.conn: Any = None

    async def __aenter__(self) -> Callable[[], Any]:
        asyncpg = await import_module("asyncpg")
        target = self.trigger.target()
        try:
            ssl = await target.ssl_argument()
        except TaskFailed as exc:  # the PEM settings: said at each retry, until fixed
            raise SqlPollError(str(exc)) from None
        try:
            self.conn = await asyncpg.connect(
                target.dsn,
                user=target.user,
                password=target.password,
                ssl=ssl,
                timeout=target.timeout,
                server_settings=dict(target.server_settings) or None,
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SqlPollError(str(exc)) from None
        return self.query

    async def query(self) -> list[dict[str, Any]]:
        asyncpg = await import_module("asyncpg")
        try:
            statement = await self.conn.prepare(self.trigger.sql)
            records = await statement.fetch()
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SqlPollError(f"the query failed: {exc}") from None
        names = [(a.name, a.type.name) for a in statement.get_attributes()]
        return [
            {name: jsonable(record[i], kind) for i, (name, kind) in enumerate(names)}
            for record in records
        ]

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None and not self.conn.is_closed():
            await _close(self.conn)


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:  # a connection already broken: cut it
        conn.terminate()


class PostgresTrigger(SqlTrigger):
    """Kestra's io.kestra.plugin.jdbc.postgresql.Trigger."""

    types = ("io.kestra.plugin.jdbc.postgresql.Trigger",)

    ssl: bool | None = None
    ssl_mode: (
        Literal["DISABLE", "ALLOW", "PREFER", "REQUIRE", "VERIFY_CA", "VERIFY_FULL"] | None
    ) = None
    # PEM texts, as Kestra takes them (daemon/sdk/pgtls.py makes the TLS context).
    ssl_root_cert: Annotated[str | None, Dynamic] = None
    ssl_cert: Annotated[str | None, Dynamic] = None
    ssl_key: Annotated[str | None, Dynamic] = None
    ssl_key_password: Annotated[str | None, Dynamic] = None

    def target(self) -> Target:
        pem = pem_tls(self.ssl_root_cert, self.ssl_cert, self.ssl_key, self.ssl_key_password)
        return parse_target(self.url, self.username, self.password, self.ssl, self.ssl_mode, pem)

    def _address(self) -> str:
        return f"postgresql://{self.target().where}"

    def _connection(self) -> Any:
        return _PostgresQuery(self)


class _MysqlQuery:
    def __init__(self, trigger: MysqlTrigger) -> None:
        self.trigger = trigger
        self.conn: Any = None

    async def __aenter__(self) -> Callable[[], Any]:
        asyncmy = await import_module("asyncmy")
        errors = await import_module("asyncmy.errors")
        t = self.trigger
        target = parse_mysql(t.url, t.username, t.password)
        try:
            self.conn = await asyncmy.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password or "",
                database=target.database,
                connect_timeout=10,
                autocommit=True,
            )
        except errors.Error as exc:
            raise SqlPollError(str(exc)) from None
        return self.query

    async def query(self) -> list[dict[str, Any]]:
        errors = await import_module("asyncmy.errors")
        try:
            async with self.conn.cursor() as cursor:
                await cursor.execute(self.trigger.sql)
                names = [c[0] for c in cursor.description or []]
                rows = await cursor.fetchall()
        except errors.Error as exc:
            raise SqlPollError(f"the query failed: {exc}") from None
        return [{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in rows]

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


class MysqlTrigger(SqlTrigger):
    """Kestra's MySQL and MariaDB Triggers."""

    types = ("io.kestra.plugin.jdbc.mysql.Trigger", "io.kestra.plugin.jdbc.mariadb.Trigger")

    def _address(self) -> str:
        return f"mysql://{parse_mysql(self.url, self.username, self.password).where}"

    def _connection(self) -> Any:
        return _MysqlQuery(self)
