"""The engine's typed event bus: every state change, log line and metric, as it happens.

Listeners are called synchronously by whatever changed the execution, after the change
is handed to the store; they must be quick and must not raise (a failing listener is
logged and the others still run). The execution passed is live: a listener that keeps
it past its call must copy what it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daemon.sdk.execution import Execution, TaskRun

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExecutionChanged:
    """The execution's state (or labels, outputs, error) changed."""

    execution: Execution


@dataclass(frozen=True, slots=True)
class TaskRunChanged:
    execution: Execution
    task_run: TaskRun


@dataclass(frozen=True, slots=True)
class LogAppended:
    execution: Execution
    task_run: TaskRun | None
    line: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MetricRecorded:
    execution: Execution
    task_run: TaskRun
    metric: dict[str, Any]


Event = ExecutionChanged | TaskRunChanged | LogAppended | MetricRecorded
Listener = Callable[[Event], None]


class EventBus:
    """Publishes events to every subscribed listener, in subscription order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Start calling `listener`; returns the function that stops it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    def execution(self, execution: Execution) -> None:
        self.publish(ExecutionChanged(execution))

    def task_run(self, execution: Execution, task_run: TaskRun) -> None:
        self.publish(TaskRunChanged(execution, task_run))
