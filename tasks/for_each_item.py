"""ForEachItem: a stored file of items cut into batches, one subflow execution per batch.

As in Kestra, the work shows as three child task runs of the ForEachItem task run, run in
order: `<id>_split` cuts the file (output `splits`: a file listing the batch URIs),
`<id>_items` starts a subflow per batch, its inputs rendered with `taskrun.items` (the
batch's URI) and `taskrun.iteration` (from 0), and waits for them (outputs
`numberOfBatches`, `iterations` by state), `<id>_merge` joins the outputs of the subflows
(output `subflowOutputs`: one JSON line per batch, in batch order).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from daemon.sdk.capabilities import Chart
from daemon.sdk.context import RunContext
from daemon.sdk.errors import NotFound, TaskFailed
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.files import SCHEME
from daemon.sdk.plugin import Branch, Children, FlowableTask, Output, Task
from daemon.sdk.properties import Dynamic, Model, has_template
from daemon.sdk.splits import LineSplitter, parse_size
from daemon.sdk.state import State

_INTERNAL = "io.kestra.plugin.core.flow.ForEachItem$ForEachItem"
OUTPUTS_FILE = "outputs.ion"
TERMINAL_COUNTED = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")


class Batch(Model):
    """How the items are cut: `rows` per batch (default 1), else `bytes`, `partitions` or
    `regexPattern` (its first group is the batch key); the first of these set wins in the
    order regexPattern, bytes, partitions, rows, as in Kestra."""

    rows: int | None = Field(default=None, ge=1)
    bytes_: str | int | None = Field(default=None, alias="bytes")
    partitions: int | None = Field(default=None, ge=1)
    regex_pattern: str | None = None
    separator: str = "\n"


def _label_list(value: Any) -> Any:
    if isinstance(value, list):
        return {str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)}
    return value


class ForEachItem(FlowableTask):
    """Split `items` (a kestra:// file, one item per line) into batches and run the flow
    `namespace`.`flowId` once per batch."""

    types = ("io.kestra.plugin.core.flow.ForEachItem", "io.kestra.core.tasks.flows.ForEachItem")
    superseded_by = "Kestra 2.0 removed it: use 'io.kestra.plugin.core.flow.Loop'"

    items: Annotated[str, Dynamic]
    batch: Annotated[Batch, Dynamic] = Field(default_factory=Batch)
    namespace: Annotated[str, Dynamic]
    flow_id: Annotated[str, Dynamic]
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)  # rendered per batch
    labels: Annotated[dict[str, str], Dynamic, BeforeValidator(_label_list)] = Field(
        default_factory=dict
    )
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    schedule_date: Annotated[datetime | None, Dynamic] = None
    restart_behavior: Literal["RETRY_FAILED", "NEW_EXECUTION"] = "RETRY_FAILED"
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    def started_flows(self) -> list[tuple[str, str]]:
        """The StartsFlows capability: the flow it starts per batch, when its ids are
        literal (a flow starting itself is refused at load, as Kestra's FlowValidator
        refuses a recursive ForEachItem)."""
        if has_template(self.namespace) or has_template(self.flow_id):
            return []
        return [(self.namespace, self.flow_id)]

    def chart(self) -> Chart:
        """Kestra's ForEachItem.tasksTree: its split, items and merge tasks in sequence."""
        return Chart("SEQUENTIAL", "sequential", self._steps(), errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    async def children(self, ctx: RunContext) -> Children:
        return Children([Branch(self._steps())], errors=self.errors, finally_=self.finally_)

    def _steps(self) -> list[Task]:
        """The three tasks it runs, as Kestra names them: `<id>_split`, `<id>_items`,
        `<id>_merge`."""
        split = ForEachItemSplit(
            id=f"{self.id}_split", type=f"{_INTERNAL}Split", items=self.items, batch=self.batch
        )
        launch = ForEachItemExecutable(
            id=f"{self.id}_items",
            type=f"{_INTERNAL}Executable",
            split_id=split.id,
            namespace=self.namespace,
            flow_id=self.flow_id,
            revision=self.revision,
            inputs=self.inputs,
            labels=self.labels,
            wait=self.wait,
            transmit_failed=self.transmit_failed,
            inherit_labels=self.inherit_labels,
            schedule_date=self.schedule_date,
            restart_behavior=self.restart_behavior,
        )
        merge = ForEachItemMergeOutputs(
            id=f"{self.id}_merge", type=f"{_INTERNAL}MergeOutputs", items_id=launch.id
        )
        return [split, launch, merge]


def _sibling(ctx: RunContext, task_id: str) -> TaskRun:
    """The task run of a sibling internal task (same parent), the latest one."""
    parent = ctx.task_run.parent_task_run_id
    runs = [
        tr
        for tr in ctx.execution.task_runs
        if tr.task_id == task_id and tr.parent_task_run_id == parent
    ]
    if not runs:
        raise TaskFailed(f"no task run of {task_id} before {ctx.task_run.task_id}")
    return runs[-1]


class ForEachItemSplit(Task):
    """Internal: cut the items into batch files; `splits` lists their URIs, one a line."""

    items: str
    batch: Batch

    async def run(self, ctx: RunContext) -> Output:
        if not self.items.startswith(SCHEME):
            raise TaskFailed(
                f"Unable to split the items from {self.items}, this is not an internal "
                "storage URI!",
                non_retryable=True,
            )
        source = await ctx.file_path(self.items)
        batch = self.batch
        pattern = size = partitions = rows = None
        if batch.regex_pattern is not None:
            try:
                pattern = re.compile(batch.regex_pattern)
            except re.error as exc:
                raise TaskFailed(
                    f"invalid regexPattern '{batch.regex_pattern}': {exc}", non_retryable=True
                ) from None
        elif batch.bytes_ is not None:
            size = parse_size(batch.bytes_)
        elif batch.partitions is not None:
            partitions = batch.partitions
        else:
            rows = batch.rows or 1
        splitter = LineSplitter(await ctx.working_dir(), source, batch.separator)
        paths = await asyncio.to_thread(splitter.split, size, rows, partitions, pattern)
        uris = [await ctx.put_file(path) for path in paths]
        listing = "".join(f"{uri}\n" for uri in uris).encode()
        return {"splits": await ctx.put_file(listing, "splits.txt")}


class ForEachItemExecutable(Task):
    """Internal: one subflow execution per batch; waits for them with `wait`."""

    runs_on_executor = True
    split_id: str
    namespace: str
    flow_id: str
    revision: int | None
    inputs: dict[str, Any]
    labels: dict[str, str]
    wait: bool
    transmit_failed: bool
    inherit_labels: bool
    schedule_date: datetime | None
    restart_behavior: Literal["RETRY_FAILED", "NEW_EXECUTION"]

    async def run(self, ctx: RunContext) -> Output:
        splits = _sibling(ctx, self.split_id).outputs.get("splits")
        if not splits:
            raise TaskFailed(f"{self.split_id} has no splits output")
        batches = (await ctx.files.read_text(splits)).splitlines()
        if not batches:
            return None
        if self.schedule_date is not None:
            at = self.schedule_date
            delay = (at if at.tzinfo else at.replace(tzinfo=UTC)) - ctx.clock.now()
            if delay.total_seconds() > 0:
                ctx.logger.info(
                    f"starting the {len(batches)} subflow executions at {at.isoformat()}"
                )
                await ctx.clock.sleep(delay.total_seconds())
        labels = {**(ctx.execution.labels if self.inherit_labels else {}), **self.labels}
        children = [await self._start(ctx, i, uri, labels) for i, uri in enumerate(batches)]
        if self.wait:
            children = list(await asyncio.gather(*(ctx.executions.wait(c.id) for c in children)))
        return await self._outcome(ctx, children)

    async def _start(
        self, ctx: RunContext, iteration: int, uri: str, labels: dict[str, str]
    ) -> Execution:
        """The batch's execution: started once, found again when this attempt runs after a
        crash; after a restart a failed one is replaced (RETRY_FAILED) or every one
        (NEW_EXECUTION)."""
        taskrun = {**ctx.variables.get("taskrun", {}), "items": uri, "iteration": iteration}
        inputs = await ctx.render_async(self.inputs, {"taskrun": taskrun})
        restarts = sum(1 for state, _ in ctx.task_run.state.histories if state == State.RESTARTED)
        generations = (
            [restarts] if self.restart_behavior == "NEW_EXECUTION" else range(restarts + 1)
        )
        child: Execution | None = None
        for generation in generations:
            if child is not None and not child.state.current.failed:
                break
            key = f"{iteration}" if generation == 0 else f"{iteration}.{generation}"
            child = await ctx.run_subflow(
                self.namespace, self.flow_id, inputs, labels, False,
                revision=self.revision, key=key, iteration=iteration,
            )  # fmt: skip
        assert child is not None
        return child

    async def _outcome(self, ctx: RunContext, children: list[Execution]) -> Output:
        prefix = f"{ctx.storage_prefix()}"
        if not self.wait:
            iterations = {"RUNNING": 0, "SUCCESS": len(children)}
        else:
            counts = Counter(c.state.current.value for c in children)
            iterations = {"CREATED": 0, "RUNNING": 0, **counts}
            for i, child in enumerate(children):
                if child.outputs:
                    line = json.dumps(child.outputs, default=str) + "\n"
                    await ctx.files.put(line.encode(), prefix=f"{prefix}/{i}", name=OUTPUTS_FILE)
        outputs = {
            "numberOfBatches": len(children),
            "iterations": iterations,
            "subflowOutputsBaseUri": SCHEME + prefix,
        }
        if not (self.wait and self.transmit_failed):
            return outputs
        failed = iterations.get("FAILED", 0) + iterations.get("KILLED", 0)
        if failed:
            raise TaskFailed(
                f"{failed} of {len(children)} subflow executions of "
                f"{self.namespace}.{self.flow_id} failed or were killed",
                non_retryable=True,
                outputs=outputs,
            )
        if iterations.get("WARNING"):
            ctx.warning = True
        return outputs


class ForEachItemMergeOutputs(Task):
    """Internal: the subflows' outputs, one JSON line per batch in batch order."""

    items_id: str

    async def run(self, ctx: RunContext) -> Output:
        done = _sibling(ctx, self.items_id).outputs
        base, count = done.get("subflowOutputsBaseUri"), int(done.get("numberOfBatches") or 0)
        if not base or not count:
            return None
        target = (await ctx.working_dir()) / OUTPUTS_FILE
        found = 0

        def append(data: bytes) -> None:
            with target.open("ab") as out:
                out.write(data)

        for i in range(count):
            try:
                path = await ctx.files.path(f"{base}/{i}/{OUTPUTS_FILE}")
            except NotFound:
                continue
            await asyncio.to_thread(append, await asyncio.to_thread(path.read_bytes))
            found += 1
        if not found:
            return None
        return {"subflowOutputs": await ctx.put_file(target)}
