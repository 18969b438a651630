"""Kestra's state store tasks: `state.Set`, `state.Get` and `state.Delete` (before that,
`io.kestra.core.tasks.states.*`), which Kestra keeps for older flows; the KV store
(`io.kestra.plugin.core.kv.*`) replaced them.

A state is a JSON map in a file of the internal storage, as Kestra's AbstractState and
StorageContext keep it: `kestra:///<namespace as path>/<flow>/states/tasks-states/<name>`
(without `<flow>` with `namespace: true`: shared by the namespace's flows), in a folder of
its own per `taskrun.value` inside a ForEach unless `taskrunValue: false`. Set merges its
`data` into the map (a new key is added, an existing one replaced, maps merged key by
key); Get reads it (empty when there is none, unless `errorOnMissing`); Delete removes it.
Like Kestra's, none of this is safe against concurrent executions changing one state.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, ClassVar

from daemon.sdk.context import RunContext
from daemon.sdk.errors import NotFound, TaskFailed
from daemon.sdk.maps import deep_merge
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic

_STATES = "tasks-states"


def _types(name: str) -> tuple[str, ...]:
    return (f"io.kestra.plugin.core.state.{name}", f"io.kestra.core.tasks.states.{name}")


class StateTask(Task):
    """What Set, Get and Delete share: which state file."""

    superseded_by: ClassVar[str | None] = (
        "Kestra replaced the state store with the KV store: use io.kestra.plugin.core.kv.*"
    )

    name: Annotated[str, Dynamic] = "default"
    namespace: Annotated[bool, Dynamic] = False
    taskrun_value: Annotated[bool, Dynamic] = True

    def prefix(self, ctx: RunContext) -> str:
        namespace = "/".join(ctx.flow.namespace.split("."))
        owner = namespace if self.namespace else f"{namespace}/{ctx.flow.id}"
        prefix = f"/{owner}/states/{_STATES}"
        value = ctx.task_run.value
        if self.taskrun_value and value is not None:
            prefix += "/" + hashlib.sha256(value.encode()).hexdigest()[:32]
        return prefix

    def uri(self, ctx: RunContext) -> str:
        return f"kestra://{self.prefix(ctx)}/{self.name}"

    async def current(self, ctx: RunContext) -> dict[str, Any] | None:
        """The state's map, or None when there is no such state."""
        try:
            text = await ctx.files.read_text(self.uri(ctx))
        except (NotFound, FileNotFoundError):
            return None
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TaskFailed(f"the state '{self.name}' does not hold a map")
        return data

    def missing(self) -> TaskFailed:
        return TaskFailed(f"Unable to find the state file '{self.name}'", non_retryable=True)


class Set(StateTask):
    """Merge `data` into the state: new keys added, existing ones replaced."""

    types = _types("Set")

    data: Annotated[dict[str, Any] | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        merged = deep_merge(await self.current(ctx) or {}, self.data or {})
        body = json.dumps(merged, ensure_ascii=False).encode()
        uri = await ctx.files.put(body, prefix=self.prefix(ctx), name=self.name)
        return {"count": len(merged), "key": uri}


class Get(StateTask):
    """The state's map (`data`) and its size (`count`)."""

    types = _types("Get")

    error_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        data = await self.current(ctx)
        if data is None:
            if self.error_on_missing:
                raise self.missing()
            data = {}
        return {"count": len(data), "data": data}


class Delete(StateTask):
    """Remove the state; `deleted` says whether there was one."""

    types = _types("Delete")

    error_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        deleted = await ctx.files.delete(self.uri(ctx))
        if not deleted and self.error_on_missing:
            raise self.missing()
        return {"deleted": deleted}
