"""Loops: the legacy EachSequential/EachParallel (one round of the child tasks per value)
and LoopUntil (alias WaitFor: the child tasks again and again until a condition holds)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from daemon.sdk.capabilities import Chart
from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Branch, Children, FlowableTask, Output, Task
from daemon.sdk.properties import Dynamic, Model
from daemon.sdk.state import State
from daemon.sdk.truth import truthy


class _Handlers(FlowableTask):
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")


def _as_text(value: Any) -> Any:
    """`condition: true` written as a YAML boolean is its text (Kestra's Property<String>)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _text(element: Any) -> str:
    return json.dumps(element, separators=(",", ":"), ensure_ascii=False)


def each_values(value: Any) -> list[str]:
    """Kestra's values of EachSequential/EachParallel, as `taskrun.value` shows them: a JSON
    array in a string (strings kept, anything else as JSON) or a list (strings, numbers as
    text, maps as JSON); duplicates dropped, the first kept. A null, or a map of values,
    is refused."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TaskFailed(f"value is not a JSON array: {exc}", non_retryable=True) from None
        if isinstance(parsed, dict):
            raise TaskFailed("Maps are not supported in values", non_retryable=True)
        if not isinstance(parsed, list):
            raise TaskFailed(
                f"value must be a JSON array, got {type(parsed).__name__}", non_retryable=True
            )
        elements = parsed
        convert = _text
    elif isinstance(value, dict):
        raise TaskFailed("Maps are not supported in values", non_retryable=True)
    else:
        elements = list(value)
        convert = _list_element
    if any(e is None for e in elements):
        raise TaskFailed(
            f"Found a null value inside the iteration values={_text(elements)}",
            non_retryable=True,
        )
    texts = [e if isinstance(e, str) else convert(e) for e in elements]
    return list(dict.fromkeys(texts))


def _list_element(element: Any) -> str:
    if isinstance(element, bool) or isinstance(element, list):
        raise TaskFailed(
            f"Unknown value element type: {type(element).__name__} ({_text(element)})",
            non_retryable=True,
        )
    if isinstance(element, int | float):
        return str(element)
    return _text(element)


class EachSequential(_Handlers):
    """Run the child tasks for each value in turn (deprecated in Kestra for ForEach)."""

    types = (
        "io.kestra.plugin.core.flow.EachSequential",
        "io.kestra.core.tasks.flows.EachSequential",
    )
    superseded_by = "Kestra 2.0 removed it: use 'io.kestra.plugin.core.flow.Loop'"

    value: Annotated[str | list[Any] | dict[str, Any], Dynamic]

    def chart(self) -> Chart:
        """Kestra's EachSequential.tasksTree: a DYNAMIC cluster of its tasks in order."""
        return Chart("DYNAMIC", "sequential", self.tasks, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    async def children(self, ctx: RunContext) -> Children:
        branches = [Branch(self.tasks, value=v, has_value=True) for v in each_values(self.value)]
        return Children(branches, concurrency=1, errors=self.errors, finally_=self.finally_)


class EachParallel(_Handlers):
    """Run every child task for every value at once (deprecated in Kestra for ForEach with
    `concurrencyLimit`); `concurrent` caps how many run together (0: no cap)."""

    types = (
        "io.kestra.plugin.core.flow.EachParallel",
        "io.kestra.core.tasks.flows.EachParallel",
    )
    superseded_by = "Kestra 2.0 removed it: use 'io.kestra.plugin.core.flow.Loop'"

    value: Annotated[str | list[Any] | dict[str, Any], Dynamic]
    concurrent: int = Field(default=0, ge=0)  # a plain Integer in Kestra: no expression

    def chart(self) -> Chart:
        """Kestra's EachParallel.tasksTree: a DYNAMIC cluster of its tasks side by side."""
        return Chart("DYNAMIC", "parallel", self.tasks, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    async def children(self, ctx: RunContext) -> Children:
        branches = [
            Branch([task], value=v, has_value=True, iteration=i)
            for i, v in enumerate(each_values(self.value))
            for task in self.tasks
        ]
        return Children(
            branches, concurrency=self.concurrent, errors=self.errors, finally_=self.finally_
        )


def _positive(value: timedelta | None) -> timedelta | None:
    """Kestra's @DurationMin(millis = 1) (PR #18714): a zero or negative duration is refused."""
    if value is not None and value < timedelta(milliseconds=1):
        raise ValueError("must be a positive duration")
    return value


class CheckFrequency(Model):
    """Every field may be an expression (Kestra's Property<...>): checked once rendered."""

    max_iterations: int | None = Field(default=None, ge=1)
    max_duration: Annotated[Duration | None, AfterValidator(_positive)] = None
    interval: Annotated[Duration, AfterValidator(_positive)] = Field(
        default_factory=lambda: timedelta(minutes=1)
    )


class LoopUntil(_Handlers):
    """Run the child tasks, then again after `checkFrequency.interval`, until `condition`
    renders true (Kestra's truthiness) or a maximum of `checkFrequency` is reached.

    `outputs.<id>.iterationCount` (1 in the first round) counts the rounds. A failed child
    ends the loop FAILED; reaching a maximum ends it as its children did, or FAILED with
    `failOnMaxReached`.
    """

    types = ("io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor")

    condition: Annotated[str, BeforeValidator(_as_text)]  # rendered after every round
    fail_on_max_reached: Annotated[bool, Dynamic] = False
    check_frequency: Annotated[CheckFrequency, Dynamic] = Field(default_factory=CheckFrequency)

    async def children(self, ctx: RunContext) -> Children:
        # After a restart the loop goes on from the round it had reached.
        first = int((ctx.task_run.outputs or {}).get("iterationCount") or 1)
        started = _started(ctx)

        def round_(count: int) -> Children:
            async def then(state: State) -> Children | Output:
                if state.failed:
                    return {"iterationCount": count}
                reached = self._reached(ctx, count, started)
                if reached is None and not truthy(await ctx.render_async(self.condition)):
                    await ctx.clock.sleep(self.check_frequency.interval.total_seconds())
                    return round_(count + 1)
                if reached is not None:
                    ctx.logger.warning(reached)
                    if self.fail_on_max_reached:
                        raise TaskFailed(reached, non_retryable=True)
                return {"iterationCount": count}

            return Children(
                [Branch(self.tasks, iteration=count)],
                errors=self.errors,
                finally_=self.finally_,
                outputs={"iterationCount": count},
                then=then,
            )

        return round_(first)

    def _reached(self, ctx: RunContext, count: int, started: datetime) -> str | None:
        frequency = self.check_frequency
        if frequency.max_iterations is not None and count >= frequency.max_iterations:
            return f"Max iterations reached ({frequency.max_iterations})"
        limit = frequency.max_duration
        if limit is not None and ctx.clock.now() > started + limit:
            return f"Max duration reached ({format_duration(limit)})"
        return None


def _started(ctx: RunContext) -> datetime:
    """When the loop's task run was created, or last restarted: its `maxDuration` counts
    from there."""
    marks = [at for state, at in ctx.task_run.state.histories if state in _STARTS]
    return marks[-1] if marks else ctx.task_run.state.start


_STARTS = (State.CREATED, State.RESTARTED)
