"""Execution endpoints on a real port: search, kill, restart, replay, delete, labels, resume,
output files, and the live SSE streams of state changes and log lines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from daemon.api import live as sse
from daemon.sdk.execution import Execution
from daemon.sdk.state import State, StateHistory
from tests.api_helpers import Event, call, events, form, serving
from tests.harness import Harness

SLOW = """
id: slow
namespace: ns
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: first line
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
  - id: last
    type: io.kestra.plugin.core.log.Log
    message: last line
"""

QUICK = """
id: quick
namespace: ns
tasks:
  - id: one
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: debug
    type: io.kestra.plugin.core.log.Log
    level: DEBUG
    message: quiet
  - id: two
    type: io.kestra.plugin.core.log.Log
    message: two
"""

FLAKY = """
id: flaky
namespace: ns
tasks:
  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: computed once
  - id: two
    type: io.kestra.plugin.core.log.Log
    message: "ready: {{ kv('ready') }}"
"""

FILES = """
id: files
namespace: ns
inputs:
  - id: f
    type: FILE
tasks:
  - id: concat
    type: io.kestra.plugin.core.storage.Concat
    files: ["{{ inputs.f }}", "{{ inputs.f }}"]
    extension: .txt
"""


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    for source in (SLOW, QUICK, FLAKY, FILES):
        await h.flow(source)
    async with serving(h) as url:
        yield url


async def started(api: str, flow: str, **kwargs: Any) -> dict[str, Any]:
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/{flow}", **kwargs)
    assert status == 200, doc
    return dict(doc)


async def ended(api: str, flow: str, **kwargs: Any) -> dict[str, Any]:
    return await started(api, flow + ("&" if "?" in flow else "?") + "wait=true", **kwargs)


async def until_state(api: str, execution_id: str, state: str) -> None:
    """Poll the API (bounded) until the execution is in `state`, as a client would."""
    async with asyncio.timeout(20):
        for _ in range(2000):
            _, doc, _ = await call("GET", f"{api}/api/v1/executions/{execution_id}")
            if doc["state"]["current"] == state:
                return
            await asyncio.sleep(0.01)


async def collect(url: str, until: Any = None) -> list[Event]:
    """Every event of a stream until it ends (or `until(event)` holds), bounded in time."""
    seen: list[Event] = []
    async with asyncio.timeout(20), aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/event-stream"
        async for event in events(resp):
            seen.append(event)
            if until is not None and until(event):
                break
    return seen


# -- search ---------------------------------------------------------------------------------


async def stored(
    h: Harness,
    flow: str,
    state: State,
    start: datetime,
    labels: dict[str, str] | None = None,
    namespace: str = "ns",
) -> str:
    history = StateHistory(State.CREATED, start)
    if state != State.CREATED:
        history.set(state, start + timedelta(seconds=1))
    execution = Execution(
        id=f"{flow}-{start:%H%M}",
        namespace=namespace,
        flow_id=flow,
        flow_revision=1,
        state=history,
        labels=labels or {},
    )
    await h.store.save_execution(execution.to_json())
    return execution.id


async def test_search_filters_and_pages_newest_first(h: Harness, api: str) -> None:
    at = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    await stored(h, "a", State.SUCCESS, at, {"team": "data"})
    await stored(h, "a", State.FAILED, at + timedelta(hours=1), {"team": "web"})
    await stored(h, "b", State.SUCCESS, at + timedelta(hours=2), {"team": "data"})
    await stored(h, "c", State.SUCCESS, at + timedelta(hours=3), namespace="ns.sub")
    await stored(h, "d", State.SUCCESS, at + timedelta(hours=4), namespace="other")
    base = f"{api}/api/v1/executions/search"

    async def ids(query: str) -> tuple[list[str], int]:
        status, doc, _ = await call("GET", f"{base}?{query}")
        assert status == 200, doc
        return [e["id"] for e in doc["results"]], doc["total"]

    assert await ids("namespace=ns") == (["c-1300", "b-1200", "a-1100", "a-1000"], 4)
    assert await ids("flowId=a") == (["a-1100", "a-1000"], 2)
    assert await ids("state=FAILED&state=CREATED") == (["a-1100"], 1)
    assert await ids("labels=team:data") == (["b-1200", "a-1000"], 2)
    assert await ids("startDate=2024-05-01T11:00:00Z&endDate=2024-05-01T13:00:00Z") == (
        ["b-1200", "a-1100"],
        2,
    )
    assert await ids("startDate=2024-05-01T12:00:00%2B02:00") == (
        ["d-1400", "c-1300", "b-1200", "a-1100", "a-1000"],
        5,
    )
    assert await ids("size=2&page=2") == (["b-1200", "a-1100"], 5)


async def test_search_refuses_malformed_filters_with_exact_messages(api: str) -> None:
    base = f"{api}/api/v1/executions/search"
    states = ", ".join(s.value for s in State)
    for query, message in (
        ("state=DONE", f"state 'DONE' is not one of {states}"),
        ("labels=team", "label 'team' is not key:value"),
        ("size=1001", "size must be a number from 1 to 1000, not '1001'"),
        ("page=0", "page must be a number from 1 to 1000000, not '0'"),
        (
            "startDate=yesterday",
            "startDate 'yesterday' is not an ISO-8601 date-time (e.g. 2024-01-31T10:00:00Z)",
        ),
    ):
        status, doc, _ = await call("GET", f"{base}?{query}")
        assert (status, doc) == (400, {"message": f"Bad Request: {message}"}), query


# -- kill, restart, replay, delete ----------------------------------------------------------


async def test_kill_of_a_queued_execution_ends_it_killed_without_running(
    h: Harness, api: str
) -> None:
    """Kestra's DELETE /api/v1/executions/{id}/kill on an execution QUEUED by its flow's
    concurrency limit (FlowConcurrencyCaseTest.flowConcurrencyQueueKilled): it ends KILLED
    at once, never RUNNING, and the running one goes on."""
    await h.flow(SLOW.replace("id: slow", "id: one_at_a_time\nconcurrency:\n  limit: 1"))
    first = await started(api, "one_at_a_time")
    await until_state(api, first["id"], "RUNNING")
    second = await started(api, "one_at_a_time")
    assert second["state"]["current"] == "QUEUED"
    status, doc, _ = await call("DELETE", f"{api}/api/v1/executions/{second['id']}/kill")
    assert (status, doc["state"]["current"]) == (202, "KILLED")
    assert [s["state"] for s in doc["state"]["histories"]] == ["CREATED", "QUEUED", "KILLED"]
    _, doc, _ = await call("GET", f"{api}/api/v1/executions/{first['id']}")
    assert doc["state"]["current"] == "RUNNING"
    status, _, _ = await call("DELETE", f"{api}/api/v1/executions/{first['id']}/kill")
    assert status == 202


async def test_kill_of_a_running_execution_ends_it_killed(h: Harness, api: str) -> None:
    execution = await started(api, "slow")
    url = f"{api}/api/v1/executions/{execution['id']}"
    await collect(
        f"{url}/follow",
        until=lambda e: any(t["taskId"] == "wait" for t in e.data.get("taskRunList", [])),
    )
    status, doc, _ = await call("DELETE", f"{url}/kill")
    assert (status, doc["state"]["current"]) == (202, "KILLED")
    assert {t["taskId"]: t["state"]["current"] for t in doc["taskRunList"]} == {
        "first": "SUCCESS",
        "wait": "KILLED",
    }
    status, doc, _ = await call("DELETE", f"{url}/kill")
    assert (status, doc) == (
        409,
        {"message": f"Illegal state: execution {execution['id']} has already ended (KILLED)"},
    )
    status, doc, _ = await call("DELETE", f"{api}/api/v1/executions/nope/kill")
    assert (status, doc) == (404, {"message": "Not Found: execution nope not found"})


async def test_restart_runs_the_failed_task_again_and_keeps_finished_ones(
    h: Harness, api: str
) -> None:
    failed = await ended(api, "flaky")
    assert failed["state"]["current"] == "FAILED"
    one = next(t for t in failed["taskRunList"] if t["taskId"] == "one")
    url = f"{api}/api/v1/executions/{failed['id']}/restart"
    await h.store.kv.set("ns", "ready", "yes")
    status, doc, _ = await call("POST", url)
    assert (status, doc["id"], doc["state"]["current"]) == (200, failed["id"], "RESTARTED")
    done = await h.engine.wait(failed["id"])
    assert done.state.current == State.SUCCESS
    kept = next(t for t in done.task_runs if t.task_id == "one")
    assert (kept.id, kept.outputs) == (one["id"], {"value": "computed once"})
    assert (await h.logs(done))[1:] == ["ready: yes"]  # after the first attempt's error
    status, doc, _ = await call("POST", url)
    assert (status, doc) == (
        409,
        {
            "message": f"Illegal state: execution {failed['id']} is "
            "SUCCESS; only FAILED or KILLED executions can "
            "be restarted"
        },
    )


async def test_replay_from_a_task_run_is_a_new_execution_that_keeps_earlier_runs(
    h: Harness, api: str
) -> None:
    await h.store.kv.set("ns", "ready", "yes")
    original = await ended(api, "flaky")
    two = next(t for t in original["taskRunList"] if t["taskId"] == "two")
    url = f"{api}/api/v1/executions/{original['id']}/replay"
    status, doc, _ = await call("POST", f"{url}?taskRunId={two['id']}")
    assert status == 200, doc
    assert doc["id"] != original["id"]
    assert {"key": "system.replay", "value": "true"} in doc["labels"]
    replayed = await h.engine.wait(doc["id"])
    assert replayed.state.current == State.SUCCESS
    assert [(t.task_id, t.outputs) for t in replayed.task_runs if t.task_id == "one"] == [
        ("one", {"value": "computed once"})
    ]
    status, doc, _ = await call("POST", f"{url}?taskRunId=nope")
    assert (status, doc) == (
        404,
        {"message": f"Not Found: task run nope not found in execution {original['id']}"},
    )


async def test_delete_removes_an_ended_execution_and_refuses_a_running_one(
    h: Harness, api: str
) -> None:
    done = await ended(api, "files", data=form(f=("a.txt", b"abc")))
    status, body, _ = await call("DELETE", f"{api}/api/v1/executions/{done['id']}")
    assert (status, body) == (204, "")
    assert await h.store.get_execution(done["id"]) is None
    folder = h.engine.resources.storage.blobs.root / "ns" / "files" / "executions" / done["id"]
    assert not await asyncio.to_thread(folder.exists)
    running = await started(api, "slow")
    status, doc, _ = await call("DELETE", f"{api}/api/v1/executions/{running['id']}")
    assert status == 409
    assert doc["message"].startswith(f"Illegal state: execution {running['id']} is ")
    assert doc["message"].endswith("; kill it before deleting it")


# -- labels and resume ----------------------------------------------------------------------


async def test_labels_are_added_to_an_ended_execution(h: Harness, api: str) -> None:
    done = await ended(api, "quick?labels=team:data", json={})
    url = f"{api}/api/v1/executions/{done['id']}/labels"
    status, doc, _ = await call(
        "POST", url, json=[{"key": "team", "value": "web"}, {"key": "env", "value": "prod"}]
    )
    assert status == 200, doc
    assert doc["labels"] == [
        {"key": "team", "value": "web"},
        {"key": "system.correlationId", "value": done["id"]},
        {"key": "env", "value": "prod"},
    ]
    stored_doc = await h.store.get_execution(done["id"])
    assert stored_doc is not None and stored_doc["labels"] == doc["labels"]


async def test_malformed_labels_are_refused_with_exact_messages(h: Harness, api: str) -> None:
    done = await ended(api, "quick", json={})
    url = f"{api}/api/v1/executions/{done['id']}/labels"
    shape = 'labels must be a JSON array of {"key": "...", "value": "..."} objects'
    for body, message in (
        ({"team": "web"}, f"{shape}, not an object"),
        ([{"key": "team"}], f"{shape}; item 0 is not"),
        (
            [{"key": "system.replay", "value": "x"}],
            "label 'system.replay': system labels are set by podium",
        ),
    ):
        status, doc, _ = await call("POST", url, json=body)
        assert (status, doc) == (400, {"message": f"Bad Request: {message}"})
    running = await started(api, "slow")
    status, doc, _ = await call(
        "POST", f"{api}/api/v1/executions/{running['id']}/labels", json=[{"key": "a", "value": "b"}]
    )
    assert status == 409
    assert doc["message"].endswith("; labels can be set once it has ended")


async def test_resume_of_an_execution_that_is_not_paused_is_409(api: str) -> None:
    done = await ended(api, "quick", json={})
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/{done['id']}/resume")
    assert (status, doc) == (
        409,
        {"message": f"Illegal state: execution {done['id']} is not PAUSED"},
    )


async def test_resume_gives_the_pause_task_its_inputs(h: Harness, api: str) -> None:
    await h.flow("""
        id: approve
        namespace: ns
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - id: approved
                type: BOOLEAN
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "approved={{ outputs.gate.onResume.approved }}"
        """)
    paused = await started(api, "approve", json={})
    await until_state(api, paused["id"], "PAUSED")
    url = f"{api}/api/v1/executions/{paused['id']}/resume"
    status, doc, _ = await call("POST", url, json={"approved": "perhaps"})
    assert (status, doc["message"]) == (
        422,
        "Invalid entity: input 'approved': 'perhaps' is not a BOOLEAN (expected true or false)",
    )
    status, _, _ = await call("POST", url, data=form(approved="true"))
    assert status == 204
    final = await h.engine.wait(paused["id"])
    assert final.state.current == State.SUCCESS
    assert final.task_runs[-1].outputs == {"value": "approved=true"}


# -- files ----------------------------------------------------------------------------------


async def test_an_output_file_downloads_by_its_uri(api: str) -> None:
    done = await ended(api, "files", data=form(f=("a.txt", b"abc")))
    assert done["state"]["current"] == "SUCCESS", done
    uri = done["taskRunList"][0]["outputs"]["uri"]
    status, body, resp = await call(
        "GET", f"{api}/api/v1/executions/{done['id']}/file", params={"path": uri}
    )
    assert (status, body) == (200, "abcabc")
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="concat.txt"'


async def test_files_outside_the_execution_are_refused(api: str) -> None:
    mine = await ended(api, "files", data=form(f=("a.txt", b"mine")))
    other = await ended(api, "files", data=form(f=("b.txt", b"other")))
    url = f"{api}/api/v1/executions/{mine['id']}/file"
    prefix = f"kestra:///ns/files/executions/{mine['id']}"
    elsewhere = other["inputs"]["f"]
    for path, status, message in (
        (elsewhere, 403, f"Forbidden: {elsewhere} is not a file of execution {mine['id']}"),
        (
            f"{prefix}/../{other['id']}/inputs/f/b.txt",
            403,
            f"Forbidden: {prefix}/../{other['id']}/inputs/f/b.txt is not a file of "
            f"execution {mine['id']}",
        ),
        (
            f"{prefix}/inputs/../../../../../../etc/passwd",
            403,
            f"Forbidden: {prefix}/inputs/../../../../../../etc/passwd is not a file of "
            f"execution {mine['id']}",
        ),
        (
            f"{prefix}/inputs/f/nothing.txt",
            404,
            f"Not Found: no file {prefix}/inputs/f/nothing.txt in execution {mine['id']}",
        ),
        ("/etc/passwd", 400, "Bad Request: path '/etc/passwd' is not a kestra:/// URI"),
    ):
        got, doc, _ = await call("GET", url, params={"path": path})
        assert (got, doc) == (status, {"message": message}), path
    got, doc, _ = await call("GET", url)
    assert (got, doc) == (400, {"message": "Bad Request: path is required (a kestra:/// URI)"})


# -- live streams ---------------------------------------------------------------------------


async def test_execution_follow_streams_changes_while_it_runs_and_ends_after_the_last(
    h: Harness, api: str
) -> None:
    execution = await started(api, "slow")
    url = f"{api}/api/v1/executions/{execution['id']}"
    running_when_seen: list[bool] = []
    kills: list[asyncio.Task[bool]] = []

    def sleeping(event: Event) -> bool:
        tasks = {t["taskId"]: t["state"]["current"] for t in event.data.get("taskRunList", [])}
        if tasks.get("wait") == "RUNNING" and not kills:
            running_when_seen.append(h.engine.local.running == 1)
            kills.append(asyncio.ensure_future(h.engine.kill(execution["id"])))
        return False

    seen = await collect(f"{url}/follow", until=sleeping)
    assert running_when_seen == [True]
    assert await kills[0]
    assert {e.id for e in seen[:-1]} == {"progress"}
    assert (seen[-1].id, seen[-1].data["state"]["current"]) == ("end", "KILLED")
    states = [e.data["state"]["current"] for e in seen]
    assert "RUNNING" in states and states.index("RUNNING") < states.index("KILLED")


async def test_execution_follow_of_an_ended_execution_is_one_end_event(api: str) -> None:
    done = await ended(api, "quick", json={})
    seen = await collect(f"{api}/api/v1/executions/{done['id']}/follow")
    assert [(e.id, e.data["state"]["current"]) for e in seen] == [("end", "SUCCESS")]


async def test_log_follow_delivers_lines_while_the_execution_runs(h: Harness, api: str) -> None:
    execution = await started(api, "slow")
    live: list[bool] = []
    kills: list[asyncio.Task[bool]] = []

    def line(event: Event) -> bool:
        if event.data.get("message") == "first line":
            live.append(h.engine.local.running == 1)
            kills.append(asyncio.ensure_future(h.engine.kill(execution["id"])))
        return False

    seen = await collect(f"{api}/api/v1/logs/{execution['id']}/follow", until=line)
    assert live == [True]
    assert await kills[0]
    assert [e.data.get("message") for e in seen[:-1]] == ["first line"]
    assert (seen[-1].event, seen[-1].data) == (
        "end",
        {"executionId": execution["id"], "state": "KILLED"},
    )


async def test_log_follow_of_an_ended_execution_sends_stored_lines_then_ends(api: str) -> None:
    done = await ended(api, "quick", json={})
    url = f"{api}/api/v1/logs/{done['id']}/follow"
    seen = await collect(url)
    assert [e.data.get("message") for e in seen[:-1]] == ["one", "quiet", "two"]
    assert seen[-1].event == "end"
    seen = await collect(f"{url}?minLevel=INFO")
    assert [e.data.get("message") for e in seen[:-1]] == ["one", "two"]
    status, doc, _ = await call("GET", f"{url}?minLevel=LOUD")
    assert (status, doc) == (
        400,
        {"message": "Bad Request: minLevel 'LOUD' is not one of TRACE, DEBUG, INFO, WARN, ERROR"},
    )
    status, doc, _ = await call("GET", f"{api}/api/v1/logs/nope/follow")
    assert (status, doc) == (404, {"message": "Not Found: execution nope not found"})


async def test_quiet_streams_get_heartbeats(
    h: Harness, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "HEARTBEAT", 0.05)
    execution = await started(api, "slow")
    seen: list[bytes] = []
    async with (
        asyncio.timeout(20),
        aiohttp.ClientSession() as session,
        session.get(f"{api}/api/v1/logs/{execution['id']}/follow") as resp,
    ):
        assert resp.status == 200
        async for raw in resp.content:
            seen.append(raw)
            if raw == b": heartbeat\n":
                break
    assert seen[-1] == b": heartbeat\n", "the stream ended without a heartbeat"


async def test_open_streams_end_when_the_server_stops(h: Harness) -> None:
    await h.flow(SLOW)
    execution = await h.start(SLOW)
    async with asyncio.timeout(10), aiohttp.ClientSession() as session:
        async with serving(h) as url:
            resp = await session.get(f"{url}/api/v1/executions/{execution.id}/follow")
            first = await resp.content.readuntil(b"\n\n")
            assert first.startswith(b"id: progress\n")
        await resp.content.read()  # what was still queued, then the end: not a timeout
        assert resp.content.at_eof()
        resp.release()


class Answered(logging.Handler):
    """Sets `done` when the access log records an answer to `path` (its handler returned)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.done = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(f"GET {self.path} 200"):
            self.done.set()


async def test_a_stream_whose_client_left_ends_at_the_next_heartbeat(
    h: Harness, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "HEARTBEAT", 0.05)
    execution = await started(api, "slow")
    path = f"/api/v1/executions/{execution['id']}/follow"
    answered = Answered(path)
    logger = logging.getLogger("daemon.api")
    logger.addHandler(answered)
    logger.setLevel(logging.INFO)
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(api + path)
            await resp.content.readuntil(b"\n\n")
            resp.close()  # the client goes away while the execution still runs
        async with asyncio.timeout(10):
            await answered.done.wait()
    finally:
        logger.removeHandler(answered)
        logger.setLevel(logging.NOTSET)
    assert h.engine.local.running == 1
