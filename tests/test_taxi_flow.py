"""The zoomcamp's taxi ELT flows, unchanged, end to end: gzipped months served by a local
HTTP server, downloaded by the shell task, loaded into a real PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from aiohttp import web

from bench import taxi_csv
from daemon.engine.events import Event, ExecutionChanged
from daemon.sdk.execution import Execution
from tasks.sql.pool import close_pools
from tests.harness import Harness, running_triggers, task_states

FLOWS = Path(__file__).resolve().parent.parent / "flows"
ROWS = 10_000
MONTHS = {"yellow": ("2019-01", "2019-02", "2019-03"), "green": ("2019-01", "2019-02")}


@pytest.fixture(scope="session")
def taxi_files() -> dict[str, bytes]:
    """`<colour>/<colour>_tripdata_<month>.csv.gz` -> gzipped CSV, as the release serves them."""
    return {
        f"{colour}/{colour}_tripdata_{month}.csv.gz": taxi_csv.csv_bytes(
            colour, month, ROWS, gzipped=True
        )
        for colour, months in MONTHS.items()
        for month in months
    }


@pytest.fixture
async def base_url(taxi_files: dict[str, bytes]) -> AsyncIterator[str]:
    """A local stand-in for https://github.com/DataTalksClub/nyc-tlc-data/releases/download."""
    served = dict(taxi_files)

    async def release(request: web.Request) -> web.Response:
        body = served.get(request.match_info["path"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/gzip")

    app = web.Application()
    app.router.add_get("/{path:.+}", release)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def pg_env(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The flows' pluginDefaults read `envs.pg_*`: ENV_PG_* as a user would set them."""
    netloc = postgres_dsn.split("@", 1)[1]
    monkeypatch.setenv("ENV_PG_URL", f"jdbc:postgresql://{netloc}")
    monkeypatch.setenv("ENV_PG_USERNAME", "postgres")
    monkeypatch.setenv("ENV_PG_PASSWORD", "unused-with-trust-auth")
    yield


TABLES = ("yellow_tripdata", "yellow_tripdata_staging", "green_tripdata", "green_tripdata_staging")


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection for checks; the flows' tables (fixed names in `public`) start absent."""
    conn = await asyncpg.connect(postgres_dsn)
    drop = "DROP TABLE IF EXISTS " + ", ".join(f"public.{t}" for t in TABLES)
    await conn.execute(drop)
    try:
        yield conn
    finally:
        await conn.execute(drop)
        await conn.close()


@pytest.fixture
async def h(tmp_path: Path, pg_env: None) -> AsyncIterator[Harness]:
    harness = await Harness.open(tmp_path)
    try:
        yield harness
    finally:
        await harness.close()
        await close_pools()


async def flow_text(name: str) -> str:
    return await asyncio.to_thread((FLOWS / name).read_text)


async def stored_files(h: Harness, execution: Execution) -> list[Path]:
    storage = h.engine.resources.storage
    prefix = storage.execution_prefix(execution.namespace, execution.flow_id, execution.id)
    root = storage.blobs.root / prefix.lstrip("/")
    return await asyncio.to_thread(lambda: [p for p in root.rglob("*") if p.is_file()])


def ran(execution: Execution) -> list[str]:
    return [tr.task_id for tr in execution.task_runs]


async def count(db: asyncpg.Connection, table: str, where: str = "true", *args: Any) -> int:
    value: int = await db.fetchval(f"SELECT count(*) FROM public.{table} WHERE {where}", *args)
    return value


@pytest.mark.parametrize("taxi", ["yellow", "green"])
async def test_a_month_loads_once_and_months_add_up(
    h: Harness, db: asyncpg.Connection, base_url: str, taxi: str
) -> None:
    flow = await h.flow(await flow_text("04_postgres_taxi.yaml"))

    async def load(month: str) -> Execution:
        year, mm = month.split("-")
        inputs = {"taxi": taxi, "year": year, "month": mm, "base_url": base_url}
        execution = await h.engine.wait((await h.engine.submit(flow, inputs)).id)
        assert execution.state.current.value == "SUCCESS", execution.error
        assert await stored_files(h, execution) == []  # purged at the end
        return execution

    first = await load("2019-01")
    table, staging = f"{taxi}_tripdata", f"{taxi}_tripdata_staging"
    assert task_states(first)["extract"] == "SUCCESS"
    assert [t for t in ran(first) if t.startswith(taxi)] == [
        f"{taxi}_create_table",
        f"{taxi}_create_staging_table",
        f"{taxi}_truncate_staging_table",
        f"{taxi}_copy_in_to_staging_table",
        f"{taxi}_add_unique_id_and_filename",
        f"{taxi}_merge_data",
    ]
    assert ran(first)[-1] == "purge_files"
    assert first.labels == {
        "file": f"{taxi}_tripdata_2019-01.csv",
        "taxi": taxi,
        "system.correlationId": first.id,
    }
    copied = next(tr for tr in first.task_runs if tr.task_id.endswith("_copy_in_to_staging_table"))
    assert copied.outputs == {"rowCount": ROWS}
    assert await count(db, table) == ROWS
    assert await count(db, table, "unique_row_id IS NULL OR filename IS NULL") == 0
    # The generator's awkward values arrive as PostgreSQL reads them: unquoted empty fields
    # as NULL, quoted empty flags as empty text.
    assert await count(db, table, "vendorid IS NULL") > 0
    assert await count(db, table, "store_and_fwd_flag = ''") > 0

    await load("2019-01")
    assert await count(db, table) == ROWS  # MERGE on unique_row_id: nothing new

    await load("2019-02")
    assert await count(db, table) == 2 * ROWS
    february = f"{taxi}_tripdata_2019-02.csv"
    assert await count(db, table, "filename = $1", february) == ROWS
    # Truncated at the start of each run: staging holds the last month only.
    assert await count(db, staging) == ROWS
    assert await count(db, staging, "filename <> $1", february) == 0


async def test_a_malformed_row_fails_the_load_and_leaves_the_table_as_it_was(
    h: Harness, db: asyncpg.Connection, base_url: str, taxi_files: dict[str, bytes]
) -> None:
    flow = await h.flow(await flow_text("04_postgres_taxi.yaml"))
    good = await h.engine.submit(
        flow, {"taxi": "yellow", "year": "2019", "month": "01", "base_url": base_url}
    )
    assert (await h.engine.wait(good.id)).state.current.value == "SUCCESS"

    lines = gzip.decompress(taxi_files["yellow/yellow_tripdata_2019-02.csv.gz"]).split(b"\n")
    cells = lines[5000].split(b",")
    cells[3] = b"two"  # passenger_count of data row 5000 (line 5001, after the header)
    lines[5000] = b",".join(cells)
    served = {"yellow/yellow_tripdata_2019-02.csv.gz": gzip.compress(b"\n".join(lines))}

    async def release(request: web.Request) -> web.Response:
        return web.Response(body=served["yellow/" + request.match_info["file"]])

    app = web.Application()
    app.router.add_get("/yellow/{file}", release)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        bad = await h.engine.submit(
            flow,
            {
                "taxi": "yellow",
                "year": "2019",
                "month": "02",
                "base_url": f"http://127.0.0.1:{runner.addresses[0][1]}",
            },
        )
        ended = await h.engine.wait(bad.id)
    finally:
        await runner.cleanup()
    assert ended.state.current.value == "FAILED"
    assert ended.error == (
        "task 'yellow_copy_in_to_staging_table': CopyIn into public.yellow_tripdata_staging "
        'failed at line 5001 (data row 5000): invalid input syntax for type integer: "two" '
        "(SQLSTATE 22P02); context: COPY yellow_tripdata_staging, line 5001, column "
        'passenger_count: "two"'
    )
    assert await count(db, "yellow_tripdata") == ROWS
    assert await count(db, "yellow_tripdata_staging") == 0


async def scheduled_flow(base_url: str) -> str:
    """05 as shipped, with the backfill its comments describe set on the yellow trigger."""
    doc: dict[str, Any] = yaml.safe_load(await flow_text("05_postgres_taxi_scheduled.yaml"))
    yellow = next(t for t in doc["triggers"] if t["id"] == "yellow_schedule")
    yellow["backfill"] = {
        "start": "2019-01-01T00:00:00Z",
        "end": "2019-03-31T00:00:00Z",
        "inputs": {"base_url": base_url},
    }
    return yaml.safe_dump(doc, sort_keys=False)


async def test_backfill_of_three_months_runs_three_executions_one_at_a_time(
    h: Harness, db: asyncpg.Connection, base_url: str
) -> None:
    running: set[str] = set()
    most = 0

    def watch(event: Event) -> None:
        nonlocal most
        if not isinstance(event, ExecutionChanged):
            return
        execution = event.execution
        if execution.flow_id != "05_postgres_taxi_scheduled":
            return
        if execution.state.current.value == "RUNNING":
            running.add(execution.id)
        elif execution.state.current.terminated:
            running.discard(execution.id)
        most = max(most, len(running))

    unsubscribe = h.engine.subscribe(watch)
    try:
        async with running_triggers(h, await scheduled_flow(base_url)) as th:
            await th.wait_for(3)
            ended = await th.finished(timeout=90)
    finally:
        unsubscribe()
    assert len(ended) == 3
    assert [task_states(e)["purge_files"] for e in ended] == ["SUCCESS"] * 3
    assert [e.labels["file"] for e in ended] == [
        "yellow_tripdata_2019-01.csv",
        "yellow_tripdata_2019-02.csv",
        "yellow_tripdata_2019-03.csv",
    ]
    assert most == 1
    assert await count(db, "yellow_tripdata") == 3 * ROWS
