"""The nodes' notifications: PostgreSQL LISTEN/NOTIFY on one dedicated connection.

- podium_work: an unowned execution was stored; idle nodes wake their claimer.
- podium_ended: an execution ended; `wait_ended` on any node returns.
- podium_control: kill or resume an execution another node runs.
- podium_flows: a flow revision was stored or deleted; every node loads it.

Notifications are wake-up calls only: a lost one (a reconnect) costs a poll interval,
since claims are retried every POLL_INTERVAL and waiters check the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.retry import Backoff
from daemon.sdk.state import State
from daemon.store.postgres_cluster import (
    CONTROL_CHANNEL,
    ENDED_CHANNEL,
    WORK_CHANNEL,
    ClusterTables,
)
from daemon.store.postgres_schema import FLOWS_CHANNEL

log = logging.getLogger(__name__)

POLL_INTERVAL = 5.0  # seconds between claims/waits checks when no notification came
RECONNECT_MAX = 2.0  # longest pause between attempts to reach the database again

ControlHandler = Callable[[str, str, dict[str, Any]], Coroutine[Any, Any, Any]]
FlowHandler = Callable[[str, str], Coroutine[Any, Any, None]]


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a lost or refused connection raises (asyncpg imported on first use), the
    protocol errors of a connection the server left mid-exchange among them."""
    import asyncpg  # type: ignore[import-untyped]

    return (
        asyncpg.PostgresError,
        OSError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        TimeoutError,
        PodiumError,
    )


def log_retry(what: str, node_id: str, exc: BaseException) -> None:
    """One line for a background loop's failed round, which it retries: a warning for a
    database out of reach, a traceback for anything else (a bug, but the loop goes on)."""
    if isinstance(exc, connection_errors()):
        log.warning("node %s: %s failed (%s); retrying", node_id, what, exc)
    else:
        log.error("node %s: %s failed; retrying", node_id, what, exc_info=exc)


class BackgroundJobs:
    """Coroutines run without being awaited: kept referenced until done, failures logged."""

    def __init__(self) -> None:
        self._jobs: set[asyncio.Future[Any]] = set()

    def start(self, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        task.add_done_callback(_log_failure)

    async def cancel(self) -> None:
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.wait(jobs)


class Channels:
    def __init__(self, dsn: str, tables: ClusterTables, store: Any) -> None:
        self._dsn = dsn
        self._tables = tables
        self._store = store
        self.node_id = tables.node_id
        self.work = asyncio.Event()  # set when claims may find something
        self.reconnected = asyncio.Event()  # set when the connection came back
        self.jobs = BackgroundJobs()
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._conn: Any = None
        self._control: ControlHandler | None = None
        self._flows: FlowHandler | None = None
        self._on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._extra: dict[str, Callable[[str], None]] = {}

    def handle(
        self,
        *,
        control: ControlHandler | None = None,
        flows: FlowHandler | None = None,
        reconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Who acts on control messages and flow changes, and what runs after a reconnect."""
        if control is not None:
            self._control = control
        if flows is not None:
            self._flows = flows
        if reconnected is not None:
            self._on_reconnect.append(reconnected)

    def listen(self, channel: str, handler: Callable[[str], None]) -> None:
        """Call `handler` with the payload of each notification on `channel` (another part
        of the cluster's own channel, e.g. the task queue's); before `connect`."""
        self._extra[channel] = handler

    async def connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._dsn, timeout=10)
        for channel, handler in (
            (WORK_CHANNEL, self._on_work),
            (ENDED_CHANNEL, self._on_ended),
            (CONTROL_CHANNEL, self._on_control),
            (FLOWS_CHANNEL, self._on_flows),
        ):
            await conn.add_listener(channel, handler)
        for channel, extra in self._extra.items():
            await conn.add_listener(channel, _payload_only(extra))
        self._conn = conn

    async def watch(self) -> None:
        """Reconnect the LISTEN connection when it drops; missed notifications are made up
        for by a claim pass, a check of every waiter and the reconnect handlers."""
        backoff = Backoff(0.1, RECONNECT_MAX)
        while True:
            await asyncio.sleep(POLL_INTERVAL / 5)
            try:
                if await self._alive():
                    backoff.reset()
                    continue
                await self.connect()
                log.info("node %s: notifications connection is back", self.node_id)
                await self._made_up()
            except Exception as exc:
                # Cut, so that the next round connects again and runs every catch-up step
                # again: nothing missed stays missed.
                self._drop()
                if isinstance(exc, connection_errors()):
                    log.debug("node %s: notifications not back yet (%s)", self.node_id, exc)
                else:
                    log_retry("listening", self.node_id, exc)
                await backoff.sleep()

    async def _alive(self) -> bool:
        """Whether the LISTEN connection answers; a dead one is cut (and said so once)."""
        conn = self._conn
        if conn is None:
            return False
        problem = "closed by the server"
        if not conn.is_closed():
            try:
                async with asyncio.timeout(POLL_INTERVAL):
                    await conn.execute("SELECT 1")
                return True
            except connection_errors() as exc:
                problem = str(exc) or type(exc).__name__
        log.warning(
            "node %s: notifications connection lost (%s); reconnecting", self.node_id, problem
        )
        self._drop()
        return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _made_up(self) -> None:
        """What the notifications missed while the connection was down: a claim pass,
        every waiter's store check, and the reconnect handlers (a flow sync, a check of
        what this node owns)."""
        self.work.set()
        self.reconnected.set()
        for execution_id in list(self._waiters):
            self._on_ended(None, 0, "", execution_id)
        for handler in self._on_reconnect:
            await handler()

    def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()  # the server drops this node's LISTENs with it
        self._conn = None
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()

    # -- incoming -------------------------------------------------------------------------

    def _on_work(self, *args: Any) -> None:
        self.work.set()

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
        action = message.get("action")
        if self._control is not None and isinstance(action, str):
            self.jobs.start(self._control(action, execution_id, message))

    def _on_flows(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            uid = (str(message["namespace"]), str(message["id"]))
        except (ValueError, KeyError, TypeError):
            log.error("ignoring a malformed flow notification: %.200s", payload)
            return
        if self._flows is not None:
            self.jobs.start(self._flows(*uid))

    # -- outgoing -------------------------------------------------------------------------

    async def _notify_soon(self, channel: str, payload: str = "") -> None:
        """A wake-up call only: if it is lost (database unreachable) the others' polls and
        the waiters' store checks make up for it."""
        try:
            await self._tables.notify(channel, payload)
        except connection_errors() as exc:
            log.warning(
                "node %s: could not notify %s (%s); the others will poll",
                self.node_id,
                channel,
                exc,
            )

    def offer(self) -> None:
        """An unowned execution was stored: wake this node's claimer and the others'."""
        self.work.set()
        self.jobs.start(self._notify_soon(WORK_CHANNEL))

    def ended(self, execution: Execution) -> None:
        """An execution's final state is stored."""
        self.work.set()  # room for one more here
        self.jobs.start(self._notify_soon(ENDED_CHANNEL, execution.id))

    async def control(self, action: str, execution_id: str, node: str | None, **extra: Any) -> None:
        await self._tables.notify(
            CONTROL_CHANNEL,
            json.dumps({"action": action, "id": execution_id, "node": node, **extra}),
        )

    async def wait_ended(self, execution_id: str) -> None:
        """Until some node says the execution ended (checked against the store, so a missed
        notification only costs a poll interval)."""
        while True:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[execution_id].append(waiter)
            try:
                doc = await self._store.get_execution(execution_id)
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


def _payload_only(handler: Callable[[str], None]) -> Callable[[Any, int, str, str], None]:
    def listener(conn: Any, pid: int, channel: str, payload: str) -> None:
        handler(payload)

    return listener


def _log_failure(job: asyncio.Future[Any]) -> None:
    if not job.cancelled() and job.exception() is not None:
        log.error("cluster job failed", exc_info=job.exception())
