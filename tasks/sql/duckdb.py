"""DuckDB tasks: Queries (every statement's result) and Query (the last statement's).

DuckDB is embedded and blocking: the whole session (connect, statements, fetching) runs
in one worker thread, and a kill or timeout interrupts the running statement. The SQL is
rendered by the task, not the executor, once the working directory holds the input
files, so that `{{ workingDir }}` and `{{ outputFiles.<key> }}` can name them.
`STORE` writes rows as Amazon Ion text, one row per line, as Kestra does.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.durations import format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.ion import dumps
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Deprecated, Dynamic, JsonText
from daemon.sdk.state import iso

if TYPE_CHECKING:
    import duckdb

FetchType = Literal["NONE", "FETCH_ONE", "FETCH", "STORE"]
SCHEME = "jdbc:duckdb:"
DATABASE_FILE = "database.duckdb"
BATCH = 10_000  # rows fetched at once: STORE streams any number of rows in this memory
_INSTALL = re.compile(r"^\s*INSTALL\s+'?([A-Za-z0-9_]+)'?\s*;?\s*$", re.IGNORECASE)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON can hold it, for FETCH and FETCH_ONE outputs."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent >= 0
            else float(value)
        )  # type: ignore[operator]
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo is None else iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- one DuckDB session, run in a worker thread --------------------------------------------


@dataclass
class _Result:
    """What one statement with a result set gave, as Kestra's JDBC output."""

    row: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    path: Path | None = None
    size: int | None = None


@dataclass
class _Session:
    """Everything the worker thread needs, and the handle the loop uses to interrupt it."""

    database: str
    directory: Path
    render: Callable[[], str]
    fetch_type: FetchType
    keep: Literal["all", "last"]
    transaction: bool
    time_zone: str | None
    results: list[_Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _connection: duckdb.DuckDBPyConnection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancelled: bool = False

    def interrupt(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._connection is not None:
                self._connection.interrupt()

    def run(self) -> None:
        import duckdb

        sql = self.render()
        con = duckdb.connect(self.database)
        with self._lock:
            self._connection = con
        try:
            con.execute(f"SET file_search_path = {_literal(str(self.directory))}")
            if self.time_zone:
                con.execute(f"SET TimeZone = {_literal(self.time_zone)}")
            statements = con.extract_statements(sql)
            if self.transaction:
                con.begin()
            try:
                for number, statement in enumerate(statements, 1):
                    last = number == len(statements)
                    self._execute(con, statement, number, fetch=self.keep == "all" or last)
            except BaseException:
                if self.transaction:
                    con.rollback()
                raise
            if self.transaction:
                con.commit()
        finally:
            with self._lock:
                self._connection = None
            con.close()

    def _execute(
        self,
        con: duckdb.DuckDBPyConnection,
        statement: duckdb.Statement,
        number: int,
        *,
        fetch: bool,
    ) -> None:
        import duckdb

        if self._cancelled:
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
        install = _INSTALL.match(statement.query)
        if install and _installed(con, install.group(1)):
            # DuckDB 2 tries to download even an extension built into the library.
            self.notes.append(
                f"extension {install.group(1)} is built in: skipped '{statement.query.strip()}'"
            )
            return
        try:
            con.execute(statement)
        except duckdb.Error as exc:
            raise TaskFailed(f"statement {number} failed: {exc}") from None
        if not fetch or not _has_result_set(con, statement):
            return
        columns = [d[0] for d in con.description or ()]
        if self.fetch_type == "NONE":
            self.results.append(_Result())
        elif self.fetch_type == "FETCH_ONE":
            first = con.fetchone()
            row = dict(zip(columns, _plain(first), strict=True)) if first else None
            self.results.append(_Result(row=row, size=1 if row else 0))
        elif self.fetch_type == "FETCH":
            rows = [dict(zip(columns, _plain(r), strict=True)) for r in con.fetchall()]
            self.results.append(_Result(rows=rows, size=len(rows)))
        else:
            path = self.directory / f"result-{number}.ion"
            with path.open("w", encoding="utf-8") as out:
                size = _store(con, columns, out)
            self.results.append(_Result(path=path, size=size))


def _store(con: duckdb.DuckDBPyConnection, columns: list[str], out: IO[str]) -> int:
    size = 0
    names = [dumps(str(c)) for c in columns]
    while batch := con.fetchmany(BATCH):
        for row in batch:
            fields = ",".join(f"{n}:{dumps(v)}" for n, v in zip(names, row, strict=True))
            out.write("{" + fields + "}\n")
        size += len(batch)
    return size


def _has_result_set(con: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> bool:
    """As DuckDB's JDBC driver sees it: an INSERT's row count is not a result set, but
    its RETURNING rows are."""
    import duckdb

    expected = statement.expected_result_type
    description = con.description
    if description is None or duckdb.ExpectedResultType.QUERY_RESULT not in expected:
        return False
    counts = duckdb.ExpectedResultType.CHANGED_ROWS in expected
    return not (counts and [d[0] for d in description] == ["Count"])


def _installed(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT installed FROM duckdb_extensions() WHERE extension_name = ?", [name.lower()]
    ).fetchone()
    return bool(row and row[0])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- the tasks -----------------------------------------------------------------------------


class _DuckDb(Task):
    """Kestra's DuckDB properties. `sql` is rendered by the task itself (see module doc)."""

    keep: ClassVar[Literal["all", "last"]] = "all"

    sql: str
    url: Annotated[str, Dynamic] = SCHEME
    input_files: Annotated[dict[str, str] | None, Dynamic, JsonText] = None
    output_files: Annotated[list[str] | None, Dynamic, JsonText] = None
    database_uri: Annotated[str | None, Dynamic] = None
    output_db_file: bool = False
    fetch_type: FetchType = "NONE"
    # Kestra's deprecated booleans, read before fetchType: fetchOne, then store, then fetch.
    fetch: Annotated[bool, Deprecated("use 'fetchType: FETCH'")] = False
    fetch_one: Annotated[bool, Deprecated("use 'fetchType: FETCH_ONE'")] = False
    store: Annotated[bool, Deprecated("use 'fetchType: STORE'")] = False

    @model_validator(mode="after")
    def _legacy_fetch(self) -> Self:
        for flag, kind in (
            (self.fetch_one, "FETCH_ONE"),
            (self.store, "STORE"),
            (self.fetch, "FETCH"),
        ):
            if flag:
                self.fetch_type = kind  # type: ignore[assignment]
                break
        return self

    time_zone_id: Annotated[str | None, Dynamic] = None

    @property
    def in_transaction(self) -> bool:
        return False

    async def run(self, ctx: RunContext) -> Output:
        directory = await ctx.working_dir()
        await self._input_files(ctx, directory)
        database = await self._database(ctx, directory)
        outputs = {key: str(directory / key) for key in self.output_files or ()}
        for key in outputs:
            if not _SAFE_NAME.match(key):
                raise TaskFailed(
                    f"invalid outputFiles key '{key}': use letters, digits, '.', '_' and '-'",
                    non_retryable=True,
                )
        local = not database.startswith("md:")
        if self.output_db_file and not local:
            raise TaskFailed(
                "outputDbFile needs a local database file, not MotherDuck", non_retryable=True
            )
        extra: dict[str, Any] = {"workingDir": str(directory), "outputFiles": outputs}
        if local:
            extra["dbFilePath"] = database
        session = _Session(
            database,
            directory,
            lambda: ctx.render(self.sql, extra),
            self.fetch_type,
            self.keep,
            self.in_transaction,
            self.time_zone_id,
        )
        await _in_thread(session)
        for note in session.notes:
            ctx.logger.debug(note)
        results = [await self._output(ctx, result) for result in session.results]
        ctx.metric("fetch.size", "counter", sum(r.size or 0 for r in session.results))
        out: dict[str, Any] = {}
        if self.keep == "all":
            out["outputs"] = results
        elif results:
            out.update(results[-1])
        if outputs:
            out["outputFiles"] = await self._upload(ctx, outputs)
        if self.output_db_file:
            out["databaseUri"] = await ctx.put_file(Path(database))
        return out

    async def _input_files(self, ctx: RunContext, directory: Path) -> None:
        """Kestra's inputFiles: a `kestra://` value is copied, any other is the content."""
        files: dict[str, Path | str] = {}
        for name, value in (self.input_files or {}).items():
            files[name] = await ctx.file_path(value) if value.startswith("kestra://") else value

        def write() -> None:
            root = directory.resolve()
            for name, source in files.items():
                target = (root / name).resolve()
                if root not in target.parents:
                    raise TaskFailed(
                        f"invalid inputFiles name '{name}': it must stay inside "
                        "the working directory",
                        non_retryable=True,
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(source, Path):
                    shutil.copyfile(source, target)
                else:
                    target.write_text(source, encoding="utf-8")

        await asyncio.to_thread(write)

    async def _database(self, ctx: RunContext, directory: Path) -> str:
        """The database DuckDB opens: a copy of `databaseUri`, a file named by `url`, or a
        fresh file in the working directory (so that `outputDbFile` can store it)."""
        local = directory / DATABASE_FILE
        if self.database_uri is not None:
            await asyncio.to_thread(shutil.copyfile, await ctx.file_path(self.database_uri), local)
            return str(local)
        if not self.url.startswith(SCHEME):
            raise TaskFailed(
                f"invalid url '{self.url}': expected {SCHEME} or {SCHEME}/absolute/path/to/file.db",
                non_retryable=True,
            )
        target = self.url[len(SCHEME) :]
        if target in ("", ":memory:"):
            return str(local)
        if target.startswith("md:"):
            return target
        path = Path(target)
        if not path.is_absolute():
            raise TaskFailed(
                f"invalid url '{self.url}': the database file path must be absolute",
                non_retryable=True,
            )
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        return str(path)

    async def _output(self, ctx: RunContext, result: _Result) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if result.row is not None or self.fetch_type == "FETCH_ONE":
            out["row"] = result.row
        if result.rows is not None:
            out["rows"] = result.rows
        if result.path is not None:
            out["uri"] = await ctx.put_file(result.path)
        if result.size is not None:
            out["size"] = result.size
        return out

    async def _upload(self, ctx: RunContext, outputs: dict[str, str]) -> dict[str, str]:
        uploaded = {}
        for key, path in outputs.items():
            if not await asyncio.to_thread(Path(path).is_file):
                raise TaskFailed(
                    f"output file '{key}' was not written by the SQL "
                    f"(expected at {{{{ outputFiles.{key} }}}})"
                )
            uploaded[key] = await ctx.put_file(Path(path))
        return uploaded


async def _in_thread(session: _Session) -> None:
    """Run the session in a worker thread; on kill or timeout interrupt DuckDB and wait for
    the thread, so nothing touches the working directory once the task is over."""
    # The first import reads package metadata from disk: not on the event loop.
    duckdb = await asyncio.to_thread(importlib.import_module, "duckdb")
    job = asyncio.ensure_future(asyncio.to_thread(session.run))
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        session.interrupt()
        await asyncio.wait([job])
        if not job.cancelled():
            job.exception()  # retrieved: the interruption is expected
        raise
    except duckdb.Error as exc:
        raise TaskFailed(str(exc)) from None


class Queries(_DuckDb):
    """Run several statements; `outputs` has one entry per statement with a result set."""

    types = ("io.kestra.plugin.jdbc.duckdb.Queries",)

    transaction: bool = True

    @property
    def in_transaction(self) -> bool:
        return self.transaction


class Query(_DuckDb):
    """Run the SQL; `row`/`rows`/`uri`/`size` hold the last statement's result."""

    types = ("io.kestra.plugin.jdbc.duckdb.Query",)
    keep: ClassVar[Literal["all", "last"]] = "last"
