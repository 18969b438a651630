"""podium's stand-in for the `kestra` Python package, for scripts run without it.

Script tasks put this directory first on PYTHONPATH, whichever runner runs them. When the
real package is installed (a `dependencies:` entry, an image that has it), it is found
further on the path and used instead; otherwise this module gives scripts what they use
most: `Kestra.outputs`, the metrics, `Kestra.logger()` and `context`, printing the same
`::{...}::` lines the real package prints. It runs on any Python 3.8+ (container images).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
_OTHERS = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]
_REAL = importlib.machinery.PathFinder.find_spec("kestra", _OTHERS)

if _REAL is not None and _REAL.loader is not None:  # the real package wins
    _module = importlib.util.module_from_spec(_REAL)
    sys.modules[__name__] = _module
    _REAL.loader.exec_module(_module)
else:
    CONTEXT_FILE = ".kestra-execution-context.json"

    class Kestra:
        """Outputs, metrics and logs, as `::{json}::` lines on stdout."""

        _logger: logging.Logger | None = None

        @staticmethod
        def format(map_: Mapping[str, Any]) -> str:
            return "::" + json.dumps(map_) + "::"

        @staticmethod
        def _send(map_: Mapping[str, Any]) -> None:
            print(Kestra.format(map_), flush=True)

        @staticmethod
        def _metric(name: str, type_: str, value: float, tags: dict[str, Any] | None) -> None:
            metric = {"name": name, "type": type_, "value": value, "tags": tags or {}}
            Kestra._send({"metrics": [metric]})

        @staticmethod
        def outputs(map_: Mapping[str, Any]) -> None:
            Kestra._send({"outputs": dict(map_)})

        @staticmethod
        def assets(map_: Mapping[str, Any]) -> None:
            Kestra._send({"assets": dict(map_)})

        @staticmethod
        def counter(name: str, value: float, tags: dict[str, Any] | None = None) -> None:
            Kestra._metric(name, "counter", value, tags)

        @staticmethod
        def gauge(name: str, value: float, tags: dict[str, Any] | None = None) -> None:
            Kestra._metric(name, "gauge", value, tags)

        @staticmethod
        def timer(
            name: str, duration: float | Callable[[], Any], tags: dict[str, Any] | None = None
        ) -> None:
            if callable(duration):
                start = time.monotonic()
                duration()
                duration = time.monotonic() - start
            Kestra._metric(name, "timer", duration, tags)

        @staticmethod
        def logger() -> logging.Logger:
            if Kestra._logger is None:
                logger = logging.getLogger("Kestra")
                logger.setLevel(logging.DEBUG)
                out = logging.StreamHandler(sys.stdout)
                out.addFilter(lambda record: record.levelno <= logging.INFO)
                out.setFormatter(_Lines())
                err = logging.StreamHandler(sys.stderr)
                err.setLevel(logging.WARNING)
                err.setFormatter(_Lines())
                logger.addHandler(out)
                logger.addHandler(err)
                Kestra._logger = logger
            return Kestra._logger

    class _Lines(logging.Formatter):
        _LEVELS = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN"}

        def format(self, record: logging.LogRecord) -> str:
            utc = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11
            stamp = datetime.fromtimestamp(record.created, utc).isoformat(timespec="milliseconds")
            level = self._LEVELS.get(record.levelno, "ERROR" if record.levelno > 30 else "TRACE")
            message = f"{stamp.replace('+00:00', 'Z')} - {record.getMessage()}"
            return Kestra.format({"logs": [{"level": level, "message": message}]})

    class _View(Mapping):  # type: ignore[type-arg]  # subscripted: Python 3.9+ only
        """The execution context, read with attributes (`context.inputs.name`)."""

        def __init__(self, data: Mapping[str, Any]) -> None:
            self._data = data

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):
                raise AttributeError(name)
            try:
                return self[name]
            except KeyError:
                raise AttributeError(f"'{name}' is not in the execution context") from None

        def __getitem__(self, name: str) -> Any:
            value = self._data[name]
            return _View(value) if isinstance(value, Mapping) else value

        def __iter__(self) -> Any:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    def __getattr__(name: str) -> Any:
        if name == "context":
            path = os.environ.get("KESTRA_EXECUTION_CONTEXT_FILE", CONTEXT_FILE)
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"No Kestra execution context found: {path!r} does not exist "
                    "(set executionContext: true on the task)"
                )
            with open(path, encoding="utf-8") as file:
                return _View(json.load(file))
        raise AttributeError(f"module 'kestra' has no attribute {name!r}")
