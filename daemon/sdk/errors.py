"""The small error tree every part of podium raises from.

Known errors (these) get one log line; anything else is a bug and gets a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.sdk.state import State


class PodiumError(Exception):
    """Base of the errors podium expects and reports without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow file, where it is, and which property."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FlowError(PodiumError):
    """A flow that does not load; carries every problem of the file at once, and what
    could still be said of the parts that did parse: `warnings` (deprecated forms, with
    their `deprecation_paths`) and `infos` (type names replaced by current ones), as
    Kestra's flow validation answers them beside its constraint violations."""

    def __init__(
        self,
        problems: list[Problem],
        *,
        warnings: Sequence[Problem] = (),
        deprecation_paths: Sequence[str] = (),
        infos: Sequence[str] = (),
    ) -> None:
        self.problems = problems
        self.warnings = list(warnings)
        self.deprecation_paths = list(deprecation_paths)
        self.infos = list(infos)
        super().__init__("\n".join(str(p) for p in problems))


class InputError(PodiumError):
    """Inputs refused before the execution exists; one message per bad input."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))


class TemplateError(PodiumError):
    """An expression that cannot be rendered: names the expression and the reason."""


class TaskFailed(PodiumError):
    """A task run that ends FAILED; `non_retryable` skips the retry policy. `outputs` are
    the failed task run's outputs all the same (what it counted before failing)."""

    def __init__(
        self,
        message: str,
        *,
        non_retryable: bool = False,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.non_retryable = non_retryable
        self.outputs = outputs


class NotFound(PodiumError):
    """A flow, execution or file that does not exist."""


class FlowDisabled(PodiumError):
    """A disabled flow takes no new executions."""


class ExitRequested(Exception):
    """Raised by the Exit task: end the whole execution now, in `state`. The engine notes
    which task run asked (`task_run_id`): it and the flowables around it end in `state`."""

    def __init__(self, state: State) -> None:
        super().__init__(state.value)
        self.state = state
        self.task_run_id: str | None = None
