"""What the core may ask of a plug-in beyond running it, declared by the plug-in's class.

The core never names a plug-in type: it asks whether a trigger can backfill, whether a
task has a resume form or waits for a review, which tasks send alerts, which trigger
receives webhooks. A plug-in says so by implementing one of these protocols (checked with
`isinstance`) or by setting the class attribute named here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    from daemon.sdk.execution import Execution
    from daemon.sdk.inputs import InputSpec
    from daemon.sdk.plugin import Task
    from daemon.sdk.review import ReviewForm
    from daemon.sdk.services import AlertServices


@runtime_checkable
class Scheduled(Protocol):
    """A trigger that knows when it fires next (a cron schedule), so the API can show it.

    It may block (time-zone files, the cron library): it is called off the event loop.
    """

    def next_date(self, after: datetime) -> datetime | None: ...


@runtime_checkable
class Backfillable(Protocol):
    """A trigger that can run the slots it would have fired in a past period."""

    def with_backfill(
        self, start: datetime, end: datetime | None, inputs: Mapping[str, Any]
    ) -> Self:
        """This trigger, set to run [start, end] before its live events; ValueError with
        the reason when the period or the inputs do not fit."""
        ...


@runtime_checkable
class Resumable(Protocol):
    """A task that pauses its execution and takes inputs when it is resumed (Pause)."""

    def resume_inputs(self) -> Sequence[InputSpec]: ...


@runtime_checkable
class Reviewable(Protocol):
    """A task that pauses its execution until a reviewer approves or denies it (Approval):
    resumed through the review, never the plain resume."""

    def review_form(self) -> ReviewForm:
        """Its review dialog as written: the inputs, and when a comment is required (NEVER
        when that is an expression, known once the task runs and checked there)."""
        ...


@runtime_checkable
class StartsFlows(Protocol):
    """A task that starts executions of other flows (Subflow, ForEachItem): the loader
    refuses a flow that starts itself, and the catalog a cycle of flows starting each other,
    as far as their ids are written literally."""

    def started_flows(self) -> Sequence[tuple[str, str]]:
        """(namespace, flowId) of each flow it starts whose ids hold no expression."""
        ...


class DeclaredOutput(Protocol):
    """One declared output (a flow's `outputs`, a Loop's): rendered when an execution ends."""

    id: str
    value: Any
    required: bool


@runtime_checkable
class RunsIterations(Protocol):
    """A task whose child tasks run once per item, each iteration in an execution of its own
    (Kestra's Loop and its loop sub-executions): such an execution runs these lists instead
    of the flow's, and ends with these outputs instead of the flow's."""

    def iteration_tasks(self) -> tuple[Sequence[Task], Sequence[Task], Sequence[Task]]:
        """The iteration's `tasks`, `errors` and `finally` lists."""
        ...

    def iteration_outputs(self) -> Sequence[DeclaredOutput]:
        """The outputs each iteration exposes (rendered when it ends), maybe none."""
        ...


@runtime_checkable
class Advises(Protocol):
    """A plug-in written in a way that works but is likely a mistake (Kestra's flow
    validation warnings, such as a Flow trigger with neither conditions nor
    preconditions): the loader shows what it says beside the deprecations."""

    def advice(self) -> Sequence[str]:
        """The warnings about this plug-in as written; none when all is well."""
        ...


@runtime_checkable
class AlertChannel(Protocol):
    """A task that can also send the daemon's `alerts:` about an ended execution, on the
    channel named by its class attribute `alert_channel: ClassVar[str]` (slack, mail...)."""

    async def alert(
        self, services: AlertServices, execution: Execution, note: Callable[[str], None]
    ) -> None: ...


@dataclass(frozen=True)
class Chart:
    """How Kestra's topology graph (the API's FlowGraph, Kestra's `tasksTree`) draws a task
    that holds tasks: the relation of its cluster and how its children are laid out, run
    in order (`sequential`), at once (`parallel`), by their dependencies (`dag`: each task
    with the ids it depends on) or as named branches of which one runs (`choice`).

    A flowable task without the Charted capability is drawn as a `sequential`, `SEQUENTIAL`
    chart of the tasks it holds besides its `errors` and `finally`."""

    relation: Literal["SEQUENTIAL", "PARALLEL", "CHOICE", "DYNAMIC"]
    layout: Literal["sequential", "parallel", "dag", "choice"]
    tasks: Sequence[Task] = ()
    branches: Mapping[str, Sequence[Task]] = field(default_factory=dict)
    dag: Sequence[tuple[Task, Sequence[str]]] = ()
    errors: Sequence[Task] = ()
    finally_: Sequence[Task] = ()


@runtime_checkable
class Charted(Protocol):
    """A task that draws its children in the topology graph otherwise than in sequence
    (Parallel, If, Switch, Dag, the loops), or that holds tasks of its own making
    (ForEachItem's split, items and merge)."""

    def chart(self) -> Chart: ...


@runtime_checkable
class WatchesFlows(Protocol):
    """A trigger that starts its flow when executions of other flows end (the Flow
    trigger): Kestra's flow topology links the flows it watches to its own."""

    def watches(self, namespace: str, flow_id: str) -> bool:
        """True when an ended execution of that flow may start this trigger's."""
        ...
