"""Merging JSON-like maps, shared by plug-ins (execution variables, KV values, the Flow
trigger's upstream outputs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` on top: maps merge key by key, anything else (lists included) is
    replaced by `over`'s value. (Plugin defaults merge lists too: daemon.flows.defaults.)"""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
