"""Key-value tasks: Set, Put, Get, GetKeys, Delete and PurgeKV on the store's namespace KV.

The `kv()` expression function reads the same pairs. Values are stored as JSON: a typed
value (`kvType`) is checked and converted here, so a bad NUMBER fails the Set task rather
than every flow that later reads it.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.durations import Duration, format_duration, parse_duration
from daemon.sdk.errors import TaskFailed
from daemon.sdk.maps import deep_merge
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, Model
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


class GetKeys(Task):
    """The keys of a namespace (the flow's by default), those starting with `prefix` when
    given, as `outputs.<id>.keys`."""

    types = ("io.kestra.plugin.core.kv.GetKeys",)

    prefix: Annotated[str | None, Dynamic] = None
    namespace: Annotated[str | None, Dynamic] = None

    async def run(self, ctx: RunContext) -> Output:
        namespace = self.namespace or ctx.execution.namespace
        prefix = self.prefix or ""
        entries = await ctx.kv.list(namespace)
        return {"keys": [e["key"] for e in entries if str(e["key"]).startswith(prefix)]}


class Put(Task):
    """Update a key, keeping what is there: a map is deep-merged into the stored map; a list
    of `{key, value}` entries sets those fields (dotted keys reach nested ones); a single
    `[{value: ...}]` or any other value replaces it. The expiry stays as it was."""

    types = ("io.kestra.plugin.core.kv.Put",)

    key: Annotated[str, Dynamic]
    value: Annotated[Any, Dynamic]
    namespace: Annotated[str | None, Dynamic] = None
    error_on_missing: Annotated[bool, Dynamic] = False

    async def run(self, ctx: RunContext) -> Output:
        namespace = self.namespace or ctx.execution.namespace
        found, current = await ctx.kv.get(namespace, self.key)
        if not found and self.error_on_missing:
            raise TaskFailed(_missing(self.key, namespace))
        try:
            merged = _put_value(current, self.value)
        except ValueError as exc:
            raise TaskFailed(str(exc), non_retryable=True) from None
        expires_at = None
        if found:
            entry = next((e for e in await ctx.kv.list(namespace) if e["key"] == self.key), {})
            expires = entry.get("expiresAt")
            expires_at = datetime.fromisoformat(expires) if isinstance(expires, str) else expires
        await ctx.kv.set(namespace, self.key, merged, expires_at=expires_at)
        return None


def _put_value(current: Any, new: Any) -> Any:
    if isinstance(new, list) and new and all(_is_entry(item) for item in new):
        return _put_entries(current, new)
    if isinstance(current, dict) and isinstance(new, dict):
        return deep_merge(current, new)
    return new


def _is_entry(item: Any) -> bool:
    return isinstance(item, dict) and "value" in item and set(item) <= {"key", "value"}


def _put_entries(current: Any, entries: list[dict[str, Any]]) -> Any:
    keyed = [entry for entry in entries if "key" in entry]
    if len(keyed) < len(entries):
        if len(entries) > 1:
            raise ValueError("`value` entries without `key` can only be used as a single item")
        return entries[0]["value"]
    updates: dict[str, Any] = {}
    for entry in keyed:
        key = entry["key"]
        if not isinstance(key, str) or not key.strip():
            raise ValueError("each keyed `value` entry must have a non-empty string `key`")
        node = updates
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = entry["value"]
    if current is None:
        return updates
    if not isinstance(current, dict):
        raise ValueError("cannot apply keyed `value` updates to a stored value that is not a map")
    return deep_merge(current, updates)


class PurgeBehavior(Model):
    """Kestra's `behavior`: `type: key` (the only one open-source Kestra has), expired keys
    only by default."""

    type: Literal["key", "KEY"] = "key"
    expired_only: bool = True


class PurgeKV(Task):
    """Delete KV pairs of `namespaces` (with their children by default) or matching
    `namespacePattern` (a glob; all namespaces when neither), whose key matches
    `keyPattern`; only the expired ones unless `behavior.expiredOnly` is false.
    `outputs.<id>.size` is how many went."""

    types = ("io.kestra.plugin.core.kv.PurgeKV",)

    key_pattern: Annotated[str | None, Dynamic] = None
    namespaces: Annotated[list[str] | None, Dynamic] = None
    namespace_pattern: Annotated[str | None, Dynamic] = None
    behavior: Annotated[PurgeBehavior, Dynamic] = Field(default_factory=PurgeBehavior)
    include_child_namespaces: Annotated[bool, Dynamic] = True
    # Deprecated in Kestra 1.1 (use behavior.expiredOnly); when set it wins, as there.
    expired_only: Annotated[bool | None, Dynamic] = None

    @model_validator(mode="after")
    def _one_namespace_filter(self) -> PurgeKV:
        if self.namespaces is not None and self.namespace_pattern is not None:
            raise ValueError("use namespaces or namespacePattern, not both")
        return self

    async def run(self, ctx: RunContext) -> Output:
        expired_only = (
            self.expired_only if self.expired_only is not None else self.behavior.expired_only
        )
        size = await ctx.kv.purge(
            namespaces=self.namespaces,
            include_children=self.include_child_namespaces,
            namespace_glob=self.namespace_pattern,
            key_glob=self.key_pattern,
            expired_only=expired_only,
        )
        ctx.logger.info(f"purged {size} keys")
        return {"size": size}


def _missing(key: str, namespace: str) -> str:
    return (
        f"No value found for key '{key}' in namespace '{namespace}' and `errorOnMissing` "
        "is set to true"
    )
