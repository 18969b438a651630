"""The one way in: every event (CLI, API, triggers, subflows) becomes an execution here.

`submit` refuses a disabled flow, coerces the inputs against the flow's declarations
(every bad one reported at once, before anything exists), builds the execution and hands
it to the dispatcher, which stores it durably before anything starts. An execution id
given by the caller makes the call idempotent: a client retrying a webhook gets the
execution its first attempt created.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.engine import flow_checks
from daemon.engine.contexts import ExecutionLog
from daemon.engine.dispatcher import Dispatcher
from daemon.engine.resources import Resources
from daemon.engine.variables import nested
from daemon.flows.catalog import FlowCatalog
from daemon.flows.definition import Flow
from daemon.sdk.errors import FlowDisabled, InputError, PodiumError
from daemon.sdk.execution import Execution, new_id
from daemon.sdk.input_kinds import is_missing
from daemon.sdk.inputs import coerce_inputs, undeclared_inputs
from daemon.sdk.properties import has_template
from daemon.sdk.state import State, StateHistory, iso

# How deep subflows may nest: a flow starting itself through expressions (which the
# loader cannot see) stops here instead of creating executions without end.
MAX_SUBFLOW_DEPTH = 10
CORRELATION_ID = "system.correlationId"


class SubflowTooDeep(PodiumError):
    """A subflow started deeper than MAX_SUBFLOW_DEPTH."""


class Submitter:
    def __init__(self, resources: Resources, catalog: FlowCatalog, dispatcher: Dispatcher) -> None:
        self._resources = resources
        self._catalog = catalog
        self._dispatcher = dispatcher
        # Idempotent submissions in progress here, by execution id.
        self._submitting: dict[str, asyncio.Future[Execution]] = {}

    async def submit(
        self,
        flow: Flow,
        inputs: Mapping[str, Any] | None = None,
        *,
        trigger: dict[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        parent: dict[str, Any] | None = None,
        execution_id: str | None = None,
        checks: bool = False,
        failed: str | None = None,
    ) -> Execution:
        """Create one execution of `flow`, durably, and start it (or queue/refuse it).

        `trigger` is Kestra's execution trigger: `{"id", "type", "variables"}`; flows read
        its variables as `trigger.*`. With an `execution_id`, when that execution exists
        already it is returned and nothing starts. With `checks` (an execution asked for
        through the API, as Kestra's ExecutionController tests them) the flow's `checks`
        may refuse it (ChecksBlocked) or create it FAILED. With `failed` (why an event could
        not become a proper execution: its inputs did not render), it is created FAILED with
        that error, without inputs, and nothing runs.
        """
        if flow.disabled:
            raise FlowDisabled(f"flow {flow.namespace}.{flow.id} is disabled")
        depth = int((parent or {}).get("depth", 0))
        if depth > MAX_SUBFLOW_DEPTH:
            raise SubflowTooDeep(
                f"subflow {flow.namespace}.{flow.id} not started: subflows are nested "
                f"{depth} deep, over the limit of {MAX_SUBFLOW_DEPTH} (does the flow start "
                "itself through an expression?)"
            )
        if execution_id is None:
            return await self._submit(
                flow, inputs, trigger, labels, parent, new_id(), False, checks, failed
            )
        pending = self._submitting.get(execution_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._submitting[execution_id] = future
        try:
            execution = await self._submit(
                flow, inputs, trigger, labels, parent, execution_id, True, checks, failed
            )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a concurrent duplicate may not be waiting
            raise
        else:
            future.set_result(execution)
            return execution
        finally:
            del self._submitting[execution_id]

    async def submit_by_id(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        revision: int | None = None,
        **kwargs: Any,
    ) -> Execution:
        """`submit` for the flow's latest revision, or the given one."""
        catalog = self._catalog
        if revision is None:
            flow = await catalog.find(namespace, flow_id)
        else:
            flow = await catalog.at(namespace, flow_id, revision)
        return await self.submit(flow, inputs, **kwargs)

    async def submit_iteration(
        self, parent: Execution, loop: dict[str, Any], execution_id: str
    ) -> Execution:
        """One iteration of a Loop task of `parent` (`loop`: Kestra's loopRun) as an
        execution of the same flow revision: it shares the parent's inputs, labels, trigger
        and variables, as they are (the inputs were coerced once, for the parent), and is
        created once per id (a parent asking again after a crash gets the first one)."""
        existing = await self._dispatcher.existing(execution_id)
        if existing is not None:
            return existing
        flow = await self._catalog.at(parent.namespace, parent.flow_id, parent.flow_revision)
        depth = int((parent.parent or {}).get("depth", 0)) + 1
        if depth > MAX_SUBFLOW_DEPTH:
            raise SubflowTooDeep(
                f"loop {loop['taskId']} of {flow.namespace}.{flow.id} not started: loops "
                f"and subflows are nested {depth} deep, over the limit of {MAX_SUBFLOW_DEPTH}"
            )
        execution = Execution(
            id=execution_id,
            namespace=parent.namespace,
            flow_id=parent.flow_id,
            flow_revision=parent.flow_revision,
            state=StateHistory(State.CREATED, self._resources.clock.now()),
            inputs=dict(parent.inputs),
            labels=dict(parent.labels),
            trigger=parent.trigger,
            parent={
                "executionId": parent.id,
                "namespace": parent.namespace,
                "flowId": parent.flow_id,
                "taskRunId": loop["taskRunId"],
                "depth": depth,
            },
            variables=parent.variables,
            loop=loop,
        )
        return await self._dispatcher.create(flow, execution, idempotent=True)

    async def coerce(
        self, flow: Flow, inputs: Mapping[str, Any] | None, execution_id: str
    ) -> dict[str, Any]:
        """The inputs as `flow` declares them for the execution `execution_id` (defaults
        filled, templated defaults rendered, types checked, every bad one reported at once
        in an InputError); a FILE input given as a local path is stored under that
        execution's prefix."""
        storage = self._resources.storage
        prefix = storage.execution_prefix(flow.namespace, flow.id, execution_id)
        loop = asyncio.get_running_loop()

        def store_file(name: str, value: Any) -> str:
            """Called by coerce_inputs in its thread: the storage is the loop's."""
            source = Path(str(value))
            if not source.is_file():
                raise ValueError(f"no such file {str(value)!r}")
            put = storage.put(source, prefix=f"{prefix}/inputs/{name}", name=source.name)
            return asyncio.run_coroutine_threadsafe(put, loop).result()

        inputs = await self._rendered_defaults(flow, inputs or {}, execution_id)
        if any(spec.type == "FILE" for spec in flow.inputs):
            # Storing a file is blocking I/O; coercing the other types is not, and a thread
            # hop costs more than the coercion itself on the webhook path.
            return await asyncio.to_thread(
                coerce_inputs, flow.inputs, inputs or {}, store_file=store_file
            )
        return coerce_inputs(flow.inputs, inputs or {}, store_file=store_file)

    async def _rendered_defaults(
        self, flow: Flow, inputs: Mapping[str, Any], execution_id: str
    ) -> Mapping[str, Any]:
        """The inputs given, with the templated `defaults` of those not given rendered.

        In Kestra an input's `defaults` is a Property rendered when the execution is created
        (FlowInputOutput.resolveDefaultValue), so `defaults: "{{ now() }}"` on a DATETIME
        input is the creation time; it sees the flow, the execution and the inputs given.
        """
        templated = [
            spec
            for spec in flow.inputs
            if has_template(spec.defaults) and is_missing(spec, inputs.get(spec.id))
        ]
        if not templated:
            return inputs
        out = dict(inputs)
        variables = {
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
            "execution": {"id": execution_id, "startDate": iso(self._resources.clock.now())},
            "inputs": nested(dict(inputs)),
            "envs": self._resources.envs,
            "globals": self._resources.options.globals or {},
        }
        for spec in templated:
            try:
                out[spec.id] = await self._resources.render_async(
                    spec.defaults, variables, flow.namespace
                )
            except Exception as exc:
                raise InputError(
                    [f"input '{spec.id}': its defaults do not render: {exc}"]
                ) from None
        return out

    async def _submit(
        self,
        flow: Flow,
        inputs: Mapping[str, Any] | None,
        trigger: dict[str, Any] | None,
        labels: Mapping[str, str] | None,
        parent: dict[str, Any] | None,
        execution_id: str,
        idempotent: bool,
        checks: bool = False,
        failed: str | None = None,
    ) -> Execution:
        if idempotent:
            existing = await self._dispatcher.existing(execution_id)
            if existing is not None:
                return existing
        # Kestra: every execution carries system.correlationId, its own id unless given (a
        # subflow's or a flow-triggered execution's comes from the one that started it).
        all_labels = {**flow.labels, **(labels or {})}
        all_labels.setdefault(CORRELATION_ID, execution_id)
        # Inputs that did not render (`failed`): the execution keeps none.
        values = {} if failed is not None else await self.coerce(flow, inputs, execution_id)
        refused = await flow_checks.failed_checks(flow, values, self._resources) if checks else []
        verdict = flow_checks.behavior(refused)
        if verdict == "BLOCK_EXECUTION":
            raise flow_checks.ChecksBlocked([c.message for c in refused])
        note = failed
        if verdict == "FAIL_EXECUTION":
            failed = f"{flow_checks.FAILED} Failed checks: " + ", ".join(c.message for c in refused)
            note = flow_checks.FAILED
        if flow.revision is None:
            flow.revision = await self._resources.store.save_flow(
                flow.namespace, flow.id, flow.source
            )
        execution = Execution(
            id=execution_id,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=flow.revision,
            state=StateHistory(State.CREATED, self._resources.clock.now()),
            inputs=values,
            labels=all_labels,
            trigger=trigger,
            parent=parent,
        )
        for key in [] if failed is not None else undeclared_inputs(flow.inputs, inputs or {}):
            ExecutionLog(self._resources, execution, None).warning(
                f"Input {key} was provided for workflow {flow.namespace}.{flow.id} but isn't "
                "declared in the workflow inputs"
            )
        if failed is not None:  # created ended: nothing runs, nothing admits it
            execution.error = failed
            execution.state.set(State.FAILED, self._resources.clock.now())
            ExecutionLog(self._resources, execution, None).warning(note or failed)
        return await self._dispatcher.create(flow, execution, idempotent=idempotent)
