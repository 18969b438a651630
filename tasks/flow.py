"""Flowable tasks: they pick which child tasks run, and how; the executor runs them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.dag import find_cycle
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import ExitRequested, TaskFailed
from daemon.sdk.inputs import InputSpec
from daemon.sdk.plugin import Branch, Children, FlowableTask, Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model
from daemon.sdk.state import State


class _WithHandlers(FlowableTask):
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")


class Sequential(_WithHandlers):
    """Run child tasks in order (a group with its own errors/finally)."""

    types = ("io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential")

    tasks: list[Task] = Field(min_length=1)

    async def children(self, ctx: RunContext) -> Children:
        return Children([Branch(self.tasks)], errors=self.errors, finally_=self.finally_)


class Parallel(_WithHandlers):
    """Run child tasks at once; `concurrent` caps how many (0: no cap)."""

    types = ("io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel")

    tasks: list[Task] = Field(min_length=1)
    concurrent: int = Field(default=0, ge=0)

    async def children(self, ctx: RunContext) -> Children:
        return Children(
            [Branch([t]) for t in self.tasks],
            concurrency=self.concurrent,
            errors=self.errors,
            finally_=self.finally_,
        )


class DagTask(Model):
    task: Task
    depends_on: list[str] = Field(default_factory=list)


class Dag(_WithHandlers):
    """Kestra's Dag: each entry's `dependsOn` names sibling entries."""

    types = ("io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag")

    tasks: list[DagTask] = Field(min_length=1)
    concurrent: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _known_dependencies(self) -> Dag:
        ids = {entry.task.id for entry in self.tasks}
        for entry in self.tasks:
            unknown = [d for d in entry.depends_on if d not in ids]
            if unknown:
                raise ValueError(
                    f"task '{entry.task.id}' depends on unknown task(s) {', '.join(unknown)}"
                )
        cycle = find_cycle({e.task.id: list(e.depends_on) for e in self.tasks})
        if cycle:
            raise ValueError(f"dependsOn cycle: {' -> '.join([*cycle, cycle[0]])}")
        return self

    async def children(self, ctx: RunContext) -> Children:
        dag = {e.task.id: e.depends_on for e in self.tasks}
        return Children(
            [Branch([e.task for e in self.tasks], dag=dag)],
            errors=self.errors,
            finally_=self.finally_,
        )


class If(_WithHandlers):
    """Run `then` when the condition renders true, else `else`."""

    types = ("io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If")

    condition: Annotated[str | bool, Dynamic]
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")

    async def children(self, ctx: RunContext) -> Children:
        branch = self.then if ctx.render_bool(self.condition) else self.else_
        return Children(
            [Branch(branch)] if branch else [], errors=self.errors, finally_=self.finally_
        )


class Switch(_WithHandlers):
    """Run the case whose key equals the rendered value, else `defaults`."""

    types = ("io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch")

    value: Annotated[str, Dynamic]
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    defaults: list[Task] = Field(default_factory=list)

    async def children(self, ctx: RunContext) -> Children:
        branch = self.cases.get(str(self.value), self.defaults)
        return Children(
            [Branch(branch)] if branch else [], errors=self.errors, finally_=self.finally_
        )


class ForEach(_WithHandlers):
    """Run the child tasks once per value; `taskrun.value` and iteration inside."""

    types = ("io.kestra.plugin.core.flow.ForEach",)

    values: Annotated[list[Any], Dynamic, JsonText]
    concurrency_limit: int = Field(default=1, ge=0)
    tasks: list[Task] = Field(min_length=1)

    async def children(self, ctx: RunContext) -> Children:
        branches = [Branch(self.tasks, value=v, has_value=True) for v in self.values]
        return Children(
            branches, concurrency=self.concurrency_limit, errors=self.errors, finally_=self.finally_
        )


class AllowFailure(_WithHandlers):
    """Run child tasks; their failure leaves the execution in WARNING, not FAILED."""

    types = ("io.kestra.plugin.core.flow.AllowFailure", "io.kestra.core.tasks.flows.AllowFailure")

    tasks: list[Task] = Field(min_length=1)

    async def children(self, ctx: RunContext) -> Children:
        return Children(
            [Branch(self.tasks)],
            errors=self.errors,
            finally_=self.finally_,
            failure_is_warning=True,
        )


class Subflow(Task):
    """Start another flow; with `wait`, its outputs become this task's outputs."""

    types = (
        "io.kestra.plugin.core.flow.Subflow",
        "io.kestra.core.tasks.flows.Subflow",
        "io.kestra.plugin.core.flow.Flow",
    )

    namespace: Annotated[str, Dynamic]
    flow_id: Annotated[str, Dynamic]
    inputs: Annotated[dict[str, Any], Dynamic] = Field(default_factory=dict)
    labels: Annotated[dict[str, str], Dynamic] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False

    async def run(self, ctx: RunContext) -> Output:
        labels = {**(ctx.execution.labels if self.inherit_labels else {}), **self.labels}
        child = await ctx.run_subflow(self.namespace, self.flow_id, self.inputs, labels, self.wait)
        outputs = {
            "executionId": child.id,
            "state": child.state.current.value,
            "outputs": child.outputs or {},
        }
        if (
            self.wait
            and self.transmit_failed
            and child.state.current in (State.FAILED, State.KILLED)
        ):
            raise TaskFailed(
                f"subflow {self.namespace}.{self.flow_id} execution {child.id} "
                f"ended {child.state.current.value}" + (f": {child.error}" if child.error else "")
            )
        return outputs


class Pause(Task):
    """Hold the execution PAUSED until a person resumes it (with `onResume` inputs, through
    `POST /api/v1/executions/{id}/resume` or the UI), or until `pauseDuration` passes."""

    types = ("io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause")

    pause_duration: Annotated[Duration | None, Dynamic] = Field(
        default=None, validation_alias=AliasChoices("pauseDuration", "delay")
    )
    behavior: Literal["RESUME", "WARN", "CANCEL", "FAIL"] = "RESUME"
    on_resume: list[InputSpec] = Field(default_factory=list)

    def resume_inputs(self) -> list[InputSpec]:
        """The form a person resumes it with (the Resumable capability)."""
        return self.on_resume

    async def run(self, ctx: RunContext) -> Output:
        seconds = self.pause_duration.total_seconds() if self.pause_duration else None
        values = await ctx.pause(seconds, self.on_resume)
        if values is not None:
            return {"onResume": values}
        waited = format_duration(self.pause_duration) if self.pause_duration else ""
        if self.behavior == "FAIL":
            raise TaskFailed(f"not resumed within pauseDuration {waited}", non_retryable=True)
        if self.behavior == "CANCEL":
            raise ExitRequested(State.CANCELLED)
        ctx.warning = self.behavior == "WARN"
        return {"onResume": {}}
