"""Kestra's trigger properties that say how a trigger runs rather than what it watches
(AbstractTrigger's `allowConcurrent`, `failOnTriggerError`, `logLevel`): the base of
every `Trigger`.

`allowConcurrent` and `failOnTriggerError` concern polling triggers (HTTP, SQL, ...), as in
Kestra: a polling trigger does not evaluate again while the execution it started still
runs, unless it allows concurrent ones; and an evaluation that fails (the endpoint or the
database cannot be read) is logged, or, with `failOnTriggerError`, also starts a FAILED
execution carrying the error, so that it shows among the flow's executions and alerts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field

from daemon.sdk.asset_lineage import AssetsDeclaration
from daemon.sdk.errors import FlowDisabled, InputError
from daemon.sdk.properties import Model

if TYPE_CHECKING:
    from daemon.sdk.execution import Execution
    from daemon.sdk.plugin import Emit

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
PYTHON_LEVELS: dict[str, int] = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40}


class TriggerOptions(Model):
    allow_concurrent: bool = False
    """A polling trigger evaluates again while the execution it started still runs (by
    default it waits for that execution's end)."""
    fail_on_trigger_error: bool = False
    """An evaluation of a polling trigger that fails starts a FAILED execution saying why,
    besides the log line."""
    log_level: LogLevel | None = Field(
        default=None, validation_alias=AliasChoices("logLevel", "minLogLevel")
    )
    """The lowest level of the trigger's own log lines that is kept (`minLogLevel`, its
    older name)."""
    assets: AssetsDeclaration | None = None
    """The data assets it reads and writes (kept with the flow: daemon/sdk/asset_lineage.py)."""

    async def evaluation_failed(self, emit: Emit, error: str) -> Execution | None:
        """With `failOnTriggerError`, the FAILED execution an evaluation error starts
        (Kestra's Worker.handleTriggerError); None without it, or when none can be
        started (the flow disabled meanwhile)."""
        if not self.fail_on_trigger_error:
            return None
        try:
            return await emit({}, {}, failed=f"the trigger's evaluation failed: {error}")
        except (InputError, FlowDisabled):
            return None


def trigger_logger(base: logging.Logger, where: str, level: LogLevel | None) -> logging.Logger:
    """The logger of one trigger: `base` itself, or with `logLevel` a child of it that
    keeps only lines at that level and above (its handlers are the parent's)."""
    if level is None:
        return base
    child = base.getChild(where)
    child.setLevel(PYTHON_LEVELS[level])
    return child
