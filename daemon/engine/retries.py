"""Retries beyond one task run's attempts: a flowable task retried as a whole (Kestra PR
#3473), and the flow-level `retry` (a default retry for every task, or a new execution).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.flows.definition import Flow
from daemon.sdk.clock import Clock
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.plugin import Task
from daemon.sdk.retry import RetryModel, RetryPolicy
from daemon.sdk.state import State, StateHistory

Earlier = dict[tuple[str, str | None, str | None], TaskRun]


def task_policy(task: Task, flow: Flow) -> RetryPolicy | None:
    """A task's own `retry`, else the flow's when it retries failed tasks (Kestra's default
    flow-level behaviour, RETRY_FAILED_TASK)."""
    if task.retry is not None:
        return RetryPolicy.from_model(task.retry)
    if flow.retry is not None and flow.retry.behavior == "RETRY_FAILED_TASK":
        return RetryPolicy.from_model(flow.retry)
    return None


def new_execution_policy(flow: Flow) -> RetryModel | None:
    """The flow's `retry` when a failed execution is to be replaced by a new one."""
    if flow.retry is not None and flow.retry.behavior == "CREATE_NEW_EXECUTION":
        return flow.retry
    return None


@dataclass
class FlowableRetry:
    """The attempts of a flowable task run, when it has a `retry`: each run of its children
    is one attempt; a failed one is followed by another while the policy allows."""

    policy: RetryPolicy | None
    clock: Clock
    started: datetime

    def begin(self, tr: TaskRun) -> StateHistory | None:
        if self.policy is None:
            return None
        attempt = StateHistory(State.RUNNING, self.clock.now())
        tr.attempts.append(attempt)
        return attempt

    def end(self, attempt: StateHistory | None, state: State) -> None:
        if attempt is not None:
            attempt.set(state, self.clock.now())

    def delay(self, tr: TaskRun, state: State) -> float | None:
        """Seconds before the next attempt, or None: it succeeded, or the policy is spent."""
        if self.policy is None or not state.failed:
            return None
        return self.policy.next_delay(len(tr.attempts), self.clock.now() - self.started)


def flowable_retry(task: Task, replay: bool, clock: Clock) -> FlowableRetry:
    policy = RetryPolicy.from_model(task.retry) if task.retry and not replay else None
    return FlowableRetry(policy, clock, clock.now())


def reset_for_retry(
    execution: Execution, flowable: TaskRun, handlers: set[str], earlier: Earlier, now: datetime
) -> None:
    """Before a flowable's next attempt: its failed descendants (and its errors/finally
    tasks) run again as new attempts of the same task runs; the ones that succeeded are
    found again and not re-run."""
    children: dict[str | None, list[TaskRun]] = defaultdict(list)
    for run in execution.task_runs:
        children[run.parent_task_run_id].append(run)

    def walk(parent: TaskRun, again: bool) -> None:
        for run in children.get(parent.id, []):
            rerun = again or (parent is flowable and run.task_id in handlers)
            # CANCELLED: a sibling the failure interrupted (onChildFailure) runs again too
            if rerun or run.state.current in (State.FAILED, State.KILLED, State.CANCELLED):
                run.state.set(State.RESTARTED, now)
            earlier[(run.task_id, run.value, run.parent_task_run_id)] = run
            walk(run, rerun)

    walk(flowable, False)


def retry_labels(execution: Execution) -> dict[str, Any]:
    """The attempt number a replacement execution carries (`system.retryAttempt`)."""
    return {"system.retryAttempt": str(int(execution.labels.get("system.retryAttempt", "1")) + 1)}
