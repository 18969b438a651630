"""Kestra's metric.Publish: a flow records counters, timers and gauges of its own, as a
script does with `::{"metrics": [...]}::`; they land in the execution's metrics (the
`/api/v1/metrics/{executionId}` API, the UI and `/metrics`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, Model


class Counter(Model):
    type: Literal["counter"]
    name: str = Field(min_length=1)
    value: float
    tags: dict[str, str] = Field(default_factory=dict)


class Gauge(Model):
    type: Literal["gauge"]
    name: str = Field(min_length=1)
    value: float
    tags: dict[str, str] = Field(default_factory=dict)


class Timer(Model):
    """A timer's value is a duration (`PT1.5S`), kept in seconds as scripts' timers are."""

    type: Literal["timer"]
    name: str = Field(min_length=1)
    value: Duration
    tags: dict[str, str] = Field(default_factory=dict)


Metric = Annotated[Counter | Gauge | Timer, Field(discriminator="type")]


class Publish(Task):
    """Record each metric on this task run; `outputs.<id>.metrics` lists them as recorded."""

    types = ("io.kestra.plugin.core.metric.Publish",)

    metrics: Annotated[list[Metric], Dynamic] = Field(default_factory=list)

    @field_validator("metrics", mode="before")
    @classmethod
    def _tags_as_text(cls, value: object) -> object:
        """Kestra's tags are strings; a YAML number or boolean tag is taken as its text."""
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("tags"), dict):
                tags = {str(k): _text(v) for k, v in item["tags"].items()}
                item = {**item, "tags": tags}
            out.append(item)
        return out

    async def run(self, ctx: RunContext) -> Output:
        published = []
        for metric in self.metrics:
            value = (
                metric.value.total_seconds() if isinstance(metric, Timer) else float(metric.value)
            )
            ctx.metric(metric.name, metric.type, value, metric.tags)
            published.append(
                {"name": metric.name, "type": metric.type, "value": value, "tags": metric.tags}
            )
        return {"metrics": published}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
