"""The executor's side of the cluster's task queue: `Workers` whose attempts run on any
node with a free worker slot.

An attempt is stored as a READY job (the task as the flow wrote it, the variables it
renders with, its execution and task run) and the executor waits for its result, woken by
LISTEN/NOTIFY and checking the job every poll interval. Cheap tasks and tasks that change
the execution (`runs_on_executor`), tasks inside a shared working directory and tasks
logging to a file run here, through the local workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from daemon.cluster.channels import POLL_INTERVAL, Channels, connection_errors
from daemon.engine.workers import AttemptLost, LocalWorkers
from daemon.sdk.durations import format_duration
from daemon.sdk.errors import ExitRequested, TaskFailed
from daemon.sdk.execution import TaskRun
from daemon.sdk.plugin import Task
from daemon.sdk.retry import Backoff
from daemon.sdk.state import State
from daemon.store.base import StoreError
from daemon.store.postgres_jobs import TASK_DONE_CHANNEL, JobTables

if TYPE_CHECKING:
    from daemon.engine.contexts import TaskContext
    from daemon.engine.resources import Resources
    from daemon.sdk.inputs import InputSpec

log = logging.getLogger(__name__)
R = TypeVar("R")

SWEEP_AGE = timedelta(minutes=10)  # how long ended jobs stay (who ran what, for a look)


@dataclass(frozen=True)
class JobFlow:
    """What a task run on a worker may read of its flow (`RunContext.flow`)."""

    namespace: str
    id: str
    revision: int | None
    labels: dict[str, str] = field(default_factory=dict)
    inputs: list[InputSpec] = field(default_factory=list)


@dataclass
class Job:
    """One attempt as a worker receives it."""

    task: Task
    variables: dict[str, Any]
    execution: dict[str, Any]
    task_run: dict[str, Any]
    flow: JobFlow


def job_id(task_run: TaskRun) -> str:
    """One job per attempt: an executor that takes the execution over finds it again."""
    return f"{task_run.id}:{len(task_run.attempts)}"


class ClusterWorkers:
    """Attempts go to the cluster's workers; see the module docstring."""

    def __init__(
        self,
        resources: Resources,
        tables: JobTables,
        channels: Channels,
        *,
        node_timeout: timedelta,
        group_wait: timedelta | None,
    ) -> None:
        self._resources = resources
        self._tables = tables
        self._here = LocalWorkers(resources)
        self._node_timeout = node_timeout
        self._group_wait = group_wait
        self._waiters: dict[str, asyncio.Future[None]] = {}
        channels.listen(TASK_DONE_CHANNEL, self._done)

    async def attempt(
        self, task: Task, ctx: TaskContext, rendered: Task | None = None
    ) -> Mapping[str, Any] | None:
        if task.runs_on_executor or task.log_to_file or ctx.shares_working_dir:
            return await self._here.attempt(task, ctx, rendered)
        tr = ctx.task_run
        key = job_id(tr)
        group = task.worker_group
        if group is not None and group.fallback != "WAIT":
            if not await _retrying(self._tables.group_alive, group.key, self._node_timeout):
                message = f"no node of worker group '{group.key}' is up"
                if group.fallback == "CANCEL":
                    ctx.logger.error(f"{message}: the execution is cancelled (fallback CANCEL)")
                    raise ExitRequested(State.KILLED)
                raise TaskFailed(f"{message} (fallback FAIL)", non_retryable=True)
        flow = ctx.flow
        job = Job(
            task,
            ctx.variables,
            ctx.execution.to_json(task_runs=False),
            tr.to_json(),
            JobFlow(flow.namespace, flow.id, flow.revision, dict(flow.labels), list(flow.inputs)),
        )
        payload = await asyncio.to_thread(pickle.dumps, job, pickle.HIGHEST_PROTOCOL)
        await _retrying(
            self._tables.enqueue,
            key,
            ctx.execution.id,
            tr.id,
            task.id,
            group.key if group else None,
            payload,
        )
        try:
            result = await self._outcome(key, task, ctx)
        except asyncio.CancelledError:
            if not self._resources.options.handing_over:
                # killed or timed out here: the worker stops it (a handed-over execution's
                # attempt goes on, for the node that takes the execution over)
                with contextlib.suppress(*connection_errors()):
                    await asyncio.shield(self._tables.cancel(key))
            raise
        return _outputs(result, ctx)

    async def still_running(self, task_run: TaskRun) -> bool:
        row = await _retrying(self._tables.job, job_id(task_run))
        return row is not None and row["state"] in ("READY", "RUNNING", "DONE")

    async def waiting(self) -> list[dict[str, Any]]:
        try:
            rows = await self._tables.waiting_for_groups(self._node_timeout)
        except connection_errors() as exc:  # the API answers 503, as for the store's reads
            raise StoreError(f"the task runs waiting for a worker group: {exc}") from exc
        return [
            {
                "executionId": row["execution_id"],
                "taskRunId": row["task_run_id"],
                "taskId": row["task_id"],
                "workerGroup": row["worker_group"],
                "since": row["created"].isoformat(),
            }
            for row in rows
        ]

    async def watch(self) -> None:
        """Every poll interval: hand back the jobs of workers that are gone, and forget the
        jobs that ended long ago (on every node: it is cheap, and needs no leader)."""
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                lost = await self._tables.hand_back_lost()
                if lost:
                    log.warning("%d task runs of stopped worker nodes are handed back", lost)
                await self._tables.sweep(SWEEP_AGE)
            except connection_errors() as exc:
                log.debug("task queue sweep failed: %s", exc)

    # -- waiting for the result ---------------------------------------------------------

    async def _outcome(self, key: str, task: Task, ctx: TaskContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        queued = time.monotonic()
        warned = False
        group = task.worker_group
        while True:
            waiter = self._waiters[key] = loop.create_future()
            try:
                row = await _retrying(self._tables.job, key)
                if row is None or row["state"] == "CANCELLED":
                    raise AttemptLost("its job left the task queue")
                if row["state"] == "DONE":
                    result: dict[str, Any] = _json(row["result"])
                    return result
                if row["state"] == "READY" and group is not None:
                    alive = await _retrying(self._tables.group_alive, group.key, self._node_timeout)
                    if not alive:
                        if not warned:
                            ctx.logger.warning(
                                f"waiting for a node of worker group '{group.key}': none is "
                                "up" + _limit(self._group_wait)
                            )
                            warned = True
                        await self._give_up_after(key, group.key, time.monotonic() - queued)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await waiter
            finally:
                if self._waiters.get(key) is waiter:
                    del self._waiters[key]

    async def _give_up_after(self, key: str, group: str, waited: float) -> None:
        """Past `worker-group-wait` without a node of its group, the attempt fails."""
        limit = self._group_wait
        if limit is None or waited <= limit.total_seconds():
            return
        await _retrying(self._tables.cancel, key)
        raise TaskFailed(
            f"no node of worker group '{group}' came up within {format_duration(limit)} "
            "(worker-group-wait)",
            non_retryable=True,
        )

    def _done(self, payload: str) -> None:
        waiter = self._waiters.get(payload)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _outputs(result: dict[str, Any], ctx: TaskContext) -> Mapping[str, Any] | None:
    """The worker's result as the attempt's outcome, raised as the task raised it there."""
    if "lost" in result:
        raise AttemptLost(str(result["lost"]))
    if "error" in result:
        raise TaskFailed(
            str(result["error"]),
            non_retryable=bool(result.get("nonRetryable")),
            outputs=result.get("outputs"),
        )
    ctx.warning = bool(result.get("warning"))
    outputs: Mapping[str, Any] | None = result.get("outputs")
    return outputs


async def _retrying(statement: Callable[..., Awaitable[R]], *args: Any) -> R:
    """A statement the attempt cannot do without, tried until the database answers (a
    restart of PostgreSQL delays the task run; it does not fail it)."""
    backoff = Backoff(0.1, POLL_INTERVAL)
    while True:
        try:
            return await statement(*args)
        except connection_errors() as exc:
            if backoff.attempts == 0:
                log.warning("the task queue is unreachable (%s); trying again", exc)
            await backoff.sleep()


def _limit(wait: timedelta | None) -> str:
    return f"; fails after {format_duration(wait)}" if wait is not None else ""


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value
