"""Kestra's single-execution state changes on a real port: pause, change-status, force-run,
unqueue and a task run's state, with Kestra's statuses for what does not fit (404 unknown,
422 a state that does not allow it, 400 a missing or unknown state name). The behaviour is
ExecutionControllerTest's (shouldPauseARunningFlow, changeStatus, shouldUnqueueAQueuedFlow,
shouldForceRunAQueuedFlow, shouldFailToForceRunNotFoundOrTerminatedExecutions) and
ExecutionService.markAs's. Time is a FakeClock: Sleep tasks wait until a test moves it."""

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
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after ran
"""

# A flow whose id is one of the new routes' words: still started by the create call.
NAMED_PAUSE = """
id: pause
namespace: ns
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


class Api:
    def __init__(self, h: Harness, clock: FakeClock, url: str) -> None:
        self.h, self.clock, self.url = h, clock, url

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, body, _ = await call("POST", f"{self.url}/api/v1/executions/{path}", **kwargs)
        return status, body

    async def start(self, flow: str) -> str:
        status, doc = await self.post(f"ns/{flow}", json={})
        assert status == 200, doc
        return str(doc["id"])

    async def state(self, execution_id: str) -> str:
        await self.h.store.flush()
        doc = await self.h.store.get_execution(execution_id)
        assert doc is not None
        return str(doc["state"]["current"])

    async def until(self, execution_id: str, state: str) -> None:
        async def reached() -> bool:
            return await self.state(execution_id) == state

        await eventually(reached, f"execution {execution_id} {state}")

    async def ended(self, flow: str) -> str:
        execution_id = await self.start(flow)
        await drive(self.h, self.clock, self.h.engine.wait(execution_id))
        return execution_id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock()
    h = await Harness.open(tmp_path, clock=clock)
    for source in (
        SLOW,
        QUEUE,
        FAILING,
        NAMED_PAUSE,
        NAMED_PAUSE.replace("id: pause", "id: state"),
    ):
        await h.flow(source)
    try:
        async with serving(h) as url:
            yield Api(h, clock, url)
    finally:
        await h.close()


async def test_pause_answers_200_then_resume_runs_it_on(api: Api) -> None:
    """shouldPauseARunningFlow: 200 for a running one, 404 unknown, 422 ended."""
    execution_id = await api.start("slow")
    await api.until(execution_id, "RUNNING")
    status, body = await api.post(f"{execution_id}/pause")
    assert (status, body) == (200, "")
    assert await api.state(execution_id) == "PAUSED"
    status, _ = await api.post(f"{execution_id}/resume")
    assert status == 204
    assert await api.state(execution_id) == "RUNNING"
    assert (await api.post("nope/pause"))[0] == 404
    await api.h.engine.kill(execution_id)
    status, body = await api.post(f"{execution_id}/pause")
    assert status == 422
    assert body["message"].startswith("Illegal argument: execution ")
    assert "only a running execution can be paused" in body["message"]


async def test_change_status_of_an_ended_execution(api: Api) -> None:
    """ExecutionControllerTest.changeStatus: ?status=WARNING answers the execution WARNING;
    a state that has not ended, or an execution that has not, is a 422; a missing or
    unknown state name a 400."""
    done = await api.ended("slow")
    status, doc = await api.post(f"{done}/change-status?status=WARNING")
    assert status == 200, doc
    assert (doc["id"], doc["state"]["current"], doc["deleted"]) == (done, "WARNING", False)
    assert {tr["taskId"]: tr["state"]["current"] for tr in doc["taskRunList"]} == {
        "first": "SUCCESS",
        "second": "SUCCESS",
    }
    assert (await api.post(f"{done}/change-status?status=RUNNING"))[0] == 422
    status, body = await api.post(f"{done}/change-status")
    assert (status, body["message"]) == (
        400,
        "Bad Request: Required QueryValue [status] not specified",
    )
    assert (await api.post(f"{done}/change-status?status=DONE"))[0] == 400
    assert (await api.post("nope/change-status?status=FAILED"))[0] == 404
    running = await api.start("slow")
    await api.until(running, "RUNNING")
    assert (await api.post(f"{running}/change-status?status=FAILED"))[0] == 422
    await api.h.engine.kill(running)


async def test_unqueue_and_force_run_of_queued_executions(api: Api) -> None:
    """shouldUnqueueAQueuedFlow / shouldForceRunAQueuedFlow: 200 and the execution leaves
    its queue; `?state=CANCELLED` ends it instead; a non-queued one is a 422 to unqueue,
    an ended one a 422 to force-run, an unknown one a 404."""
    first = await api.start("queue")
    await api.until(first, "RUNNING")
    second, third, fourth = [await api.start("queue") for _ in range(3)]
    assert await api.state(second) == "QUEUED"
    status, doc = await api.post(f"{second}/unqueue")
    assert status == 200, doc
    await api.until(second, "RUNNING")
    status, doc = await api.post(f"{third}/unqueue?state=CANCELLED")
    assert (status, doc["state"]["current"]) == (200, "CANCELLED")
    assert (await api.post(f"{fourth}/unqueue?state=KILLED"))[0] == 422
    assert (await api.post(f"{fourth}/unqueue?state=LATER"))[0] == 400
    assert (await api.post(f"{first}/unqueue"))[0] == 422
    assert (await api.post("nope/unqueue"))[0] == 404
    status, doc = await api.post(f"{fourth}/force-run")
    assert status == 200, doc
    await api.until(fourth, "RUNNING")
    status, doc = await api.post(f"{first}/force-run")  # running: left as it is
    assert (status, doc["state"]["current"]) == (200, "RUNNING")
    assert (await api.post(f"{third}/force-run"))[0] == 422
    assert (await api.post("nope/force-run"))[0] == 404
    for execution_id in (first, second, fourth):
        await api.h.engine.kill(execution_id)


async def test_a_task_runs_state_is_set_and_the_execution_runs_on(api: Api) -> None:
    """updateTaskRunState (ExecutionService.markAs): the FAILED task run set SUCCESS, the
    answer is the execution RESTARTED with system.restarted, and it ends SUCCESS."""
    failed = await api.ended("failing")
    doc = await api.h.store.get_execution(failed)
    assert doc is not None
    check = next(tr["id"] for tr in doc["taskRunList"] if tr["taskId"] == "check")
    status, doc = await api.post(f"{failed}/state", json={"taskRunId": check, "state": "SUCCESS"})
    assert status == 200, doc
    assert doc["state"]["current"] == "RESTARTED"
    assert {"key": "system.restarted", "value": "true"} in doc["labels"]
    ended = await drive(api.h, api.clock, api.h.engine.wait(failed))
    assert ended.state.current.value == "SUCCESS"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"taskRunId": "nope", "state": "SUCCESS"}, 422, "Illegal argument: no task run nope"),
        ({"taskRunId": "x", "state": "GREEN"}, 400, "Bad Request: the body must be"),
        ({"state": "SUCCESS"}, 400, "taskRunId is null"),
        (["x"], 400, "not an array"),
    ],
)
async def test_a_task_run_state_request_that_does_not_fit(
    api: Api, body: Any, status: int, message: str
) -> None:
    failed = await api.ended("failing")
    answer, doc = await api.post(f"{failed}/state", json=body)
    assert answer == status, doc
    assert message in doc["message"]


async def test_a_task_run_state_request_of_a_running_or_unknown_execution(api: Api) -> None:
    running = await api.start("slow")
    await api.until(running, "RUNNING")
    body = {"taskRunId": "x", "state": "SUCCESS"}
    assert (await api.post(f"{running}/state", json=body))[0] == 409
    assert (await api.post("nope/state", json=body))[0] == 404
    status, doc = await api.post(
        f"{running}/state", data="{}", headers={"Content-Type": "text/plain"}
    )
    assert (status, doc["message"][:22]) == (415, "Unsupported Media Type")
    assert (await api.post(f"{running}/state", data="{", headers=_JSON))[0] == 400
    await api.h.engine.kill(running)


_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("word", ["pause", "state"])
async def test_a_flow_named_pause_is_still_started_by_the_create_call(api: Api, word: str) -> None:
    """POST /executions/ns/pause (or /state, whose route reads a body): no execution has the
    id `ns`, the flow ns.pause (ns.state) exists: the create call starts it."""
    status, doc = await api.post(f"ns/{word}", json={})
    assert status == 200, doc
    assert (doc["namespace"], doc["flowId"]) == ("ns", word)
