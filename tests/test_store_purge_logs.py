"""The store's purges behind Kestra's log.PurgeLogs and kv.PurgeKV (PurgeLogsTest,
PurgeKVTest), on SQLite and on PostgreSQL (the same tests, both implementations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from daemon.sdk.context import LEVELS
from daemon.store import Store
from daemon.store.purge import KvPurge, LogPurge
from tests.test_store import (  # noqa: F401  (pytest fixtures, by name)
    backend,
    clock,
    execution,
    make_store,
    store,
)


def line(execution_id: str, level: str, at: str, message: str) -> dict[str, Any]:
    return {
        "executionId": execution_id, "taskRunId": "t1", "taskId": "task",
        "namespace": "n", "flowId": "f", "level": level, "timestamp": at,
        "message": message, "attemptNumber": 0,
    }  # fmt: skip


async def seeded(store: Store) -> None:  # noqa: F811
    await store.save_execution(execution("a1", namespace="company.team", flow_id="a"))
    await store.save_execution(execution("a2", namespace="company.team.sub", flow_id="b"))
    await store.save_execution(execution("o1", namespace="company.teamwork", flow_id="a"))
    store.append_logs(
        [
            line("a1", "INFO", "2026-01-01T00:00:00Z", "a1 old info"),
            line("a1", "ERROR", "2026-01-01T00:00:00Z", "a1 old error"),
            line("a1", "INFO", "2026-01-03T00:00:00Z", "a1 new info"),
            line("a2", "DEBUG", "2026-01-01T00:00:00Z", "a2 old debug"),
            line("o1", "INFO", "2026-01-01T00:00:00Z", "o1 old info"),
        ]
    )
    await store.flush()


async def messages(store: Store, *ids: str) -> list[str]:  # noqa: F811
    return [m["message"] for i in ids for m in await store.logs(i)]


async def test_purge_logs_by_namespace_date_and_level(store: Store) -> None:  # noqa: F811
    """PurgeLogs' second example (keep ERROR lines), on a namespace with sub-namespaces
    ("company.team.sub" yes, "company.teamwork" no), before endDate only."""
    await seeded(store)
    levels = [LEVELS[name] for name in ("TRACE", "DEBUG", "INFO", "WARN")]
    purge = LogPurge(end="2026-01-02T00:00:00Z", levels=levels, namespace="company.team")
    assert await store.purges.logs(purge) == 2
    assert await messages(store, "a1", "a2", "o1") == [
        "a1 old error", "a1 new info", "o1 old info"
    ]  # fmt: skip


async def test_purge_logs_by_flow_execution_and_window(store: Store) -> None:  # noqa: F811
    await seeded(store)
    by_flow = LogPurge(end="2026-01-02T00:00:00Z", namespace="company.team.sub", flow_id="b")
    assert await store.purges.logs(by_flow) == 1
    window = LogPurge(end="2026-01-04T00:00:00Z", start="2026-01-02T00:00:00Z", execution_id="a1")
    assert await store.purges.logs(window) == 1
    assert await messages(store, "a1", "a2", "o1") == ["a1 old info", "a1 old error", "o1 old info"]
    everything = LogPurge(end="2027-01-01T00:00:00Z")
    assert await store.purges.logs(everything) == 3
    assert await messages(store, "a1", "a2", "o1") == []
    assert await store.get_execution("a1") is not None  # the executions stay


async def test_purge_kv_by_namespace_pattern_and_expiry(store: Store) -> None:  # noqa: F811
    """The store's KV purge behind Kestra's PurgeKV (PurgeKVTest): expired pairs only by
    default; namespaces with children, a namespace glob, a key glob."""
    now = datetime(2026, 1, 2, tzinfo=UTC)
    past, future = "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"
    for ns, key, expires in [
        ("company", "old", past), ("company.team", "old", past), ("company.team", "live", None),
        ("company.team", "later", future), ("other", "old", past), ("ai_x", "k1", None),
    ]:  # fmt: skip
        await store.kv.set(ns, key, 1, expires_at=expires)
    only_team = KvPurge(now=now, namespaces=["company.team"])
    assert await store.kv.purge(only_team) == 1
    assert await store.kv.purge(KvPurge(now=now, namespaces=["company"])) == 1  # child gone
    assert await store.kv.purge(KvPurge(now=now)) == 1  # "other"
    globbed = KvPurge(now=now, namespace_glob="ai_*", key_glob="k?", expired_only=False)
    assert await store.kv.purge(globbed) == 1
    assert [e["key"] for e in await store.kv.list("company.team")] == ["later", "live"]
    alone = KvPurge(now=now, namespaces=["company"], include_children=False, expired_only=False)
    assert await store.kv.purge(alone) == 0
