"""Setting how many executions hold a flow's concurrency slots (Admission.recount,
LocalExecutions.recount): what Kestra's ConcurrencyLimitController.updateConcurrencyLimit
does to its ConcurrencyLimit counter, to mend a count gone wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.state import State
from tests.harness import Harness, settle
from tests.test_flow_concurrency import running

FLOW = """
id: limited
namespace: io.kestra.tests
concurrency:
  behavior: QUEUE
  limit: 1
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10S
"""


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness.open(tmp_path, clock=FakeClock())
    yield harness
    await harness.close()


async def test_lowering_the_count_starts_the_queued_execution(h: Harness) -> None:
    flow = await h.flow(FLOW)
    first = await h.start(flow)
    await running(h, first)
    second = await h.start(flow)
    assert second.state.current == State.QUEUED
    assert h.engine.local.admission.active(flow) == 1
    h.engine.local.recount(flow, 0)
    await running(h, second)
    assert h.engine.local.admission.active(flow) == 1  # the second took the free slot
    assert (await h.stored(first))["state"]["current"] == "RUNNING"
    for execution in (first, second):
        assert await h.engine.kill(execution.id)


async def test_raising_the_count_keeps_the_next_one_queued(h: Harness) -> None:
    flow = await h.flow(FLOW)
    h.engine.local.recount(flow, 3)
    waiting = await h.start(flow)
    assert waiting.state.current == State.QUEUED
    h.engine.local.recount(flow, -2)  # a negative count is none
    await running(h, waiting)
    assert h.engine.local.admission.active(flow) == 1
    await settle()
    assert await h.engine.kill(waiting.id)
