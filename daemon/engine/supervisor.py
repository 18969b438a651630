"""Runs the triggers of the loaded flows: each as an asyncio task, restarted when it fails.

A flow that is added, changed or removed in the catalog restarts only its own triggers.
Every event a trigger emits goes through the submitter, the one way in.

The API can also disable a single trigger at run time (kept in the store, so it outlives a
restart once `restore` has run), and so does an execution a trigger started that ends in
one of the trigger's `stopAfter` states (Kestra's TriggerState). The API also starts a
backfill of a trigger that can backfill (it restarts with it), pauses, resumes or drops
that backfill, restarts a trigger, unlocks one waiting for the execution it started,
forgets what was set on it at run time (Kestra's deletion of a trigger's state), and lists
each trigger's last event and next fire time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from daemon.engine.resources import Resources
from daemon.engine.submission import Submitter
from daemon.engine.trigger_context import FlowTriggerContext, TriggerServices
from daemon.engine.trigger_holds import TriggerHolds, holds
from daemon.engine.trigger_locks import TriggerKey, TriggerLocks
from daemon.flows.definition import Flow
from daemon.sdk.capabilities import Backfillable, Scheduled
from daemon.sdk.errors import FlowDisabled, InputError, NotFound, PodiumError
from daemon.sdk.execution import Execution, derived_id
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.retry import Backoff
from daemon.sdk.state import iso
from daemon.sdk.trigger_options import trigger_logger
from daemon.store.base import StoreError

log = logging.getLogger(__name__)

# A trigger that crashes is restarted after 1 s, 2 s, 4 s ... at most this long.
MAX_RESTART_DELAY = 60.0
# Store state key of the triggers disabled at run time: {"triggers": [[ns, flow, id], ...]}.
DISABLED_STATE = "api:disabled-triggers"

Backfill = tuple[datetime, datetime | None, dict[str, Any]]


class CannotBackfill(PodiumError):
    """Only a trigger that can backfill (a cron schedule) can run past slots."""


class NoBackfill(PodiumError):
    """Pausing, resuming or deleting a backfill needs one (Kestra: "No backfill found")."""


class Leases(Protocol):
    """Cluster-wide leases: a trigger that must run on one node at a time holds one."""

    def lease(self, *name: str) -> contextlib.AbstractAsyncContextManager[asyncio.Event]: ...


class TriggerSupervisor:
    """The running triggers of every loaded flow."""

    def __init__(
        self,
        resources: Resources,
        submitter: Submitter,
        services: TriggerServices,
        *,
        leases: Leases | None = None,
    ) -> None:
        self._resources = resources
        self._submitter = submitter
        self._services = services
        self._leases = leases
        self._tasks: dict[tuple[str, str], list[asyncio.Task[None]]] = {}
        self._disabled: set[TriggerKey] = set()
        # trigger -> (start, end, inputs) of its backfill, and the summary the API shows
        self._backfills: dict[TriggerKey, tuple[Backfill, dict[str, Any]]] = {}
        self._last: dict[TriggerKey, dict[str, str | None]] = {}
        self._locks = TriggerLocks()
        # Waits for the end of executions started by a trigger with `stopAfter`.
        self._stop_watches: set[asyncio.Task[None]] = set()
        self._holds = TriggerHolds(services.wait)

    async def restore(self) -> None:
        """Read which triggers were disabled at run time; call it before flows start."""
        state = await self._resources.store.state.get(DISABLED_STATE) or {}
        self._disabled = {(ns, flow, trigger) for ns, flow, trigger in state.get("triggers", [])}

    async def flow_changed(self, uid: tuple[str, str], flow: Flow | None) -> None:
        """A catalog listener: the flow's triggers restart with its new revision, or stop."""
        await self.stop(uid)
        if flow is not None:
            self.start(flow)

    def start(self, flow: Flow) -> None:
        """(Re)start the enabled triggers of `flow`; its old triggers must be stopped first."""
        if flow.uid in self._tasks:
            raise RuntimeError(f"triggers of {flow.namespace}.{flow.id} are already running")
        self._tasks[flow.uid] = [
            asyncio.create_task(self._supervise(flow, trigger), name=_job_name(flow, trigger))
            for trigger in flow.triggers
            if self._enabled(flow, trigger)
        ]

    async def stop(self, uid: tuple[str, str]) -> None:
        jobs = self._tasks.pop(uid, [])
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    async def stop_all(self) -> None:
        for uid in list(self._tasks):
            await self.stop(uid)
        watches, self._stop_watches = self._stop_watches, set()
        for watch in watches:
            watch.cancel()
        await asyncio.gather(*watches, return_exceptions=True)

    def running(self, uid: tuple[str, str]) -> int:
        return sum(1 for job in self._tasks.get(uid, []) if not job.done())

    def emitter(self, flow: Flow, trigger: Trigger) -> Emit:
        metrics = self._services.metrics
        trigger_type = type(trigger).types[0] if type(trigger).types else trigger.type

        async def emit(
            inputs: Mapping[str, Any],
            variables: Mapping[str, Any],
            *,
            labels: Mapping[str, str] | None = None,
            key: str | None = None,
            failed: str | None = None,
        ) -> Execution:
            held = (*flow.uid, trigger.id)
            if holds(trigger):
                await self._holds.released(held, self._locks)
            try:
                execution = await self._submitter.submit(
                    flow,
                    inputs,
                    labels={**trigger.labels, **(labels or {})},
                    trigger={"id": trigger.id, "type": trigger.type, "variables": dict(variables)},
                    execution_id=None
                    if key is None
                    else derived_id(flow.namespace, flow.id, trigger.id, key),
                    failed=failed,
                )
            except (InputError, FlowDisabled):
                metrics().trigger_event(trigger_type, rejected=True)
                raise
            metrics().trigger_event(trigger_type)
            self._last[held] = {
                "date": iso(self._resources.clock.now()),
                "executionId": execution.id,
            }
            if holds(trigger):
                self._holds.started(held, execution)
            if trigger.stop_after:
                watch = asyncio.create_task(self._stop_after(flow, trigger, execution.id))
                self._stop_watches.add(watch)
                watch.add_done_callback(self._stop_watches.discard)
            return execution

        return emit

    def context(self, flow: Flow, trigger: Trigger) -> FlowTriggerContext:
        """The context `trigger` of `flow` runs with."""
        trigger_type = type(trigger).types[0] if type(trigger).types else trigger.type
        where = f"{flow.namespace}.{flow.id}.{trigger.id}"
        logger = trigger_logger(log, where, trigger.log_level)
        return FlowTriggerContext(
            self._services, flow, trigger.id, trigger_type, logger, self._locks
        )

    # -- run-time control (the API) -------------------------------------------------------

    def enabled(self, flow: Flow, trigger_id: str) -> bool:
        return self._enabled(flow, _trigger(flow, trigger_id))

    async def contexts(self, flow: Flow) -> list[dict[str, Any]]:
        """Kestra's trigger context of each trigger of `flow`: whether it is disabled, its
        last event (this process's) and, for one that knows it, its next fire time."""
        now = self._resources.clock.now()
        contexts = []
        for trigger in flow.triggers:
            key = (*flow.uid, trigger.id)
            enabled = self._enabled(flow, trigger)
            upcoming = None
            if enabled and isinstance(trigger, Scheduled):
                upcoming = await asyncio.to_thread(trigger.next_date, now)
            last = self._last.get(key, {})
            backfill = self._backfills.get(key)
            contexts.append(
                {
                    "namespace": flow.namespace,
                    "flowId": flow.id,
                    "triggerId": trigger.id,
                    "type": trigger.type,
                    "disabled": not enabled,
                    "date": last.get("date"),
                    "executionId": last.get("executionId"),
                    "nextExecutionDate": iso(upcoming),
                    "backfill": backfill[1] if backfill else None,
                    "stopAfter": trigger.stop_after,
                }
            )
        return contexts

    async def set_disabled(self, flow: Flow, trigger_id: str, disabled: bool) -> None:
        """Stop or start one trigger, durably; the flow's source is not touched."""
        trigger = _trigger(flow, trigger_id)
        key = (*flow.uid, trigger_id)
        wanted = self._disabled | {key} if disabled else self._disabled - {key}
        if wanted != self._disabled:
            await self._resources.store.state.set(
                DISABLED_STATE, {"triggers": sorted(list(k) for k in wanted)}
            )
            self._disabled = wanted
            await self._restart(flow, trigger)

    async def backfill(
        self,
        flow: Flow,
        trigger_id: str,
        start: datetime,
        end: datetime | None,
        inputs: Mapping[str, Any],
    ) -> None:
        """Restart the trigger set to backfill: it runs the past slots in [start, end]
        before its live schedule. Slots it already ran (claimed) are not run again."""
        trigger = _trigger(flow, trigger_id)
        if not isinstance(trigger, Backfillable):
            raise CannotBackfill(
                f"trigger {trigger_id} of {flow.namespace}.{flow.id} "
                f"({trigger.type}) cannot backfill"
            )
        try:
            trigger.with_backfill(start, end, inputs)  # checked now, applied per start
        except ValueError as exc:
            raise InputError([f"backfill: {exc}"]) from None
        summary = {"start": iso(start), "end": iso(end), "inputs": dict(inputs), "paused": False}
        self._backfills[(*flow.uid, trigger_id)] = ((start, end, dict(inputs)), summary)
        await self._restart(flow, trigger)

    async def pause_backfill(self, flow: Flow, trigger_id: str, paused: bool) -> None:
        """Hold back (or let go on with) the slots of a trigger's backfill not run yet.

        The trigger restarts without its backfill while it is paused, so its live events go
        on; resumed, it restarts with it and runs the slots it had not reached (those it
        ran are claimed, never run twice). NoBackfill when it has none."""
        trigger = _trigger(flow, trigger_id)
        (period, summary) = self._backfill_of(flow, trigger_id)
        if summary["paused"] != paused:
            self._backfills[(*flow.uid, trigger_id)] = (period, {**summary, "paused": paused})
            await self._restart(flow, trigger)

    async def delete_backfill(self, flow: Flow, trigger_id: str) -> None:
        """Drop a trigger's backfill, run or not, and restart the trigger without it."""
        trigger = _trigger(flow, trigger_id)
        self._backfill_of(flow, trigger_id)
        del self._backfills[(*flow.uid, trigger_id)]
        await self._restart(flow, trigger)

    def unlock(self, flow: Flow, trigger_id: str) -> str:
        """Release the lock of a trigger waiting for the end of the execution it started:
        it goes on at once. That execution; NotLocked when it waits for none."""
        _trigger(flow, trigger_id)
        return self._locks.release((*flow.uid, trigger_id))

    async def restart(self, flow: Flow, trigger_id: str) -> None:
        """Stop a trigger and start it again (Kestra's restart: a stuck or failed trigger
        is evaluated anew); a disabled one stays stopped."""
        await self._restart(flow, _trigger(flow, trigger_id))

    async def reset(self, flow: Flow, trigger_id: str) -> None:
        """Forget what was set on a trigger at run time and restart it as its flow's source
        has it: the run-time disabling (durably), the backfill, the last event. Kestra's
        deletion of a trigger's state, which its scheduler then recreates from the flow;
        what the trigger keeps itself (slots and files it handled) stays, so that nothing
        runs twice."""
        trigger = _trigger(flow, trigger_id)
        key = (*flow.uid, trigger_id)
        if key in self._disabled:
            wanted = self._disabled - {key}
            await self._resources.store.state.set(
                DISABLED_STATE, {"triggers": sorted(list(k) for k in wanted)}
            )
            self._disabled = wanted
        self._backfills.pop(key, None)
        self._last.pop(key, None)
        await self._restart(flow, trigger)

    def _backfill_of(self, flow: Flow, trigger_id: str) -> tuple[Backfill, dict[str, Any]]:
        found = self._backfills.get((*flow.uid, trigger_id))
        if found is None:
            raise NoBackfill(
                f"No backfill found for trigger {trigger_id} of {flow.namespace}.{flow.id}"
            )
        return found

    async def _stop_after(self, flow: Flow, trigger: Trigger, execution_id: str) -> None:
        """Disable `trigger` once the execution it started ends in a `stopAfter` state."""
        try:
            ended = await self._services.wait(execution_id)
            state = ended.state.current
            if state not in (trigger.stop_after or ()) or not self._enabled(flow, trigger):
                return
            log.info(
                "%s.%s trigger %s: execution %s ended %s (stopAfter); trigger disabled",
                *flow.uid, trigger.id, execution_id, state.value,
            )  # fmt: skip
            await self.set_disabled(flow, trigger.id, True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "%s.%s trigger %s: stopAfter not applied for execution %s",
                *flow.uid, trigger.id, execution_id,
            )  # fmt: skip

    def _enabled(self, flow: Flow, trigger: Trigger) -> bool:
        return not (flow.disabled or trigger.disabled or (*flow.uid, trigger.id) in self._disabled)

    async def _restart(self, flow: Flow, trigger: Trigger) -> None:
        """Restart one trigger of a running flow, leaving its others alone."""
        jobs = self._tasks.get(flow.uid)
        if jobs is None:
            return
        name = _job_name(flow, trigger)
        old = [job for job in jobs if job.get_name() == name]
        for job in old:
            job.cancel()
        await asyncio.gather(*old, return_exceptions=True)
        if self._tasks.get(flow.uid) is not jobs:
            return  # the flow was reloaded or removed meanwhile: its triggers were restarted
        jobs[:] = [job for job in jobs if job not in old]
        if self._enabled(flow, trigger):
            jobs.append(asyncio.create_task(self._supervise(flow, trigger), name=name))

    async def _supervise(self, flow: Flow, trigger: Trigger) -> None:
        where = f"{flow.namespace}.{flow.id} trigger {trigger.id}"
        backfill = self._backfills.get((*flow.uid, trigger.id))
        if backfill is not None and not backfill[1]["paused"] and isinstance(trigger, Backfillable):
            trigger = trigger.with_backfill(*backfill[0])
        ctx = self.context(flow, trigger)
        backoff = Backoff(1.0, MAX_RESTART_DELAY, clock=self._resources.clock)
        while True:
            try:
                if self._leases is not None and trigger.exclusive():
                    await self._run_leased(flow, trigger, ctx, self._leases)
                else:
                    await trigger.run(self.emitter(flow, trigger), ctx)
                return
            except asyncio.CancelledError:
                raise
            except StoreError:
                log.exception("%s: the store failed; restarting in %.0fs", where, backoff.upcoming)
            except PodiumError as exc:
                log.error("%s stopped: %s", where, exc)
                return
            except Exception:
                log.exception("%s failed; restarting in %.0fs", where, backoff.upcoming)
            await backoff.sleep()

    async def _run_leased(
        self, flow: Flow, trigger: Trigger, ctx: FlowTriggerContext, leases: Leases
    ) -> None:
        """Run a trigger that must run on one node of the cluster at a time while this node
        holds its lease; when the lease is lost the trigger stops and waits for it again."""
        while True:
            async with leases.lease("trigger", *flow.uid, trigger.id) as lost:
                job = asyncio.create_task(trigger.run(self.emitter(flow, trigger), ctx))
                watch = asyncio.create_task(lost.wait())
                try:
                    await asyncio.wait([job, watch], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    watch.cancel()
                    if not job.done():
                        job.cancel()
                        await asyncio.gather(job, return_exceptions=True)
                if job.done() and not job.cancelled():
                    job.result()  # its error, or its end
                    return
            log.warning(
                "%s.%s trigger %s: lease lost; waiting to hold it again",
                *flow.uid,
                trigger.id,
            )


def _job_name(flow: Flow, trigger: Trigger) -> str:
    return f"trigger {flow.namespace}.{flow.id}.{trigger.id}"


def _trigger(flow: Flow, trigger_id: str) -> Trigger:
    found = next((t for t in flow.triggers if t.id == trigger_id), None)
    if found is None:
        raise NotFound(f"flow {flow.namespace}.{flow.id} has no trigger {trigger_id!r}")
    return found
