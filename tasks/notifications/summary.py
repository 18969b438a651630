"""What an ExecutionAlert says about an execution, and the task base the channels share.

The summary names the flow, the state, the task that failed with its error, the
duration and the link to the execution page. An execution still running (an `errors`
branch reporting on its own execution) whose top-level task failed is reported FAILED:
in podium such an execution always ends FAILED.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from daemon.sdk.context import RunContext
from daemon.sdk.errors import NotFound, TaskFailed
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Deprecated, Dynamic, JsonText
from daemon.sdk.state import State
from tasks.notifications.delivery import HttpConnection, Note, WebhookConnection

if TYPE_CHECKING:
    from daemon.sdk.services import AlertServices

ERROR_EXCERPT = 1000  # characters of a task's error a message carries


@dataclass(frozen=True)
class ExecutionSummary:
    id: str
    namespace: str
    flow_id: str
    state: str
    start: datetime
    duration: timedelta
    link: str | None
    failed_task: str | None
    error: str | None
    custom_message: str | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"[{self.namespace}] {self.flow_id} ➛ {self.state}"

    @property
    def headline(self) -> str:
        took = human_duration(self.duration)
        if self.failed_task is not None:
            return f"Failed on task {self.failed_task} after {took}"
        if self.state == State.SUCCESS:
            return f"Succeeded after {took}"
        return f"Ended {self.state} after {took}"

    @property
    def color(self) -> str:
        """good / warning / danger: Slack's names, mapped to colours by the other channels."""
        if self.state == State.SUCCESS:
            return "good"
        return "warning" if self.state == State.WARNING else "danger"

    def facts(self) -> list[tuple[str, str]]:
        """Name/value pairs every channel shows, the user's customFields last."""
        out = [
            ("Namespace", self.namespace),
            ("Flow", self.flow_id),
            ("Execution", self.id),
            ("State", self.state),
            ("Duration", human_duration(self.duration)),
        ]
        if self.failed_task is not None:
            out.append(("Failed task", self.failed_task))
        out += [
            (str(k), v if isinstance(v, str) else _text(v)) for k, v in self.custom_fields.items()
        ]
        return out

    def text(self, heading: str | None = None, fence: bool = False) -> str:
        """The plain-text form (mail alternative part, text-only channels). A chat with
        markup passes its own `heading` (the title linked to the execution, the link then
        not repeated at the end) and `fence`s the error as code."""
        lines = [heading or self.title, self.headline]
        if self.custom_message:
            lines += ["", self.custom_message]
        lines.append("")
        lines += [f"{name}: {value}" for name, value in self.facts()]
        if self.error:
            lines += ["", f"```\n{self.error}\n```" if fence else f"Error: {self.error}"]
        if self.link and heading is None:
            lines += ["", self.link]
        return "\n".join(lines) + "\n"

    def brief(self) -> str:
        """A few lines for what is read on a phone (SMS, push): title, ending, link."""
        lines = [self.title, self.headline]
        if self.custom_message:
            lines.append(self.custom_message)
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)

    def html(self) -> str:
        """The HTML form (mail): everything escaped, no remote images."""
        colour = {"good": "#2e7d32", "warning": "#ef6c00"}.get(self.color, "#c62828")
        e = html.escape
        rows = "".join(
            f'<tr><th align="left">{e(n)}</th><td>{e(v)}</td></tr>' for n, v in self.facts()
        )
        parts = [
            f"<h2>[{e(self.namespace)}] {e(self.flow_id)} ➛ "
            f'<span style="color:{colour}">{e(self.state)}</span></h2>',
            f"<p>{e(self.headline)}</p>",
        ]
        if self.custom_message:
            parts.append(f"<p>{e(self.custom_message)}</p>")
        parts.append(f"<table>{rows}</table>")
        if self.error:
            parts.append(f"<pre>{e(self.error)}</pre>")
        if self.link:
            parts.append(f'<p><a href="{e(self.link)}">See the execution</a></p>')
        return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def cut(text: str, limit: int) -> str:
    """`text` within a vendor's length limit, an ellipsis saying it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_duration(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _text(value: Any) -> str:
    import orjson

    return orjson.dumps(value, default=str).decode()


def execution_link(public_url: str | None, execution: Execution) -> str | None:
    if not public_url:
        return None
    ex = execution
    return f"{public_url.rstrip('/')}/ui/executions/{ex.namespace}/{ex.flow_id}/{ex.id}"


async def summarize(
    services: AlertServices,
    execution: Execution,
    *,
    custom_message: str | None = None,
    custom_fields: dict[str, Any] | None = None,
) -> ExecutionSummary:
    state = execution.state.current
    runs = execution.task_runs
    failed = _first_failed_leaf(runs)
    if not state.terminated and any(
        r.state.current == State.FAILED for r in runs if r.parent_task_run_id is None
    ):
        state = State.FAILED
    error = await _error_of(services, execution, failed) if failed is not None else None
    if error is None and state.failed:
        error = execution.error
    if error is not None and len(error) > ERROR_EXCERPT:
        error = error[:ERROR_EXCERPT] + "…"
    end = execution.state.end or services.clock.now()
    return ExecutionSummary(
        id=execution.id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        state=state.value,
        start=execution.state.start,
        duration=end - execution.state.start,
        link=execution_link(services.public_url, execution),
        failed_task=failed.task_id if failed is not None else None,
        error=error,
        custom_message=custom_message,
        custom_fields=dict(custom_fields or {}),
    )


def _first_failed_leaf(runs: list[TaskRun]) -> TaskRun | None:
    """The task that failed first (a flowable around it fails after it, and is no news)."""
    parents = {r.parent_task_run_id for r in runs if r.parent_task_run_id}
    return next((r for r in runs if r.state.current == State.FAILED and r.id not in parents), None)


async def _error_of(services: AlertServices, execution: Execution, run: TaskRun) -> str | None:
    """The last ERROR line of a task run: the executor logs why it failed there."""
    lines = await services.executions.logs(execution.id, task_run_id=run.id, min_level="ERROR")
    return str(lines[-1]["message"]) if lines else None


class ExecutionAlert(Task):
    """Kestra's *Execution notification tasks: a ready-made message about one execution.

    `executionId` defaults to the current execution; another one (a Flow trigger's
    `{{ trigger.executionId }}`) is waited for until it has ended. Subclasses say how
    a summary goes out on their channel; `alert_channel` is the name the daemon's
    `alerts:` setting uses for them.
    """

    alert_channel: ClassVar[str] = ""

    execution_id: Annotated[str, Dynamic] = "{{ execution.id }}"
    custom_message: Annotated[str | None, Dynamic] = None
    custom_fields: Annotated[dict[str, Any] | None, Dynamic, JsonText] = None

    async def run(self, ctx: RunContext) -> Output:
        execution = await self._execution(ctx)
        summary = await summarize(
            ctx,
            execution,
            custom_message=self.custom_message,
            custom_fields=self.custom_fields,
        )
        outputs = await self.send_summary(summary, ctx, ctx.logger.warning)
        ctx.logger.info(
            f"sent a {self.alert_channel} notification about execution "
            f"{summary.id} ({summary.state})"
        )
        return outputs

    async def alert(self, services: AlertServices, execution: Execution, note: Note) -> None:
        """Send about an ended execution, outside any task run: the daemon's `alerts:`
        (this is the AlertChannel capability)."""
        summary = await summarize(
            services,
            execution,
            custom_message=self.custom_message,
            custom_fields=self.custom_fields,
        )
        await self.send_summary(summary, services, note)

    async def send_summary(
        self, summary: ExecutionSummary, services: AlertServices, note: Note
    ) -> Output:
        """Send the summary; what it returns are the task's outputs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement send_summary()")

    async def _execution(self, ctx: RunContext) -> Execution:
        wanted = self.execution_id.strip()
        if wanted == ctx.execution.id:
            return ctx.execution
        try:
            return await ctx.executions.wait(wanted)
        except NotFound:
            raise TaskFailed(f"execution '{wanted}' not found", non_retryable=True) from None


class HttpAlert(HttpConnection, ExecutionAlert):
    """An ExecutionAlert posted to a vendor's HTTP API."""

    # Inherited from the vendor's own-payload task in Kestra, and overwritten there by the
    # summary.
    payload: Annotated[
        Any,
        Deprecated(
            "the *Execution tasks send the execution summary and ignore it; use the "
            "vendor's webhook or alert task to send a payload of your own"
        ),
    ] = None


class WebhookAlert(WebhookConnection, HttpAlert):
    """An ExecutionAlert posted to the flow's `url`, with Kestra's `options`."""
