"""Kestra's bulk execution calls on a real port, `/by-ids` and `/by-query`: the count
answered, every execution checked before any is touched (one unknown or in the wrong state
refuses the batch with Kestra's 400 BulkErrorResponse), and malformed requests. The
behaviour is ExecutionControllerTest's (resumeByIds, resumeByQuery, changeStatusByIds,
replayByIds, deleteByIds, setLabelsByIds, shouldPauseByIdsRunningFlows,
shouldUnqueueByIdsQueuedFlows, shouldForRunByIdsFlows...) and ExecutionController's checks.
Time is a FakeClock: Sleep tasks wait until a test moves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.clock import FakeClock
from tests.api_helpers import call, serving
from tests.harness import Harness, drive, eventually

SLOW = """
id: slow
namespace: ns
tasks:
  - id: first
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: second ran
"""

OTHER = SLOW.replace("id: slow", "id: other").replace("namespace: ns", "namespace: elsewhere")

QUEUE = """
id: queue
namespace: ns
concurrency:
  behavior: QUEUE
  limit: 1
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""

FAILING = """
id: failing
namespace: ns
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: not yet
"""


class Api:
    def __init__(self, h: Harness, clock: FakeClock, url: str) -> None:
        self.h, self.clock, self.url = h, clock, url

    async def send(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, body, _ = await call(method, f"{self.url}/api/v1/executions/{path}", **kwargs)
        return status, body

    async def start(self, flow: str, namespace: str = "ns") -> str:
        status, doc = await self.send("POST", f"{namespace}/{flow}", json={})
        assert status == 200, doc
        return str(doc["id"])

    async def state(self, execution_id: str) -> str | None:
        await self.h.store.flush()
        doc = await self.h.store.get_execution(execution_id)
        return None if doc is None else str(doc["state"]["current"])

    async def until(self, execution_id: str, state: str) -> None:
        async def reached() -> bool:
            return await self.state(execution_id) == state

        await eventually(reached, f"execution {execution_id} {state}")

    async def running(self, flow: str = "slow", namespace: str = "ns") -> str:
        execution_id = await self.start(flow, namespace)
        await self.until(execution_id, "RUNNING")
        return execution_id

    async def ended(self, flow: str = "slow") -> str:
        execution_id = await self.start(flow)
        await drive(self.h, self.clock, self.h.engine.wait(execution_id))
        return execution_id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock()
    h = await Harness.open(tmp_path, clock=clock)
    for source in (SLOW, OTHER, QUEUE, FAILING):
        await h.flow(source)
    try:
        async with serving(h) as url:
            yield Api(h, clock, url)
    finally:
        await h.close()


def invalid(message: str, execution_id: str) -> dict[str, str]:
    return {"message": message, "invalidValue": execution_id, "propertyPath": "execution"}


async def test_kill_by_ids_counts_and_one_ended_id_refuses_the_whole_batch(api: Api) -> None:
    """killExecutionsByIds: {"count": 2}; then an ended and an unknown id answer 400
    "invalid bulk kill" listing both, and the running one given with them is not killed."""
    first, second = await api.running(), await api.running()
    status, body = await api.send("DELETE", "kill/by-ids", json=[first, second])
    assert (status, body) == (200, {"count": 2})
    assert [await api.state(e) for e in (first, second)] == ["KILLED", "KILLED"]
    third = await api.running()
    status, body = await api.send("DELETE", "kill/by-ids", json=[third, first, "nope"])
    assert status == 400
    assert body == {
        "message": "invalid bulk kill",
        "invalids": [
            invalid("execution already finished", first),
            invalid("execution not found", "nope"),
        ],
    }
    assert await api.state(third) == "RUNNING"
    assert (await api.send("DELETE", "kill/by-ids", json=[third, third]))[1] == {"count": 1}


async def test_kill_by_query_takes_the_searchs_parameters(api: Api) -> None:
    """killExecutionsByQuery: the executions `/search` finds with the same filters."""
    here, there = await api.running(), await api.running("other", "elsewhere")
    status, body = await api.send(
        "DELETE", "kill/by-query?filters[namespace][EQUALS]=elsewhere&state=RUNNING"
    )
    assert (status, body) == (200, {"count": 1})
    assert (await api.state(here), await api.state(there)) == ("RUNNING", "KILLED")
    status, body = await api.send("DELETE", "kill/by-query?namespace=ns")
    assert (status, body) == (200, {"count": 1})
    status, body = await api.send("DELETE", "kill/by-query?namespace=nothing-here")
    assert (status, body) == (200, {"count": 0})


async def test_delete_by_ids_with_kestras_flags(api: Api) -> None:
    """deleteExecutionsByIds: deleteLogs=false keeps the logs; an unfinished execution is
    "not found" unless includeNonTerminated, which kills it and deletes it."""
    done = await api.ended()
    status, body = await api.send("DELETE", "by-ids?deleteLogs=false", json=[done])
    assert (status, body) == (200, {"count": 1})
    assert await api.state(done) is None
    assert [line["message"] for line in await api.h.store.logs(done)] == ["second ran"]
    running = await api.running()
    status, body = await api.send("DELETE", "by-ids", json=[running])
    assert (status, body["invalids"]) == (400, [invalid("execution not found", running)])
    status, body = await api.send("DELETE", "by-ids?includeNonTerminated=true", json=[running])
    assert (status, body) == (200, {"count": 1})
    assert await api.state(running) is None
    assert (await api.send("DELETE", "by-ids?deleteStorage=maybe", json=[]))[0] == 400


async def test_delete_by_query(api: Api) -> None:
    """deleteByQuery: every ended execution of the namespace."""
    ended = [await api.ended(), await api.ended()]
    status, body = await api.send("DELETE", "by-query?namespace=ns")
    assert (status, body) == (200, {"count": 2})
    assert [await api.state(e) for e in ended] == [None, None]


async def test_restart_by_ids_takes_failed_executions_only(api: Api) -> None:
    """restartExecutionsByIds: "execution not in state FAILED" for a SUCCESS one."""
    failed, done = await api.ended("failing"), await api.ended()
    status, body = await api.send("POST", "restart/by-ids", json=[failed, done])
    assert (status, body["message"]) == (400, "invalid bulk restart")
    assert body["invalids"] == [invalid("execution not in state FAILED", done)]
    status, body = await api.send("POST", "restart/by-query?flowId=failing")
    assert (status, body) == (200, {"count": 1})
    ended = await drive(api.h, api.clock, api.h.engine.wait(failed))
    assert [s for s, _ in ended.state.histories].count(ended.state.current) == 2


async def test_replay_by_ids_and_by_query(api: Api) -> None:
    """replayByIds / replayByQuery: one new execution per execution found."""
    first, second = await api.ended(), await api.ended()
    status, body = await api.send("POST", "replay/by-ids", json=[first, second])
    assert (status, body) == (200, {"count": 2})
    _, page = await api.send("GET", "search?namespace=ns&size=50")
    assert page["total"] == 4
    status, body = await api.send("POST", "replay/by-query?latestRevision=true&flowId=failing")
    assert (status, body) == (200, {"count": 0})
    assert (await api.send("POST", "replay/by-ids", json=["nope"]))[0] == 400


async def test_pause_then_resume_by_ids(api: Api) -> None:
    """shouldPauseByIdsRunningFlows then resumeByIds; resuming them again is a 400."""
    done = await api.ended()
    first, second = await api.running(), await api.running()
    status, body = await api.send("POST", "pause/by-ids", json=[first, second])
    assert (status, body) == (200, {"count": 2})
    assert [await api.state(e) for e in (first, second)] == ["PAUSED", "PAUSED"]
    status, body = await api.send("POST", "resume/by-query?namespace=ns&state=PAUSED")
    assert (status, body) == (200, {"count": 2})
    assert [await api.state(e) for e in (first, second)] == ["RUNNING", "RUNNING"]
    status, body = await api.send("POST", "resume/by-ids", json=[first])
    assert (status, body["invalids"]) == (400, [invalid("execution not in state PAUSED", first)])
    status, body = await api.send("POST", "pause/by-ids", json=[done])
    assert (status, body["invalids"]) == (400, [invalid("execution not in state RUNNING", done)])
    status, body = await api.send("POST", "pause/by-query?state=RUNNING")
    assert (status, body) == (200, {"count": 2})


async def test_labels_by_ids_and_by_query(api: Api) -> None:
    """setLabelsByIds (SetLabelsByIdsRequest) and setLabelsByQuery (a list of labels); an
    unfinished execution is "execution is not terminated"; a system label is a 400."""
    first, second = await api.ended(), await api.ended()
    request = {"executionsId": [first], "executionLabels": [{"key": "team", "value": "data"}]}
    status, body = await api.send("POST", "labels/by-ids", json=request)
    assert (status, body) == (200, {"count": 1})
    labels = [{"key": "stage", "value": "prod"}]
    status, body = await api.send("POST", "labels/by-query?namespace=ns", json=labels)
    assert (status, body) == (200, {"count": 2})
    stored = await api.h.store.get_execution(first)
    assert stored is not None
    assert {(lb["key"], lb["value"]) for lb in stored["labels"]} >= {
        ("team", "data"),
        ("stage", "prod"),
    }
    running = await api.running()
    status, body = await api.send(
        "POST", "labels/by-ids", json={"executionsId": [running, second], "executionLabels": []}
    )
    assert (status, body["invalids"]) == (400, [invalid("execution is not terminated", running)])
    system = {"executionsId": [first], "executionLabels": [{"key": "system.x", "value": "1"}]}
    assert (await api.send("POST", "labels/by-ids", json=system))[0] == 400
    assert (await api.send("POST", "labels/by-ids", json=[first]))[0] == 400
    assert (await api.send("POST", "labels/by-query", json={"key": "a"}))[0] == 400


async def test_change_status_by_ids_and_by_query(api: Api) -> None:
    """changeStatusByIds / changeStatusByQuery with ?newStatus=WARNING; a newStatus that
    has not ended is a 422 (nothing looked up), a missing one a 400."""
    first, second = await api.ended(), await api.ended()
    status, body = await api.send("POST", "change-status/by-ids?newStatus=WARNING", json=[first])
    assert (status, body) == (200, {"count": 1})
    status, body = await api.send("POST", "change-status/by-query?namespace=ns&newStatus=FAILED")
    assert (status, body) == (200, {"count": 2})
    assert [await api.state(e) for e in (first, second)] == ["FAILED", "FAILED"]
    assert (await api.send("POST", "change-status/by-ids?newStatus=RUNNING", json=[first]))[
        0
    ] == 422
    assert (await api.send("POST", "change-status/by-ids", json=[first]))[0] == 400
    running = await api.running()
    status, body = await api.send("POST", "change-status/by-ids?newStatus=SUCCESS", json=[running])
    assert body["invalids"] == [invalid("execution not in a terminated state", running)]


async def test_unqueue_and_force_run_by_ids_and_by_query(api: Api) -> None:
    """shouldUnqueueByIdsQueuedFlows and shouldForRunByIdsFlows: by-ids names the target
    `state`, by-query `newState` (its `state` filters)."""
    first = await api.running("queue")
    second, third, fourth = [await api.start("queue") for _ in range(3)]
    status, body = await api.send("POST", "unqueue/by-ids?state=CANCELLED", json=[second])
    assert (status, body) == (200, {"count": 1})
    assert await api.state(second) == "CANCELLED"
    status, body = await api.send("POST", "unqueue/by-query?state=QUEUED&newState=RUNNING")
    assert (status, body) == (200, {"count": 2})
    await api.until(third, "RUNNING")
    await api.until(fourth, "RUNNING")
    status, body = await api.send("POST", "unqueue/by-ids", json=[first])
    assert body["invalids"] == [invalid("execution not in state QUEUED", first)]
    assert (await api.send("POST", "unqueue/by-ids?state=KILLED", json=[]))[0] == 422
    status, body = await api.send("POST", "force-run/by-ids", json=[first, third])
    assert (status, body) == (200, {"count": 2})
    status, body = await api.send("POST", "force-run/by-ids", json=[second])
    assert body["invalids"] == [invalid("execution in a terminated state", second)]
    status, body = await api.send("DELETE", "kill/by-query?flowId=queue&state=RUNNING")
    assert (status, body) == (200, {"count": 3})


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"data": "[", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"ids": ["a"]}}, 400, "JSON array of execution ids, not an object"),
        ({"json": ["a", 1]}, 400, "execution id 1 is a number, not a string"),
        ({"data": "[]", "headers": {"Content-Type": "text/plain"}}, 415, "Unsupported Media"),
    ],
)
async def test_a_malformed_list_of_ids(
    api: Api, kwargs: dict[str, Any], status: int, message: str
) -> None:
    answer, body = await api.send("POST", "restart/by-ids", **kwargs)
    assert answer == status, body
    assert message in body["message"]


async def test_a_filter_podium_cannot_apply_is_a_400_and_no_body_an_empty_batch(
    api: Api,
) -> None:
    status, body = await api.send("DELETE", "kill/by-query?filters[scope][EQUALS]=USER")
    assert status == 400 and "does not apply the filter scope" in body["message"]
    assert (await api.send("POST", "restart/by-query?state=DONE"))[0] == 400
    assert (await api.send("POST", "restart/by-ids", json=[]))[1] == {"count": 0}


async def test_the_bulk_calls_are_served_under_the_tenant(api: Api) -> None:
    """kestrapy and the Kestra 1.x UI call /api/v1/main/executions/..."""
    running = await api.running()
    status, body, _ = await call(
        "DELETE", f"{api.url}/api/v1/main/executions/kill/by-ids", json=[running]
    )
    assert (status, body) == (200, {"count": 1})
