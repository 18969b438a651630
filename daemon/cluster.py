"""Several `podium serve` processes on one PostgreSQL store: a cluster with no coordinator.

How work moves, all through the database:
- `Runtime.submit` inserts an execution with no owner and sends NOTIFY podium_work. Every
  node LISTENs; each one that has room claims unowned unfinished executions with
  `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, so each is taken by one
  node. A poll every `POLL_INTERVAL` covers a notification lost to a reconnect.
- Nodes heartbeat into `nodes`. A node whose heartbeat is older than `node_timeout` is
  removed by any live node, and the executions it owned lose their owner: the others claim
  them and resume them where they stopped (finished task runs are kept, the interrupted one
  is retried per its policy). A node that finds its own row gone was declared dead: it
  exits at once, without another write, so that two nodes never run one execution.
- The ending of an execution is NOTIFY podium_ended: `Runtime.wait` works on any node.
  Kill and resume requests for an execution another node runs go out on podium_control.
- Triggers that must run on one node at a time (a watched folder, a non-shared MQTT
  subscription) hold a session advisory lock on a dedicated connection; when that node or
  its connection dies PostgreSQL releases the lock and another node's retry takes it.
- Flows: each node pushes its `--flows` directory into the store (FlowDirectory does), the
  store sends NOTIFY podium_flows on every new revision or deletion, and every node loads
  the store's latest revision of every flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from daemon.flow import Flow, load_flow
from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from daemon.store.postgres_schema import UNOWNED_UNFINISHED

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

    from daemon.runtime import Runtime
    from daemon.triggering import Triggers

log = logging.getLogger(__name__)

POLL_INTERVAL = 5.0  # seconds between claims/waits checks when no notification came
LEASE_RETRY = 2.0  # seconds between attempts at a trigger lease another node holds
CLAIM_BATCH = 32  # executions claimed per query
RECONNECT_MAX = 2.0  # longest pause between attempts to reach the database again
FENCED_EXIT = 70  # exit status of a node that finds it was declared dead (EX_SOFTWARE)

UNFINISHED = [s.value for s in State if not s.terminated]

# $4: flows with a concurrency limit whose lease another node holds (namespace US flow id)
_CLAIM = f"""
    UPDATE executions e SET owner = $1
    WHERE id IN (SELECT id FROM executions
                 WHERE {UNOWNED_UNFINISHED} AND state = ANY($2::text[])
                   AND NOT (namespace || chr(31) || flow_id = ANY($4::text[]))
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING id, doc,
        EXISTS (SELECT 1 FROM task_runs t WHERE t.execution_id = e.id) AS has_runs"""
_CLAIM_ONE = """
    UPDATE executions SET owner = $1
    WHERE id = (SELECT id FROM executions
                WHERE id = $2 AND owner IS NULL AND state = ANY($3::text[])
                FOR UPDATE SKIP LOCKED)
    RETURNING id"""
_DEAD_NODES = "DELETE FROM nodes WHERE heartbeat < now() - $1::interval RETURNING id"


def default_node_id(port: int) -> str:
    """host-port: stable across restarts, so a restarted node takes its own work back at
    once. With port 0 (tests, benchmarks) the pid keeps two local nodes apart."""
    return f"{socket.gethostname()}-{port if port else os.getpid()}"


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.blake2b(".".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Cluster:
    """This node's part in the cluster: heartbeat, claims, notifications, trigger leases."""

    def __init__(
        self,
        runtime: Runtime,
        store: Any,
        node_id: str,
        *,
        heartbeat_interval: timedelta,
        node_timeout: timedelta,
        capacity: int = 0,
    ) -> None:
        self.runtime = runtime
        self.store = store  # a PostgresStore: its `pool` and `dsn` are used here
        self.node_id = node_id
        self.interval = heartbeat_interval.total_seconds()
        self.timeout = node_timeout
        self.capacity = capacity
        self.triggers: Triggers | None = None
        # Since when the database has answered without a break (None while it does not).
        self._connected_since: float | None = None
        self._wake = asyncio.Event()
        self._lease_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._listen: asyncpg.Connection | None = None
        self._locks: asyncpg.Connection | None = None
        self._locks_mutex = asyncio.Lock()
        self._held: dict[int, asyncio.Event] = {}  # lease key -> set when the lease is lost
        self._jobs: set[asyncio.Future[Any]] = set()
        # Flows with a `concurrency` limit run on the one node holding their lease, so that
        # the limit counts every execution of the flow: lease jobs by flow, and those held.
        self._limited: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._pinned: set[tuple[str, str]] = set()
        self._stopping = False
        self.on_fenced: Callable[[], None] = _exit_fenced

    @property
    def pool(self) -> Any:
        return self.store.pool

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Join: register, take back what this node (same id) left unfinished, listen."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO nodes (id, host, pid, started, heartbeat)
                   VALUES ($1, $2, $3, now(), now())
                   ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                       started = excluded.started, heartbeat = excluded.heartbeat""",
                self.node_id,
                socket.gethostname(),
                os.getpid(),
            )
            released = await conn.fetch(
                "UPDATE executions SET owner = NULL WHERE owner = $1 AND state = ANY($2) "
                "RETURNING id",
                self.node_id,
                UNFINISHED,
            )
        if released:
            log.info(
                "node %s: %d executions it left unfinished are up for claiming",
                self.node_id,
                len(released),
            )
        self._connected_since = time.monotonic()
        await self._connect_listener()
        self._spawn(self._heartbeat_loop(), "cluster heartbeat")
        self._spawn(self._claim_loop(), "cluster claims")
        self._spawn(self._listener_watch(), "cluster listener")
        self._wake.set()
        log.info("node %s joined the cluster", self.node_id)

    def _spawn(self, job: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.create_task(job, name=name))  # type: ignore[arg-type]

    async def stop_claiming(self) -> None:
        """First step of shutdown: take no more executions. The heartbeat goes on while the
        runtime drains, or the others would take over executions still running here."""
        self._stopping = True
        jobs = [job for job in self._tasks if job.get_name() == "cluster claims"]
        jobs += self._limited.values()
        self._limited.clear()
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)

    async def stop(self) -> None:
        """Once what ran here is stored: stop heartbeating and listening."""
        await self.stop_claiming()
        jobs = [*self._tasks, *self._jobs]
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)
        self._tasks.clear()
        for conn in (self._listen, self._locks):
            if conn is not None and not conn.is_closed():
                conn.terminate()  # the server drops this node's LISTENs and leases with it
        self._listen = self._locks = None
        for lost in self._held.values():
            lost.set()
        self._held.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()

    async def leave(self) -> None:
        """Last step of shutdown, once what ran here is stored: executions still queued here
        go back up for claiming, and the node's row goes."""
        try:
            async with asyncio.timeout(2.5):
                async with self.pool.acquire() as conn, conn.transaction():
                    released = await conn.fetch(
                        "UPDATE executions SET owner = NULL WHERE owner = $1 "
                        "AND state = ANY($2::text[]) RETURNING id",
                        self.node_id,
                        UNFINISHED,
                    )
                    await conn.execute("DELETE FROM nodes WHERE id = $1", self.node_id)
                    if released:
                        await conn.execute("SELECT pg_notify('podium_work', '')")
        except Exception as exc:
            log.warning(
                "node %s could not leave the cluster cleanly (%s); the others will "
                "take its work over after %s",
                self.node_id,
                exc,
                self.timeout,
            )
            return
        if released:
            log.info(
                "node %s left; %d executions it had queued are up for claiming",
                self.node_id,
                len(released),
            )

    # -- notifications --------------------------------------------------------------------

    async def _connect_listener(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.store.dsn, timeout=10)
        for channel, handler in (
            ("podium_work", self._on_work),
            ("podium_ended", self._on_ended),
            ("podium_control", self._on_control),
            ("podium_flows", self._on_flows),
        ):
            await conn.add_listener(channel, handler)
        self._listen = conn

    async def _listener_watch(self) -> None:
        """Reconnect the LISTEN connection when it drops; missed notifications are made up
        for by a claim pass and a check of every waiter."""
        import asyncpg

        delay = 0.1
        while True:
            await asyncio.sleep(POLL_INTERVAL / 5)
            conn = self._listen
            alive = conn is not None and not conn.is_closed()
            if alive:
                try:
                    async with asyncio.timeout(POLL_INTERVAL):
                        await conn.execute("SELECT 1")  # type: ignore[union-attr]
                    delay = 0.1
                    continue
                except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError):
                    alive = False
            if conn is not None:
                conn.terminate()
                self._listen = None
            try:
                await self._connect_listener()
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.debug("listener reconnect failed: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            log.info("node %s: notifications connection is back", self.node_id)
            self._wake.set()
            self._lease_wake.set()
            await self._check_waiters()
            await self.sync_flows()

    def _on_work(self, *args: Any) -> None:
        self._wake.set()

    def _on_ended(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for waiter in self._waiters.pop(payload, []):
            if not waiter.done():
                waiter.set_result(None)

    def _on_control(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.error("ignoring a malformed control message: %.200s", payload)
            return
        execution_id = message.get("id")
        if message.get("node") not in (None, self.node_id) or not isinstance(execution_id, str):
            return
        if message.get("action") == "kill":
            self._background(self.runtime.kill_local(execution_id))
        elif message.get("action") == "resume":
            self._background(self.runtime.resume_local(execution_id, message.get("inputs") or {}))

    def _on_flows(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            uid = (str(message["namespace"]), str(message["id"]))
        except (ValueError, KeyError, TypeError):
            log.error("ignoring a malformed flow notification: %.200s", payload)
            return
        self._background(self.sync_flow(*uid))

    def _background(self, job: Coroutine[Any, Any, Any]) -> None:
        """Run `job` without awaiting it; kept referenced until done, its failure logged."""
        task = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        task.add_done_callback(_log_failure)

    async def notify(self, channel: str, payload: str = "") -> None:
        await self.pool.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def _notify_soon(self, channel: str, payload: str = "") -> None:
        """A wake-up call only: if it is lost (database unreachable) the others' polls and
        the waiters' store checks make up for it."""
        import asyncpg

        try:
            await self.notify(channel, payload)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, PodiumError) as exc:
            log.warning(
                "node %s: could not notify %s (%s); the others will poll",
                self.node_id,
                channel,
                exc,
            )

    # -- executions -----------------------------------------------------------------------

    def offer(self) -> None:
        """An unowned execution was stored: wake this node's claimer and the others'."""
        self._wake.set()
        self._background(self._notify_soon("podium_work"))

    def ended(self, execution: Execution) -> None:
        """Called by the runtime once an execution's final state is stored."""
        self._wake.set()  # room for one more here
        self._background(self._notify_soon("podium_ended", execution.id))

    def _room(self) -> int:
        if not self.capacity:
            return CLAIM_BATCH
        return max(self.capacity - self.runtime.running - self.runtime.starting, 0)

    async def _claim_loop(self) -> None:
        import asyncpg

        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_INTERVAL):
                    await self._wake.wait()
            self._wake.clear()
            others = self._pin_limited_flows()
            try:
                while (room := self._room()) > 0:
                    rows = await self.pool.fetch(
                        _CLAIM, self.node_id, UNFINISHED, min(room, CLAIM_BATCH), others
                    )
                    # A new execution comes with its doc; one that ran before (taken
                    # over, restarted, replayed) is read again with its task runs.
                    await asyncio.gather(*(self._adopt(row) for row in rows))
                    if len(rows) < min(room, CLAIM_BATCH):
                        break
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("node %s: claiming failed (%s); retrying", self.node_id, exc)
                await asyncio.sleep(RECONNECT_MAX)
                self._wake.set()

    def _pin_limited_flows(self) -> list[str]:
        """Keep one lease job per loaded flow with a concurrency limit; return the flows this
        node must not claim executions of (their lease is elsewhere), as claim keys."""
        limited = {uid for uid, flow in self.runtime.flows.items() if flow.concurrency is not None}
        for uid in list(self._limited):
            if uid not in limited:
                self._limited.pop(uid).cancel()
        for uid in limited - set(self._limited):
            job = asyncio.create_task(self._hold_flow(uid), name=f"lease {uid[0]}.{uid[1]}")
            self._limited[uid] = job
        return [f"{ns}\x1f{flow_id}" for ns, flow_id in limited - self._pinned]

    async def _hold_flow(self, uid: tuple[str, str]) -> None:
        while True:
            async with self.lease("concurrency", *uid) as lost:
                self._pinned.add(uid)
                self._wake.set()
                try:
                    await lost.wait()
                finally:
                    self._pinned.discard(uid)

    async def _adopt(self, row: Any) -> None:
        if row["has_runs"]:
            doc = await self.store.get_execution(row["id"])
            if doc is None:
                return
        else:
            doc = {**orjson.loads(row["doc"]), "taskRunList": []}
        await self.runtime.adopt(Execution.from_json(doc))

    async def claim_one(self, execution_id: str) -> bool:
        """Take one unowned execution (to kill it before anyone started it)."""
        row = await self.pool.fetchrow(_CLAIM_ONE, self.node_id, execution_id, UNFINISHED)
        return row is not None

    async def release(self, execution_id: str) -> None:
        """Give an execution up for claiming (a restart of an ended one)."""
        await self.pool.execute("UPDATE executions SET owner = NULL WHERE id = $1", execution_id)

    async def owner(self, execution_id: str) -> str | None:
        value: str | None = await self.pool.fetchval(
            "SELECT owner FROM executions WHERE id = $1", execution_id
        )
        return value

    async def control(self, action: str, execution_id: str, node: str | None, **extra: Any) -> None:
        await self.notify(
            "podium_control",
            json.dumps({"action": action, "id": execution_id, "node": node, **extra}),
        )

    async def wait_ended(self, execution_id: str) -> None:
        """Until some node says the execution ended (checked against the store, so a missed
        notification only costs a poll interval)."""
        while True:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[execution_id].append(waiter)
            try:
                doc = await self.store.get_execution(execution_id)
                if doc is None or State(doc["state"]["current"]).terminated:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await waiter
            finally:
                waiters = self._waiters.get(execution_id)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiters[execution_id]

    async def _check_waiters(self) -> None:
        for execution_id in list(self._waiters):
            self._on_ended(None, 0, "", execution_id)

    # -- heartbeat and takeover -------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        import asyncpg

        while True:
            await asyncio.sleep(self.interval)
            try:
                async with asyncio.timeout(max(self.interval, 1.0) * 5):
                    status = await self.pool.execute(
                        "UPDATE nodes SET heartbeat = now() WHERE id = $1", self.node_id
                    )
            except (
                asyncpg.PostgresError,
                OSError,
                asyncpg.InterfaceError,
                TimeoutError,
                PodiumError,
            ) as exc:
                if self._connected_since is not None:
                    log.warning(
                        "node %s: cannot reach the database (%s); retrying", self.node_id, exc
                    )
                self._connected_since = None
                continue
            if self._connected_since is None:
                log.info("node %s: database reachable again", self.node_id)
                self._connected_since = time.monotonic()
            if status == "UPDATE 0":
                log.critical(
                    "node %s was declared dead by the cluster (no heartbeat for %s); "
                    "its executions were taken over: exiting so they never run "
                    "twice",
                    self.node_id,
                    self.timeout,
                )
                self.on_fenced()
                return
            # After an outage every node needs a moment to heartbeat again before anyone
            # may judge the others dead.
            if time.monotonic() - self._connected_since > self.timeout.total_seconds():
                await self._reap()

    async def _reap(self) -> None:
        import asyncpg

        try:
            async with self.pool.acquire() as conn, conn.transaction():
                dead = await conn.fetch(_DEAD_NODES, self.timeout)
                if not dead:
                    return
                names = [row["id"] for row in dead]
                taken = await conn.fetch(
                    "UPDATE executions SET owner = NULL WHERE owner = ANY($1::text[]) "
                    "AND state = ANY($2::text[]) RETURNING id",
                    names,
                    UNFINISHED,
                )
                await conn.execute("SELECT pg_notify('podium_work', '')")
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("node %s: checking for dead nodes failed: %s", self.node_id, exc)
            return
        log.warning(
            "node(s) %s stopped heartbeating for %s: %d unfinished executions are taken over",
            ", ".join(names),
            self.timeout,
            len(taken),
        )
        self._wake.set()

    # -- trigger leases ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, *name: str) -> AsyncIterator[asyncio.Event]:
        """Hold the cluster-wide lease `name` for as long as the block runs.

        Waits until this node gets it. The event yielded is set if the lease is lost (the
        lock connection dropped): the holder must stop at once.
        """
        key = lock_key(*name)
        while True:
            if await self._try_lock(key):
                break
            self._lease_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LEASE_RETRY):
                    await self._lease_wake.wait()
        lost = asyncio.Event()
        self._held[key] = lost
        log.info("node %s holds %s", self.node_id, ".".join(name))
        try:
            yield lost
        finally:
            self._held.pop(key, None)
            if not lost.is_set():
                await self._unlock(key)

    async def _lock_conn(self) -> Any:
        import asyncpg

        conn = self._locks
        if conn is None or conn.is_closed():
            conn = await asyncpg.connect(
                self.store.dsn,
                timeout=10,
                server_settings={
                    # a machine that vanishes without closing its socket loses its leases
                    # after about idle + interval * count seconds
                    "tcp_keepalives_idle": "5",
                    "tcp_keepalives_interval": "2",
                    "tcp_keepalives_count": "3",
                },
            )
            conn.add_termination_listener(self._locks_lost)
            self._locks = conn
        return conn

    def _locks_lost(self, conn: Any) -> None:
        if conn is not self._locks:
            return
        self._locks = None
        if self._held and not self._stopping:
            log.warning(
                "node %s: lock connection lost; giving up %d trigger leases",
                self.node_id,
                len(self._held),
            )
        for lost in self._held.values():
            lost.set()
        self._held.clear()

    async def _try_lock(self, key: int) -> bool:
        import asyncpg

        async with self._locks_mutex:
            try:
                conn = await self._lock_conn()
                got: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
                return got
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.debug("lease attempt failed: %s", exc)
                if self._locks is not None:
                    self._locks.terminate()
                return False

    async def _unlock(self, key: int) -> None:
        import asyncpg

        async with self._locks_mutex:
            conn = self._locks
            if conn is None or conn.is_closed():
                return
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
                conn.terminate()

    # -- flows ------------------------------------------------------------------------------

    async def sync_flows(self) -> None:
        """Load the store's latest revision of every flow this node does not run yet."""
        stored = await self.store.list_flows()
        live = {(f["namespace"], f["id"]) for f in stored}
        for item in stored:
            await self._load(item["namespace"], item["id"], item["revision"], item["source"])
        for uid in [uid for uid in self.runtime.flows if uid not in live]:
            await self._unload(uid)

    async def sync_flow(self, namespace: str, flow_id: str) -> None:
        latest = await self.store.get_flow(namespace, flow_id)
        if latest is None:
            await self._unload((namespace, flow_id))
            return
        await self._load(namespace, flow_id, latest[0], latest[1])

    async def _load(self, namespace: str, flow_id: str, revision: int, source: str) -> None:
        current = self.runtime.flows.get((namespace, flow_id))
        if current is not None and (current.revision == revision or current.source == source):
            return
        from daemon.sdk.errors import FlowError

        try:
            flow: Flow = await asyncio.to_thread(
                load_flow,
                source,
                f"<{namespace}.{flow_id} revision {revision}>",
                self.runtime.plugins,
            )
        except FlowError as exc:
            log.error(
                "flow %s.%s revision %d from the cluster does not load here:\n%s",
                namespace,
                flow_id,
                revision,
                "\n".join(f"  {p}" for p in exc.problems),
            )
            return
        flow.revision = revision
        if self.triggers is not None:
            await self.triggers.stop(flow.uid)
        self.runtime.add_flow(flow)
        if self.triggers is not None:
            self.triggers.start(flow)
        log.info("loaded flow %s.%s revision %d from the cluster", namespace, flow_id, revision)

    async def _unload(self, uid: tuple[str, str]) -> None:
        if uid not in self.runtime.flows:
            return
        if self.triggers is not None:
            await self.triggers.stop(uid)
        self.runtime.flows.pop(uid, None)
        log.info("unloaded flow %s.%s: deleted in the cluster", *uid)


def _exit_fenced() -> None:
    logging.shutdown()
    os._exit(FENCED_EXIT)


def _log_failure(job: asyncio.Future[Any]) -> None:
    if not job.cancelled() and job.exception() is not None:
        log.error("cluster job failed", exc_info=job.exception())
