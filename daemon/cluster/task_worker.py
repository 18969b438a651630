"""A node's workers: up to `worker-slots` attempts of task runs taken from the cluster's
task queue at once, whichever node's execution they belong to.

A job is taken with FOR UPDATE SKIP LOCKED (one worker each), run here as the executor
would have run it (rendered, under its timeout), and its result stored only while this
node still holds it. A worker that was declared dead, or that has not reached the database
for nearly `node_timeout`, stops what it runs at once: the others hand those jobs back to
their executors, which retry them per their policy, so an attempt never runs twice at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import pickle
import time
import traceback
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from daemon.cluster.channels import POLL_INTERVAL, Channels, connection_errors
from daemon.cluster.task_queue import Job
from daemon.engine.contexts import ExecutionLog, TaskContext
from daemon.engine.workers import LocalWorkers
from daemon.sdk.errors import PodiumError, TaskFailed
from daemon.sdk.execution import Execution, TaskRun
from daemon.store.postgres_jobs import TASK_CANCEL_CHANNEL, TASKS_CHANNEL, JobTables

if TYPE_CHECKING:
    from daemon.engine.core import Engine

log = logging.getLogger(__name__)

# A job held here but not running here older than this was taken by a statement whose
# answer never arrived; younger ones may be a take of ours still on its way back.
ORPHAN_AGE = timedelta(seconds=2)


class TaskWorker:
    def __init__(
        self,
        tables: JobTables,
        channels: Channels,
        engine: Engine,
        *,
        slots: int,
        groups: list[str],
        heartbeat_interval: timedelta,
        node_timeout: timedelta,
    ) -> None:
        self._tables = tables
        self._engine = engine
        self._runner = LocalWorkers(engine.resources)
        self.slots = slots
        self.groups = groups
        self._interval = heartbeat_interval.total_seconds()
        self._check_timeout = 2 * self._interval  # one membership check, at most
        # The others may judge this node dead `node_timeout` after its last heartbeat
        # (which can be an interval older than the last check that went through): stop what
        # runs before then, counting the time a check takes to fail.
        self._contact_limit = max(
            node_timeout.total_seconds() - 2 * self._interval - self._check_timeout,
            self._interval,
        )
        self._running: dict[str, asyncio.Task[None]] = {}
        self._orphans_checked = 0.0
        # Jobs cancelled lately: a cancellation can arrive (on the listening connection)
        # before the statement that took the job has returned it here.
        self._cancelled_lately: collections.deque[str] = collections.deque(maxlen=1024)
        self._wake = asyncio.Event()
        self.taken = 0  # jobs taken since the start (the bench and /metrics read it)
        channels.listen(TASKS_CHANNEL, lambda _: self._wake.set())
        channels.listen(TASK_CANCEL_CHANNEL, self._cancelled)

    async def loop(self) -> None:
        """Take jobs while there are free slots; woken by new jobs and ended ones."""
        wake = self._wake
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_INTERVAL):
                    await wake.wait()
            wake.clear()
            try:
                if time.monotonic() - self._orphans_checked >= POLL_INTERVAL:
                    await self._release_orphans()
                while (room := self.slots - len(self._running)) > 0:
                    rows = await self._tables.take(self.groups, room)
                    for row in rows:
                        self._start(row["id"], row["payload"])
                    if len(rows) < room:
                        break
            except connection_errors() as exc:
                log.warning("node %s: taking task runs failed (%s)", self._tables.node_id, exc)
                await asyncio.sleep(POLL_INTERVAL / 5)
                wake.set()

    async def _release_orphans(self) -> None:
        """Jobs the database says run here and do not (a take whose answer a restart lost)
        go back to READY; checked between takes, so no take of ours is in flight."""
        self._orphans_checked = time.monotonic()
        released = await self._tables.release_orphans(list(self._running), ORPHAN_AGE)
        if released:
            log.warning(
                "node %s: %d task runs taken here were not running (the answer to taking "
                "them was lost); handed back",
                self._tables.node_id,
                released,
            )

    async def guard(self) -> None:
        """Stop every running attempt once this node may be judged dead."""
        contact = time.monotonic()
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with asyncio.timeout(self._check_timeout):
                    member = await self._tables.still_member()
            except connection_errors():
                if time.monotonic() - contact > self._contact_limit and self._running:
                    log.error(
                        "node %s: no contact with the database for %.0fs: stopping %d "
                        "task runs, which the others take over",
                        self._tables.node_id,
                        time.monotonic() - contact,
                        len(self._running),
                    )
                    self._stop_all()
                continue
            contact = time.monotonic()
            if not member and self._running:
                log.error("node %s was declared dead: stopping its task runs", self._tables.node_id)
                self._stop_all()

    async def drain(self) -> None:
        """Until nothing runs here (shutdown's grace period, once taking has stopped)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def stop(self) -> None:
        """Shutdown, past the grace period: what still runs is handed back (as lost: retried
        per its policy on another node)."""
        jobs = dict(self._running)
        if jobs:
            log.warning("grace period over: handing %d running task runs back", len(jobs))
        self._stop_all()
        if jobs:
            await asyncio.wait(jobs.values())
        for key in jobs:
            with contextlib.suppress(*connection_errors()):
                await self._tables.finish(
                    key, {"lost": f"its worker node {self._tables.node_id} stopped"}
                )

    @property
    def running(self) -> int:
        return len(self._running)

    # -- one job ------------------------------------------------------------------------

    def _start(self, key: str, payload: bytes) -> None:
        self.taken += 1
        if key in self._cancelled_lately:
            return  # its executor gave it up before it started: nothing to run or report
        job = asyncio.create_task(self._run(key, payload), name=f"task run {key}")
        self._running[key] = job
        job.add_done_callback(lambda _: self._ended(key))

    def _ended(self, key: str) -> None:
        self._running.pop(key, None)
        self._wake.set()

    def _stop_all(self) -> None:
        for job in self._running.values():
            job.cancel()

    def _cancelled(self, key: str) -> None:
        self._cancelled_lately.append(key)
        job = self._running.get(key)
        if job is not None:
            job.cancel()

    async def _run(self, key: str, payload: bytes) -> None:
        try:
            job: Job = await asyncio.to_thread(pickle.loads, payload)
        except Exception as exc:  # a podium of another version wrote it
            await self._finish(key, {"error": f"this node cannot read the task run: {exc}"})
            return
        resources = self._engine.resources
        execution = Execution.from_json(job.execution)
        tr = TaskRun.from_json(job.task_run)
        logger = ExecutionLog(resources, execution, tr, job.task.log_level)
        ctx = WorkerContext(
            resources, self._engine, self._engine.pauses, job.flow, execution, tr,
            job.variables, logger,
        )  # fmt: skip
        log.debug("node %s runs task %s of execution %s", key, job.task.id, execution.id)
        try:
            outputs = await self._runner.attempt(job.task, ctx)
            result: dict[str, Any] = {"outputs": outputs, "warning": ctx.warning}
        except asyncio.CancelledError:
            await asyncio.shield(ctx.cleanup())
            raise
        except Exception as exc:
            result = {"error": _describe(exc, ctx, key)}
            if isinstance(exc, TaskFailed):
                result["nonRetryable"] = exc.non_retryable
                result["outputs"] = exc.outputs
        await ctx.cleanup()
        await resources.store.flush()  # its logs and metrics before its end
        await self._finish(key, result)

    async def _finish(self, key: str, result: dict[str, Any]) -> None:
        while True:
            try:
                if not await self._tables.finish(key, result):
                    log.info("task run %s was taken back meanwhile: its result is dropped", key)
                return
            except connection_errors() as exc:
                log.warning("task run %s: storing its result failed (%s); retrying", key, exc)
                await asyncio.sleep(POLL_INTERVAL / 5)


class WorkerContext(TaskContext):
    """A task run's context on a worker: what changes the execution itself belongs to the
    node that holds it (such tasks declare `runs_on_executor`)."""

    def add_labels(self, labels: Any) -> None:
        raise TaskFailed("labels can only be set by a task that runs on the executor's node")

    async def set_variables(self, variables: Any) -> None:
        raise TaskFailed("variables can only be set by a task that runs on the executor's node")


def _describe(exc: BaseException, ctx: TaskContext, key: str) -> str:
    """One line for a known failure; a traceback in this node's log for the others."""
    if isinstance(exc, PodiumError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EACCES, errno.EIO):
        where = os.fsdecode(exc.filename) if exc.filename else str(ctx.working_dir_path)
        return f"{exc.strerror}: {where}"
    log.error("task run %s raised:\n%s", key, "".join(traceback.format_exception(exc)))
    return f"{type(exc).__name__}: {exc}"
