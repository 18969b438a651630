"""The plug-in SDK: the one part of podium's core that tasks and triggers import.

A plug-in is a pydantic model of its properties that declares its `type:` strings and
has one async method (`Task.run(ctx)`, `Trigger.run(emit, ctx)`); the context hands it
narrow services (files, KV, state, rendering, waiting) and never the engine. Register a
module of plug-ins under the `podium.plugins` entry-point group of a package.
"""

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
