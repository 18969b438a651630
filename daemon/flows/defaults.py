"""pluginDefaults: the values a plug-in mapping of a flow gets before it is built.

As Kestra's PluginDefaultService. Defaults come from the flow's `pluginDefaults`, then
the daemon's `plugin-defaults` setting (Kestra's global `kestra.plugins.defaults`); each
is either type-matched (every plug-in whose type is, or starts with, its `type`) or named
(`ref:`), applied only to a plug-in that asks for it with `pluginDefaultsRef: <ref>`.

For one plug-in:
- without `pluginDefaultsRef`: the non-forced type-matched defaults fill what it does not
  set (the flow's before the global ones), then the forced ones override (the global
  ones last, so that enforcement cannot be undone by a flow);
- with `pluginDefaultsRef`: the non-forced type-matched defaults are skipped; a forced
  type-matched default takes over entirely (the named one is ignored); otherwise the
  named default applies, filling (or, when forced, overriding) the plug-in's values.
A name given by several defaults resolves to one of them: a forced one over a non-forced
one, the global forced one over the flow's, the flow's non-forced one over the global's;
it applies to the types all of them declare. A name that resolves to nothing, or to a
default for another type, is an error at load (Kestra refuses it when the flow is saved).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from daemon.flows.definition import Path, PluginDefault
from daemon.flows.registry import Plugins

log = logging.getLogger(__name__)

REF = "pluginDefaultsRef"


@dataclass(frozen=True)
class _Default:
    default: PluginDefault
    types: tuple[str, ...]  # its `type` and, for an older name of a plug-in, the current one


def deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Kestra's MapUtils.deepMerge: `b` wins, mappings merge key by key, lists add the
    items of `b` that `a` lacks, a null in `b` keeps `a`'s value. A typed part replaced
    by one of another type (a Docker `taskRunner` by a Process one) is replaced whole:
    Kestra then ignores the other type's properties, podium refuses unknown ones."""
    out = dict(a)
    for key, theirs in b.items():
        mine = out.get(key)
        if theirs is None and key in out:
            continue
        if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
            retyped = "type" in mine and "type" in theirs and mine["type"] != theirs["type"]
            out[key] = dict(theirs) if retyped else deep_merge(mine, theirs)
        elif isinstance(mine, list) and isinstance(theirs, list):
            out[key] = [*mine, *(item for item in theirs if item not in mine)]
        else:
            out[key] = theirs
    return out


class PluginDefaults:
    """The defaults of one flow (its own, then the global ones), ready to apply."""

    def __init__(
        self,
        flow: Sequence[PluginDefault],
        global_: Sequence[PluginDefault] = (),
        canonical: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        def known(default: PluginDefault) -> _Default:
            current = canonical(default.type)
            if current is None or current == default.type:
                return _Default(default, (default.type,))
            return _Default(default, (default.type, current))

        everything = [known(d) for d in [*flow, *global_]]  # most important first
        self._typed = [d for d in everything if d.default.ref is None]
        self._named: dict[str, tuple[PluginDefault, tuple[str, ...]]] = {}
        by_ref: dict[str, list[_Default]] = {}
        for d in everything:
            if d.default.ref is not None:
                by_ref.setdefault(d.default.ref, []).append(d)
        for ref, candidates in by_ref.items():
            forced = [d for d in candidates if d.default.forced]
            winner = forced[-1] if forced else candidates[0]
            types = tuple(dict.fromkeys(t for d in candidates for t in d.types))
            self._named[ref] = (winner.default, types)

    def __bool__(self) -> bool:
        return bool(self._typed or self._named)

    def apply(
        self, canonical: str, written: str, data: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
        """`data` (a copy the caller owns) with its defaults, and the problems of its
        `pluginDefaultsRef` (and of those of its typed parts, a script task's
        `taskRunner`), as (path inside `data`, message)."""
        names = (written, canonical)
        typed = [d.default for d in self._typed if _fits(names, d.types)]
        forced = [d for d in typed if d.forced]
        problems: list[tuple[Path, str]] = []
        if REF not in data:
            for default in typed:
                if not default.forced:
                    data = deep_merge(default.values, data)
        else:
            ref = data.pop(REF)
            named = self._resolve(ref, names, problems)
            if named is not None and forced:
                log.warning(
                    "a forced pluginDefaults for type %s is enforced on a plug-in declaring "
                    "pluginDefaultsRef %r; the referenced plugin-defaults is ignored",
                    written,
                    ref,
                )
            elif named is not None:
                forcing = named.forced
                data = deep_merge(data, named.values) if forcing else deep_merge(named.values, data)
        for default in forced:
            data = deep_merge(data, default.values)
        for key, value in data.items():
            inner = value.get("type") if isinstance(value, dict) else None
            if isinstance(inner, str):  # a plug-in's own typed part: its type as written
                data[key], found = self.apply(inner, inner, dict(value))
                problems += [((key, *path), message) for path, message in found]
        return data, problems

    def _resolve(
        self, ref: Any, names: tuple[str, str], problems: list[tuple[Path, str]]
    ) -> PluginDefault | None:
        if not isinstance(ref, str) or not ref:
            problems.append(
                ((REF,), f"pluginDefaultsRef must name a plugin-defaults ref, not {ref!r}")
            )
            return None
        found = self._named.get(ref)
        if found is None:
            known = ", ".join(sorted(self._named)) or "none"
            problems.append(
                (
                    (REF,),
                    f"No plugin-defaults exists for pluginDefaultsRef: '{ref}' (refs declared "
                    f"in the flow's pluginDefaults and the plugin-defaults setting: {known})",
                )
            )
            return None
        default, types = found
        if not _fits(names, types):
            problems.append(
                (
                    (REF,),
                    f"the plugin-defaults '{ref}' is declared for type {' or '.join(types)}, "
                    f"not for this plug-in's type {names[0]}",
                )
            )
            return None
        return default


def _fits(names: Iterable[str], types: Iterable[str]) -> bool:
    """A plug-in's type (as written or its current name) equals or starts with one of
    the types a default declares."""
    return any(name.startswith(prefix) for name in names for prefix in types)


def current_names(plugins: Plugins) -> Callable[[str], str | None]:
    """The current name of a registered plug-in type (none for a prefix or an unknown
    name): a default written with an older name applies to plug-ins written with the
    current one (Kestra's addAliases)."""

    def current(name: str) -> str | None:
        for registry in (plugins.tasks, plugins.triggers, plugins.conditions):
            if name in registry:
                return str(registry.get(name).types[0])
        return None

    return current


def has_ref(raw: Mapping[str, Any]) -> bool:
    """A `pluginDefaultsRef` in a plug-in mapping or in one of its typed parts."""
    return REF in raw or any(isinstance(v, Mapping) and REF in v for v in raw.values())


def global_defaults(items: Sequence[Any]) -> list[PluginDefault]:
    """The `plugin-defaults` setting as defaults; ValueError naming every bad entry."""
    out: list[PluginDefault] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            out.append(PluginDefault.model_validate(item))
        except ValidationError as exc:
            problems += [
                f"plugin-defaults[{i}]"
                + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in e["loc"])
                + f": {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
    if problems:
        raise ValueError("; ".join(problems))
    return out
