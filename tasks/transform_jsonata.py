"""JSONata transforms (kestra-io/plugin-transform, plugin-transform-json):
`io.kestra.plugin.transform.jsonata.TransformValue` and `TransformItems`.

Kestra evaluates with com.dashjoin:jsonata (jsonata-java); podium with jsonata-python, a
port of that library, so expressions and their results agree. As Kestra's Transform:
- `expression` is parsed when the task runs ("Invalid JSONata expression. Error: ...");
- the evaluation is bounded by `maxDepth` (default 50) and by the task's `timeout`;
- TransformValue parses `from` as JSON and outputs the result as `value`;
- TransformItems reads every value of the stored file `from` (Ion, or JSON over one or
  many lines, as Kestra's FileSerde reads), writes one result per line to a new Ion file
  (`uri`), an array result as one line per element unless `explodeArray: false`, and
  counts the lines written (`processedItemsTotal`).
The evaluation runs off the event loop; TransformItems streams its file both ways.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from daemon.sdk.errors import TaskFailed
from daemon.sdk.files import SCHEME
from daemon.sdk.ion import IonError, iter_values, write_values
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic

if TYPE_CHECKING:
    from daemon.sdk.context import RunContext

_TYPES = "io.kestra.plugin.transform.jsonata."


def _json_data(value: Any) -> Any:
    """A stored value as JSON data (what Jackson hands jsonata-java): decimals as numbers,
    dates as ISO text, bytes as text."""
    if isinstance(value, dict):
        return {str(k): _json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_data(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class Transform(Task):
    """What both tasks share: the expression and its bounds."""

    expression: Annotated[str, Dynamic]
    max_depth: Annotated[int, Dynamic] = Field(default=50, ge=1)

    def parsed(self) -> Any:
        import jsonata  # type: ignore[import-untyped]

        try:
            return jsonata.Jsonata(self.expression)
        except jsonata.JException as exc:
            raise TaskFailed(
                f"Invalid JSONata expression. Error: {exc}", non_retryable=True
            ) from None

    def evaluator(self) -> Any:
        """A function of one JSON value to its result; TaskFailed when it fails."""
        import jsonata

        parsed = self.parsed()
        timeout_ms = None if self.timeout is None else int(self.timeout.total_seconds() * 1000)

        def evaluate(data: Any) -> Any:
            frame = parsed.create_frame()
            frame.set_runtime_bounds(timeout_ms, self.max_depth)
            try:
                return parsed.evaluate(_json_data(data), frame)
            except jsonata.JException as exc:
                raise TaskFailed(f"Failed to evaluate expression: {exc}") from None
            except RecursionError:
                raise TaskFailed(
                    f"Failed to evaluate expression: too deep for maxDepth {self.max_depth}"
                ) from None

        return evaluate


class TransformValue(Transform):
    """Transform one JSON value (`from`, JSON text) with a JSONata expression: `value`."""

    types = (f"{_TYPES}TransformValue",)

    from_: Annotated[str, Dynamic] = Field(alias="from")

    async def run(self, ctx: RunContext) -> Output:
        try:
            data = json.loads(self.from_)
        except json.JSONDecodeError as exc:
            raise TaskFailed(
                f"Failed to parse the JSON object passed through the `from` property: {exc}",
                non_retryable=True,
            ) from None
        evaluate = self.evaluator()
        return {"value": await asyncio.to_thread(evaluate, data)}


class TransformItems(Transform):
    """Transform each value of a stored file with a JSONata expression, into a new file."""

    types = (f"{_TYPES}TransformItems",)

    from_: Annotated[str, Dynamic] = Field(alias="from")
    explode_array: Annotated[bool, Dynamic] = True

    async def run(self, ctx: RunContext) -> Output:
        if not self.from_.startswith(SCHEME):
            raise TaskFailed(
                f"'{self.from_}' is not a storage URI (kestra:///...)", non_retryable=True
            )
        source = await ctx.file_path(self.from_)
        target = (await ctx.working_dir()) / "transformed.ion"
        evaluate = self.evaluator()
        count = await asyncio.to_thread(self._transform, source, target, evaluate)
        uri = await ctx.put_file(target, f"{self.id}.ion")
        return {"uri": uri, "processedItemsTotal": count}

    def _transform(self, source: Path, target: Path, evaluate: Any) -> int:
        def results() -> Iterator[Any]:
            try:
                for value in iter_values(source):
                    result = evaluate(value)
                    if self.explode_array and isinstance(result, list):
                        yield from result
                    else:
                        yield result
            except IonError as exc:
                raise TaskFailed(f"'{self.from_}' is not Ion or JSON: {exc}") from None

        with target.open("wb") as out:
            return write_values(out, results())
