"""Flowable tasks: they pick which child tasks run, and how; the executor runs them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from daemon.sdk.capabilities import Chart
from daemon.sdk.context import RunContext
from daemon.sdk.dag import find_cycle
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import ExitRequested, TaskFailed, TemplateError
from daemon.sdk.execution import Execution
from daemon.sdk.inputs import InputSpec
from daemon.sdk.plugin import Branch, Children, FlowableTask, Output, Task
from daemon.sdk.properties import Deprecated, Dynamic, JsonText, Model, has_template
from daemon.sdk.state import State


def _text_labels(value: Any) -> Any:
    """Label values written as numbers or booleans are their text, as flow labels."""
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    return value


def _as_text(value: Any) -> Any:
    """A number or boolean written where Kestra reads a text (`value: 1`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _child_failure(value: Any) -> Any:
    """Kestra 2.0 wrote CANCELLED / FAILED, then renamed them CANCEL / FAIL; both are read,
    in any case (its OnChildFailure.fromString ignores the case)."""
    if isinstance(value, str):
        value = value.strip().upper()
        return {"CANCELLED": "CANCEL", "FAILED": "FAIL"}.get(value, value)
    return value


_CHILD_FAILURE_VALUES = ["CONTINUE", "CANCEL", "FAIL", "CANCELLED", "FAILED"]

# Kestra's OnChildFailureInterface: what happens to the children still running when one
# fails with no retry left. CONTINUE lets them run; CANCEL / FAIL interrupt them, and they
# end CANCELLED / FAILED (the flowable itself ends FAILED, its errors/finally still run).
OnChildFailure = Annotated[
    Literal["CONTINUE", "CANCEL", "FAIL"],
    BeforeValidator(_child_failure),
    WithJsonSchema({"type": "string", "enum": _CHILD_FAILURE_VALUES}, mode="validation"),
    Dynamic,
]
_ENDINGS: dict[str, State | None] = {
    "CONTINUE": None,
    "CANCEL": State.CANCELLED,
    "FAIL": State.FAILED,
}


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
    """Run child tasks at once; `concurrent` caps how many (0: no cap). As in Kestra 2.0,
    a child failing stops the others still running (`onChildFailure: FAIL` by default)."""

    types = ("io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel")

    tasks: list[Task] = Field(min_length=1)
    concurrent: Annotated[int, Field(ge=0), Dynamic] = 0
    on_child_failure: OnChildFailure = "FAIL"

    def chart(self) -> Chart:
        """Kestra's Parallel.tasksTree: a PARALLEL cluster of its tasks side by side."""
        return Chart("PARALLEL", "parallel", self.tasks, errors=self.errors, finally_=self.finally_)

    async def children(self, ctx: RunContext) -> Children:
        return Children(
            [Branch([t]) for t in self.tasks],
            concurrency=self.concurrent,
            errors=self.errors,
            finally_=self.finally_,
            on_child_failure=_ENDINGS[self.on_child_failure],
        )


class DagTask(Model):
    task: Task
    depends_on: list[str] = Field(default_factory=list)


class Dag(_WithHandlers):
    """Kestra's Dag: each entry's `dependsOn` names sibling entries."""

    types = ("io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag")

    tasks: list[DagTask] = Field(min_length=1)
    concurrent: Annotated[int, Field(ge=0), Dynamic] = 0
    on_child_failure: OnChildFailure = "CONTINUE"

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

    def chart(self) -> Chart:
        """Kestra's Dag.tasksTree: a DYNAMIC cluster laid out by `dependsOn`."""
        return Chart(
            "DYNAMIC",
            "dag",
            dag=[(e.task, e.depends_on) for e in self.tasks],
            errors=self.errors,
            finally_=self.finally_,
        )

    async def children(self, ctx: RunContext) -> Children:
        dag = {e.task.id: e.depends_on for e in self.tasks}
        return Children(
            [Branch([e.task for e in self.tasks], dag=dag)],
            concurrency=self.concurrent,
            errors=self.errors,
            finally_=self.finally_,
            on_child_failure=_ENDINGS[self.on_child_failure],
        )


class If(_WithHandlers):
    """Run `then` when the condition renders true, else `else`."""

    types = ("io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If")

    condition: Annotated[str | bool, Dynamic]
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")

    def chart(self) -> Chart:
        """Kestra's If.tasksTree: a CHOICE between the `then` and `else` branches."""
        branches = {"then": self.then, "else": self.else_}
        return Chart("CHOICE", "choice", branches=branches, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    async def children(self, ctx: RunContext) -> Children:
        branch = self.then if await ctx.render_bool_async(self.condition) else self.else_
        return Children(
            [Branch(branch)] if branch else [], errors=self.errors, finally_=self.finally_
        )


class Switch(_WithHandlers):
    """Run the case whose key equals the rendered value, else `defaults`. Its outputs are
    the `value` and whether `defaults` was taken (Kestra's Switch.Output)."""

    types = ("io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch")

    value: Annotated[str, Dynamic, BeforeValidator(_as_text)]
    cases: dict[str, Annotated[list[Task], Field(min_length=1)]] = Field(default_factory=dict)
    defaults: list[Task] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something_to_run(self) -> Switch:
        if not self.cases and not self.defaults:
            raise ValueError("a Switch needs 'cases' or 'defaults'")
        return self

    def chart(self) -> Chart:
        """Kestra's Switch.tasksTree: a CHOICE between `defaults` and each case."""
        branches = {**({"defaults": self.defaults} if self.defaults else {}), **self.cases}
        return Chart("CHOICE", "choice", branches=branches, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    async def children(self, ctx: RunContext) -> Children:
        value = str(self.value)
        matched = value in self.cases
        branch = self.cases[value] if matched else self.defaults or []
        return Children(
            [Branch(branch)] if branch else [],
            errors=self.errors,
            finally_=self.finally_,
            outputs={"value": value, "defaults": not matched},
        )


class ForEach(_WithHandlers):
    """Run the child tasks once per distinct value; `taskrun.value` and iteration inside.
    A null value is refused, as Kestra refuses it (FlowableUtils.resolveEachTasks)."""

    types = ("io.kestra.plugin.core.flow.ForEach",)
    superseded_by = "Kestra 2.0 removed it: use 'io.kestra.plugin.core.flow.Loop'"

    values: Annotated[list[Any], Dynamic, JsonText]
    concurrency_limit: int = Field(default=1, ge=0)
    tasks: list[Task] = Field(min_length=1)

    def chart(self) -> Chart:
        """Kestra's ForEach.tasksTree: a DYNAMIC cluster drawn as a sequence (the groups
        run at once, not the tasks of one group)."""
        return Chart("DYNAMIC", "sequential", self.tasks, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    async def children(self, ctx: RunContext) -> Children:
        nulls = sum(1 for v in self.values if v is None)
        if nulls:
            raise TaskFailed(f"Found '{nulls}' null values on Each, with values={self.values!r}")
        distinct: list[Any] = []
        for value in self.values:
            if value not in distinct:
                distinct.append(value)
        branches = [Branch(self.tasks, value=v, has_value=True) for v in distinct]
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
    """Start another flow; with `wait`, its outputs become this task's outputs.

    As Kestra's Subflow (ExecutableUtils): the child's `trigger` names this task and this
    execution, it carries this execution's `system.*` labels, and with `transmitFailed` a
    FAILED or KILLED child fails this task, a WARNING one makes it WARNING.
    """

    runs_on_executor = True
    types = (
        "io.kestra.plugin.core.flow.Subflow",
        "io.kestra.core.tasks.flows.Subflow",
        "io.kestra.plugin.core.flow.Flow",
        "io.kestra.core.tasks.flows.Flow",
    )

    namespace: Annotated[str, Dynamic]
    flow_id: Annotated[str, Dynamic]
    inputs: Annotated[dict[str, Any], Dynamic] = Field(default_factory=dict)
    labels: Annotated[dict[str, str], Dynamic, BeforeValidator(_text_labels)] = Field(
        default_factory=dict
    )
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: Annotated[bool, Dynamic] = False
    # Rendered against the child execution once it ended, not here: kept as written.
    outputs: Annotated[
        dict[str, Any] | None,
        Deprecated("declare flow-level 'outputs' in the subflow and read outputs.<task>.outputs"),
    ] = None

    def started_flows(self) -> list[tuple[str, str]]:
        """The StartsFlows capability: the flow started, when its ids are literal."""
        if has_template(self.namespace) or has_template(self.flow_id):
            return []
        return [(self.namespace, self.flow_id)]

    async def run(self, ctx: RunContext) -> Output:
        labels = {**(ctx.execution.labels if self.inherit_labels else {}), **self.labels}
        child = await ctx.run_subflow(self.namespace, self.flow_id, self.inputs, labels, self.wait)
        outputs: dict[str, Any] = {"executionId": child.id}
        if not self.wait:
            return outputs
        outputs["state"] = child.state.current.value
        outputs["outputs"] = child.outputs or {}
        if self.outputs and not child.outputs:
            outputs["outputs"] = await self._legacy_outputs(ctx, child)
        state = child.state.current
        if self.transmit_failed and state in (State.FAILED, State.KILLED):
            raise TaskFailed(
                f"subflow {self.namespace}.{self.flow_id} execution {child.id} "
                f"ended {state.value}" + (f": {child.error}" if child.error else "")
            )
        if self.transmit_failed and state == State.WARNING:
            ctx.warning = True
        return outputs

    async def _legacy_outputs(self, ctx: RunContext, child: Execution) -> dict[str, Any]:
        """The deprecated `outputs` map, rendered with the child's variables."""
        task_outputs: dict[str, Any] = {}
        for run in child.task_runs:
            if run.outputs:
                if run.value is None:
                    task_outputs[run.task_id] = run.outputs
                else:
                    task_outputs.setdefault(run.task_id, {})[run.value] = run.outputs
        variables = {
            "outputs": task_outputs,
            "inputs": child.inputs,
            "execution": {"id": child.id, "state": child.state.current.value},
            "flow": {"id": child.flow_id, "namespace": child.namespace},
        }
        try:
            rendered = await ctx.render_async(self.outputs or {}, variables)
        except TemplateError as exc:
            raise TaskFailed(f"Failed to extract outputs with the error: '{exc}'") from None
        return dict(rendered)


class Pause(_WithHandlers):
    """Hold the execution PAUSED until a person resumes it (with `onResume` inputs, through
    `POST /api/v1/executions/{id}/resume` or the UI), or until `pauseDuration` passes.

    `onPause` runs once the execution is paused (a task sending the resume link); `errors`
    and `finally` run as for any flowable (Kestra PR #10893). The deprecated `tasks` run
    after the resume, as a Sequential whose state becomes the Pause's.
    """

    types = ("io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause")

    pause_duration: Annotated[Duration | None, Dynamic] = None
    delay: Annotated[Duration | None, Dynamic, Deprecated("use 'pauseDuration'")] = None
    behavior: Annotated[Literal["RESUME", "WARN", "CANCEL", "FAIL"], Dynamic] = "RESUME"
    on_resume: list[InputSpec] = Field(default_factory=list)
    on_pause: Task | None = None
    tasks: Annotated[
        list[Task] | None, Deprecated("put the tasks after the Pause, in the same list")
    ] = None

    def resume_inputs(self) -> list[InputSpec]:
        """The form a person resumes it with (the Resumable capability)."""
        return self.on_resume

    async def children(self, ctx: RunContext) -> Children:
        seconds = self._remaining(ctx)
        waiting = asyncio.ensure_future(ctx.pause(seconds, self.on_resume))
        await asyncio.sleep(0)  # the pause is in place (PAUSED) before onPause starts

        async def after_pause(state: State) -> Children | Output:
            if state.failed:
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                raise TaskFailed(f"the onPause task of {self.id} failed")
            return self._resumed(ctx, await waiting)

        return Children(
            [Branch([self.on_pause])] if self.on_pause else [],
            errors=self.errors,
            finally_=self.finally_,
            then=after_pause,
        )

    def _duration(self) -> timedelta | None:
        """`pauseDuration`, else the deprecated `delay`, else `timeout` (Kestra reads a
        Pause's timeout as its duration)."""
        return self.pause_duration or self.delay or self.timeout

    def _remaining(self, ctx: RunContext) -> float | None:
        """What is left of `pauseDuration`: all of it, or less after podium restarted."""
        duration = self._duration()
        if duration is None:
            return None
        seconds = duration.total_seconds()
        paused = [at for state, at in ctx.task_run.state.histories if state == State.PAUSED]
        if paused:
            seconds -= (ctx.clock.now() - paused[0]).total_seconds()
        return max(seconds, 0.0)

    def _resumed(self, ctx: RunContext, values: dict[str, Any] | None) -> Children | Output:
        """The Pause's outputs once resumed (or timed out); with the deprecated `tasks`, the
        round that runs them."""
        if values is None:  # the duration passed: `behavior` decides
            duration = self._duration()
            waited = format_duration(duration) if duration else ""
            if self.behavior == "FAIL":
                raise TaskFailed(f"not resumed within pauseDuration {waited}", non_retryable=True)
            if self.behavior == "CANCEL":
                raise ExitRequested(State.CANCELLED)
            ctx.warning = self.behavior == "WARN"
        outputs = {"onResume": values or {}}
        if self.tasks:
            return Children(
                [Branch(self.tasks)], outputs=outputs, errors=self.errors, finally_=self.finally_
            )
        return outputs
