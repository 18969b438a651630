"""Kestra's locked triggers: an execution a Schedule or polling trigger started holds it.

"Each trigger ID is limited to a single active execution at a time. If a scheduled
execution is still running, the next one will be queued instead of started immediately"
(Kestra docs, workflow-components/triggers, "Locked triggers"): a trigger that declares
`locks` and does not set `allowConcurrent` waits, before it starts another execution, for
the end of the one it started last. While it waits it is locked (daemon/engine/
trigger_locks.py): the API's unlock lets it go on at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from daemon.engine.trigger_locks import TriggerKey, TriggerLocks
from daemon.sdk.errors import NotFound
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import Trigger

Wait = Callable[[str], Awaitable[Execution]]


def holds(trigger: Trigger) -> bool:
    """Whether an execution of `trigger` must end before the trigger starts another."""
    return type(trigger).locks and not trigger.allow_concurrent


class TriggerHolds:
    """The execution holding each locked trigger."""

    def __init__(self, wait: Wait) -> None:
        self._wait = wait
        self._held: dict[TriggerKey, str] = {}

    async def released(self, key: TriggerKey, locks: TriggerLocks) -> None:
        """Return once the execution holding the trigger (if any) has ended, or once the
        trigger is unlocked (`locks`)."""
        held = self._held.get(key)
        if held is None:
            return
        await locks.hold(key, held, self._ended(held))
        if self._held.get(key) == held:
            del self._held[key]

    async def _ended(self, execution_id: str) -> Execution | None:
        try:
            return await self._wait(execution_id)
        except NotFound:
            return None  # purged meanwhile: it holds nothing any more

    def started(self, key: TriggerKey, execution: Execution) -> None:
        """`execution` was started by the trigger: it holds the trigger until it ends."""
        if not execution.state.current.terminated:
            self._held[key] = execution.id
