"""The flow model: a loaded, valid Kestra flow and the pieces it is made of."""

from __future__ import annotations

import typing
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, model_validator

from daemon.sdk import yamlpos
from daemon.sdk.durations import Duration
from daemon.sdk.errors import Problem
from daemon.sdk.inputs import InputSpec
from daemon.sdk.plugin import Condition, Task, Trigger
from daemon.sdk.properties import EXPRESSION, Deprecated, Dynamic, Labels, Model
from daemon.sdk.retry import RetryModel

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
# Kestra's @Size limits: a flow id is also a file name and part of stored keys.
FLOW_ID_MAX = 100
NAMESPACE_MAX = 150

Path = yamlpos.Path


class Concurrency(Model):
    """Kestra's flow `concurrency`: at most `limit` executions of the flow run at once; one
    more is QUEUED, CANCELLED or FAILED as `behavior` says.

    With QUEUE, `queueSize` (or its other spelling `queueLimit`) caps the executions
    waiting: one arriving when the queue is full is CANCELLED at once. `duration` is the
    longest an execution holds its slot: past it the slot is released (the next queued one
    starts) and the execution runs on without counting against the limit.
    """

    limit: int = Field(ge=1)
    """How many executions of the flow may run at once."""
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"
    """What happens to an execution past the limit: it waits QUEUED, or ends CANCELLED or
    FAILED at once."""
    queue_size: int | None = Field(default=None, ge=0)
    """With QUEUE, how many executions may wait; one more is CANCELLED (none: no cap)."""
    queue_limit: int | None = Field(default=None, ge=0)
    """Another spelling of `queueSize`."""
    duration: Duration | None = None
    """The longest an execution holds its slot (ISO-8601, e.g. PT1H); past it the next
    one in line starts and the execution runs on without counting."""

    @model_validator(mode="after")
    def _consistent(self) -> Concurrency:
        if self.queue_size is not None and self.queue_limit is not None:
            raise ValueError(
                "'queueSize' and 'queueLimit' both cap the queue: give only one of them"
            )
        if self.duration is not None and self.duration.total_seconds() <= 0:
            raise ValueError("'duration' must be a positive ISO-8601 duration, e.g. PT1H")
        return self

    @property
    def queue_cap(self) -> int | None:
        """How many executions may wait for a slot (None: any number)."""
        return self.queue_size if self.queue_size is not None else self.queue_limit


class PluginDefault(Model):
    """One entry of `pluginDefaults` (or of the `plugin-defaults` setting): values for
    the plug-ins whose type starts with `type`; with a `ref`, only for those that ask for
    it by `pluginDefaultsRef` (daemon/flows/defaults.py)."""

    type: str = Field(min_length=1)
    forced: bool = False
    ref: str | None = Field(default=None, min_length=1)
    values: dict[str, Any]


class FlowOutput(Model):
    id: str
    type: str = "STRING"
    value: Annotated[Any, Dynamic]
    description: str | None = None
    display_name: str | None = None
    required: bool = True


class Listener(Model):
    """Kestra's deprecated `listeners`: tasks run in the same execution once it has ended,
    when all the conditions hold; they never change its final state."""

    description: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    tasks: list[Task] = Field(min_length=1)


class SLA(Model):
    """One entry of Kestra's flow `sla`: a deadline (MAX_DURATION) or an assertion on the
    execution (EXECUTION_ASSERTION); a violation fails or cancels the execution (or only
    logs, NONE) and adds `labels` to it."""

    id: str = Field(min_length=1)
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    behavior: Literal["FAIL", "CANCEL", "NONE"]
    labels: Labels = Field(default_factory=dict)
    duration: Duration | None = None
    assert_: str | None = Field(default=None, alias="assert")

    @model_validator(mode="after")
    def _complete(self) -> SLA:
        if self.type == "MAX_DURATION" and self.duration is None:
            raise ValueError("a MAX_DURATION SLA needs 'duration'")
        if self.type == "EXECUTION_ASSERTION" and not self.assert_:
            raise ValueError("an EXECUTION_ASSERTION SLA needs 'assert'")
        return self


class Check(Model):
    """One entry of Kestra's flow `checks`: an expression rendered with the inputs of an
    execution asked for through the API, before it exists; when it is not true, `message`
    is shown and `behavior` says what happens: BLOCK_EXECUTION (none is created),
    FAIL_EXECUTION (it is created FAILED, nothing runs) or CREATE_EXECUTION (it runs)."""

    when: Annotated[str | None, EXPRESSION] = None
    """The expression that must render true (Kestra 2.0's name for `condition`)."""
    condition: Annotated[str | None, EXPRESSION, Deprecated("use 'when'")] = None
    """Kestra 1.x: the expression that must render true."""
    message: str = Field(min_length=1)
    """Shown when the expression is not true."""
    style: Literal["ERROR", "SUCCESS", "WARNING", "INFO"] = "INFO"
    """How the UI shows the message."""
    behavior: Literal["BLOCK_EXECUTION", "FAIL_EXECUTION", "CREATE_EXECUTION"] = "BLOCK_EXECUTION"
    """What happens when the expression is not true."""

    @model_validator(mode="after")
    def _one_expression(self) -> Check:
        if self.when is None and self.condition is None:
            raise ValueError("missing required property 'when'")
        if self.when is not None and self.condition is not None:
            raise ValueError("set 'when' or its older name 'condition', not both")
        if not (self.when or self.condition or "").strip():
            raise ValueError("'when' must not be empty")
        return self

    @property
    def expression(self) -> str:
        return self.when if self.when is not None else self.condition or ""


class Flow(Model):
    """A loaded, valid flow. `source` is the YAML text it came from; `warnings` are the
    deprecated forms it uses (it loads, and says what to write instead)."""

    id: str = Field(pattern=FLOW_ID_PATTERN, max_length=FLOW_ID_MAX)
    """The flow's id, unique in its namespace."""
    namespace: str = Field(pattern=NAMESPACE_PATTERN, max_length=NAMESPACE_MAX)
    """Dotted, lower-case: where the flow lives (company.team)."""
    description: str | None = None
    """Free text shown in the UI."""
    labels: Labels = Field(default_factory=dict)
    """Key-value pairs copied to every execution of the flow."""
    inputs: list[InputSpec] = Field(default_factory=list)
    """Typed values given when an execution starts: `inputs.<id>` in expressions."""
    variables: dict[str, Any] = Field(default_factory=dict)
    """Values (expressions allowed) that tasks read as `vars.<name>`."""
    tasks: list[Task] = Field(min_length=1)
    """The tasks, run in order (or as a DAG when they use `dependsOn`)."""
    errors: list[Task] = Field(default_factory=list)
    """Tasks run when a task of the flow fails."""
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    """Tasks run at the end whatever happened."""
    after_execution: list[Task] = Field(default_factory=list)
    """Tasks run once the final state is known; they never change it (Kestra 1.x)."""
    outputs: list[FlowOutput] = Field(default_factory=list)
    """Values the execution exposes when it ends (to subflow callers, the API)."""
    triggers: list[Trigger] = Field(default_factory=list)
    """What starts an execution by itself: a schedule, a webhook, a file, a message..."""
    listeners: Annotated[
        list[Listener],
        Deprecated("use 'afterExecution' (with 'when') or a flow with a Flow trigger"),
    ] = Field(default_factory=list)
    """Deprecated (Kestra 0.12): tasks run once the execution ended, when conditions hold."""
    retry: RetryModel | None = None
    """A retry for every task without one (RETRY_FAILED_TASK), or a new execution when this
    one fails (CREATE_NEW_EXECUTION)."""
    sla: list[SLA] = Field(default_factory=list)
    """Deadlines (MAX_DURATION) and assertions (EXECUTION_ASSERTION) the execution must meet."""
    concurrency: Concurrency | None = None
    """How many executions of this flow may run at once, and what happens to more."""
    checks: list[Check] = Field(default_factory=list)
    """Conditions on the inputs of an execution asked for through the API, tested before it
    is created: each may block it, create it FAILED, or only show its message."""
    plugin_defaults: list[PluginDefault] = Field(
        default_factory=list, validation_alias=AliasChoices("pluginDefaults", "taskDefaults")
    )
    """Property values given to every task whose type starts with `type`."""
    disabled: bool = False
    """A disabled flow keeps its triggers off and refuses new executions."""
    revision: int | None = None
    source: str = Field(default="", exclude=True)
    path: str = Field(default="", exclude=True)
    warnings: list[Problem] = Field(default_factory=list, exclude=True)
    deprecation_paths: list[str] = Field(default_factory=list, exclude=True)
    # Plug-in types written by an older name: "X is replaced by Y" (Kestra's relocations).
    infos: list[str] = Field(default_factory=list, exclude=True)

    @property
    def uid(self) -> tuple[str, str]:
        return (self.namespace, self.id)

    def all_tasks(self) -> Iterator[Task]:
        """Every task of the flow, nested ones included."""
        for tasks, _ in task_lists(self):
            yield from tasks

    def task_by_id(self, task_id: str) -> Task | None:
        return next((t for t in self.all_tasks() if t.id == task_id), None)


def _mentions(
    annotation: Any, target: type | tuple[type, ...], seen: frozenset[type] = frozenset()
) -> bool:
    """Does a type annotation contain `target` (Task, Condition) anywhere inside it? A model
    that holds itself (an OBJECT input's properties are inputs) is looked into once."""
    if isinstance(annotation, type) and issubclass(annotation, target):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        inner = seen | {annotation}
        return any(_mentions(f.annotation, target, inner) for f in annotation.model_fields.values())
    return any(_mentions(arg, target, seen) for arg in typing.get_args(annotation))


_TASK_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _task_fields(cls: type[Task]) -> tuple[tuple[str, str], ...]:
    """(name, alias) of the fields of a task class that may hold tasks: asked once per
    class, not once per task (a flow of 100,000 tasks asked it millions of times)."""
    found = _TASK_FIELDS.get(cls)
    if found is None:
        found = _TASK_FIELDS[cls] = tuple(
            (name, field.alias or name)
            for name, field in cls.model_fields.items()
            if _mentions(field.annotation, Task)
        )
    return found


def task_lists(flow: Flow) -> Iterator[tuple[Sequence[Task], Path]]:
    """Every list of sibling tasks in the flow, nested ones included, with its property path."""
    for tasks, path in (
        (flow.tasks, ("tasks",)),
        (flow.errors, ("errors",)),
        (flow.finally_, ("finally",)),
        (flow.after_execution, ("afterExecution",)),
    ):
        yield from _lists_in(tasks, path)
    for i, listener in enumerate(flow.listeners):
        yield from _lists_in(listener.tasks, ("listeners", i, "tasks"))


def _lists_in(value: Any, path: Path) -> Iterator[tuple[Sequence[Task], Path]]:
    if isinstance(value, Task):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, Task) for v in value):
        yield value, path
        for i, task in enumerate(value):
            for name, alias in _task_fields(type(task)):
                yield from _lists_in(getattr(task, name), path + (i, alias))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _lists_in(item, path + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _lists_in(item, path + (key,))
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            if _mentions(field.annotation, Task):
                yield from _lists_in(getattr(value, name), path + (field.alias or name,))
