"""`sdk.services.EngineControl` for a task run: kill an execution and toggle a trigger
through the engine (as the API does), and build a task at run time from its YAML mapping
(Kestra's TemplatedTask renders one) as the flow loader builds a task: the registered class
of its `type:`, its properties checked, its expressions left for the per-attempt render."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from daemon.flows.registry import Plugins, UnknownType
from daemon.sdk.plugin import FlowableTask, Task


def build_task(plugins: Plugins, spec: Mapping[str, Any]) -> Task:
    """The runnable task `spec` describes; ValueError saying what is wrong with it (an
    unknown type with the closest names, a flowable task, bad properties)."""
    type_name = spec.get("type")
    if not isinstance(type_name, str):
        raise ValueError("the task has no 'type'")
    try:
        cls = plugins.tasks.get(type_name)
    except UnknownType as exc:
        raise ValueError(str(exc)) from None
    if issubclass(cls, FlowableTask):
        raise ValueError(f"{type_name} is a flowable task: the task must be a runnable one")
    try:
        task: Task = cls.model_validate(dict(spec), context={"defer_templates": True})
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'task'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
        ) from None
    return task


class Controls(Protocol):
    """The engine's side of it (the Launcher of a task context)."""

    async def kill(self, execution_id: str) -> bool: ...

    async def toggle_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None: ...


class LauncherControl:
    def __init__(self, plugins: Plugins, engine: Controls) -> None:
        self._plugins = plugins
        self._engine = engine

    async def kill(self, execution_id: str) -> bool:
        return await self._engine.kill(execution_id)

    async def toggle_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None:
        await self._engine.toggle_trigger(namespace, flow_id, trigger_id, enabled)

    def build_task(self, spec: Mapping[str, Any]) -> Task:
        return build_task(self._plugins, spec)
