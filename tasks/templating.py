"""Kestra's templating.TemplatedTask: a task whose YAML is itself rendered, then run.

The rendered `spec` is built as the flow loader builds a task (its type registered, its
properties checked), its own expressions rendered in turn, and it runs in this task's
run: its outputs are this task's outputs. Like Kestra, only a runnable task, and never
another TemplatedTask.
"""

from __future__ import annotations

from typing import Annotated

import yaml

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, templated_values, with_rendered


class TemplatedTask(Task):
    """Render `spec` (a task's YAML; `id` optional, this task's by default) and run it."""

    types = (
        "io.kestra.plugin.core.templating.TemplatedTask",
        "io.kestra.core.tasks.templating.TemplatedTask",
    )

    spec: Annotated[str, Dynamic]

    async def run(self, ctx: RunContext) -> Output:
        try:
            raw = yaml.safe_load(self.spec)
        except yaml.YAMLError as exc:
            raise TaskFailed(f"spec is not YAML: {exc}", non_retryable=True) from None
        if not isinstance(raw, dict):
            raise TaskFailed("spec must be a task (a YAML mapping)", non_retryable=True)
        spec = {"id": self.id, **raw}
        if spec.get("type") in type(self).types:
            raise TaskFailed(
                f"The templated task cannot be of type '{type(self).types[0]}'",
                non_retryable=True,
            )
        try:
            task = ctx.control.build_task(spec)
        except ValueError as exc:
            raise TaskFailed(f"spec: {exc}", non_retryable=True) from None
        task = with_rendered(task, ctx.render(templated_values(task)), "spec.")
        outputs: Output = await task.run(ctx)
        return outputs
