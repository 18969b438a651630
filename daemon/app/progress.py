"""What `podium run` prints while a flow runs: one line when a task run starts and one when
it ends (state, duration), the tasks' log lines, and a summary; colours on a terminal only.

A reader that goes away (`podium run flow.yaml | head`) closes the pipe: the next write
fails, printing stops for good and `closed` is set so the command can end the run quietly,
as any Unix tool does on a closed pipe, instead of printing a traceback per line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TextIO

from daemon.engine.events import Event, LogAppended, TaskRunChanged
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

_COLOURS = {
    State.SUCCESS: 32,
    State.WARNING: 33,
    State.FAILED: 31,
    State.KILLED: 31,
    State.RUNNING: 36,
}


class Progress:
    """Live lines while a flow runs; `on_closed` is called once if the output goes away."""

    def __init__(self, out: TextIO, on_closed: Callable[[], None] | None = None) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.closed = False
        self._on_closed = on_closed
        self._running: set[str] = set()

    def event(self, event: Event) -> None:
        if isinstance(event, LogAppended):
            line = event.line
            where = line.get("taskId") or "-"
            self._line(f"  {line['level']:<5} {where}: {line['message']}")
        elif isinstance(event, TaskRunChanged):
            task_run = event.task_run
            state = task_run.state.current
            label = task_run.task_id + (f"[{task_run.value}]" if task_run.value else "")
            if state == State.RUNNING and task_run.id not in self._running:
                self._running.add(task_run.id)
                self._line(f"{self._paint(State.RUNNING, 'started')} {label}")
            elif state.terminated:
                self._running.discard(task_run.id)
                seconds = (task_run.state.histories[-1][1] - task_run.state.start).total_seconds()
                self._line(f"{self._paint(state)} {label} {seconds:.2f}s")

    def summary(self, execution: Execution, masked: Callable[[Any], Any]) -> None:
        """The last line, and the outputs; `masked` hides secrets, as the store does."""
        state = execution.state.current
        seconds = time.monotonic() - self.started
        line = (
            f"{self._paint(state)} execution {execution.id} of {execution.namespace}."
            f"{execution.flow_id} in {seconds:.2f}s"
        )
        if execution.error:
            line += f": {masked(execution.error)}"
        self._line(line)
        if execution.outputs:
            self._line(f"outputs: {json.dumps(masked(execution.outputs), default=str)}")

    def _paint(self, state: State, text: str | None = None) -> str:
        shown = f"{text or state.value:<9}"
        colour = _COLOURS.get(state, 0)
        return f"\x1b[{colour}m{shown}\x1b[0m" if self.tty else shown

    def _line(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError:
            self._close()

    def _close(self) -> None:
        """Nothing more is printed; the stream's fd points at /dev/null so that the
        interpreter's final flush of it cannot fail again at exit."""
        self.closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        if self._on_closed is not None:
            self._on_closed()
