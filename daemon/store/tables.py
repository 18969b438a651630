"""The interfaces of the store's small tables: a flow's revisions, Kestra's KV pairs by
namespace, and the daemon's own durable state by key with its exactly-once claims. Each
store implements them next to its queries (`daemon.store.sqlite`, `daemon.store.postgres`,
`daemon.store.postgres_tables`)."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.store.purge import KvPurge


class RevisionTable(ABC):
    """Every revision of a flow (the store's `flows` rows), beside its latest."""

    @abstractmethod
    async def list(
        self, namespace: str, flow_id: str, *, deleted: bool = False
    ) -> list[tuple[int, str]]:
        """(revision, source) of each revision, oldest first; with `deleted`, those marked
        deleted too (a deleted flow's last one, revisions deleted one by one)."""

    @abstractmethod
    async def delete(self, namespace: str, flow_id: str, revisions: Sequence[int]) -> None:
        """Mark these revisions deleted (Kestra's deleteRevisions): left out of the list but
        readable by number, for the executions that ran them. The latest one among them
        deletes the flow. Numbers the flow does not have are ignored."""


class KeyValueTable(ABC):
    """Kestra's KV store, scoped by namespace."""

    @abstractmethod
    async def set(
        self, namespace: str, key: str, value: Any, *, expires_at: str | None = None
    ) -> None:
        """Store any JSON value, None included; past `expires_at` the key reads as missing."""

    @abstractmethod
    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """(found, value): a tuple because None is a value a flow may store."""

    @abstractmethod
    async def delete(self, namespace: str, key: str) -> bool:
        """True if a live (unexpired) key was there."""

    @abstractmethod
    async def list(self, namespace: str) -> list[dict[str, Any]]:
        """Live keys by name: key, value, expiresAt, updated."""

    @abstractmethod
    async def entries(self) -> builtins.list[dict[str, Any]]:
        """Live keys of every namespace, by namespace then key: namespace, key, value,
        expiresAt, updated (Kestra's listing of all keys, `GET /api/v1/kv`)."""

    @abstractmethod
    async def purge(self, purge: KvPurge) -> int:
        """Delete the pairs `purge` selects; how many went (Kestra's PurgeKV)."""


class StateTable(ABC):
    """Small durable state by key (triggers' markers), and exactly-once claims."""

    @abstractmethod
    async def get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def set(self, key: str, value: dict[str, Any]) -> None: ...

    @abstractmethod
    async def claim(self, key: str) -> bool:
        """True for the first caller ever, across restarts; committed before it returns."""

    @abstractmethod
    async def claimed(self, key: str) -> bool:
        """Whether `key` was claimed (read only)."""
