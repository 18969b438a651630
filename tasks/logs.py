"""Kestra's log.PurgeLogs: delete old log lines in bulk, keeping the executions.

podium's store holds only execution logs (trigger and daemon lines go to the daemon's own
log, journald), so `nonExecutionLogsCount` is always 0 and `purgeNonExecutionLogs` has
nothing to act on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic

Level = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


class PurgeLogs(Task):
    """Delete log lines written before `endDate` (and from `startDate`), at `logLevels` (all
    by default), of one execution, one flow or a namespace with its sub-namespaces."""

    types = ("io.kestra.plugin.core.log.PurgeLogs",)

    namespace: Annotated[str | None, Dynamic] = None
    flow_id: Annotated[str | None, Dynamic] = None
    execution_id: Annotated[str | None, Dynamic] = None
    log_levels: Annotated[list[Level] | None, Dynamic] = None
    start_date: Annotated[datetime | None, Dynamic] = None
    end_date: Annotated[datetime, Dynamic]
    purge_execution_logs: Annotated[bool, Dynamic] = True
    purge_non_execution_logs: Annotated[bool, Dynamic] = True
    batch_size: Annotated[int | None, Dynamic] = None  # Kestra's, for MySQL only

    async def run(self, ctx: RunContext) -> Output:
        if self.flow_id is not None and self.namespace is None:
            raise TaskFailed("flowId needs namespace", non_retryable=True)
        count = 0
        if self.purge_execution_logs:
            count = await ctx.executions.purge_logs(
                end=_aware(self.end_date),
                start=_aware(self.start_date) if self.start_date else None,
                levels=self.log_levels or None,
                execution_id=self.execution_id,
                namespace=self.namespace,
                flow_id=self.flow_id,
            )
        ctx.logger.info(f"purged {count} log lines")
        return {"count": count, "executionLogsCount": count, "nonExecutionLogsCount": 0}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
