"""What the store gives Kestra's KV and log endpoints beyond one namespace or execution: every
live key of every namespace (KVController.listAllKeys), and log lines deleted by task,
task run, attempt, level or trigger (LogController.deleteLogsFromExecution /
deleteLogsFromFlow), on SQLite and on PostgreSQL (the same tests, both implementations)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from daemon.sdk.clock import FakeClock
from daemon.sdk.context import LEVELS
from daemon.sdk.state import iso
from daemon.store import Store
from daemon.store.purge import LogPurge
from tests.test_store import (  # noqa: F401  (pytest fixtures, by name)
    backend,
    clock,
    execution,
    make_store,
    store,
)


async def test_kv_entries_list_every_live_key_by_namespace_then_key(
    store: Store,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    """KVControllerTest.listAllKeys: keys of every namespace, an expired one left out."""
    await store.kv.set("b.ns", "z", {"a": 1})
    await store.kv.set("a", "k", 2, expires_at=iso(clock.now() + timedelta(seconds=10)))
    await store.kv.set("a", "B", "text")
    await store.kv.set("a", "gone", 1, expires_at=iso(clock.now() + timedelta(seconds=5)))
    await clock.advance(5)
    found = await store.kv.entries()
    assert [(e["namespace"], e["key"], e["value"]) for e in found] == [
        ("a", "B", "text"),
        ("a", "k", 2),
        ("b.ns", "z", {"a": 1}),
    ]
    assert found[0]["expiresAt"] is None
    assert found[1]["expiresAt"].startswith("2026-01-01T00:00:10")
    assert all(e["updated"] is not None for e in found)
    assert await store.kv.entries() == found  # reading changes nothing
    await store.kv.delete("b.ns", "z")
    assert [e["key"] for e in await store.kv.entries()] == ["B", "k"]


def line(execution_id: str, task: str, run: str, attempt: int, level: str, message: str) -> Any:
    return {
        "executionId": execution_id, "taskId": task, "taskRunId": run,
        "attemptNumber": attempt, "level": level, "message": message,
        "timestamp": "2026-01-01T00:00:00Z",
    }  # fmt: skip


async def seeded(store: Store) -> None:  # noqa: F811
    await store.save_execution(execution("e1", namespace="company.team", flow_id="a"))
    await store.save_execution(execution("e2", namespace="company.team", flow_id="b"))
    await store.save_execution(execution("e3", namespace="company.team.sub", flow_id="a"))
    store.append_logs(
        [
            line("e1", "t1", "r1", 0, "INFO", "e1 t1 first info"),
            line("e1", "t1", "r1", 1, "ERROR", "e1 t1 second error"),
            line("e1", "t2", "r2", 0, "DEBUG", "e1 t2 debug"),
            line("e1", "t2", "r2", 0, "WARN", "e1 t2 warn"),
            {**line("e2", "t1", "r3", 0, "INFO", "e2 from trigger"), "triggerId": "hook"},
            line("e2", "t1", "r3", 0, "INFO", "e2 info"),
            line("e3", "t1", "r4", 0, "INFO", "e3 info"),
        ]
    )
    await store.flush()


async def messages(store: Store) -> list[str]:  # noqa: F811
    return [m["message"] for i in ("e1", "e2", "e3") for m in await store.logs(i)]


async def test_log_lines_deleted_by_task_attempt_and_level(store: Store) -> None:  # noqa: F811
    """LogController.deleteLogsFromExecution: taskId, taskRunId, attempt and minLevel narrow
    which lines of the execution go (all of them together)."""
    await seeded(store)
    assert await store.purges.logs(LogPurge(execution_id="e1", task_id="t1", attempt=1)) == 1
    assert "e1 t1 second error" not in await messages(store)
    at_least_warn = [n for n in LEVELS.values() if n >= LEVELS["WARN"]]
    purge = LogPurge(execution_id="e1", task_run_id="r2", levels=at_least_warn)
    assert await store.purges.logs(purge) == 1
    assert await messages(store) == [
        "e1 t1 first info", "e1 t2 debug", "e2 from trigger", "e2 info", "e3 info"
    ]  # fmt: skip
    assert await store.purges.logs(LogPurge(execution_id="e1", attempt=7)) == 0
    assert await store.purges.logs(LogPurge(execution_id="e1")) == 2
    assert await messages(store) == ["e2 from trigger", "e2 info", "e3 info"]


async def test_log_lines_deleted_by_flow_and_trigger(store: Store) -> None:  # noqa: F811
    """LogController.deleteLogsFromFlow: the lines of one flow's executions (not of a flow
    of the same id in a sub-namespace); with triggerId, only the lines of that trigger."""
    await seeded(store)
    flow_b = LogPurge(namespace="company.team", flow_id="b", trigger_id="hook")
    assert await store.purges.logs(flow_b) == 1
    assert await store.purges.logs(LogPurge(namespace="company.team", flow_id="a")) == 4
    assert await messages(store) == ["e2 info", "e3 info"]
