"""The one registry that maps `type:` strings to task and trigger classes.

Plug-ins are found by walking the `tasks` and `triggers` packages once; each
class declares its own type strings. Plug-in modules import heavy libraries
lazily, inside `run`, so that loading the registry stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Iterator
from functools import cache
from types import ModuleType
from typing import Any, Generic, TypeVar

from daemon.sdk.plugin import Condition, Task, Trigger

P = TypeVar("P", Task, Trigger, Condition)


class UnknownType(LookupError):
    """An unknown `type:`; the message lists the closest registered names."""


def _tail(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


class Registry(Generic[P]):
    """`type:` string -> plug-in class, for one kind of plug-in."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_type: dict[str, type[P]] = {}
        self._canonical: set[str] = set()

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

    def get(self, name: str) -> type[P]:
        try:
            return self._by_type[name]
        except KeyError:
            raise UnknownType(self._unknown_message(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_type

    def names(self) -> list[str]:
        return sorted(self._by_type)

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
        self.tasks: Registry[Task] = Registry("task")
        self.triggers: Registry[Trigger] = Registry("trigger")
        self.conditions: Registry[Condition] = Registry("condition")
        # `async def on_daemon_start(runtime)` of plug-in modules: clean-up after a crash.
        self.startup_hooks: list[Callable[[Any], Awaitable[None]]] = []

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


def _modules(package: str) -> Iterator[ModuleType]:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        yield importlib.import_module(info.name)


@cache
def default_plugins() -> Plugins:
    """Every plug-in shipped in the `tasks` and `triggers` packages, loaded once."""
    plugins = Plugins()
    for package in ("tasks", "triggers"):
        for module in _modules(package):
            plugins.add_module(module)
    return plugins
