"""The embedded store hands the writes of one loop iteration to its writer thread together
(issue #18: one wake-up of the writer, and one GIL hand-off, per write was a good part of
what a short execution cost), and loses none of them on the way."""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path
from typing import Any

from daemon.store.sqlite import SqliteStore
from tests.test_store import log


class CountingQueue(queue.SimpleQueue[Any]):
    """The writer's queue, counting what is put in it."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[int] = []

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.puts.append(-1 if item is None else len(item))
        super().put(item, block, timeout)


async def _opened(path: Path) -> tuple[SqliteStore, CountingQueue]:
    store = SqliteStore(path)
    counting = CountingQueue()
    store._io._queue = counting  # before the writer thread starts reading it
    await store.open()
    return store, counting


async def test_the_writes_of_one_iteration_reach_the_writer_at_once(tmp_path: Path) -> None:
    store, counting = await _opened(tmp_path / "podium.db")
    try:
        for n in range(100):
            store.append_logs([log(f"line {n}")])
        waited = store.state.set("k", {"v": 1})  # awaited below: joins the same hand-off
        await waited
        assert counting.puts == [101]
        assert len(await store.logs("e1")) == 100
        assert await store.state.get("k") == {"v": 1}
    finally:
        await store.close()


async def test_writes_from_a_thread_without_a_loop_go_straight_to_the_writer(
    tmp_path: Path,
) -> None:
    store, counting = await _opened(tmp_path / "podium.db")
    try:
        thread = threading.Thread(target=store.append_logs, args=([log("from a thread")],))
        thread.start()
        await asyncio.to_thread(thread.join)
        await store.flush()
        assert counting.puts[0] == 1
        assert [line["message"] for line in await store.logs("e1")] == ["from a thread"]
    finally:
        await store.close()


async def test_writes_not_yet_handed_over_are_committed_by_close(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    store, counting = await _opened(path)
    store.append_logs([log("last words")])  # no await between this and close
    await store.close()
    assert counting.puts == [1, -1]
    async with SqliteStore(path) as again:
        assert [line["message"] for line in await again.logs("e1")] == ["last words"]
