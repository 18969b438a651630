"""Tasks about executions: Assert, SetVariables, UnsetVariables, Resume, Kill, Count, and the
log Fetch (an execution's logs as a stored file)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed, TemplateError
from daemon.sdk.maps import deep_merge
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model
from daemon.sdk.state import State
from daemon.sdk.truth import truthy


class Assert(Task):
    """Fail when any condition renders false (Kestra's truthiness); every one is checked."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Assert",)

    conditions: list[str] = Field(min_length=1)  # each rendered here: a failure is counted
    error_message: Annotated[str | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        failed = 0
        for condition in self.conditions:
            try:
                holds = truthy(await ctx.render_async(condition))
            except TemplateError as exc:
                ctx.logger.error(f"Assertion `{condition}` failed, failed to render `{exc}`")
                failed += 1
                continue
            if not holds:
                ctx.logger.error(f"Assertion `{condition}` failed!")
                failed += 1
        ctx.metric("success", "counter", len(self.conditions) - failed)
        ctx.metric("failed", "counter", failed)
        if failed:
            message = f"{failed} assertion{'s' if failed > 1 else ''} failed!"
            if self.error_message:
                message += "\n" + self.error_message
            raise TaskFailed(message)
        return None


class SetVariables(Task):
    """Set execution variables (`vars`) for the tasks that start afterwards."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.SetVariables",)

    variables: Annotated[dict[str, Any], Dynamic, JsonText]
    overwrite: Annotated[bool, Dynamic] = True

    async def run(self, ctx: RunContext) -> Output:
        current = dict(ctx.variables.get("vars") or {})
        if not self.overwrite:
            existing = [key for key in self.variables if key in current]
            if existing:
                raise TaskFailed(
                    "`overwrite` is set to false and the following variables already exist: "
                    + ",".join(existing),
                    non_retryable=True,
                )
        await ctx.set_variables(deep_merge(current, self.variables))
        return None


class UnsetVariables(Task):
    """Remove execution variables (`vars`); `a.b` removes `b` from the map `vars.a`.

    As in Kestra, a variable that is not set is no error; a map on its path that is not
    there is one, unless `ignoreMissing`."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.UnsetVariables",)

    variables: Annotated[list[str], Dynamic, JsonText] = Field(min_length=1)
    ignore_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        remaining = copy.deepcopy(dict(ctx.variables.get("vars") or {}))
        for name in self.variables:
            *path, leaf = name.split(".")
            node: Any = remaining
            for i, part in enumerate(path):
                node = node.get(part) if isinstance(node, dict) else None
                if not isinstance(node, dict):
                    if self.ignore_missing:
                        break
                    raise TaskFailed(
                        f"cannot unset '{name}': vars.{'.'.join(path[: i + 1])} is not a map "
                        "(set ignoreMissing: true to allow it)",
                        non_retryable=True,
                    )
            if isinstance(node, dict):
                node.pop(leaf, None)
        await ctx.set_variables(remaining)
        return None


def _target(execution_id: str | None, namespace: str | None, flow_id: str | None) -> None:
    """Kestra's rules for naming another execution (Resume, Fetch)."""
    if execution_id:
        if bool(namespace) != bool(flow_id):
            raise TaskFailed(
                "Both `namespace` and `flowId` must be set when `executionId` is set.",
                non_retryable=True,
            )
    elif namespace or flow_id:
        raise TaskFailed(
            "`namespace` and `flowId` should only be set when `executionId` is set.",
            non_retryable=True,
        )


async def other_execution(
    ctx: RunContext, execution_id: str | None, namespace: str | None, flow_id: str | None
) -> str:
    """The id of the execution a task names (its own by default), checked to exist and to
    belong to `namespace`.`flowId` when they are given."""
    _target(execution_id, namespace, flow_id)
    if not execution_id or execution_id == ctx.execution.id:
        return ctx.execution.id
    found = await ctx.executions.get(execution_id)
    if found is None:
        raise TaskFailed(f"No execution found for execution id {execution_id}")
    if namespace and (found.namespace, found.flow_id) != (namespace, flow_id):
        raise TaskFailed(
            f"execution {execution_id} is of flow {found.namespace}.{found.flow_id}, "
            f"not {namespace}.{flow_id}",
            non_retryable=True,
        )
    return execution_id


class Resume(Task):
    """Resume a paused execution (default: this one, paused in another branch), with the
    `onResume` inputs of the Pause task that holds it. The execution's `vars` get
    `resumedExecution` ({id, namespace, flowId})."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Resume",)

    execution_id: Annotated[str | None, Dynamic] = None
    namespace: Annotated[str | None, Dynamic] = None
    flow_id: Annotated[str | None, Dynamic] = None
    inputs: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        target = await other_execution(ctx, self.execution_id, self.namespace, self.flow_id)
        if not await ctx.resume_execution(target, self.inputs or {}):
            found = await ctx.executions.get(target)
            state = found.state.current.value if found is not None else "unknown"
            raise TaskFailed(
                f"execution {target} is not paused (it is {state}): nothing to resume",
                non_retryable=True,
            )
        found = await ctx.executions.get(target)
        resumed = {
            "id": target,
            "namespace": found.namespace if found else ctx.execution.namespace,
            "flowId": found.flow_id if found else ctx.execution.flow_id,
        }
        current = dict(ctx.variables.get("vars") or {})
        await ctx.set_variables({**current, "resumedExecution": resumed})
        ctx.logger.info(f"resumed execution {target}")
        return None


class Kill(Task):
    """Kill this execution (Kestra 1.x's Kill), or another one by `executionId` (its earlier
    form). The current execution ends KILLED at once, its remaining tasks not run.
    `propagateKill` is accepted; podium does not cascade a kill to subflow executions."""

    types = ("io.kestra.plugin.core.execution.Kill",)

    execution_id: Annotated[str | None, Dynamic] = None
    propagate_kill: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        target = self.execution_id or ctx.execution.id
        if target == ctx.execution.id:
            ctx.logger.info("killing this execution")
        elif (found := await ctx.executions.get(target)) is None:
            raise TaskFailed(f"execution {target} not found", non_retryable=True)
        elif found.state.current.terminated:
            ctx.logger.info(f"execution {target} already ended {found.state.current.value}")
            return None
        if not await ctx.control.kill(target):
            raise TaskFailed(f"execution {target} is not running here: not killed")
        ctx.logger.info(f"killed execution {target}")
        return None


class PurgeExecutions(Task):
    """Delete ended executions started in [startDate, endDate) of a namespace (and its
    sub-namespaces) or of one flow, in given states: each with its task runs, logs, metrics
    and, with `purgeStorage`, its files. The running execution is never purged.

    podium keeps an execution's logs and metrics with it, so `purgeLog`/`purgeMetric` must
    follow `purgeExecution` (a mismatch is refused rather than half done); Kestra's
    `log.PurgeLogs` purges logs alone there."""

    types = (
        "io.kestra.plugin.core.execution.PurgeExecutions",
        "io.kestra.plugin.core.storage.Purge",
        "io.kestra.core.tasks.storages.Purge",
    )

    namespace: Annotated[str | None, Dynamic] = None
    flow_id: Annotated[str | None, Dynamic] = None
    start_date: Annotated[datetime | None, Dynamic] = None
    end_date: Annotated[datetime, Dynamic]
    states: Annotated[list[State] | None, Dynamic] = None
    purge_execution: Annotated[bool, Dynamic] = True
    purge_log: Annotated[bool, Dynamic] = True
    purge_metric: Annotated[bool, Dynamic] = True
    purge_storage: Annotated[bool, Dynamic] = True
    batch_size: Annotated[int, Dynamic] = Field(default=100, ge=1, le=1000)

    async def run(self, ctx: RunContext) -> Output:
        if not self.purge_execution and (self.purge_log or self.purge_metric):
            raise TaskFailed(
                "purgeLog/purgeMetric without purgeExecution: podium removes an execution's "
                "logs and metrics only with the execution",
                non_retryable=True,
            )
        if self.purge_execution and not (self.purge_log and self.purge_metric):
            raise TaskFailed(
                "purgeExecution removes the execution's logs and metrics with it here: set "
                "purgeLog and purgeMetric to true (or purgeExecution to false)",
                non_retryable=True,
            )
        if self.flow_id is not None and self.namespace is None:
            raise TaskFailed("flowId needs namespace", non_retryable=True)
        doomed = await self._ended(ctx)
        counts = {"executionsCount": 0, "logsCount": 0, "metricsCount": 0, "storagesCount": 0}
        for doc in doomed:
            if self.purge_storage:
                prefix = ctx.files.execution_prefix(doc["namespace"], doc["flowId"], doc["id"])
                counts["storagesCount"] += len(await ctx.files.delete_prefix(prefix))
            if self.purge_execution:
                removed = await ctx.executions.delete(doc["id"])
                counts["executionsCount"] += 1
                counts["logsCount"] += removed["logs"]
                counts["metricsCount"] += removed["metrics"]
        ctx.logger.info(
            f"purged {counts['executionsCount']} executions, {counts['logsCount']} logs, "
            f"{counts['metricsCount']} metrics, {counts['storagesCount']} files"
        )
        return counts

    async def _ended(self, ctx: RunContext) -> list[dict[str, Any]]:
        """Every matching ended execution, collected before any is deleted (pages move)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            docs, total = await ctx.executions.search(
                namespace=self.namespace,
                flow_id=self.flow_id,
                states=[s.value for s in self.states] if self.states else None,
                start_after=_utc(self.start_date) if self.start_date else None,
                start_before=_utc(self.end_date),
                page=page,
                size=self.batch_size,
            )
            found += [
                d for d in docs
                if d["id"] != ctx.execution.id and State(d["state"]["current"]).terminated
                and (self.flow_id is not None or self.namespace is None
                     or d["namespace"] == self.namespace
                     or d["namespace"].startswith(self.namespace + "."))
            ]  # fmt: skip
            if not docs or page * self.batch_size >= total:
                return found
            page += 1


def _utc(moment: datetime) -> str:
    """ISO-8601 in UTC (a date without offset is UTC); the store normalises the bounds."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


class FlowId(Model):
    namespace: str
    flow_id: str


_ZONE_SUFFIX = re.compile(r"\[[^\]]+\]$")


def _date(text: str | None, what: str) -> str | None:
    """An ISO-8601 date-time (Java's ZonedDateTime form, `[Zone]` suffix allowed), UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(_ZONE_SUFFIX.sub("", text.strip()))
    except ValueError:
        raise TaskFailed(
            f"{what} {text!r} is not an ISO-8601 date-time (e.g. 2024-05-01T00:00:00Z)",
            non_retryable=True,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


PAGE = 500


class Count(Task):
    """Count executions per flow between two dates, keeping the flows for which
    `expression` (with `count`) renders "true" (deprecated in Kestra 1.2)."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Count", "io.kestra.core.tasks.executions.Counts")

    flows: list[FlowId] | None = None
    namespaces: Annotated[list[str] | None, Dynamic, JsonText] = None
    states: Annotated[list[State] | None, Dynamic, JsonText] = None
    start_date: Annotated[str, Dynamic]
    end_date: Annotated[str | None, Dynamic] = None
    expression: str  # rendered once per flow, with `count`

    @model_validator(mode="after")
    def _something_to_count(self) -> Count:
        if self.flows is None and self.namespaces is None:
            raise ValueError("You must provide a list of flows or namespaces.")
        return self

    async def run(self, ctx: RunContext) -> Output:
        start = _date(self.start_date, "startDate")
        end = _date(self.end_date, "endDate")
        counts: dict[tuple[str, str], int] = {
            (flow.namespace, flow.flow_id): 0 for flow in self.flows or []
        }
        for namespace, flow_id in list(counts):
            found = await self._executions(ctx, namespace, flow_id, start, end)
            counts[(namespace, flow_id)] = sum(1 for key in found if key == (namespace, flow_id))
        for namespace in self.namespaces or []:
            for key in await self._executions(ctx, namespace, None, start, end):
                if key[0] == namespace:
                    counts[key] = counts.get(key, 0) + 1
        results = []
        for (namespace, flow_id), count in counts.items():
            if await ctx.render_async(self.expression, {"count": count}) == "true":
                results.append({"namespace": namespace, "flowId": flow_id, "count": count})
        return {"results": results, "total": sum(r["count"] for r in results)}

    async def _executions(
        self,
        ctx: RunContext,
        namespace: str,
        flow_id: str | None,
        start: str | None,
        end: str | None,
    ) -> list[tuple[str, str]]:
        """(namespace, flowId) of every matching execution, page by page."""
        states = [s.value for s in self.states] if self.states is not None else None
        out: list[tuple[str, str]] = []
        page = 1
        while True:
            docs, total = await ctx.executions.search(
                namespace=namespace, flow_id=flow_id, states=states,
                start_after=start, start_before=end, page=page, size=PAGE,
            )  # fmt: skip
            out.extend((d["namespace"], d["flowId"]) for d in docs)
            if not docs or page * PAGE >= total:
                return out
            page += 1


class Fetch(Task):
    """Store the logs of an execution (default: this one), at `level` or above, optionally
    only those of some tasks (in the order given), as a file of one JSON line per log
    entry: `outputs.<id>.uri`, and `size` the number of lines (deprecated in Kestra 1.3)."""

    runs_on_executor = True
    types = (
        "io.kestra.plugin.core.log.Fetch",
        "io.kestra.core.tasks.log.Fetch",
        "io.kestra.core.tasks.debugs.Fetch",
    )

    execution_id: Annotated[str | None, Dynamic] = None
    namespace: Annotated[str | None, Dynamic] = None
    flow_id: Annotated[str | None, Dynamic] = None
    tasks_id: Annotated[list[str] | None, Dynamic, JsonText] = None
    level: Annotated[Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"], Dynamic] = "INFO"

    async def run(self, ctx: RunContext) -> Output:
        target = await other_execution(ctx, self.execution_id, self.namespace, self.flow_id)
        lines = await ctx.executions.logs(target, min_level=self.level)
        if self.tasks_id is not None:
            lines = [line for task in self.tasks_id for line in lines if line["taskId"] == task]
        text = "".join(json.dumps(line, default=str) + "\n" for line in lines)
        uri = await ctx.put_file(text.encode(), f"{ctx.task_run.task_id}.ion")
        return {"uri": uri, "size": len(lines)}
