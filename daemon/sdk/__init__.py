"""The plug-in SDK: the one part of podium's core that tasks and triggers import.

A plug-in is a pydantic model of its properties that declares its `type:` strings and
has one async method (`Task.run(ctx)`, `Trigger.run(emit, ctx)`); the context hands it
narrow services (files, KV, state, rendering, waiting) and never the engine. Register a
module of plug-ins under the `podium.plugins` entry-point group of a package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.sdk.cache import BoundedCache
    from daemon.sdk.capabilities import AlertChannel, Backfillable, Resumable, Scheduled
    from daemon.sdk.clock import Clock, FakeClock
    from daemon.sdk.context import LEVELS, RunContext, StartupContext, TaskLogger, TriggerContext
    from daemon.sdk.durations import Duration, format_duration, parse_duration
    from daemon.sdk.errors import (
        ExitRequested,
        FlowDisabled,
        FlowError,
        InputError,
        NotFound,
        PodiumError,
        TaskFailed,
        TemplateError,
    )
    from daemon.sdk.execution import Execution, TaskRun, new_id
    from daemon.sdk.files import SCHEME, StorageError
    from daemon.sdk.inputs import InputSpec
    from daemon.sdk.plugin import (
        Branch,
        Children,
        Condition,
        ConditionContext,
        Emit,
        FlowableTask,
        Output,
        Task,
        Trigger,
    )
    from daemon.sdk.properties import Dynamic, JsonText, Labels, Model, has_template
    from daemon.sdk.retry import Backoff, RetryModel, RetryPolicy
    from daemon.sdk.state import State, StateHistory, iso

# Imported on first use: `daemon.sdk.state` alone must not pull pydantic in (the CLI's
# start-up, a store that only needs `State`).
_WHERE = {
    "AlertChannel": "daemon.sdk.capabilities",
    "Backfillable": "daemon.sdk.capabilities",
    "Backoff": "daemon.sdk.retry",
    "BoundedCache": "daemon.sdk.cache",
    "Branch": "daemon.sdk.plugin",
    "Children": "daemon.sdk.plugin",
    "Clock": "daemon.sdk.clock",
    "Condition": "daemon.sdk.plugin",
    "ConditionContext": "daemon.sdk.plugin",
    "Duration": "daemon.sdk.durations",
    "Dynamic": "daemon.sdk.properties",
    "Emit": "daemon.sdk.plugin",
    "Execution": "daemon.sdk.execution",
    "ExitRequested": "daemon.sdk.errors",
    "FakeClock": "daemon.sdk.clock",
    "FlowDisabled": "daemon.sdk.errors",
    "FlowError": "daemon.sdk.errors",
    "FlowableTask": "daemon.sdk.plugin",
    "InputError": "daemon.sdk.errors",
    "InputSpec": "daemon.sdk.inputs",
    "JsonText": "daemon.sdk.properties",
    "LEVELS": "daemon.sdk.context",
    "Labels": "daemon.sdk.properties",
    "Model": "daemon.sdk.properties",
    "NotFound": "daemon.sdk.errors",
    "Output": "daemon.sdk.plugin",
    "PodiumError": "daemon.sdk.errors",
    "Resumable": "daemon.sdk.capabilities",
    "RetryModel": "daemon.sdk.retry",
    "RetryPolicy": "daemon.sdk.retry",
    "RunContext": "daemon.sdk.context",
    "SCHEME": "daemon.sdk.files",
    "Scheduled": "daemon.sdk.capabilities",
    "StartupContext": "daemon.sdk.context",
    "State": "daemon.sdk.state",
    "StateHistory": "daemon.sdk.state",
    "StorageError": "daemon.sdk.files",
    "Task": "daemon.sdk.plugin",
    "TaskFailed": "daemon.sdk.errors",
    "TaskLogger": "daemon.sdk.context",
    "TaskRun": "daemon.sdk.execution",
    "TemplateError": "daemon.sdk.errors",
    "Trigger": "daemon.sdk.plugin",
    "TriggerContext": "daemon.sdk.context",
    "format_duration": "daemon.sdk.durations",
    "has_template": "daemon.sdk.properties",
    "iso": "daemon.sdk.state",
    "new_id": "daemon.sdk.execution",
    "parse_duration": "daemon.sdk.durations",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'daemon.sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "LEVELS",
    "SCHEME",
    "AlertChannel",
    "Backfillable",
    "Backoff",
    "BoundedCache",
    "Branch",
    "Children",
    "Clock",
    "Condition",
    "ConditionContext",
    "Duration",
    "Dynamic",
    "Emit",
    "Execution",
    "ExitRequested",
    "FakeClock",
    "FlowDisabled",
    "FlowError",
    "FlowableTask",
    "InputError",
    "InputSpec",
    "JsonText",
    "Labels",
    "Model",
    "NotFound",
    "Output",
    "PodiumError",
    "Resumable",
    "RetryModel",
    "RetryPolicy",
    "RunContext",
    "Scheduled",
    "StartupContext",
    "State",
    "StateHistory",
    "StorageError",
    "Task",
    "TaskFailed",
    "TaskLogger",
    "TaskRun",
    "TemplateError",
    "Trigger",
    "TriggerContext",
    "format_duration",
    "has_template",
    "iso",
    "new_id",
    "parse_duration",
]
