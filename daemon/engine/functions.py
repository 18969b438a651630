"""Expression functions that need the daemon's services: `read()`, `secret()` and `kv()`.

`read` and `kv` do I/O: templates that call them are rendered off the event loop (see
`BLOCKING_FUNCTIONS`), and `kv` hops back into the loop for the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from daemon.engine.secrets import SecretStore
from daemon.store.base import Store
from daemon.store.local_files import Storage

# Templates calling these are rendered in a thread: they would block the loop.
BLOCKING_FUNCTIONS = ("read(", "kv(")
KV_TIMEOUT = 30.0  # seconds a kv() call waits for the store


class ServiceFunctions:
    """Builds the function table a template renders with, for one namespace (or none)."""

    def __init__(
        self,
        storage: Storage,
        secrets: SecretStore,
        store: Store,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._storage = storage
        self._secrets = secrets
        self._store = store
        self._loop = loop
        self._none = self._build(None)

    def table(self, namespace: str | None) -> dict[str, Callable[..., Any]]:
        return self._none if namespace is None else self._build(namespace)

    def _build(self, default_namespace: str | None) -> dict[str, Callable[..., Any]]:
        loop, store = self._loop, self._store

        def kv(key: str, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
            target = namespace or default_namespace
            if target is None:
                raise ValueError("kv() needs a namespace here")
            if loop is None:
                raise RuntimeError("kv() needs the daemon's event loop")
            found, value = asyncio.run_coroutine_threadsafe(
                store.kv.get(target, str(key)), loop
            ).result(timeout=KV_TIMEOUT)
            if not found and errorOnMissing:
                raise KeyError(f"no KV pair '{key}' in namespace {target}")
            return value

        def read(uri: str) -> str:
            return self._storage.read_text(str(uri))

        return {"read": read, "secret": self._secrets.secret, "kv": kv}
