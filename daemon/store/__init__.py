"""Where executions live: pick the backend from a path or URL."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.sdk.clock import Clock
from daemon.store.base import Store, StoreError
from daemon.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "StoreError", "open_store"]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def open_store(url_or_path: str | os.PathLike[str], *, clock: Clock | None = None) -> Store:
    """The store for a `--store` setting; not yet opened (use `async with` or `open()`).

    A postgresql:// (or postgres://) URL is a shared PostgreSQL database. A path ending
    in .db/.sqlite/.sqlite3 (or a `sqlite:///` URL) is the database file itself; any
    other path is a data directory holding `podium.db`.
    """
    text = os.fspath(url_or_path)
    if text.startswith(("postgres://", "postgresql://")):
        # imported here: asyncpg is only loaded by daemons that use it
        from daemon.store.postgres import PostgresStore

        return PostgresStore(text, clock=clock)
    if text.startswith("sqlite://"):
        return SqliteStore(Path(text.removeprefix("sqlite://")), clock=clock)
    path = Path(text)
    if path.suffix.lower() not in _SQLITE_SUFFIXES:
        path = path / "podium.db"
    return SqliteStore(path, clock=clock)
