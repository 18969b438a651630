"""Kestra's expression functions that need no daemon service: ids and random values, the
context of the task run (`tasksWithState`, `currentEachOutput`, `fetchContext`), `fileURI`,
`env`, and Pebble's `max`/`min`. Those that reach the store or files live in
`daemon.engine.functions`.
"""

from __future__ import annotations

import secrets
import socket
import time
import uuid as uuid_module
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.runtime import Context
from jinja2.utils import pass_context

from daemon.sdk.errors import TemplateError

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NANO_ALPHABET = _BASE62 + "-_"
_NANO_MAX = 1000
_KSUID_EPOCH = 1_400_000_000


def _base62(number: int, width: int) -> str:
    out = []
    while number:
        number, digit = divmod(number, 62)
        out.append(_BASE62[digit])
    return "".join(reversed(out)).rjust(width, "0")


def uuid() -> str:
    """A time-ordered UUID (version 7), as Kestra's `uuid()` gives."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid_module.UUID(int=value))


def short_id() -> str:
    """Kestra's `id()`: 22 base62 characters, like execution ids."""
    return _base62(secrets.randbits(128), 22)


def ksuid() -> str:
    """A KSUID: 4 bytes of seconds since 2014-05-13 then 16 random bytes, in base62."""
    stamp = int(time.time()) - _KSUID_EPOCH
    return _base62((stamp << 128) | secrets.randbits(128), 27)


def nano_id(length: Any = 21, alphabet: Any = _NANO_ALPHABET) -> str:
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise TemplateError("nanoId(): 'length' must be a positive number")
    if length > _NANO_MAX:
        raise TemplateError(f"nanoId(): 'length' must be lower than {_NANO_MAX}")
    letters = str(alphabet) or _NANO_ALPHABET
    return "".join(secrets.choice(letters) for _ in range(length))


def random_int(lower: Any = None, upper: Any = None) -> int:
    """An integer from `lower` (included) to `upper` (excluded)."""
    for name, value in (("lower", lower), ("upper", upper)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TemplateError(f"randomInt() expects an integer argument '{name}'")
    assert isinstance(lower, int) and isinstance(upper, int)
    if upper < lower:
        raise TemplateError("randomInt(): upper is less than lower")
    return lower if upper == lower else lower + secrets.randbelow(upper - lower)


def random_port() -> int:
    """A TCP port free on this machine now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _extreme(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        if not values:
            raise TemplateError(f"{name}() needs at least one value")
        try:
            return pick(values)
        except TypeError as exc:
            raise TemplateError(f"{name}(): {exc}") from None

    extreme.__name__ = name
    return extreme


def _variables(context: Context) -> dict[str, Any]:
    builtin = context.environment.globals
    return {k: v for k, v in context.get_all().items() if not callable(v) and k not in builtin}


@pass_context
def fetch_context(context: Context) -> dict[str, Any]:
    """Every variable the expression sees (`fetchContext()`, `printContext()`)."""
    return _variables(context)


@pass_context
def tasks_with_state(context: Context, state: Any = None) -> list[dict[str, Any]]:
    """The task runs in a state: `[{taskId, state}]`, with `value` inside ForEach."""
    if state is None:
        raise TemplateError("The 'tasksWithState' function expects an argument 'state'.")
    wanted = str(state).upper()
    tasks = context.get("tasks")
    found: list[dict[str, Any]] = []
    if not isinstance(tasks, Mapping):
        return found
    for task_id, details in tasks.items():
        if not isinstance(details, Mapping):
            continue
        for key, item in details.items():
            if key == "state" and not isinstance(item, Mapping):
                if str(item).upper() == wanted:
                    found.append({"taskId": task_id, "state": wanted})
            elif isinstance(item, Mapping) and str(item.get("state", "")).upper() == wanted:
                found.append({"taskId": task_id, "state": wanted, "value": key})
    return found


@pass_context
def current_each_output(context: Context, outputs: Any = None) -> Any:
    """`outputs.<task>` of the current ForEach iteration, whatever the nesting:
    `currentEachOutput(outputs.t)` is `outputs.t[parent.taskrun.value][taskrun.value]`."""
    if outputs is None:
        raise TemplateError("The 'currentEachOutput' function expects an argument 'outputs'.")
    if not isinstance(outputs, Mapping):
        raise TemplateError(
            "The 'currentEachOutput' function expects an argument 'outputs' with type map."
        )
    parents = context.get("parents") or []
    for parent in reversed(list(parents)):
        value = (parent.get("taskrun") or {}).get("value") if isinstance(parent, Mapping) else None
        if value is None:
            continue  # a parent without a value (the ForEach itself) adds no level
        if outputs.get(value) is None:
            raise TemplateError("No execution outputs for the current task runs path")
        outputs = outputs[value]
    taskrun = context.get("taskrun") or {}
    return outputs.get(taskrun.get("value")) if isinstance(taskrun, Mapping) else None


@pass_context
def file_uri(context: Context, path: Any = None) -> str:
    """The `kestra:///` URI of a namespace file of the flow's namespace (not checked)."""
    if path is None:
        raise TemplateError("The 'fileURI' function expects an argument 'path'.")
    text = str(path).lstrip("/")
    if "../" in text or text == "..":
        raise TemplateError("Path must not contain '../'")
    flow = context.get("flow") or {}
    namespace = str(flow.get("namespace", "")) if isinstance(flow, Mapping) else ""
    return f"kestra:///{namespace.replace('.', '/')}/_files/{text}"


@pass_context
def env(context: Context, name: Any = None, default: Any = None) -> Any:
    """An `ENV_`-prefixed environment variable by its short name, or `default`."""
    if name is None:
        raise TemplateError("The 'env' function expects an argument 'name'.")
    envs = context.get("envs")
    value = envs.get(str(name)) if isinstance(envs, Mapping) else None
    return default if value is None or value == "" else value


def loop_outputs(outputs: Any = None, name: Any = None) -> list[Any]:
    """Kestra's loopOutputs(): one declared output of every iteration of a Loop task, from
    its `outputs` list (None where an iteration lacks it)."""
    if outputs is None:
        raise TemplateError("The 'loopOutputs' function expects a non-null argument 'outputs'.")
    if not isinstance(outputs, list):
        raise TemplateError("The 'loopOutputs' function expects 'outputs' to be a list.")
    if name is None:
        raise TemplateError("The 'loopOutputs' function expects a non-null argument 'name'.")
    if not isinstance(name, str):
        raise TemplateError("The 'loopOutputs' function expects 'name' to be a string.")
    found: list[Any] = []
    for entry in outputs:
        iteration = entry.get("outputs") if isinstance(entry, Mapping) else None
        found.append(iteration.get(name) if isinstance(iteration, Mapping) else None)
    return found


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "uuid": uuid,
    "id": short_id,
    "ksuid": ksuid,
    "nanoId": nano_id,
    "randomInt": random_int,
    "randomPort": random_port,
    "max": _extreme(max, "max"),
    "min": _extreme(min, "min"),
    "fetchContext": fetch_context,
    "printContext": fetch_context,
    "tasksWithState": tasks_with_state,
    "currentEachOutput": current_each_output,
    "loopOutputs": loop_outputs,
    "fileURI": file_uri,
    "env": env,
}
