"""Template (deprecated in Kestra, disabled there by default since 0.x): run the tasks of a
template in place of the task.

Kestra kept templates in a store of their own, per namespace. podium has none: a template
is a flow file with the template's `namespace` and `id` (a Kestra template's YAML, with
its `tasks` and `errors`, loads as such a flow unchanged), found as any flow is. Its tasks
run in order as this task's children and read `args` as `{{ parent.outputs.args.name }}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from daemon.sdk.context import RunContext
from daemon.sdk.errors import NotFound, TaskFailed
from daemon.sdk.plugin import Branch, Children, FlowableTask, Task
from daemon.sdk.properties import Dynamic


class Template(FlowableTask):
    """Run the tasks (and `errors`) of the template `namespace`.`templateId` here."""

    types = ("io.kestra.plugin.core.flow.Template", "io.kestra.core.tasks.flows.Template")

    namespace: str
    template_id: str
    args: Annotated[dict[str, Any] | None, Dynamic] = None
    errors: list[Task] = Field(default_factory=list)
    tenant_id: str | None = None  # Kestra's, hidden; podium has one tenant

    async def children(self, ctx: RunContext) -> Children:
        try:
            template = await ctx.find_flow(self.namespace, self.template_id)
        except NotFound:
            raise TaskFailed(
                f"Can't find flow template '{self.namespace}.{self.template_id}': podium "
                "reads a template from a flow file with that namespace and id",
                non_retryable=True,
            ) from None
        return Children(
            [Branch(template.tasks)],
            errors=[*template.errors, *self.errors],
            outputs={"args": dict(self.args or {})},
        )
