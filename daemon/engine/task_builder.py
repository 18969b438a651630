"""`sdk.services.EngineControl` for a task run: kill an execution and toggle a trigger
through the engine (as the API does), and build a task at run time from its YAML mapping
(Kestra's TemplatedTask renders one) as the flow loader builds a task: the registered class
of its `type:`, its properties checked, its expressions left for the per-attempt render."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from daemon.flows.defaults import PluginDefaults, current_names, has_ref
from daemon.flows.definition import PluginDefault
from daemon.flows.registry import Plugins, UnknownType
from daemon.sdk.plugin import FlowableTask, Task


def build_task(
    plugins: Plugins, spec: Mapping[str, Any], defaults: PluginDefaults | None = None
) -> Task:
    """The runnable task `spec` describes, with the flow's pluginDefaults as the loader
    gives them (named ones included); ValueError saying what is wrong with it (an unknown
    type with the closest names, a flowable task, an unknown pluginDefaultsRef, bad
    properties)."""
    type_name = spec.get("type")
    if not isinstance(type_name, str):
        raise ValueError("the task has no 'type'")
    try:
        cls = plugins.tasks.get(type_name)
    except UnknownType as exc:
        raise ValueError(str(exc)) from None
    if issubclass(cls, FlowableTask):
        raise ValueError(f"{type_name} is a flowable task: the task must be a runnable one")
    data = dict(spec)
    if defaults is not None and (defaults or has_ref(data)):
        data, problems = defaults.apply(cls.types[0], type_name, data)
        if problems:
            raise ValueError("; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems))
    try:
        task: Task = cls.model_validate(data, context={"defer_templates": True})
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
    def __init__(
        self,
        plugins: Plugins,
        engine: Controls,
        defaults: tuple[Sequence[PluginDefault], Sequence[PluginDefault]] = ((), ()),
    ) -> None:
        self._plugins = plugins
        self._engine = engine
        self._defaults = defaults  # the flow's pluginDefaults, the plugin-defaults setting

    async def kill(self, execution_id: str) -> bool:
        return await self._engine.kill(execution_id)

    async def toggle_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None:
        await self._engine.toggle_trigger(namespace, flow_id, trigger_id, enabled)

    def build_task(self, spec: Mapping[str, Any]) -> Task:
        flow, global_ = self._defaults
        defaults = PluginDefaults(flow, global_, current_names(self._plugins))
        return build_task(self._plugins, spec, defaults)
