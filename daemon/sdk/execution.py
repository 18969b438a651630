"""Executions and task runs in memory, serialised in Kestra's JSON shapes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daemon.sdk.state import StateHistory

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


_rng = random.Random()  # seeded from os.urandom


# Two digits at a time: half the divisions of a digit-by-digit conversion (ids are minted
# per execution and per task run).
_PAIRS = [a + b for a in _BASE62 for b in _BASE62]


def _base62(n: int) -> str:
    """`n` (< 62**22, so 128 bits fit) as 22 base62 digits, zero-padded."""
    out = []
    while n:
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    return "".join(reversed(out)).rjust(22, "0")


def derived_id(*parts: str) -> str:
    """The same id for the same parts: an idempotency key becomes the execution's id, so
    a retried request finds the execution its first attempt created."""
    import hashlib

    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()
    return _base62(int.from_bytes(digest, "big"))


def new_id() -> str:
    """A 22-character base62 id of 128 random bits, like Kestra's IdUtils.

    Ids need to be unique, not secret: a PRNG seeded from the OS is ~50x cheaper than
    os.urandom per id on these VMs, and ids are minted per task run.
    """
    return _base62(_rng.getrandbits(128))


@dataclass(eq=False)
class TaskRun:
    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    state: StateHistory
    parent_task_run_id: str | None = None
    value: str | None = None
    iteration: int | None = None
    attempts: list[StateHistory] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "parentTaskRunId": self.parent_task_run_id,
            "value": self.value,
            "iteration": self.iteration,
            "attempts": [{"state": a.to_json()} for a in self.attempts],
            "outputs": self.outputs,
            "state": self.state.to_json(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TaskRun:
        return cls(
            id=doc["id"],
            execution_id=doc["executionId"],
            namespace=doc["namespace"],
            flow_id=doc["flowId"],
            task_id=doc["taskId"],
            state=StateHistory.from_json(doc["state"]),
            parent_task_run_id=doc.get("parentTaskRunId"),
            value=doc.get("value"),
            iteration=doc.get("iteration"),
            attempts=[StateHistory.from_json(a["state"]) for a in doc.get("attempts") or []],
            outputs=doc.get("outputs") or {},
        )


@dataclass(eq=False)
class Execution:
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: StateHistory
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    trigger: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    parent: dict[str, Any] | None = None
    error: str | None = None
    task_runs: list[TaskRun] = field(default_factory=list)
    # Kestra's execution variables (`vars`) once a task changed them (SetVariables); the
    # flow's `variables` until then.
    variables: dict[str, Any] | None = None
    # Kestra's execution metadata: `attemptNumber` (flow-level retries), `originalCreatedDate`.
    metadata: dict[str, Any] | None = None
    # Set on one iteration of a Loop task (Kestra's `kind: LOOP` execution and its `loopRun`):
    # `executionId`, `taskId`, `taskRunId` of the loop that started it, the iteration's
    # `index`, `value`, `key` (map values) and `parents` (the iterations of enclosing loops).
    loop: dict[str, Any] | None = None

    @property
    def start_date(self) -> datetime:
        return self.state.start

    def to_json(self, *, task_runs: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "inputs": self.inputs,
            "labels": [{"key": k, "value": v} for k, v in self.labels.items()],
            "state": self.state.to_json(),
            "trigger": self.trigger,
            "outputs": self.outputs,
            "parentId": (self.parent or {}).get("executionId"),
            "parent": self.parent,
            "error": self.error,
        }
        if self.variables is not None:
            doc["variables"] = self.variables
        if self.metadata:
            doc["metadata"] = self.metadata
        if self.loop is not None:
            doc["kind"] = "LOOP"
            doc["loopRun"] = self.loop
        if task_runs:
            doc["taskRunList"] = [tr.to_json() for tr in self.task_runs]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Execution:
        return cls(
            id=doc["id"],
            namespace=doc["namespace"],
            flow_id=doc["flowId"],
            flow_revision=doc.get("flowRevision") or 1,
            state=StateHistory.from_json(doc["state"]),
            inputs=doc.get("inputs") or {},
            labels={lb["key"]: lb["value"] for lb in doc.get("labels") or []},
            trigger=doc.get("trigger"),
            outputs=doc.get("outputs"),
            parent=doc.get("parent"),
            error=doc.get("error"),
            task_runs=[TaskRun.from_json(t) for t in doc.get("taskRunList") or []],
            variables=doc.get("variables"),
            metadata=doc.get("metadata"),
            loop=doc.get("loopRun"),
        )


__all__ = ["Execution", "TaskRun", "derived_id", "new_id"]
