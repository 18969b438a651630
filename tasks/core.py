"""Core tasks: Log, Return, Sleep, Wait, Fail, Labels, OutputValues, Exit, Echo."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration, format_duration
from daemon.sdk.errors import ExitRequested, TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, has_template
from daemon.sdk.state import State

Level = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


class Log(Task):
    """Write one message (or several) to the execution's logs at a level."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log")

    message: Annotated[str | list[str], Dynamic]
    level: Annotated[Level, Dynamic] = "INFO"

    async def run(self, ctx: RunContext) -> Output:
        messages = [self.message] if isinstance(self.message, str) else self.message
        for message in messages:
            ctx.logger.log(self.level, message)
        return None


class Return(Task):
    """Hand a rendered value to later tasks as `outputs.<id>.value`."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return")

    format: Annotated[str | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        return {"value": self.format}


class Sleep(Task):
    """Wait for a duration (on podium's clock, so tests need not wait)."""

    types = ("io.kestra.plugin.core.flow.Sleep", "io.kestra.core.tasks.flows.Sleep")

    duration: Annotated[Duration, Dynamic]

    async def run(self, ctx: RunContext) -> Output:
        await ctx.clock.sleep(self.duration.total_seconds())
        return None


class Wait(Task):
    """Kestra's debug.Wait: log the duration, then wait it (a fixed, unrendered duration)."""

    types = ("io.kestra.plugin.core.debug.Wait",)

    duration: Duration

    async def run(self, ctx: RunContext) -> Output:
        ctx.logger.info(f"Waiting for {format_duration(self.duration)}")
        await ctx.clock.sleep(self.duration.total_seconds())
        return None


class Fail(Task):
    """Fail the task, always or when `condition` renders true."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Fail", "io.kestra.core.tasks.executions.Fail")

    condition: Annotated[str | bool | None, Dynamic] = None
    error_message: Annotated[str, Dynamic] = "Task failure"

    async def run(self, ctx: RunContext) -> Output:
        if self.condition is None or await ctx.render_bool_async(self.condition):
            raise TaskFailed(self.error_message)
        return None


def _label_map(value: Any) -> Any:
    """A list of {key, value} or a map, as Kestra's Labels reads it: a later key wins, a
    number or boolean is its text, and a nested map or list its JSON (Kestra PR #18064).
    Emptiness is checked when the task runs, as Kestra does."""
    if isinstance(value, list):
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or "key" not in item:
                raise ValueError("each label in a list must be a mapping with 'key' and 'value'")
            pairs[str(item["key"])] = item.get("value")
        value = pairs
    if isinstance(value, dict):
        return {str(k): _label_text(v) for k, v in value.items()}
    return value


def _label_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


class Labels(Task):
    """Add labels to the running execution (searchable, shown in the UI).

    As in Kestra, what cannot be a label fails the task when it runs: an empty key or
    value (Kestra PR #11273, RuntimeLabelsTest.updateIgnoresEmpty) and a `system.` label,
    which only podium itself sets."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Labels", "io.kestra.core.tasks.executions.Labels")

    labels: Annotated[dict[str, str], Dynamic, BeforeValidator(_label_map), JsonText]

    async def run(self, ctx: RunContext) -> Output:
        empty = [key for key, value in self.labels.items() if not key.strip() or not value]
        if empty:
            raise TaskFailed(f"empty labels are not allowed: {', '.join(empty)}")
        nul = [repr(k) for k, v in self.labels.items() if "\x00" in f"{k}{v}"]
        if nul:
            raise TaskFailed(f"labels cannot contain the NUL character: {', '.join(nul)}")
        system = [f"{k}={v}" for k, v in self.labels.items() if k.startswith("system.")]
        if system:
            raise TaskFailed(
                "System labels can only be set by Kestra itself, offending label: " + system[0]
            )
        ctx.add_labels(self.labels)
        return None


class OutputValues(Task):
    """Expose rendered values as `outputs.<id>.values.<key>`."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.output.OutputValues",)

    values: Annotated[dict[str, Any], Dynamic] = Field(default_factory=dict)

    async def run(self, ctx: RunContext) -> Output:
        return {"values": self.values}


class Exit(Task):
    """End the whole execution now, in the given state."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Exit",)

    # Kestra's ExitState spells it CANCELED; its tests also write CANCELLED (exit-cancelled).
    state: Annotated[
        Literal["SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELED", "CANCELLED"], Dynamic
    ] = "SUCCESS"
    condition: Annotated[str | bool | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        if self.condition is not None and not await ctx.render_bool_async(self.condition):
            return None
        state = State.CANCELLED if self.state == "CANCELED" else State(self.state)
        raise ExitRequested(state)


class Echo(Task):
    """Log a message (deprecated in Kestra for Log). As Kestra's Echo hands its rendered
    `format` to a Log, which renders it again, an expression the first rendering produced
    is rendered too."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.debug.Echo", "io.kestra.core.tasks.debugs.Echo")

    format: Annotated[str | None, Dynamic] = None
    level: Annotated[Level, Dynamic] = "INFO"

    async def run(self, ctx: RunContext) -> Output:
        message = self.format or ""
        if has_template(message):
            message = str(await ctx.render_async(message))
        ctx.logger.log(self.level, message)
        return None
