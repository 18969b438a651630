"""Where one attempt of a task runs: the seam between a single process and a cluster's
workers.

The executor keeps every task run's state machine (attempts, retries, states, outputs)
and hands each attempt to `Workers`. On one node (`LocalWorkers`) the attempt runs here,
in this process, as it always did. In a cluster (`daemon.cluster.task_queue.ClusterWorkers`)
it is stored as a ready job that any node with a free worker slot takes; the executor
waits for its result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from daemon.sdk.durations import format_duration
from daemon.sdk.errors import PodiumError, TaskFailed
from daemon.sdk.plugin import Task
from daemon.sdk.properties import templated_values, with_rendered

if TYPE_CHECKING:
    from daemon.engine.contexts import TaskContext
    from daemon.engine.resources import Resources
    from daemon.sdk.execution import TaskRun

T = TypeVar("T", bound=Task)


class AttemptLost(PodiumError):
    """The attempt stopped without an outcome (its worker node died or stopped): the
    executor treats it as interrupted and retries it per the task's policy."""


class Workers(Protocol):
    async def attempt(
        self, task: Task, ctx: TaskContext, rendered: Task | None = None
    ) -> Mapping[str, Any] | None:
        """Run one attempt of `task` (its properties rendered first, unless `rendered` is
        given) and return its outputs; raise what the task raised (TaskFailed...)."""
        ...

    async def still_running(self, task_run: TaskRun) -> bool:
        """The task run's last attempt, left unfinished by an executor that stopped, goes on
        somewhere: `attempt` for it again waits for its outcome instead of starting it."""
        ...

    async def waiting(self) -> list[dict[str, Any]]:
        """Task runs held back because no live node serves their worker group (each with
        executionId, taskRunId, taskId, workerGroup, since)."""
        ...


class LocalWorkers:
    """Every attempt runs in this process, capped by `max-concurrent-tasks`."""

    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        max_tasks = resources.options.max_tasks
        # Caps task attempts running at once across all executions (0: no cap).
        self._slots = asyncio.Semaphore(max_tasks) if max_tasks > 0 else None

    async def attempt(
        self, task: Task, ctx: TaskContext, rendered: Task | None = None
    ) -> Mapping[str, Any] | None:
        if rendered is None:
            rendered = await render_task(task, ctx)
        slots = self._slots
        if slots is None:
            return await run_timed(rendered, ctx)
        async with slots:
            return await run_timed(rendered, ctx)

    async def still_running(self, task_run: TaskRun) -> bool:
        return False  # what ran in this process stopped with it

    async def waiting(self) -> list[dict[str, Any]]:
        return []  # one node runs every task run itself: none waits for a group


async def render_task(task: T, ctx: TaskContext) -> T:
    """The task with its dynamic properties rendered and type-checked, per attempt."""
    templated = templated_values(task)
    if not templated:
        return task
    # On the loop while it is quick; in a thread for jq, read(), kv() or a long render.
    rendered = await ctx.render_async(templated)
    return with_rendered(task, rendered)


async def run_timed(task: Task, ctx: TaskContext) -> Mapping[str, Any] | None:
    """`task.run(ctx)` under the task's `timeout`."""
    if task.timeout is None:
        return await task.run(ctx)
    try:
        async with ctx.clock.timeout(task.timeout.total_seconds()):
            return await task.run(ctx)
    except TimeoutError:
        raise TaskFailed(f"timed out after {format_duration(task.timeout)}") from None
