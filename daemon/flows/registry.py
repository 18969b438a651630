"""The one registry that maps `type:` strings to task and trigger classes.

Plug-ins are found through the `podium.plugins` entry-point group: podium's own
tasks and triggers are registered by its pyproject.toml exactly as a separately
installed package registers its own. Each entry point names a module; every task,
trigger and condition class it defines is registered under the type strings the
class declares. Plug-in modules import heavy libraries lazily, inside `run`, so that
loading the registry stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

from daemon.flows import plugin_index
from daemon.sdk.context import StartupContext
from daemon.sdk.plugin import Condition, Task, Trigger

log = logging.getLogger(__name__)

P = TypeVar("P", Task, Trigger, Condition)


class UnknownType(LookupError):
    """An unknown `type:`; the message lists the closest registered names."""


def _tail(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


class Registry(Generic[P]):
    """`type:` string -> plug-in class, for one kind of plug-in."""

    def __init__(self, kind: str, load_module: Callable[[str], None] | None = None) -> None:
        self.kind = kind
        self._by_type: dict[str, type[P]] = {}
        self._canonical: set[str] = set()
        # Types known from the plug-in index whose module is not imported yet.
        self._lazy: dict[str, str] = {}
        self._load_module = load_module

    def register(self, cls: type[P]) -> type[P]:
        if not cls.types:
            raise ValueError(f"{cls.__qualname__} declares no types")
        for name in cls.types:
            other = self._by_type.get(name)
            if other is not None and other is not cls:
                raise ValueError(
                    f"{self.kind} type {name!r} is registered twice: "
                    f"{other.__module__}.{other.__qualname__} and "
                    f"{cls.__module__}.{cls.__qualname__}"
                )
            self._by_type[name] = cls
        self._canonical.add(cls.types[0])
        return cls

    def defer(self, name: str, module: str, canonical: bool) -> None:
        """Know `name` as defined by `module`, imported the first time it is asked for."""
        self._lazy[name] = module
        if canonical:
            self._canonical.add(name)

    def loaded(self, module: str) -> None:
        self._lazy = {name: mod for name, mod in self._lazy.items() if mod != module}

    def get(self, name: str) -> type[P]:
        module = self._lazy.get(name)
        if module is not None and self._load_module is not None:
            self._load_module(module)
        try:
            return self._by_type[name]
        except KeyError:
            raise UnknownType(self._unknown_message(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_type or name in self._lazy

    def names(self) -> list[str]:
        return sorted({*self._by_type, *self._lazy})

    def classes(self, *, loaded_only: bool = False) -> list[type[P]]:
        """Every registered class once, by its canonical (first) type name (with
        `loaded_only`, not importing the modules of types known from the index only)."""
        if self._load_module is not None and not loaded_only:
            for module in sorted(set(self._lazy.values())):
                self._load_module(module)
        unique = {id(cls): cls for cls in self._by_type.values()}
        return sorted(unique.values(), key=lambda cls: cls.types[0])

    def suggest(self, name: str) -> list[str]:
        """Closest valid names: by the whole string, then by the last dotted segment."""
        names = sorted(self._canonical)
        tail = _tail(name)
        exact: list[str] = [c for c in names if _tail(c) == tail]
        similar: list[str] = [
            c
            for c in difflib.get_close_matches(name, names, n=5, cutoff=0.75)
            if _similar(_tail(c), tail) >= 0.6
        ]
        by_tail: list[str] = [c for c in names if _similar(_tail(c), tail) >= 0.8]
        return list(dict.fromkeys([*exact, *similar, *by_tail]))[:3]

    def _unknown_message(self, name: str) -> str:
        close = self.suggest(name)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"unknown {self.kind} type '{name}'{hint}"


class Plugins:
    """The task and trigger registries podium runs with."""

    def __init__(self) -> None:
        self.tasks: Registry[Task] = Registry("task", self._import)
        self.triggers: Registry[Trigger] = Registry("trigger", self._import)
        self.conditions: Registry[Condition] = Registry("condition", self._import)
        # `async def on_daemon_start(ctx: StartupContext)` of plug-in modules: clean-up
        # after a crash.
        self.startup_hooks: list[Callable[[StartupContext], Awaitable[None]]] = []
        # Entry points that failed to load: their types are unknown, and the reason is kept
        # for the messages that would otherwise only say "unknown type".
        self.failed: dict[str, str] = {}
        self._hook_modules: tuple[str, ...] = ()
        self._imported: set[str] = set()  # modules imported on demand, once each
        self._import_lock = threading.RLock()

    @classmethod
    def from_index(
        cls,
        index: plugin_index.Index,
        canonical: plugin_index.Index,
        hooks: Sequence[str] = (),
    ) -> Plugins:
        """Plug-ins known by name only; a module is imported when one of its types is
        first asked for (a one-shot `podium run` imports just what its flow uses, a
        `podium serve` what its flows use). `hooks` names the modules with an
        `on_daemon_start` hook: `import_hooks` imports them."""
        plugins = cls()
        for registry in plugins._registries():
            names = canonical[registry.kind]
            for name, module in index[registry.kind].items():
                registry.defer(name, module, name in names)
        plugins._hook_modules = tuple(hooks)
        return plugins

    def index(self) -> tuple[plugin_index.Index, plugin_index.Index, list[str]]:
        """(kind -> type -> module, kind -> canonical types, modules with a start-up hook)
        of every plug-in (all are loaded first)."""
        types: plugin_index.Index = {}
        canonical: plugin_index.Index = {}
        for registry in self._registries():
            classes = registry.classes()
            types[registry.kind] = {n: c.__module__ for c in classes for n in c.types}
            canonical[registry.kind] = {c.types[0]: c.__module__ for c in classes}
        hooks = sorted({hook.__module__ for hook in self.startup_hooks})
        return types, canonical, hooks

    def import_hooks(self) -> None:
        """Import the indexed modules that have an `on_daemon_start` hook (clean-up after a
        crash must run whether or not a flow uses the module's types)."""
        for module in self._hook_modules:
            self._import(module)

    def load_all(self) -> None:
        for registry in self._registries():
            registry.classes()

    def _registries(self) -> tuple[Registry[Any], ...]:
        return (self.tasks, self.triggers, self.conditions)

    def _import(self, name: str) -> None:
        with self._import_lock:  # flows load on threads: two may ask for one module
            if name in self._imported:
                return
            self._imported.add(name)
            self._import_once(name)

    def _import_once(self, name: str) -> None:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            log.error("plug-in module %s does not load: %s", name, exc)
            self.failed[name] = f"{type(exc).__name__}: {exc}"
            module = None
        for registry in self._registries():
            registry.loaded(name)
        if module is not None:
            self.add_module(module)

    def add_module(self, module: ModuleType) -> None:
        """Register every plug-in class a module defines (not ones it imports), and its
        `on_daemon_start` hook if it has one."""
        hook = getattr(module, "on_daemon_start", None)
        if callable(hook):
            self.startup_hooks.append(hook)
        for value in vars(module).values():
            if not isinstance(value, type) or value.__module__ != module.__name__:
                continue
            if issubclass(value, Task) and value.types:
                self.tasks.register(value)
            elif issubclass(value, Trigger) and value.types:
                self.triggers.register(value)
            elif issubclass(value, Condition) and value.types:
                self.conditions.register(value)


GROUP = "podium.plugins"


def plugin_entry_points() -> list[metadata.EntryPoint]:
    """Every entry point of the `podium.plugins` group, in a stable order."""
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: (ep.name, ep.value))


@cache
def default_plugins() -> Plugins:
    """Every installed plug-in (entry points of the `podium.plugins` group), loaded once.

    One that fails to import is logged and left out; a type registered twice (by two
    packages) is an error: which one a flow would get must never be a guess.
    """
    plugins = Plugins()
    for entry in plugin_entry_points():
        source = entry.dist.name if entry.dist is not None else "?"
        try:
            module = entry.load()
        except Exception as exc:
            log.error(
                "plug-in %s (%s, from %s) does not load: %s", entry.name, entry.value, source, exc
            )
            plugins.failed[entry.value] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(module, ModuleType):
            raise TypeError(
                f"entry point {entry.name} of {GROUP} ({source}) must name a module, not "
                f"{entry.value}"
            )
        plugins.add_module(module)
    if not plugins.tasks.names():
        log.error(
            "no task plug-ins are installed: install podium itself (pip install -e .) so "
            "that its %s entry points are registered",
            GROUP,
        )
    return plugins


def indexed_plugins() -> Plugins:
    """The plug-ins, imported on first use when the index of a previous full load still
    matches what is installed, else loaded in full (and indexed)."""
    entries = plugin_entry_points()
    stamp = plugin_index.fingerprint(entries)
    path = plugin_index.index_file()
    if stamp is not None:
        found = plugin_index.read(path, stamp)
        if found is not None:
            return Plugins.from_index(*found)
    plugins = default_plugins()
    if stamp is not None and not plugins.failed:
        plugin_index.write(path, stamp, *plugins.index())
    return plugins


def run_plugins() -> Plugins:
    """The plug-ins of a one-shot `podium run`: only what its flow uses is imported."""
    return indexed_plugins()


def serve_plugins() -> Plugins:
    """The plug-ins of `podium serve`: what its flows use, imported as they load, plus
    every module with a start-up hook. A full load costs ~0.4 s of every start."""
    plugins = indexed_plugins()
    plugins.import_hooks()
    return plugins
