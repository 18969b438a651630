"""The plug-in interfaces: tasks (plain and flowable), triggers and conditions.

A plug-in is a pydantic model of its properties (Kestra's camelCase names,
`extra="forbid"`) that declares the `type:` strings it answers to and has one
async method. Properties marked `Dynamic` may hold expressions; they are kept
as written at load time and rendered just before the task runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import (
    AliasChoices,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.sdk.asset_lineage import AssetsDeclaration
from daemon.sdk.durations import Duration
from daemon.sdk.properties import (
    EXPRESSION,
    ID_PATTERN,
    Deprecated,
    Dynamic,
    Labels,
    Model,
    NewerName,
    has_template,
)
from daemon.sdk.retry import RetryModel
from daemon.sdk.state import State, iso
from daemon.sdk.trigger_options import TriggerOptions
from daemon.sdk.truth import truthy

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext, TriggerContext
    from daemon.sdk.execution import Execution

log = logging.getLogger(__name__)

Output = Mapping[str, Any] | None
PluginKind = Literal["task", "trigger", "condition"]


def _by_type(kind: PluginKind, base: type[Any], cls: type[Any], data: Any,
             handler: ModelWrapValidatorHandler[Any], info: ValidationInfo) -> Any:  # fmt: skip
    """A property declared as the base class (a flow's `tasks`, a flowable's children, a
    trigger's `conditions`) is built as the registered class its `type:` names, by the
    flow loader, which passes itself in the validation context as `build_plugin`."""
    build = (info.context or {}).get("build_plugin") if cls is base else None
    if build is None:
        return handler(data)
    return build(kind, data, info.context)


class TaskCache(Model):
    """Kestra's `taskCache`: a task's outputs kept and reused, for `ttl` (forever without)."""

    enabled: bool = False
    ttl: Duration | None = None


class WorkerGroup(Model):
    """Kestra's `workerGroup`: in a cluster, the task runs only on nodes started with
    `--worker-group <key>`; `fallback` says what happens while no live node serves the
    group (WAIT for one, FAIL the task run, CANCEL the execution). A single process runs
    every task itself, as Kestra's open-source edition ignores the property."""

    key: str = Field(min_length=1)
    fallback: Literal["WAIT", "FAIL", "CANCEL"] = "WAIT"


class Task(Model):
    """A task plug-in. Subclasses add properties and implement `run`."""

    types: ClassVar[tuple[str, ...]] = ()
    # In a cluster, run on the node that holds the execution rather than on any worker:
    # cheap tasks (a queue round-trip would cost more than they do) and tasks that change
    # the execution itself (labels, variables) or start and wait for other executions, as
    # Kestra runs them in its executor.
    runs_on_executor: ClassVar[bool] = False
    # A type Kestra deprecated or removed: what to write instead. A flow using it still loads,
    # with the warning "type '<type>' is deprecated; <superseded_by>".
    superseded_by: ClassVar[str | None] = None

    id: str = Field(pattern=ID_PATTERN)
    """The task's id, unique in the flow; its outputs are `outputs.<id>`."""
    type: str
    """The plug-in that runs the task, by its full Kestra class name."""
    description: str | None = None
    """Free text shown in the UI."""
    disabled: bool = False
    """A disabled task is skipped, as if it were not in the flow."""
    timeout: Annotated[Duration | None, Dynamic] = None
    """The longest one attempt may run (ISO-8601, e.g. PT5M); past it the attempt fails."""
    retry: RetryModel | None = None
    """Run the task again when it fails: `constant`, `exponential` or `random` delays."""
    allow_failure: bool = False
    """A failure of this task leaves the execution WARNING instead of FAILED."""
    allow_warning: bool = False
    """A WARNING of this task is recorded SUCCESS."""
    log_to_file: bool = False
    """The task run's log lines go to a file in storage instead of the log table."""
    task_cache: TaskCache | None = None
    """Keep the task's outputs and reuse them while its rendered properties stay the same."""
    run_if: Annotated[str | bool | None, Dynamic, NewerName("when")] = Field(
        default=None, validation_alias=AliasChoices("runIf", "when")
    )
    """An expression; the task is SKIPPED when it renders false (`when`, its newer name)."""
    depends_on: list[str] = Field(default_factory=list)
    """Ids of sibling tasks that must end first; the list then runs as a DAG (podium)."""
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] | None = None
    """The lowest level of the task's log lines that is kept."""
    worker_group: WorkerGroup | None = None
    """The nodes this task may run on, in a cluster (Kestra's worker groups)."""
    assets: AssetsDeclaration | None = None
    """The data assets it reads and writes (kept with the flow: daemon/sdk/asset_lineage.py)."""
    _wrote_run_if: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch(
        cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo
    ) -> Any:
        task = _by_type("task", Task, cls, data, handler, info)
        if isinstance(task, Task) and isinstance(data, dict) and "runIf" in data:
            task._wrote_run_if = True  # Kestra 2.0 keeps `runIf` as a deprecated alias
        return task

    @property
    def wrote_run_if(self) -> bool:
        """The flow wrote `runIf`, the name Kestra 2.0 deprecates for `when`."""
        return self._wrote_run_if

    async def run(self, ctx: RunContext) -> Output:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")


@dataclass
class Branch:
    """A list of child tasks the executor runs for a flowable task.

    `value` is what `taskrun.value` reads inside the branch (ForEach); `dag` makes
    the list run by its `dependsOn` edges instead of in order; `iteration` is the
    `taskrun.iteration` of its task runs when it has no value (a loop's round).
    """

    tasks: Sequence[Task]
    value: Any = None
    has_value: bool = False
    dag: Mapping[str, Sequence[str]] | None = None
    iteration: int | None = None


# What a flowable says once a round of its children ended, given their state: more
# Children (the next round: a loop going on), or its own final outputs (or None).
Then = Callable[[State], Awaitable["Children | Output"]]


@dataclass
class Children:
    """What a flowable task hands back: branches, how many at once, and failure handling.

    `outputs` are the flowable's outputs while this round runs (its children read them as
    `outputs.<id>.*`: a loop's `iterationCount`). With `shared_working_dir` every child
    task works in the flowable's own working directory (`RunContext.working_dir()`)
    instead of one of its own, and the directory is removed once the flowable ended.
    `then` is called when the branches ended, before `errors`/`finally`; what it raises
    (TaskFailed) fails the flowable. With `ends_execution` (an Approval's decision), a
    last round that ended without failing ends the flowable in that state once its
    `finally` ran, and the execution with it: no task starts afterwards outside `errors`
    and `finally`, what already runs finishes.

    `concurrency` caps the branches running at once (0: no cap), and the tasks of a DAG
    branch running at once. `on_child_failure` is Kestra's onChildFailure: when a child
    ends FAILED (no retry left), the children still running are interrupted and end in
    this state (CANCELLED or FAILED); None lets them run to their end.
    """

    branches: list[Branch] = field(default_factory=list)
    concurrency: int = 1
    on_child_failure: State | None = None
    errors: Sequence[Task] = ()
    finally_: Sequence[Task] = ()
    failure_is_warning: bool = False
    outputs: Mapping[str, Any] | None = None
    shared_working_dir: bool = False
    then: Then | None = None
    ends_execution: State | None = None


class FlowableTask(Task):
    """A task that does no work itself but picks the child tasks the executor runs."""

    async def run(self, ctx: RunContext) -> Output:
        raise TypeError("flowable tasks are driven by the executor through children()")

    async def children(self, ctx: RunContext) -> Children:
        raise NotImplementedError(f"{type(self).__name__} does not implement children()")


class Emit(Protocol):
    """`await emit(inputs, trigger_variables)`: one execution, durably stored when it returns.

    The trigger's own `labels` are added to the execution, and `labels` given here on top.
    `key` makes the event idempotent: a second emit with the same key (a client retrying a
    webhook) returns the execution the first one created instead of starting another.
    `failed` says why the event's inputs could not be made: the execution is created FAILED
    with that error and runs nothing (Kestra 2.0's Flow trigger).
    Raises `InputError` when the inputs do not fit the flow, `FlowDisabled` for a disabled flow.
    """

    def __call__(
        self,
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
        key: str | None = None,
        failed: str | None = None,
    ) -> Awaitable[Execution]: ...


@dataclass(frozen=True)
class ConditionContext:
    """What a trigger's `when` and conditions may look at: the flow, the moment (schedules),
    an ended execution, and the event's variables.

    `render` (the trigger's renderer) and `variables` (what the trigger exposes, as
    `{"trigger": {...}}`: a webhook's body, a schedule's date) are there for expressions;
    a caller with nothing to render with leaves `render` None and such conditions fail.
    `when_variables` replace `variables` for the trigger's own `when` where Kestra renders
    it with other ones (the Flow trigger's: the upstream execution). `logger` says why a
    `when` was not evaluated.
    """

    namespace: str
    flow_id: str
    date: datetime | None = None
    execution: Mapping[str, Any] | None = None
    render: Callable[[Any, Mapping[str, Any]], Any] | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    when_variables: Mapping[str, Any] | None = None
    logger: logging.Logger = log

    def expression_variables(self) -> dict[str, Any]:
        """What a condition's expression sees: the moment as `trigger.date` (when the
        trigger gave no `trigger` of its own), then what the trigger exposes."""
        variables: dict[str, Any] = {}
        if self.date is not None:
            variables["trigger"] = {"date": iso(self.date)}
        variables.update(self.variables)
        return variables

    def rendered(self, expression: str, variables: Mapping[str, Any] | None = None) -> Any:
        """`expression` rendered with `variables` (by default `expression_variables()`)."""
        if self.render is None:
            raise ValueError("this trigger cannot render condition expressions")
        return self.render(
            expression, self.expression_variables() if variables is None else variables
        )


class Condition(Model):
    """A trigger condition plug-in (`conditions:` of a trigger), registered by `type:`."""

    types: ClassVar[tuple[str, ...]] = ()

    type: str
    """The plug-in that tests the condition, by its full Kestra class name."""
    _renders: bool | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch(
        cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo
    ) -> Any:
        return _by_type("condition", Condition, cls, data, handler, info)

    def test(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not implement test()")

    @property
    def renders(self) -> bool:
        """True when a property holds an expression (`{{ }}`): testing it renders, and may
        call a function that reads the store. Found once per condition."""
        if self._renders is None:
            self._renders = has_template(self.model_dump(exclude={"type"}))
        return self._renders


async def each_holds(
    groups: Sequence[Sequence[Condition]], ctx: ConditionContext, trigger_id: str
) -> list[bool]:
    """`all_hold` of each group, from a coroutine: on a thread when one renders an
    expression, whose functions (`kv()`, `read()`) wait for the event loop."""
    if not any(c.renders for group in groups for c in group):
        return [all_hold(group, ctx, trigger_id) for group in groups]
    return await asyncio.to_thread(lambda: [all_hold(group, ctx, trigger_id) for group in groups])


def all_hold(conditions: Sequence[Condition], ctx: ConditionContext, trigger_id: str) -> bool:
    """All conditions hold. As in Kestra (ConditionService.isValid), a condition that cannot
    be evaluated (an expression that fails to render) counts as not holding and is logged,
    instead of stopping the trigger."""
    for condition in conditions:
        try:
            if not condition.test(ctx):
                return False
        except Exception as exc:
            log.warning(
                "%s.%s trigger %s: condition %s not evaluated, counted false: %s",
                ctx.namespace, ctx.flow_id, trigger_id, condition.type, exc,
            )  # fmt: skip
            return False
    return True


def when_text(value: Any) -> Any:
    """An expression property written as a YAML boolean (`when: true`) is its text."""
    return ("true" if value else "false") if isinstance(value, bool) else value


class Trigger(TriggerOptions):
    """A trigger plug-in: `run` lives as long as its flow is loaded, calling `emit` per event.

    `run` is cancelled when the flow is removed, changed or disabled; it must let
    `CancelledError` through after detaching whatever it attached.
    """

    types: ClassVar[tuple[str, ...]] = ()
    # The trigger type the API's webhook route serves (a capability: see capabilities.py).
    receives_webhooks: ClassVar[bool] = False
    # Kestra's locked triggers (Schedule and polling triggers): an execution this trigger
    # started holds it until the execution ends, unless `allowConcurrent` is set.
    locks: ClassVar[bool] = False

    id: str = Field(pattern=ID_PATTERN)
    """The trigger's id, unique in the flow; `trigger.id` in expressions."""
    type: str
    """The plug-in that fires the trigger, by its full Kestra class name."""
    description: str | None = None
    """Free text shown in the UI."""
    disabled: bool = False
    """A disabled trigger starts no execution."""
    when: Annotated[str | None, EXPRESSION] = None
    """An expression rendered for each event (Kestra 2.0), with the event's variables as
    `trigger` (a Schedule's `trigger.date`, a Webhook's `trigger.body` and
    `trigger.headers`, a message's `trigger.payload`...); the event starts an execution
    only when it renders truthy. One that cannot be rendered is logged and starts none."""
    conditions: Annotated[list[Condition], Deprecated("use 'when'")] = Field(default_factory=list)
    """Conditions that must all hold for an event to start an execution (Kestra 1.x)."""
    labels: Labels = Field(default_factory=dict)
    """Labels added to each execution this trigger starts."""
    stop_after: list[State] | None = None
    """Disable the trigger once an execution it started ends in one of these states."""

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch(
        cls, data: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo
    ) -> Any:
        return _by_type("trigger", Trigger, cls, data, handler, info)

    @field_validator("when", mode="before")
    @classmethod
    def _when_as_text(cls, value: Any) -> Any:
        """A `when` written as a YAML boolean is its text, as Jackson reads it into a String."""
        return when_text(value)

    async def conditions_hold(self, ctx: ConditionContext) -> bool:
        """The trigger's `when` renders truthy and all its conditions hold (Kestra's
        ConditionService: `when` first). An expression may call a function that reads the
        store (`kv()`, `read()`, as Kestra's run context offers them): it renders on a
        thread, the loop answering that read."""
        when = self.when
        renders = when is not None and has_template(when)
        if not renders and not any(c.renders for c in self.conditions):
            return self._holds(ctx)
        return await asyncio.to_thread(self._holds, ctx)

    async def admits(
        self,
        ctx: TriggerContext,
        variables: Mapping[str, Any],
        date: datetime | None = None,
        *,
        where: str | None = None,
    ) -> bool:
        """`conditions_hold` for one event whose `trigger.*` variables are `variables`, at
        `date` (now by default): what a trigger asks just before it emits them. With `where`
        (the source, e.g. "queue 'q'"), an event refused is logged and counted as rejected."""
        if self.when is None and not self.conditions:
            return True  # nothing to test: no context built per webhook request or message
        flow = ctx.flow
        holds = ConditionContext(
            flow.namespace, flow.id, date=date or ctx.clock.now(), render=ctx.render,
            variables={"trigger": dict(variables)}, logger=ctx.logger,
        )  # fmt: skip
        if await self.conditions_hold(holds):
            return True
        if where is not None:
            ctx.logger.info("%s: the trigger's conditions do not hold; no execution", where)
            ctx.count_rejected()
        return False

    def _holds(self, ctx: ConditionContext) -> bool:
        return self._when_holds(ctx) and all_hold(self.conditions, ctx, self.id)

    def _when_holds(self, ctx: ConditionContext) -> bool:
        """Kestra's ConditionService.isValid: a falsy `when` skips the event; one that cannot
        be rendered is the flow's misconfiguration, logged, and skips it too."""
        when = self.when
        if when is None or not has_template(when):
            return when is None or truthy(when)
        variables = ctx.when_variables
        if variables is None:
            variables = {"trigger": {"date": iso(ctx.date)}} if ctx.date else {}
            variables = {**variables, **ctx.variables}
        try:
            if ctx.render is None:
                raise ValueError("this trigger cannot render expressions")
            return truthy(ctx.render(when, dict(variables)))
        except Exception as exc:
            ctx.logger.error(
                "%s.%s trigger %s when: %r cannot be rendered, counted false: %s",
                ctx.namespace, ctx.flow_id, self.id, when, exc,
            )  # fmt: skip
            return False

    def exclusive(self) -> bool:
        """True when, in a cluster, only one node at a time may run this trigger: one that
        would see the same events on every node (a watched folder, an MQTT topic). False
        (the default) for one whose events reach a single node or are claimed cluster-wide."""
        return False

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")
