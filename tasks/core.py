"""Core tasks: Log, Return, Sleep, Wait, Fail, Labels, OutputValues, Exit, Echo."""

from __future__ import annotations

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
    """A list of {key, value} or a map; empty values refused (Kestra PR #11273)."""
    if isinstance(value, list):
        value = {
            str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)
        }
    if isinstance(value, dict):
        empty = [str(k) for k, v in value.items() if not str(k).strip() or v is None or v == ""]
        if empty:
            raise ValueError(f"empty labels are not allowed: {', '.join(empty)}")
        nul = [repr(str(k)) for k, v in value.items() if "\x00" in f"{k}{v}"]
        if nul:
            raise ValueError(f"labels cannot contain the NUL character: {', '.join(nul)}")
        return {k: _scalar_text(v) for k, v in value.items()}
    return value


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


class Labels(Task):
    """Add labels to the running execution (searchable, shown in the UI)."""

    runs_on_executor = True
    types = ("io.kestra.plugin.core.execution.Labels", "io.kestra.core.tasks.executions.Labels")

    labels: Annotated[dict[str, str], Dynamic, BeforeValidator(_label_map), JsonText]

    async def run(self, ctx: RunContext) -> Output:
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
