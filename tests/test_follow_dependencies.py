"""Kestra's flow topology (daemon/flows/dependencies.py) and
`GET /executions/{id}/follow-dependencies` (daemon/api/live_dependencies.py).

The links are those of Kestra's FlowTopologyService (FlowTopologyServiceTest): a Subflow
task (FLOW_TASK) and a Flow trigger watching a flow (FLOW_TRIGGER); the dependencies those
of FlowService.findDependencies (`destinationOnly`, `expandAll`); the stream that of
ExecutionController.followDependenciesExecutions with its
ExecutionDependenciesStreamingService (`start`, `progress`, `end`, `end-all`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from daemon.flows.definition import Flow
from daemon.flows.dependencies import Link, dependencies, topology
from daemon.flows.loader import load_flow
from daemon.sdk.state import State
from tests.api_helpers import Event, call, events, serving
from tests.harness import Harness, running_triggers

UP = """
id: up
namespace: ns
tasks:
  - id: hold
    type: io.kestra.plugin.core.flow.Pause
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: child
"""

CHILD = """
id: child
namespace: ns
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: child
"""

DOWN = """
id: down
namespace: ns
tasks:
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: down
triggers:
  - id: on-up
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: ns
        flowId: up
"""

LONELY = """
id: lonely
namespace: ns
tasks:
  - id: alone
    type: io.kestra.plugin.core.debug.Return
    format: alone
"""


def flows(*sources: str) -> list[Flow]:
    return [load_flow(source, "f.yaml") for source in sources]


def test_a_subflow_and_a_flow_trigger_link_flows() -> None:
    """FlowTopologyService.isChild: a Subflow task is FLOW_TASK, a Flow trigger whose
    conditions accept the flow's executions FLOW_TRIGGER (its status condition filters, it
    does not unlink); a flow is never linked to itself nor to a flow it does not watch."""
    assert topology(flows(UP, CHILD, DOWN, LONELY)) == [
        Link(("ns", "up"), ("ns", "child"), "FLOW_TASK"),
        Link(("ns", "up"), ("ns", "down"), "FLOW_TRIGGER"),
    ]


@pytest.mark.parametrize(
    ("trigger", "watched"),
    [
        ("dependsOn:\n      - namespace: ns\n        flowId: up", True),
        ("dependsOn:\n      - namespace: ns\n        flowId: other", False),
        ("dependsOn:\n      - namespace: ns", True),
        ("preconditions:\n      flows:\n        - namespace: ns\n          flowId: up", True),
        ("preconditions:\n      flows:\n        - namespace: other", False),
        (
            "conditions:\n      - type: io.kestra.plugin.core.condition.ExecutionNamespace\n"
            "        namespace: ns",
            True,
        ),
        (
            "conditions:\n      - type: io.kestra.plugin.core.condition.ExecutionStatus\n"
            "        in: [FAILED]\n      - type: io.kestra.plugin.core.condition.ExecutionFlow\n"
            "        namespace: ns\n        flowId: other",
            False,
        ),
        ("conditions: []", True),  # Kestra warns: it is triggered by every flow
    ],
)
def test_what_a_flow_trigger_watches(trigger: str, watched: bool) -> None:
    """The Flow trigger's WatchesFlows: `dependsOn`, `preconditions.flows` and conditions
    each narrow the flows it watches (Kestra 2.0's dependsOn, 1.x's preconditions)."""
    source = (
        "id: down\nnamespace: ns\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, "
        f"message: x}}\ntriggers:\n  - id: t\n    type: io.kestra.plugin.core.trigger.Flow\n"
        f"    {trigger}\n"
    )
    links = topology(flows(UP, source))
    assert (Link(("ns", "up"), ("ns", "down"), "FLOW_TRIGGER") in links) is watched


def test_dependencies_of_a_flow_follow_destination_only_and_expand_all() -> None:
    """FlowService.findDependencies: the links of the flow (itself included); with
    destinationOnly only those into it (FlowTopologyRepository.findByFlow always takes the
    links whose destination is the flow, those whose source it is unless destinationOnly);
    with expandAll, recursively."""
    known = flows(UP, CHILD, DOWN, LONELY)
    assert dependencies(known, "ns", "child") == [("ns", "up"), ("ns", "child")]
    assert dependencies(known, "ns", "child", destination_only=True) == [
        ("ns", "up"),
        ("ns", "child"),
    ]
    assert dependencies(known, "ns", "child", expand_all=True) == [
        ("ns", "up"),
        ("ns", "child"),
        ("ns", "down"),
    ]
    assert dependencies(known, "ns", "up", destination_only=True) == []
    assert dependencies(known, "ns", "up") == [("ns", "up"), ("ns", "child"), ("ns", "down")]
    assert dependencies(known, "ns", "lonely", expand_all=True) == []


# -- the stream -----------------------------------------------------------------------------


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    for source in (UP, CHILD, LONELY):
        await h.flow(source)
    async with running_triggers(h, DOWN) as th, serving(h, webhooks=th.webhooks) as url:
        yield url


async def follow(url: str) -> AsyncIterator[Event]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/event-stream"
        async for event in events(resp):
            yield event


async def until_paused(h: Harness, execution_id: str) -> None:
    async with asyncio.timeout(20):
        while True:
            await h.store.flush()
            doc = await h.store.get_execution(execution_id)
            if doc is not None and doc["state"]["current"] == State.PAUSED.value:
                return
            await asyncio.sleep(0.01)


async def test_the_stream_follows_subflows_and_flow_triggered_executions_to_the_end(
    h: Harness, api: str
) -> None:
    """followDependenciesExecutions: `start`, then the executions sharing the followed
    one's correlation id of the linked flows (its subflow, the execution its end
    triggered): `progress` while they run, `end` once each has ended, `end-all` once every
    linked flow has one that ended."""
    started = await h.engine.submit(h.engine.catalog["ns", "up"])
    await until_paused(h, started.id)
    url = f"{api}/api/v1/main/executions/{started.id}/follow-dependencies"
    seen: list[Event] = []
    async with asyncio.timeout(30):
        stream = follow(url)
        seen.append(await anext(stream))
        seen.append(await anext(stream))  # the paused execution, as stored
        assert await h.engine.resume(started.id, {})
        async for event in stream:
            seen.append(event)
    assert seen[0] == Event({"executionId": started.id}, "start")
    assert (seen[1].id, seen[1].data["flowId"], seen[1].data["state"]["current"]) == (
        "progress",
        "up",
        "PAUSED",
    )
    ends = {e.data["flowId"]: e.data for e in seen if e.id == "end"}
    assert set(ends) == {"up", "child", "down"}
    assert {data["state"]["current"] for data in ends.values()} == {"SUCCESS"}
    assert ends["up"]["executionId"] == started.id and ends["up"]["tenantId"] == "main"
    assert seen[-1].id == "end-all" and set(seen[-1].data) == {"executionId"}
    assert all(e.id in ("progress", "end") for e in seen[1:-1])


async def test_an_execution_whose_dependencies_have_ended_is_answered_at_once(
    h: Harness, api: str
) -> None:
    """Executions that already ended are sent as `end` from the store; once every linked
    flow has ended, the stream closes without `end-all` (as Kestra's)."""
    started = await h.engine.submit(h.engine.catalog["ns", "up"])
    await until_paused(h, started.id)
    await h.engine.resume(started.id, {})
    await h.engine.wait(started.id)
    async with asyncio.timeout(20):
        while True:  # the execution the trigger starts (its own correlation id carried)
            await h.store.flush()
            found, _ = await h.store.search_executions(flow_id="down", states=["SUCCESS"])
            if found:
                break
            await asyncio.sleep(0.01)
    url = f"{api}/api/v1/executions/{started.id}/follow-dependencies?expandAll=true"
    async with asyncio.timeout(20):
        seen = [event async for event in follow(url)]
    assert seen[0].id == "start"
    assert sorted(e.data["flowId"] for e in seen[1:]) == ["child", "down", "up"]
    assert {e.id for e in seen[1:]} == {"end"}


async def test_a_flow_without_links_answers_start_only(h: Harness, api: str) -> None:
    """No dependency to follow: Kestra's stream completes after `start`; so does a
    destinationOnly follow of a flow no flow leads to."""
    alone = await h.run(LONELY)
    up = await h.engine.submit(h.engine.catalog["ns", "up"])
    await until_paused(h, up.id)
    for url in (
        f"{api}/api/v1/executions/{alone.id}/follow-dependencies",
        f"{api}/api/v1/executions/{up.id}/follow-dependencies?destinationOnly=true",
    ):
        async with asyncio.timeout(20):
            seen = [event async for event in follow(url)]
        assert [e.id for e in seen] == ["start"]
    assert await h.engine.resume(up.id, {})
    await h.engine.wait(up.id)


async def test_follow_dependencies_of_an_unknown_execution_or_a_bad_flag(api: str) -> None:
    missing = await call("GET", f"{api}/api/v1/executions/nope/follow-dependencies")
    assert missing[0] == 404
    status, doc, _ = await call(
        "GET", f"{api}/api/v1/executions/nope/follow-dependencies?expandAll=maybe"
    )
    assert status == 400 and "expandAll" in doc["message"]
