"""Loop: the child tasks once per value, each iteration an execution of its own.

As Kestra's io.kestra.plugin.core.flow.Loop: `values` is a list, a map, a JSON array or
object in a string, or the kestra:// URI of an Ion file (one value a line); each value
runs `tasks` (then `errors` when they failed, and `finally`) in an execution of the same
flow that sees this execution's inputs, outputs and `execution.*`, and `item.index`,
`item.value`, `item.key` (map values), `item.parent`/`item.parents` (enclosing loops).
Task outputs stay inside their iteration; the declared `outputs` are what each iteration
hands back (`outputs.<id>.outputs`, a list), with the counts `iterationCount`,
`runningIterations` and `terminatedIterations` (by state).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from daemon.sdk import ion
from daemon.sdk.capabilities import Chart
from daemon.sdk.context import RunContext
from daemon.sdk.errors import InputError, TaskFailed
from daemon.sdk.execution import Execution
from daemon.sdk.files import SCHEME
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import ID_PATTERN, Dynamic, Model
from daemon.sdk.state import State
from daemon.sdk.truth import truthy

# One iteration's value: (map key or None, value as `item.value` shows it).
Item = tuple[str | None, str]


class LoopOutput(Model):
    """One value each iteration exposes, rendered in the iteration when it ends (as a flow's
    `outputs`)."""

    id: str = Field(pattern=ID_PATTERN)
    type: str = "STRING"
    value: Any  # rendered in the iteration, not by the Loop task
    description: str | None = None
    display_name: str | None = None
    required: bool = True


class Loop(Task):
    """Run `tasks` once per value of `values`, `concurrencyLimit` iterations at a time (0:
    all at once), each in an execution of its own.

    A failed or killed iteration fails the loop at once with `transmitFailed` (no further
    iteration starts; those running go on); without it, every iteration runs and the loop
    succeeds. `breakWhen`, rendered after each iteration with `item` and `iteration`
    (`executionId`, `state`, `outputs`), stops starting new ones once true. An iteration
    that pauses pauses this execution until no iteration is paused any more; resuming this
    execution resumes them.
    """

    runs_on_executor = True
    types = ("io.kestra.plugin.core.flow.Loop",)

    values: Annotated[str | list[Any] | dict[str, Any], Dynamic]
    concurrency_limit: int = Field(default=1, ge=0)
    transmit_failed: bool = True
    outputs: list[LoopOutput] = Field(default_factory=list)
    fetch_type: Literal["AUTO", "FETCH", "STORE"] = "AUTO"
    break_when: str | None = None  # rendered after each iteration, never before
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    def chart(self) -> Chart:
        """Kestra's Loop.tasksTree: a DYNAMIC cluster drawn as a sequence (the iterations
        run at once, not the tasks of one iteration)."""
        return Chart("DYNAMIC", "sequential", self.tasks, errors=self.errors,
                     finally_=self.finally_)  # fmt: skip

    def iteration_tasks(self) -> tuple[Sequence[Task], Sequence[Task], Sequence[Task]]:
        """The RunsIterations capability: what an iteration runs."""
        return self.tasks, self.errors, self.finally_

    def iteration_outputs(self) -> Sequence[LoopOutput]:
        """The RunsIterations capability: what an iteration hands back."""
        return self.outputs

    async def run(self, ctx: RunContext) -> Output:
        from_file = isinstance(self.values, str) and self.values.startswith(SCHEME)
        if from_file:
            items = await _file_values(ctx, str(self.values))
        else:
            items = loop_values(self.values)
        store = self.fetch_type == "STORE" or (self.fetch_type == "AUTO" and from_file)
        return await _Iterations(self, ctx, items, store).run()


class _Iterations:
    """One run of a Loop task: its iterations started, waited for, counted."""

    def __init__(self, loop: Loop, ctx: RunContext, items: list[Item], store: bool) -> None:
        self.loop = loop
        self.ctx = ctx
        self.items = items
        self.store = store
        self.terminated: Counter[str] = Counter()
        self.outputs: list[dict[str, Any]] = []
        # The wait for each running iteration: its index and execution id.
        self.running: dict[asyncio.Future[Execution], tuple[int, str]] = {}
        # Iterations paused now, and the pause of this execution that mirrors them.
        self.paused: set[str] = set()
        self.mirror: asyncio.Future[Any] | None = None
        self.pauses_changed = asyncio.Event()

    async def run(self) -> Output:
        ctx, loop = self.ctx, self.loop
        limit = loop.concurrency_limit or len(self.items)
        pending = deque(enumerate(self.items))
        detach = ctx.executions.watch(self._seen)
        try:
            while True:
                while pending and len(self.running) < limit:
                    index, (key, value) = pending.popleft()
                    child = await ctx.run_iteration(index, value, key)
                    waiter = asyncio.ensure_future(ctx.executions.wait(child.id))
                    self.running[waiter] = (index, child.id)
                if not self.running:
                    return self._counts()
                if await self._next_end():
                    pending.clear()
        except asyncio.CancelledError:
            # this execution killed: its iterations go with it
            await asyncio.shield(self._kill_running())
            raise
        finally:
            detach()
            await self._end_mirror()
            for waiter in self.running:
                waiter.cancel()

    async def _next_end(self) -> bool:
        """Wait for an iteration to end (following pauses meanwhile); True when no further
        iteration may start (`breakWhen` held)."""
        while True:
            self.pauses_changed.clear()
            await self._follow_pauses()
            changed = asyncio.ensure_future(self.pauses_changed.wait())
            waiting: set[asyncio.Future[Any]] = {*self.running, changed}
            if self.mirror is not None:
                waiting.add(self.mirror)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            ended = [w for w in done if w in self.running]
            if ended:
                stop = False
                for waiter in ended:
                    index, _ = self.running.pop(waiter)
                    stop = await self._ended(index, waiter.result()) or stop
                return stop

    async def _ended(self, index: int, child: Execution) -> bool:
        ctx, loop = self.ctx, self.loop
        state = child.state.current
        self.terminated[state.value] += 1
        self.paused.discard(child.id)
        key, value = self.items[index]
        item: dict[str, Any] = {"value": value, "iteration": index}
        if key is not None:
            item["key"] = key
        outputs = child.outputs or {}
        if outputs:
            kept = {"uri": await self._stored(index, outputs)} if self.store else outputs
            self.outputs.append({"item": item, "outputs": kept})
        if loop.transmit_failed and state in (State.FAILED, State.KILLED):
            message = (
                f"Loop iteration {index} ended in {state.value} in sub-execution {child.id}, "
                "check that execution's logs for details"
            )
            ctx.logger.error(message)
            raise TaskFailed(message, non_retryable=True, outputs=self._counts())
        if loop.break_when is None:
            return False
        seen = {"index": index, "value": value, **({"key": key} if key is not None else {})}
        iteration = {"executionId": child.id, "state": state.value, "outputs": outputs}
        extra = {"item": seen, "iteration": iteration}
        return truthy(await ctx.render_async(loop.break_when, extra))

    async def _stored(self, index: int, outputs: dict[str, Any]) -> str:
        """`fetchType: STORE`: an iteration's outputs as an Ion file, by its URI."""
        return await self.ctx.put_file(ion.dumps(outputs).encode(), f"iteration-{index}.ion")

    def _counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "iterationCount": len(self.items),
            "runningIterations": len(self.running),
            "terminatedIterations": dict(self.terminated),
        }
        if self.outputs:
            out["outputs"] = self.outputs
        return out

    # -- pauses ---------------------------------------------------------------------------

    def _seen(self, execution: Execution) -> None:
        """An execution changed: one of this run's iterations pausing or going on?"""
        loop = execution.loop
        if loop is None or loop.get("taskRunId") != self.ctx.task_run.id:
            return
        before = len(self.paused)
        if execution.state.current == State.PAUSED:
            self.paused.add(execution.id)
        else:
            self.paused.discard(execution.id)
        if len(self.paused) != before:
            self.pauses_changed.set()

    async def _follow_pauses(self) -> None:
        """This execution is PAUSED while an iteration is (Kestra's LoopWithPauseTest): a
        resume of it resumes every paused iteration; once none is paused it goes on."""
        mirror = self.mirror
        if mirror is not None and mirror.done():
            self.mirror = None
            resumed = None if mirror.cancelled() or mirror.exception() else mirror.result()
            if resumed is not None:  # resumed by hand (API, UI): the iterations with it
                for execution_id in sorted(self.paused):
                    await self._resume(execution_id)
                self.paused.clear()
        if self.paused and self.mirror is None:
            self.mirror = asyncio.ensure_future(self.ctx.pause(None, ()))
            await asyncio.sleep(0)  # PAUSED is recorded before anything else happens
        elif not self.paused:
            await self._end_mirror()

    async def _resume(self, execution_id: str) -> None:
        try:
            await self.ctx.resume_execution(execution_id, {})
        except InputError as exc:
            self.ctx.logger.warning(f"iteration {execution_id} not resumed: {exc}")

    async def _end_mirror(self) -> None:
        mirror, self.mirror = self.mirror, None
        if mirror is not None and not mirror.done():
            mirror.cancel()
            await asyncio.gather(mirror, return_exceptions=True)

    async def _kill_running(self) -> None:
        for waiter, (_, execution_id) in list(self.running.items()):
            waiter.cancel()
            await self.ctx.control.kill(execution_id)


# -- values ----------------------------------------------------------------------------------


def loop_values(values: Any) -> list[Item]:
    """Kestra's FlowableUtils.resolveValues: a list (elements as text, maps as JSON; a
    duplicate dropped), a map (one iteration per entry, `item.key` its key), or a JSON array
    or object in a string, read the same way."""
    if isinstance(values, str):
        try:
            parsed = json.loads(values)
        except json.JSONDecodeError as exc:
            raise TaskFailed(
                f"values is neither a JSON array or object nor a kestra:// URI: {exc} "
                f"(got {_preview(values)})",
                non_retryable=True,
            ) from None
        if isinstance(parsed, list):
            return _distinct([_array_element(values, e) for e in parsed])
        if isinstance(parsed, dict):
            return [(str(k), _element(parsed, v)) for k, v in parsed.items()]
        raise TaskFailed(
            f"Unknown value type: {type(parsed).__name__} (values must be a list, a map, or a "
            f"JSON array or object; got {_preview(values)})",
            non_retryable=True,
        )
    if isinstance(values, dict):
        return [(str(k), _element(values, v)) for k, v in values.items()]
    return _distinct([_element(values, v) for v in values])


def _distinct(values: list[str]) -> list[Item]:
    return [(None, v) for v in dict.fromkeys(values)]


def _array_element(values: Any, element: Any) -> str:
    """An element of a JSON array in a string: text as is, anything else as JSON."""
    if element is None:
        raise _null(values)
    return element if isinstance(element, str) else _json(element)


def _element(values: Any, element: Any) -> str:
    """An element of a list or a map's value: text, a number, or a map (as JSON)."""
    if element is None:
        raise _null(values)
    if isinstance(element, str):
        return element
    if isinstance(element, int | float) and not isinstance(element, bool):
        return str(element)
    if isinstance(element, dict):
        return _json(element)
    raise TaskFailed(
        f"Unknown value element type: {type(element).__name__} ({_json(element)}): an "
        "element of values must be a text, a number or a map",
        non_retryable=True,
    )


def _null(values: Any) -> TaskFailed:
    shown = values if isinstance(values, str) else _json(values)
    return TaskFailed(f"Found a null value inside the iteration values={shown}", non_retryable=True)


async def _file_values(ctx: RunContext, uri: str) -> list[Item]:
    """One value per non-empty line of an Ion file: text as is, numbers as text, anything
    else as JSON (Kestra's FlowableUtils.readLoopValuesFromUri); duplicates kept."""
    text = await ctx.files.read_text(uri)
    items: list[Item] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = ion.loads(line)
        except ion.IonError as exc:
            raise TaskFailed(
                f"line {number} of {uri} is not an Ion value: {exc}", non_retryable=True
            ) from None
        if value is None:
            raise TaskFailed(f"Found a null value in the ION file (line {number} of {uri})",
                             non_retryable=True)  # fmt: skip
        items.append((None, _ion_text(value)))
    return items


def _ion_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
