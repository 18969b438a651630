"""Kestra's trigger lock: a polling trigger is not evaluated again while the execution it
started runs (unless it allows concurrent ones), so it is locked by that execution until
the execution ends. The API may release the lock (TriggerController.unlockTrigger), for
an execution stuck for good: the trigger then goes on at once, the execution still
running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field

from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import Execution

TriggerKey = tuple[str, str, str]  # namespace, flow id, trigger id


class NotLocked(PodiumError):
    """Only a trigger waiting for its execution can be unlocked (Kestra: "Trigger is not
    locked")."""


@dataclass
class _Hold:
    execution_id: str
    released: asyncio.Event = field(default_factory=asyncio.Event)


class TriggerLocks:
    """Which trigger waits for the end of the execution it started, and its release."""

    def __init__(self) -> None:
        self._held: dict[TriggerKey, _Hold] = {}

    def holder(self, key: TriggerKey) -> str | None:
        """The execution the trigger waits for; None when it is not locked."""
        hold = self._held.get(key)
        return None if hold is None else hold.execution_id

    def release(self, key: TriggerKey) -> str:
        """Release the trigger's lock: its wait ends at once. The execution it waited for;
        NotLocked when it waits for none."""
        hold = self._held.get(key)
        if hold is None:
            raise NotLocked(f"Trigger is not locked: trigger {key[2]} of {key[0]}.{key[1]}")
        hold.released.set()
        return hold.execution_id

    async def hold(
        self, key: TriggerKey, execution_id: str, ended: Awaitable[Execution | None]
    ) -> Execution | None:
        """Await `ended` (the execution's end), the trigger locked meanwhile: the ended
        execution, or None when the lock was released first."""
        hold = _Hold(execution_id)
        self._held[key] = hold
        waiting = asyncio.ensure_future(ended)
        released = asyncio.ensure_future(hold.released.wait())
        try:
            await asyncio.wait({waiting, released}, return_when=asyncio.FIRST_COMPLETED)
            return waiting.result() if waiting.done() else None
        finally:
            if self._held.get(key) is hold:
                del self._held[key]
            for pending in (waiting, released):
                pending.cancel()
            await asyncio.gather(waiting, released, return_exceptions=True)
