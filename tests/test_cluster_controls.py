"""A manual pause, its resume and an unqueue asked on one node of a cluster reach the node
that runs (or queues) the execution, as kills and resumes do (tests/test_cluster.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from daemon.sdk.state import State
from tests.cluster_helpers import Node
from tests.harness import eventually
from tests.test_cluster import LIMITED, add_flow, dsn, loaded, nodes, plugins

pytestmark = pytest.mark.timeout(90)
__all__ = ["dsn", "nodes", "plugins"]  # the fixtures, shared with test_cluster.py

TWO_STEPS = """
id: two
namespace: cluster.test
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: out
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


async def stored(node: Node, execution_id: str) -> tuple[str, dict[str, str]]:
    doc = await node.store.get_execution(execution_id)
    assert doc is not None
    runs = {tr["taskId"]: tr["state"]["current"] for tr in doc["taskRunList"]}
    return str(doc["state"]["current"]), runs


async def test_a_pause_and_its_resume_asked_on_another_node(
    nodes: Callable[..., Awaitable[Node]],
) -> None:
    """ExecutionControllerTest.shouldPauseARunningFlow across nodes: paused by the node
    that runs it, its running task ends, nothing more starts; resumed from the other node,
    it ends SUCCESS."""
    a = await nodes("a")
    await add_flow(a, TWO_STEPS)
    await loaded(a, "two")
    execution = await a.engine.submit(a.engine.catalog[("cluster.test", "two")])

    async def state_is(state: str, runs: dict[str, str] | None = None) -> bool:
        current, found = await stored(a, execution.id)
        return current == state and (runs is None or found == runs)

    await eventually(lambda: state_is("RUNNING", {"nap": "RUNNING"}), "the nap on a")
    b = await nodes("b")  # joins later: it never runs it, only asks
    await loaded(b, "two")
    await b.engine.controls.pause(execution.id)
    await eventually(lambda: state_is("PAUSED", {"nap": "SUCCESS"}), "paused, the nap ended")
    assert await b.engine.resume(execution.id, {})
    final = await b.engine.wait(execution.id)
    assert final.state.current == State.SUCCESS
    assert [s for s, _ in final.state.histories][-3:] == [
        State.PAUSED,
        State.RUNNING,
        State.SUCCESS,
    ]


async def test_an_unqueue_asked_on_another_node(nodes: Callable[..., Awaitable[Node]]) -> None:
    """shouldUnqueueAQueuedFlow across nodes: the queued execution leaves the queue of the
    node holding the flow's lease and runs beside the first."""
    a, b = await nodes("a"), await nodes("b")
    await add_flow(a, LIMITED.replace("PT0.2S", "PT30S"))
    for node in (a, b):
        await loaded(node, "limited")
    flow = a.engine.catalog[("cluster.test", "limited")]
    first, second = await a.engine.submit(flow), await a.engine.submit(flow)

    async def second_is(state: str) -> bool:
        return (await stored(b, second.id))[0] == state

    await eventually(lambda: second_is("QUEUED"), "the second waits QUEUED")
    await b.engine.controls.unqueue(second.id)
    await eventually(lambda: second_is("RUNNING"), "the second runs")
    assert (await stored(b, first.id))[0] == "RUNNING"
    for execution in (first, second):
        assert await b.engine.kill(execution.id)
