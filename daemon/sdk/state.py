"""Kestra's execution and task-run states, and the history every change leaves."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Kestra's State.Type, every member (flows name them in Flow triggers and conditions)."""

    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLING = "KILLING"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    RESTARTED = "RESTARTED"
    # An execution a flow-level retry (CREATE_NEW_EXECUTION) replaced by a new one.
    RETRIED = "RETRIED"
    BREAKPOINT = "BREAKPOINT"
    RESUBMITTED = "RESUBMITTED"

    @property
    def terminated(self) -> bool:
        return self in _TERMINAL

    @property
    def failed(self) -> bool:
        return self in (State.FAILED, State.KILLED)


_TERMINAL = frozenset(
    {
        State.SUCCESS,
        State.WARNING,
        State.FAILED,
        State.KILLED,
        State.CANCELLED,
        State.SKIPPED,
        State.RETRIED,
        State.RESUBMITTED,
    }
)


def iso(dt: datetime | None) -> str | None:
    """Timestamps as Kestra writes them: ISO-8601 with a Z."""
    return None if dt is None else _iso(dt)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class StateHistory:
    """Current state plus every (state, date) it went through, as Kestra's `state` object."""

    __slots__ = ("_json", "current", "histories")

    def __init__(self, current: State, at: datetime) -> None:
        self.current = current
        self.histories: list[tuple[State, datetime]] = [(current, at)]
        # Serialised once per change: a task run is saved several times in its life.
        self._json = [{"state": current.value, "date": _iso(at)}]

    def set(self, state: State, at: datetime) -> None:
        self.current = state
        self.histories.append((state, at))
        self._json.append({"state": state.value, "date": _iso(at)})

    @property
    def start_iso(self) -> str:
        return self._json[0]["date"]

    @property
    def start(self) -> datetime:
        return self.histories[0][1]

    @property
    def end(self) -> datetime | None:
        return self.histories[-1][1] if self.current.terminated else None

    def to_json(self) -> dict[str, Any]:
        dates = self._json
        out: dict[str, Any] = {
            "current": self.current.value,
            "histories": list(dates),
            "startDate": dates[0]["date"],
        }
        if self.current.terminated:  # ended at its last change, already formatted
            histories = self.histories
            out["endDate"] = dates[-1]["date"]
            out["duration"] = f"PT{(histories[-1][1] - histories[0][1]).total_seconds():.3f}S"
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StateHistory:
        hist = [(State(h["state"]), datetime.fromisoformat(h["date"])) for h in data["histories"]]
        obj = cls(hist[0][0], hist[0][1])
        for state, at in hist[1:]:
            obj.set(state, at)
        obj.current = State(data["current"])
        return obj
