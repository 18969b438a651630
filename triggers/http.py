"""Kestra's polling HTTP Trigger (io.kestra.plugin.core.http.Trigger): every `interval` the
request is sent, and when `responseCondition` holds for the response, one execution starts
with Kestra's Request outputs as `trigger.uri`, `trigger.code`, `trigger.headers` and
`trigger.body`.

As in Kestra:
* every status code reaches the condition (its `options.allowFailed` is forced true); the
  condition sees `response.statusCode`, `response.body` (text, or null) and
  `response.headers`, and is tested before the trigger's `when` and `conditions`;
* a poll that fails (no connection, a timeout, a body too large, an expression that cannot
  be rendered) starts nothing (with `failOnTriggerError`, a FAILED execution saying why)
  and the trigger polls again after `interval`;
* no poll is made while the execution the trigger started last still runs (unless
  `allowConcurrent`), and once it ends in a `stopAfter` state the trigger stops (the
  supervisor disables it durably).
A failure is logged once when it starts and once when it ends, not at every poll.

`encryptBody` is accepted: Kestra then gives the body as `trigger.encryptedBody`, which it
stores in clear when no encryption key is configured; podium has no such key, so it does
the same and says so once when the trigger starts.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from pydantic import PrivateAttr, field_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.durations import Duration
from daemon.sdk.errors import InputError, PodiumError
from daemon.sdk.httpclient import HttpRequestSpec
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import (
    EXPRESSION,
    Deprecated,
    Dynamic,
    has_template,
    templated_values,
    with_rendered,
)
from daemon.sdk.truth import truthy

DEFAULT_CONDITION = "{{ response.statusCode < 400 }}"
ENCRYPTED_TYPE = "io.kestra.datatype:aes_encrypted"  # Kestra's EncryptedString type


class HttpTrigger(HttpRequestSpec, Trigger):
    """Start an execution when an HTTP endpoint, polled every `interval`, answers so that
    `responseCondition` holds; the response is `trigger.code`, `trigger.body`,
    `trigger.headers` and `trigger.uri`."""

    types = ("io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger")

    interval: Duration = timedelta(seconds=60)
    """How long to wait between two polls (ISO-8601, e.g. PT30S)."""
    response_condition: Annotated[str, EXPRESSION] = DEFAULT_CONDITION
    """An expression on `response.statusCode`, `response.body` and `response.headers`; an
    execution starts when it renders truthy (anything but false, 0, -0 and empty)."""
    encrypt_body: Annotated[bool, Dynamic] = False
    """Give the body as `trigger.encryptedBody` instead of `trigger.body` (in clear: podium
    has no encryption key, as Kestra without one)."""
    params: Annotated[dict[str, Any] | None, Deprecated("Kestra never sends it; put query "
                      "parameters in 'uri'")] = None  # fmt: skip
    """Accepted for Kestra's schema, which declares it, and ignored as Kestra does."""
    _said_clear: bool = PrivateAttr(default=False)

    @field_validator("uri")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        """A URL written out is checked when the flow loads: a trigger has no execution
        where a bad one could fail later (a templated one is checked at each poll)."""
        if has_template(value):
            return value
        from yarl import URL

        try:
            url = URL(value.strip().replace(" ", "%20"))
        except ValueError as exc:
            raise ValueError(f"invalid uri: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("expected an absolute http:// or https:// URL")
        return value

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("response_condition", mode="before")
    @classmethod
    def _condition_text(cls, value: Any) -> Any:
        """A condition written as a YAML boolean or number is its text, as Kestra reads it;
        a list or a map is no expression."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if not isinstance(value, str):
            raise ValueError(f"must be an expression (text), not {type(value).__name__}")
        return value

    def exclusive(self) -> bool:
        """Every node would poll the same endpoint: one does."""
        return True

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        where = f"{ctx.flow.namespace}.{ctx.flow.id} trigger {self.id}"
        trouble = _Trouble(ctx.logger, where)
        while True:
            try:
                variables = await self._poll(ctx, where)
            except (PodiumError, OSError, ValueError) as exc:  # TaskFailed, TemplateError...
                error = ctx.secrets.mask(str(exc))
                trouble.failed(error)
                await self.evaluation_failed(emit, error)
            else:
                trouble.cleared()
                if variables is not None and await self.admits(ctx, variables, where=where):
                    if await self._started(emit, ctx, variables, where):
                        return
            await ctx.clock.sleep(self.interval.total_seconds())

    async def _poll(self, ctx: TriggerContext, where: str) -> dict[str, Any] | None:
        """One request; the trigger variables when the response condition holds."""
        spec = self
        templated = templated_values(self)
        if templated:
            rendered = await ctx.render_async(templated)
            spec = with_rendered(self, rendered)
        output = await spec.fetch_text(ctx.secrets, ctx.files, allow_failed=True)
        response = {
            "statusCode": output["code"],
            "body": output["body"],
            "headers": output["headers"],
        }
        condition = await ctx.render_async(self.response_condition, {"response": response})
        if not truthy(condition):
            ctx.logger.debug(
                "%s: %s answered %s; responseCondition is false", where, output["uri"],
                output["code"],
            )  # fmt: skip
            return None
        if spec.encrypt_body:
            if not self._said_clear:
                ctx.logger.warning(
                    "%s: encryptBody: podium has no encryption key, so trigger.encryptedBody "
                    "holds the body in clear (as Kestra without one)",
                    where,
                )
                self._said_clear = True
            output["encryptedBody"] = {"type": ENCRYPTED_TYPE, "value": output.pop("body")}
        return output

    async def _started(
        self, emit: Emit, ctx: TriggerContext, variables: dict[str, Any], where: str
    ) -> bool:
        """Start the execution and wait for its end, as Kestra does not evaluate a polling
        trigger while its execution runs (unless `allowConcurrent`, or until the trigger is
        unlocked); True when that end is a `stopAfter` state (the supervisor disables the
        trigger then)."""
        try:
            execution = await emit({}, variables)
        except InputError as exc:
            ctx.logger.error("%s: no execution: %s", where, exc)
            return False
        if self.allow_concurrent:
            return False
        ended = await ctx.wait_locked(execution.id)
        if ended is None:  # unlocked through the API: it polls again, the execution running
            return False
        state = ended.state.current
        if self.stop_after and state in self.stop_after:
            ctx.logger.info(
                "%s: execution %s ended %s, a stopAfter state: polling stops",
                where, execution.id, state.value,
            )  # fmt: skip
            return True
        return False


class _Trouble:
    """One log line when polls start failing (and when the reason changes), one when a
    poll succeeds again; the failing polls in between are logged at DEBUG."""

    def __init__(self, logger: logging.Logger, where: str) -> None:
        self.logger = logger
        self.where = where
        self.reason: str | None = None
        self.count = 0

    def failed(self, reason: str) -> None:
        self.count += 1
        if reason == self.reason:
            self.logger.debug("%s: poll failed again: %s", self.where, reason)
            return
        self.reason = reason
        self.logger.warning("%s: poll failed: %s; polling goes on", self.where, reason)

    def cleared(self) -> None:
        if self.reason is None:
            return
        self.logger.info(
            "%s: poll succeeded again after %d failed %s",
            self.where,
            self.count,
            "poll" if self.count == 1 else "polls",
        )
        self.reason, self.count = None, 0
