"""Kestra's script output protocol: a line `::{json}::` on stdout or stderr.

The JSON may carry `outputs` (a map merged into the task's `vars`), `metrics` (a list of
`{name, type, value, tags}`, type counter, timer or gauge) and `logs` (a list of
`{level, message}`), which is what the `kestra` PyPI package prints. Such a line is
consumed, not logged as text. A framed line whose JSON does not fit is refused as a whole
with a `ProtocolError` naming what is wrong, so that the caller can log it as plain text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

_FRAME = re.compile(r"^::(\{.*\})::$")
METRIC_TYPES = ("counter", "timer", "gauge")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


class ProtocolError(ValueError):
    """A `::{...}::` line that cannot be used; the message says why."""


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    value: float
    tags: dict[str, str]


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str


@dataclass
class Message:
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)


def framed(line: str) -> str | None:
    """The JSON text of a protocol line, or None for an ordinary line."""
    found = _FRAME.match(line)
    return found.group(1) if found else None


def parse(text: str) -> Message:
    """Check the JSON of one protocol line; unknown keys (e.g. `assets`) are ignored."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {_kind(data)}")
    message = Message()
    outputs = data.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, dict):
            raise ProtocolError(f"'outputs' must be an object, got {_kind(outputs)}")
        message.outputs = outputs
    metrics = data.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list):
            raise ProtocolError(f"'metrics' must be a list, got {_kind(metrics)}")
        message.metrics = [_metric(i, item) for i, item in enumerate(metrics)]
    logs = data.get("logs")
    if logs is not None:
        if not isinstance(logs, list):
            raise ProtocolError(f"'logs' must be a list, got {_kind(logs)}")
        message.logs = [_log(i, item) for i, item in enumerate(logs)]
    return message


def _metric(index: int, item: Any) -> Metric:
    where = f"metrics[{index}]"
    if not isinstance(item, dict):
        raise ProtocolError(f"{where} must be an object, got {_kind(item)}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{where}: 'name' must be a non-empty string")
    kind = item.get("type")
    if kind not in METRIC_TYPES:
        raise ProtocolError(
            f"{where} '{name}': 'type' must be counter, timer or gauge, got {kind!r}"
        )
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError(f"{where} '{name}': 'value' must be a finite number, got {value!r}")
    tags = item.get("tags") or {}
    if not isinstance(tags, dict):
        raise ProtocolError(f"{where} '{name}': 'tags' must be an object, got {_kind(tags)}")
    return Metric(name, kind, float(value), {str(k): _tag(v) for k, v in tags.items()})


def _tag(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _log(index: int, item: Any) -> LogLine:
    where = f"logs[{index}]"
    if not isinstance(item, dict):
        raise ProtocolError(f"{where} must be an object, got {_kind(item)}")
    level = item.get("level")
    level = "WARN" if level == "WARNING" else level
    if level not in LOG_LEVELS:
        raise ProtocolError(
            f"{where}: 'level' must be one of {', '.join(LOG_LEVELS)}, got {item.get('level')!r}"
        )
    text = item.get("message")
    if not isinstance(text, str):
        raise ProtocolError(f"{where}: 'message' must be a string, got {_kind(text)}")
    return LogLine(level, text)


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
