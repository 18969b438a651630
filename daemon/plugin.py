"""The two plug-in interfaces: tasks and triggers.

A plug-in is a pydantic model of its properties (Kestra's camelCase names,
`extra="forbid"`) that declares the `type:` strings it answers to and has one
async method. Properties marked `Dynamic` may hold expressions; they are kept
as written at load time and rendered just before the task runs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

from daemon.durations import Duration
from daemon.errors import TaskFailed

if TYPE_CHECKING:
    from daemon.context import RunContext, TriggerContext
    from daemon.model import Execution

ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"


def has_template(value: Any) -> bool:
    """True when a value (or anything inside it) holds a Jinja/Pebble expression."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    return False


def _defer_templates(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    if info.context and info.context.get("defer_templates") and has_template(value):
        return value
    return handler(value)


# Marks a property as templated: kept as written at load, rendered and type-checked per run.
Dynamic = WrapValidator(_defer_templates)


def _json_if_text(value: Any) -> Any:
    """Rendered expressions are text; a list or map property parses them as JSON."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


JsonText = BeforeValidator(_json_if_text)

M = TypeVar("M", bound=BaseModel)


def templated_values(model: BaseModel) -> dict[str, Any]:
    """The `Dynamic` properties of a model that hold expressions (`runIf` is rendered apart)."""
    cls = type(model)
    names: tuple[str, ...] | None = cls.__dict__.get("_podium_dynamic")
    if names is None:
        names = tuple(
            name
            for name, f in cls.model_fields.items()
            if Dynamic in f.metadata and name != "run_if"
        )
        setattr(cls, "_podium_dynamic", names)  # noqa: B010 - per-class cache, set once
    values = {name: getattr(model, name) for name in names}
    return {n: v for n, v in values.items() if v is not None and has_template(v)}


def with_rendered(model: M, rendered: Mapping[str, Any], where: str = "") -> M:
    """`model` again with its rendered values, type-checked now that they are known."""
    if not rendered:
        return model
    data = {**{n: getattr(model, n) for n in type(model).model_fields}, **rendered}
    try:
        return type(model).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}{'.'.join(str(p) for p in e['loc'])}: "
            f"{e['msg'].removeprefix('Value error, ')} (got {e['input']!r})"
            for e in exc.errors(include_url=False)
        )
        raise TaskFailed(
            f"invalid property after rendering: {problems}", non_retryable=True
        ) from None


class Model(BaseModel):
    """Base for everything users write in YAML: camelCase aliases, typos are errors."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        defer_build=True,  # schemas are built on first use: start-up pays only for what a flow uses
    )


class RetryModel(Model):
    """Kestra's `retry:` block; turned into a frozen `RetryPolicy` by the executor."""

    type: Literal["constant", "exponential", "random"]
    interval: Duration | None = None
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        alias="maxAttempt",
        validation_alias=AliasChoices("maxAttempts", "maxAttempt"),
    )
    max_duration: Duration | None = None
    max_interval: Duration | None = None
    min_interval: Duration | None = None
    delay_factor: float | None = None
    warning_on_retry: bool = False
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"


Output = Mapping[str, Any] | None


class Task(Model):
    """A task plug-in. Subclasses add properties and implement `run`."""

    types: ClassVar[tuple[str, ...]] = ()

    id: str = Field(pattern=ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False
    timeout: Annotated[Duration | None, Dynamic] = None
    retry: RetryModel | None = None
    allow_failure: bool = False
    run_if: Annotated[str | bool | None, Dynamic] = None
    depends_on: list[str] = Field(default_factory=list)
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] | None = None
    worker_group: Mapping[str, Any] | None = None

    async def run(self, ctx: RunContext) -> Output:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")


@dataclass
class Branch:
    """A list of child tasks the executor runs for a flowable task.

    `value` is what `taskrun.value` reads inside the branch (ForEach); `dag` makes
    the list run by its `dependsOn` edges instead of in order.
    """

    tasks: Sequence[Task]
    value: Any = None
    has_value: bool = False
    dag: Mapping[str, Sequence[str]] | None = None


@dataclass
class Children:
    """What a flowable task hands back: branches, how many at once, and failure handling."""

    branches: list[Branch] = field(default_factory=list)
    concurrency: int = 1
    errors: Sequence[Task] = ()
    finally_: Sequence[Task] = ()
    failure_is_warning: bool = False


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
    Raises `InputError` when the inputs do not fit the flow, `FlowDisabled` for a disabled flow.
    """

    def __call__(
        self,
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Awaitable[Execution]: ...


def _labels(value: Any) -> Any:
    """Kestra accepts labels as a map or as a list of {key, value}."""
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or set(item) != {"key", "value"}:
                raise ValueError("each label in a list must be a mapping with 'key' and 'value'")
            out[str(item["key"])] = item["value"]
        return out
    return value


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]


@dataclass(frozen=True)
class ConditionContext:
    """What a condition may look at: the flow, the moment (schedules), an ended execution."""

    namespace: str
    flow_id: str
    date: datetime | None = None
    execution: Mapping[str, Any] | None = None


class Condition(Model):
    """A trigger condition plug-in (`conditions:` of a trigger), registered by `type:`."""

    types: ClassVar[tuple[str, ...]] = ()

    type: str

    def test(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not implement test()")


class Trigger(Model):
    """A trigger plug-in: `run` lives as long as its flow is loaded, calling `emit` per event.

    `run` is cancelled when the flow is removed, changed or disabled; it must let
    `CancelledError` through after detaching whatever it attached.
    """

    types: ClassVar[tuple[str, ...]] = ()

    id: str = Field(pattern=ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False
    conditions: list[Condition] = Field(default_factory=list)
    labels: Labels = Field(default_factory=dict)
    stop_after: list[str] | None = None

    def conditions_hold(self, ctx: ConditionContext) -> bool:
        return all(condition.test(ctx) for condition in self.conditions)

    def exclusive(self) -> bool:
        """True when, in a cluster, only one node at a time may run this trigger: one that
        would see the same events on every node (a watched folder, an MQTT topic). False
        (the default) for one whose events reach a single node or are claimed cluster-wide."""
        return False

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")
