"""When the executor waits for the store: a task run's end is queued, not waited for, and
what comes after it decides (issue #18: a one-task execution waited for three commits in a
row, the task run's end then the final state after it, each a round trip to the writer).

- a task starts only once the end of every task run before it is committed;
- the final state is queued after the last end, so it commits with it or after it: the
  executor does not wait for the last end on its own;
- an end the store refused still fails the execution, as a refused write always did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import pytest

from daemon.sdk.state import State
from daemon.store import sqlite_io
from daemon.store.base import StoreError
from tests.harness import Harness, eventually, settle

TWO_TASKS = """
    id: two
    namespace: commits
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: one
      - id: second
        type: io.kestra.plugin.core.log.Log
        message: second ran
    """
ONE_TASK = """
    id: one
    namespace: commits
    tasks:
      - id: only
        type: io.kestra.plugin.core.debug.Return
        format: "{{ 1 + 1 }}"
    """


class HeldEnd:
    """Stands between the executor and the store for one task run's end: the row is
    written as always, but the executor hears of its commit only when the test says."""

    def __init__(self, h: Harness, task_id: str) -> None:
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queued = False
        self._relays: list[asyncio.Task[None]] = []
        real = h.store.save_task_run

        def queue(doc: dict[str, Any], *, wait: bool = True, soon: bool = True) -> Awaitable[Any]:
            committed = real(doc, wait=wait, soon=soon)
            ends = doc["taskId"] == task_id and doc["state"]["current"] == "SUCCESS"
            if not wait or not ends or self.queued:
                return committed
            self.queued = True
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._relays.append(asyncio.ensure_future(self._relay(committed, answer)))
            return answer

        h.store.save_task_run = queue  # type: ignore[method-assign]

    async def was_queued(self) -> bool:
        return self.queued

    async def _relay(self, committed: Awaitable[Any], answer: asyncio.Future[Any]) -> None:
        await self.gate
        answer.set_result(await committed)

    async def release(self) -> None:
        self.gate.set_result(None)
        await asyncio.gather(*self._relays)


def refuse_one_end(h: Harness, task_id: str) -> list[str]:
    """The store refuses the end (SUCCESS) of `task_id` once; every other write goes through."""
    real = h.store.save_task_run
    refused: list[str] = []

    def queue(doc: dict[str, Any], *, wait: bool = True, soon: bool = True) -> Awaitable[Any]:
        ends = doc["taskId"] == task_id and doc["state"]["current"] == "SUCCESS"
        if not ends or refused or not wait:
            return real(doc, wait=wait, soon=soon)
        refused.append(doc["id"])
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer.set_exception(StoreError("podium.db: could not write task run: disk I/O error"))
        return answer

    h.store.save_task_run = queue  # type: ignore[method-assign]
    return refused


async def test_a_task_starts_only_once_the_end_before_it_is_committed(h: Harness) -> None:
    held = HeldEnd(h, "first")
    ex = await h.start(TWO_TASKS)
    await eventually(held.was_queued, "the end of task first")
    for _ in range(5):  # every step the executor could take without that commit, and more
        await h.store.flush()
        await settle()
    stored = await h.stored(ex)
    assert [run["taskId"] for run in stored["taskRunList"]] == ["first"]
    assert stored["state"]["current"] == "RUNNING"
    assert await h.logs(ex) == []
    await held.release()
    ex = await h.engine.wait(ex.id)
    assert ex.state.current == State.SUCCESS
    stored = await h.stored(ex)
    assert [(r["taskId"], r["state"]["current"]) for r in stored["taskRunList"]] == [
        ("first", "SUCCESS"),
        ("second", "SUCCESS"),
    ]
    assert await h.logs(ex) == ["second ran"]


async def test_the_last_end_is_made_durable_by_the_final_state_queued_after_it(
    h: Harness,
) -> None:
    held = HeldEnd(h, "only")
    try:
        async with asyncio.timeout(20):  # ends although the executor never heard of it
            ex = await h.run(ONE_TASK)
    except TimeoutError:
        raise AssertionError("the executor waited for the last end's own commit") from None
    assert held.queued and not held.gate.done()
    assert ex.state.current == State.SUCCESS
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "SUCCESS"
    assert [(r["taskId"], r["state"]["current"], r["outputs"]) for r in stored["taskRunList"]] == [
        ("only", "SUCCESS", {"value": "2"})
    ]
    await held.release()


async def test_an_end_the_store_refused_fails_the_execution_stored_again(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    refused = refuse_one_end(h, "only")  # once: the retry of the final state writes it
    caplog.set_level(logging.ERROR)
    ex = await h.run(ONE_TASK)
    assert refused
    assert ex.state.current == State.FAILED
    assert ex.error is not None and "disk I/O error" in ex.error, ex.error
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "FAILED"
    assert stored["error"] == ex.error
    assert [(r["id"], r["state"]["current"]) for r in stored["taskRunList"]] == [
        (refused[0], "SUCCESS")
    ]
    assert any("cannot be stored" in record.getMessage() for record in caplog.records)


async def test_a_refused_last_end_fails_the_execution_before_after_execution_runs(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """afterExecution tasks see the final state (Kestra's docs, "afterExecution": they run
    once the execution ended, `execution.state` is that end). The last main task's end,
    refused by the store, must make that end FAILED as it does without afterExecution,
    not stop the afterExecution tasks and leave the execution SUCCESS."""
    refused = refuse_one_end(h, "only")
    caplog.set_level(logging.ERROR)
    ex = await h.run(
        ONE_TASK
        + """
    afterExecution:
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: "afterExecution sees {{ execution.state }}"
    """
    )
    assert refused
    assert ex.state.current == State.FAILED
    assert ex.error is not None and "disk I/O error" in ex.error, ex.error
    assert await h.logs(ex) == ["afterExecution sees FAILED"]
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "FAILED"
    assert [(r["taskId"], r["state"]["current"]) for r in stored["taskRunList"]] == [
        ("only", "SUCCESS"),
        ("after", "SUCCESS"),
    ]


async def test_an_end_refused_before_a_kill_is_stored_again_with_the_kill(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed execution's rows end as the kill left them (Kestra's ExecutionKilled: the
    execution KILLED, each unfinished task run KILLED, ended ones as they ended). An end
    the store refused just before the kill was never retried: its row stayed RUNNING
    under a KILLED execution."""
    refused = refuse_one_end(h, "quick")
    caplog.set_level(logging.ERROR)
    ex = await h.start("""
    id: killed
    namespace: commits
    tasks:
      - id: both
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: quick
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.2S
          - id: slow
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT60S
    """)

    async def quick_refused_slow_running() -> bool:
        states = {tr.task_id: tr.state.current for tr in ex.task_runs}
        return bool(refused) and states.get("slow") == State.RUNNING

    await eventually(quick_refused_slow_running, "quick's end refused while slow runs")
    assert await h.engine.kill(ex.id)
    ex = await h.engine.wait(ex.id)
    assert ex.state.current == State.KILLED
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "KILLED"
    assert {r["taskId"]: r["state"]["current"] for r in stored["taskRunList"]} == {
        "both": "KILLED",
        "quick": "SUCCESS",
        "slow": "KILLED",
    }
    assert any("disk I/O error" in record.getMessage() for record in caplog.records)


async def test_a_short_execution_costs_two_commits(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its creation, awaited by whoever started it, then its RUNNING, its task run's
    RUNNING and end and its final state together: nobody waits for the ones before the
    final state, so they wait for it (issue #18: one commit fewer per webhook)."""
    monkeypatch.setattr(sqlite_io, "UNAWAITED_DELAY", 60.0)  # never alone, whatever the load
    commits: list[list[str]] = []
    real = sqlite_io.SqliteIO._commit

    def commit(io: sqlite_io.SqliteIO, conn: Any, ops: Any, *, begun: bool = False) -> None:
        commits.append([op.what for op in ops])
        real(io, conn, ops, begun=begun)

    monkeypatch.setattr(sqlite_io.SqliteIO, "_commit", commit)
    ex = await h.run(ONE_TASK)
    assert ex.state.current == State.SUCCESS
    run = ex.task_runs[0].id
    mine = [whats for whats in commits if f"execution {ex.id}" in whats]
    assert mine == [
        [f"execution {ex.id}"],
        [f"execution {ex.id}", f"task run {run}", f"task run {run}", f"execution {ex.id}"],
    ]
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "SUCCESS"
    assert [(r["taskId"], r["state"]["current"]) for r in stored["taskRunList"]] == [
        ("only", "SUCCESS")
    ]
