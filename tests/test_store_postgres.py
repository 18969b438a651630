"""What only the PostgreSQL store does: migrations under a lock, the cluster's columns,
flow notifications, and riding out a server that restarts or never answers.

The store contract itself runs against PostgreSQL in test_store.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from daemon.sdk.clock import FakeClock
from daemon.store import StoreError, open_store
from daemon.store.postgres import PostgresStore
from daemon.store.postgres_schema import FLOWS_CHANNEL, MIGRATIONS, UNOWNED_UNFINISHED
from tests import services
from tests.cluster_helpers import fresh_database
from tests.test_store import execution, log, task_run

IO_LOGGER = "daemon.store.postgres_io"


@pytest.fixture
async def dsn(postgres_dsn: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_dsn) as url:
        yield url


@pytest.fixture
def private() -> Iterator[services.PostgresServer]:
    """A server of this test's own, to restart or stop; `alice` logs in with a password."""
    with services.postgres_server(hba=("host all alice 127.0.0.1/32 scram-sha-256",)) as server:
        yield server


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def fetch(dsn: str, sql: str, *params: Any) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *params))
    finally:
        await conn.close()


class CommitCutter:
    """A TCP proxy to PostgreSQL that can swallow the server's answer to one COMMIT.

    The server commits; the client only sees its connection drop: the one case where a
    client cannot tell whether its transaction happened.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.cuts = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> CommitCutter:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        commit_sent = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.armed and b"COMMIT" in data:
                    self.armed = False
                    commit_sent.set()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if commit_sent.is_set():
                    self.cuts += 1
                    break
                writer.write(data)
                await writer.drain()
            writer.close()
            up_writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


# opening, URLs and errors


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_store_picks_postgresql_for_its_urls(dsn: str, scheme: str) -> None:
    url = dsn.replace("postgresql://", f"{scheme}://", 1)
    async with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        assert store.shared is True
        assert store.dsn == url
        assert await store.state.claim("x") is True
        assert await store.pool.fetchval("SELECT count(*) FROM claims") == 1


async def test_pool_of_a_store_that_is_not_open_is_an_error(dsn: str) -> None:
    store = PostgresStore(dsn)
    with pytest.raises(StoreError, match=r"store is not open"):
        store.pool  # noqa: B018
    with pytest.raises(ValueError, match="pool_size must be at least 2, got 1"):
        PostgresStore(dsn, pool_size=1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://u:secret@db:notaport/x",
            "invalid PostgreSQL URL 'postgresql://u@db:notaport/x':"
            " Port could not be cast to integer value as 'notaport'",
        ),
        ("postgresql://[::1/x", "invalid PostgreSQL URL 'postgresql://[::1/x': Invalid IPv6 URL"),
        (
            "mysql://u@db/x",
            "invalid PostgreSQL URL 'mysql://u@db/x': expected postgresql://user@host:port/database",
        ),
        (
            "postgresql://u@127.0.0.1:1/x?sslmode=sometimes&password=secret",
            "invalid PostgreSQL URL 'postgresql://u@127.0.0.1:1/x?sslmode=sometimes':"
            " `sslmode` parameter must be one of: disable, allow, prefer, require, verify-ca,"
            " verify-full",
        ),
    ],
)
async def test_malformed_url_is_a_clear_error(url: str, message: str) -> None:
    store = PostgresStore(url, reconnect_timeout=0.2)
    with pytest.raises(StoreError) as info:
        await store.open()
    assert str(info.value) == message


async def test_unreachable_server_is_a_clear_error_within_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = services.free_port()  # nothing listens there
    store = PostgresStore(
        f"postgresql://postgres:secret@127.0.0.1:{port}/postgres", reconnect_timeout=0.3
    )
    with pytest.raises(StoreError) as info:
        await store.open()
    assert str(info.value) == (
        f"PostgreSQL at postgresql://postgres@127.0.0.1:{port}/postgres: cannot connect:"
        " connection refused (is PostgreSQL running and listening there?); gave up after 0.3s"
    )
    assert "secret" not in caplog.text
    with pytest.raises(StoreError, match="store is not open"):
        await store.get_execution("e1")


async def test_missing_database_is_a_clear_error(postgres_dsn: str) -> None:
    url = with_database(postgres_dsn, "no_such_db")
    with pytest.raises(StoreError) as info:
        await PostgresStore(url).open()
    assert str(info.value) == (
        f'PostgreSQL at {url}: cannot open: database "no_such_db" does not exist'
    )


async def test_wrong_password_is_a_clear_error(private: services.PostgresServer) -> None:
    admin = await asyncpg.connect(private.dsn)
    try:
        await admin.execute("CREATE ROLE alice LOGIN PASSWORD 'right'")
        await admin.execute("CREATE DATABASE alice OWNER alice")
    finally:
        await admin.close()
    where = f"127.0.0.1:{private.port}/alice"
    with pytest.raises(StoreError) as info:
        await PostgresStore(f"postgresql://alice:wrong@{where}", reconnect_timeout=5).open()
    assert str(info.value) == (
        f"PostgreSQL at postgresql://alice@{where}: cannot open:"
        ' password authentication failed for user "alice"'
    )
    async with PostgresStore(f"postgresql://alice:right@{where}") as store:
        assert await store.state.claim("x") is True


# schema


async def test_reopening_does_not_rerun_migrations(dsn: str) -> None:
    clock = FakeClock()
    async with PostgresStore(dsn, clock=clock):
        pass
    applied = await fetch(dsn, "SELECT version, applied_at FROM schema_version ORDER BY 1")
    assert [row["version"] for row in applied] == list(range(1, len(MIGRATIONS) + 1))
    assert applied[0]["applied_at"] == clock.now()
    await clock.advance(3600)
    async with PostgresStore(dsn, clock=clock):
        pass
    assert await fetch(dsn, "SELECT version, applied_at FROM schema_version ORDER BY 1") == applied


async def test_newer_schema_is_a_clear_error(dsn: str) -> None:
    async with PostgresStore(dsn):
        pass
    await fetch(dsn, "INSERT INTO schema_version VALUES (999, now())")
    store = PostgresStore(dsn)
    with pytest.raises(StoreError) as info:
        await store.open()
    assert str(info.value) == (
        f"PostgreSQL at {dsn}: database schema version 999 is newer than this podium knows"
        f" ({len(MIGRATIONS)}); upgrade podium or use another database"
    )


async def test_concurrent_first_opens_migrate_once(dsn: str) -> None:
    stores = [PostgresStore(dsn) for _ in range(6)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        assert await stores[-1].state.claim("k") is True
        assert await stores[0].state.claim("k") is False
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    versions = await fetch(dsn, "SELECT version FROM schema_version ORDER BY 1")
    assert [row["version"] for row in versions] == list(range(1, len(MIGRATIONS) + 1))


# the cluster's columns


async def test_saves_never_touch_the_owner(dsn: str) -> None:
    async with PostgresStore(dsn) as store:
        await store.save_execution(execution("e1"))
        await store.save_execution(execution("e2"))
        await store.pool.execute("UPDATE executions SET owner = 'node-a' WHERE id = 'e1'")
        await store.save_execution(execution("e1", state="SUCCESS"))
        assert await store.create_execution(execution("e1", state="CREATED")) is False
        owners = await store.pool.fetch("SELECT id, owner, state FROM executions ORDER BY seq")
        assert [tuple(row) for row in owners] == [
            ("e1", "node-a", "SUCCESS"),
            ("e2", None, "RUNNING"),
        ]
        await store.pool.execute("INSERT INTO nodes VALUES ('node-a', 'host', 42, now(), now())")
        assert await store.pool.fetchval("SELECT pid FROM nodes") == 42


async def test_unowned_unfinished_executions_are_found_through_the_partial_index(
    dsn: str,
) -> None:
    async with PostgresStore(dsn) as store:
        for n, state in enumerate(["RUNNING", "SUCCESS", "CREATED", "FAILED"]):
            await store.save_execution(execution(f"e{n}", state=state))
        sql = f"SELECT id FROM executions WHERE {UNOWNED_UNFINISHED} ORDER BY seq LIMIT 10"
        async with store.pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}"))
            found = [row["id"] for row in await conn.fetch(sql)]
        assert "executions_unowned" in plan
        assert found == ["e0", "e2"]


async def test_flow_changes_are_notified_as_they_commit(dsn: str) -> None:
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    try:
        await listener.add_listener(
            FLOWS_CHANNEL, lambda conn, pid, channel, payload: heard.put_nowait(json.loads(payload))
        )
        async with PostgresStore(dsn) as store:
            await store.save_flow("ns", "f", "a")
            await store.save_flow("ns", "f", "a")  # the same source: no new revision
            await store.save_flow("ns", "f", "b")
            await store.delete_flow("ns", "f")
            await store.delete_flow("ns", "f")  # deleted already
            await store.delete_flow("ns", "never-saved")
            await store.save_flow("ns", "g", "x")  # last: once heard, all before it were
            got = [await asyncio.wait_for(heard.get(), 10) for _ in range(4)]
    finally:
        await listener.close()
    assert got == [
        {"namespace": "ns", "id": "f", "revision": 1, "deleted": False},
        {"namespace": "ns", "id": "f", "revision": 2, "deleted": False},
        {"namespace": "ns", "id": "f", "revision": 2, "deleted": True},
        {"namespace": "ns", "id": "g", "revision": 1, "deleted": False},
    ]
    assert heard.empty()


# writing


async def test_concurrent_saves_share_commits_and_each_commit_is_observed(dsn: str) -> None:
    observed: list[tuple[str, float]] = []
    async with PostgresStore(dsn) as store:
        store.observe_write = lambda what, seconds: observed.append((what, seconds))
        before = store.commits
        await asyncio.gather(*(store.save_task_run(task_run(f"t{i:03}")) for i in range(500)))
        commits = store.commits - before
        assert 1 <= commits < 500
        assert len(observed) == commits
        assert {what for what, _ in observed} == {"commit"}
        assert all(seconds >= 0 for _, seconds in observed)
        observed.clear()
        await store.flush()  # nothing queued: no transaction
        assert observed == []
        await store.kv.set("ns", "k", 1)
        assert [what for what, _ in observed] == ["commit"]


async def test_a_failing_commit_observer_neither_fails_nor_repeats_a_write(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(what: str, seconds: float) -> None:
        raise RuntimeError("observer bug")

    async with PostgresStore(dsn) as store:
        store.observe_write = broken
        assert await store.state.claim("once") is True
        store.append_logs([log("one line")])
        await store.flush()
        assert [line["message"] for line in await store.logs("e1")] == ["one line"]
    assert [r.getMessage() for r in caplog.records] == ["store: the commit observer failed"] * 2


async def test_a_failing_write_costs_only_itself(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with PostgresStore(dsn) as store:
        await store.pool.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN IF NEW.id LIKE 'bad%' THEN RAISE EXCEPTION 'refused by test'; END IF;
               RETURN NEW; END $$;
               CREATE TRIGGER refuse BEFORE INSERT ON task_runs
               FOR EACH ROW EXECUTE FUNCTION refuse()"""
        )
        ids = ["t0", "t1", "bad", "t2"]
        results = await asyncio.gather(
            *(store.save_task_run(task_run(i)) for i in ids), return_exceptions=True
        )
        assert results[:2] == [None, None] and results[3] is None
        assert isinstance(results[2], StoreError)
        assert str(results[2]) == (
            f"PostgreSQL at {dsn}: could not write task run bad: refused by test"
        )
        await store.save_task_run(task_run("bad-unawaited"), wait=False)
        await store.save_task_run(task_run("t3"), wait=False)
        await store.flush()
        await store.save_execution(execution("e1"))
        got = await store.get_execution("e1")
        assert got is not None
        assert [t["id"] for t in got["taskRunList"]] == ["t0", "t1", "t2", "t3"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"store: lost unawaited write: PostgreSQL at {dsn}:"
        " could not write task run bad-unawaited: refused by test"
    ]


async def test_nul_in_a_log_message_and_key_order_survive_the_round_trip(dsn: str) -> None:
    async with PostgresStore(dsn) as store:
        line = log("binary \x00 output")
        store.append_logs([line, log("plain")])
        run = {**task_run("t1"), "outputs": {"z": 1, "a": {"y": 2, "b": 3}}}
        await store.save_execution(execution("e1"))
        await store.save_task_run(run)
        assert await store.logs("e1") == [line, log("plain")]
        got = await store.get_execution("e1")
        assert got is not None
        outputs = got["taskRunList"][0]["outputs"]
        assert list(outputs) == ["z", "a"]  # json keeps the order written; jsonb would not
        assert list(outputs["a"]) == ["y", "b"]


async def test_a_commit_whose_answer_is_lost_is_applied_once(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=IO_LOGGER)
    async with fresh_database(postgres_dsn) as dsn, CommitCutter(urlsplit(dsn).port or 0) as cut:
        proxied = urlunsplit(urlsplit(dsn)._replace(netloc=f"postgres@127.0.0.1:{cut.port}"))
        async with PostgresStore(proxied, reconnect_timeout=30) as store:
            cut.armed = True
            assert await store.state.claim("file:a.csv") is True
            assert cut.cuts == 1
            assert await store.state.claim("file:a.csv") is False
            cut.armed = True
            store.append_logs([log("once")])
            await store.flush()
            assert cut.cuts == 2
            assert [line["message"] for line in await store.logs("e1")] == ["once"]
    lost = [r for r in caplog.records if r.name == IO_LOGGER and r.levelno == logging.WARNING]
    assert lost and "cannot reach PostgreSQL" in lost[0].getMessage()


# a server that goes away


async def test_saves_in_flight_across_a_server_restart_all_land_once(
    private: services.PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=IO_LOGGER)
    async with PostgresStore(private.dsn, reconnect_timeout=60) as store:
        await store.save_execution(execution("e1"))
        restart = asyncio.ensure_future(asyncio.to_thread(private.restart))
        n, claims = 0, []
        while not restart.done() or n < 200:
            batch = range(n, n + 10)
            store.append_logs([log(f"line {i}") for i in batch])
            results = await asyncio.gather(
                *(store.save_task_run(task_run(f"t{i:05}")) for i in batch),
                *(store.state.claim(f"c{i}") for i in batch),
            )
            claims += results[10:]
            n += 10
            await asyncio.sleep(0.01)
        await restart
        await store.flush()
        got = await store.get_execution("e1")
        assert got is not None
        assert [t["id"] for t in got["taskRunList"]] == [f"t{i:05}" for i in range(n)]
        assert [x["message"] for x in await store.logs("e1")] == [f"line {i}" for i in range(n)]
        assert claims == [True] * n
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == IO_LOGGER]
    assert [level for level, _ in messages] == ["WARNING", "INFO"]
    assert messages[0][1].startswith(f"store: cannot reach PostgreSQL at {private.dsn} (")
    assert messages[0][1].endswith("); retrying for up to 60s")
    assert messages[1][1] == f"store: PostgreSQL at {private.dsn} is reachable again"


async def test_reads_and_cluster_statements_across_server_restarts_all_answer(
    private: services.PostgresServer,
) -> None:
    """Issue #13 finding 5: a pooled connection the restart left mid-exchange made the
    pool's reset fail with "cannot switch to state 15; another operation (2) is in
    progress", an error no caller retried. Reads retry through it; the cluster's own
    statements fail as StoreError (which its loops retry), never with asyncpg's error."""
    from daemon.store.postgres_cluster import ClusterTables

    async with PostgresStore(private.dsn, reconnect_timeout=60) as store:
        await store.save_execution(execution("e1"))
        tables = ClusterTables(store.pool, "n1")
        await tables.join()
        for _ in range(3):
            restart = asyncio.ensure_future(asyncio.to_thread(private.restart))
            reads = 0
            while not restart.done():
                got = await asyncio.gather(*(store.get_execution("e1") for _ in range(8)))
                assert all(doc is not None and doc["id"] == "e1" for doc in got)
                reads += len(got)
                try:
                    await asyncio.gather(tables.heartbeat(), tables.owner("e1"))
                except StoreError:
                    pass  # the loops retry; anything else would have escaped them
            await restart
            assert reads > 0
        assert await tables.heartbeat()
        assert (await store.get_execution("e1") or {}).get("id") == "e1"


async def test_a_server_down_past_the_timeout_fails_the_write_not_the_store(
    private: services.PostgresServer,
) -> None:
    async with PostgresStore(private.dsn, reconnect_timeout=0.5) as store:
        await store.save_execution(execution("e1"))
        await asyncio.to_thread(private.stop)
        down = (
            f"PostgreSQL at {private.dsn}: cannot connect: connection refused"
            " (is PostgreSQL running and listening there?); gave up after 0.5s"
        )
        with pytest.raises(StoreError) as info:
            await store.save_task_run(task_run("t1"))
        assert str(info.value) == down
        with pytest.raises(StoreError) as info:
            await store.get_execution("e1")
        assert str(info.value) == down
        await asyncio.to_thread(private.start)
        await store.save_task_run(task_run("t2"))
        got = await store.get_execution("e1")
        assert got is not None
        assert [t["id"] for t in got["taskRunList"]] == ["t2"]


async def test_a_close_cut_short_during_an_outage_fails_what_was_queued(
    private: services.PostgresServer,
) -> None:
    store = PostgresStore(private.dsn, reconnect_timeout=60)
    await store.open()
    await store.save_execution(execution("e1"))
    await asyncio.to_thread(private.stop)
    pending = asyncio.ensure_future(store.save_task_run(task_run("t1")))
    await asyncio.sleep(0)  # queued before close is called
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(store.close(), 0.5)
    with pytest.raises(StoreError) as info:
        await pending
    assert str(info.value) == f"PostgreSQL at {private.dsn}: store closed"
    with pytest.raises(StoreError, match="store is not open"):
        await store.save_task_run(task_run("t2"))
