"""Key-value tasks: Set, Get and Delete on the store's namespace-scoped KV.

The `kv()` expression function reads the same pairs. Values are stored as JSON: a typed
value (`kvType`) is checked and converted here, so a bad NUMBER fails the Set task rather
than every flow that later reads it.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration, format_duration, parse_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic
from daemon.sdk.state import iso

KvType = Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"]


def typed_value(value: Any, kv_type: KvType | None) -> Any:
    """The JSON value stored for `value` read as `kv_type` (dates and durations as ISO text)."""
    if kv_type is None or not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kv_type == "NUMBER":
            number = json.loads(text)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError
            return number
        if kv_type == "BOOLEAN":
            return {"true": True, "false": False}[text.lower()]
        if kv_type == "DATETIME":
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise ValueError
            return iso(moment)
        if kv_type == "DATE":
            return date.fromisoformat(text).isoformat()
        if kv_type == "DURATION":
            return format_duration(parse_duration(text))
        if kv_type == "JSON":
            return json.loads(text)
    except (ValueError, KeyError):
        raise TaskFailed(
            f"value '{value}' is not a valid {kv_type}{_EXPECTED[kv_type]}", non_retryable=True
        ) from None
    return value


_EXPECTED = {
    "NUMBER": " (expected e.g. 42 or 3.14)",
    "BOOLEAN": " (expected true or false)",
    "DATETIME": " (expected an ISO-8601 date-time with an offset, e.g. 2024-01-31T10:00:00Z)",
    "DATE": " (expected an ISO-8601 date, e.g. 2024-01-31)",
    "DURATION": " (expected an ISO-8601 duration, e.g. PT5M)",
    "JSON": " (expected JSON text)",
    "STRING": "",
}


class Set(Task):
    """Store a value under a key of a namespace (the flow's by default), optionally expiring."""

    types = ("io.kestra.plugin.core.kv.Set",)

    key: Annotated[str, Dynamic]
    value: Annotated[Any, Dynamic]
    namespace: Annotated[str | None, Dynamic] = None
    overwrite: Annotated[bool, Dynamic] = True
    ttl: Annotated[Duration | None, Dynamic] = None
    kv_type: Annotated[KvType | None, Dynamic] = None
    # The store keeps no descriptions; accepted so that Kestra flows that set one load.
    kv_description: Annotated[str | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        namespace = self.namespace or ctx.execution.namespace
        value = typed_value(self.value, self.kv_type)
        if not self.overwrite:
            found, _ = await ctx.kv.get(namespace, self.key)
            if found:
                raise TaskFailed(
                    f"Cannot set value for key '{self.key}' in namespace "
                    f"'{namespace}': it already exists and `overwrite` is false"
                )
        expires_at = ctx.clock.now() + self.ttl if self.ttl is not None else None
        await ctx.kv.set(namespace, self.key, value, expires_at=expires_at)
        return None


class Get(Task):
    """Read a key's value into `outputs.<id>.value` (null when missing, unless told to fail)."""

    types = ("io.kestra.plugin.core.kv.Get",)

    key: Annotated[str, Dynamic]
    namespace: Annotated[str | None, Dynamic] = None
    error_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        namespace = self.namespace or ctx.execution.namespace
        found, value = await ctx.kv.get(namespace, self.key)
        if not found and self.error_on_missing:
            raise TaskFailed(_missing(self.key, namespace))
        return {"value": value}


class Delete(Task):
    """Remove a key; `outputs.<id>.deleted` tells whether it was there."""

    types = ("io.kestra.plugin.core.kv.Delete",)

    key: Annotated[str, Dynamic]
    namespace: Annotated[str | None, Dynamic] = None
    error_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        namespace = self.namespace or ctx.execution.namespace
        deleted = await ctx.kv.delete(namespace, self.key)
        if not deleted and self.error_on_missing:
            raise TaskFailed(_missing(self.key, namespace))
        return {"deleted": deleted}


def _missing(key: str, namespace: str) -> str:
    return (
        f"No value found for key '{key}' in namespace '{namespace}' and `errorOnMissing` "
        "is set to true"
    )
