"""Kestra's trigger.Toggle: a flow disables or enables a trigger (of itself or of another
flow), durably, as `PUT /api/v1/triggers` does."""

from __future__ import annotations

from typing import Annotated

from daemon.sdk.context import RunContext
from daemon.sdk.errors import PodiumError, TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic


class Toggle(Task):
    """Enable (`enabled: true`) or disable (the default) trigger `trigger` of the flow
    `namespace`.`flowId` (this flow by default)."""

    types = ("io.kestra.plugin.core.trigger.Toggle", "io.kestra.core.tasks.trigger.Toggle")

    trigger: Annotated[str, Dynamic]
    namespace: Annotated[str | None, Dynamic] = None
    flow_id: Annotated[str | None, Dynamic] = None
    enabled: bool = False

    async def run(self, ctx: RunContext) -> Output:
        namespace = self.namespace or ctx.flow.namespace
        flow_id = self.flow_id or ctx.flow.id
        try:
            await ctx.control.toggle_trigger(namespace, flow_id, self.trigger, self.enabled)
        except PodiumError as exc:  # NotFound too: an unknown flow or trigger
            raise TaskFailed(f"Unable to toggle: {exc}", non_retryable=True) from None
        action = "enabled" if self.enabled else "disabled"
        ctx.logger.info(f"trigger {self.trigger} of {namespace}.{flow_id} {action}")
        return None
