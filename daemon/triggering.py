"""Runs the triggers of the loaded flows: each as an asyncio task, restarted when it fails.

A flow that is added, changed or removed restarts only its own triggers. Every event a
trigger emits goes through `Runtime.submit`, the one way in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from daemon.config import Settings
from daemon.context import TriggerContext
from daemon.errors import PodiumError
from daemon.flow import Flow
from daemon.model import Execution
from daemon.plugin import Emit, Trigger
from daemon.runtime import Runtime
from daemon.store.base import StoreError
from daemon.webhooks import WebhookRegistry

log = logging.getLogger(__name__)

# A trigger that crashes is restarted after 1 s, 2 s, 4 s ... at most this long.
MAX_RESTART_DELAY = 60.0


class Triggers:
    """The running triggers of every loaded flow."""

    def __init__(self, runtime: Runtime, settings: Settings, webhooks: WebhookRegistry) -> None:
        self.runtime = runtime
        self.settings = settings
        self.webhooks = webhooks
        self._tasks: dict[tuple[str, str], list[asyncio.Task[None]]] = {}

    def start(self, flow: Flow) -> None:
        """(Re)start the enabled triggers of `flow`; its old triggers must be stopped first."""
        if flow.uid in self._tasks:
            raise RuntimeError(f"triggers of {flow.namespace}.{flow.id} are already running")
        jobs = []
        if not flow.disabled:
            for trigger in flow.triggers:
                if trigger.disabled:
                    continue
                name = f"trigger {flow.namespace}.{flow.id}.{trigger.id}"
                jobs.append(asyncio.create_task(self._supervise(flow, trigger), name=name))
        self._tasks[flow.uid] = jobs

    async def stop(self, uid: tuple[str, str]) -> None:
        jobs = self._tasks.pop(uid, [])
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    async def stop_all(self) -> None:
        for uid in list(self._tasks):
            await self.stop(uid)

    def running(self, uid: tuple[str, str]) -> int:
        return sum(1 for job in self._tasks.get(uid, []) if not job.done())

    def emitter(self, flow: Flow, trigger: Trigger) -> Emit:
        async def emit(inputs: Mapping[str, Any], variables: Mapping[str, Any], *,
                       labels: Mapping[str, str] | None = None) -> Execution:
            return await self.runtime.submit(
                flow, inputs, labels={**trigger.labels, **(labels or {})},
                trigger={"id": trigger.id, "type": trigger.type, "variables": dict(variables)})

        return emit

    async def _supervise(self, flow: Flow, trigger: Trigger) -> None:
        where = f"{flow.namespace}.{flow.id} trigger {trigger.id}"
        ctx = TriggerContext(self.runtime, flow, trigger.id, log, self.settings, self.webhooks)
        delay = 1.0
        while True:
            try:
                await trigger.run(self.emitter(flow, trigger), ctx)
                return
            except asyncio.CancelledError:
                raise
            except StoreError:
                log.exception("%s: the store failed; restarting in %.0fs", where, delay)
            except PodiumError as exc:
                log.error("%s stopped: %s", where, exc)
                return
            except Exception:
                log.exception("%s failed; restarting in %.0fs", where, delay)
            await self.runtime.clock.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
