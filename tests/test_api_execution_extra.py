"""More of Kestra's execution endpoints on a real port: replay with inputs, the latest
execution of each flow, a file's size, the flow of an execution (FlowForExecution), and the
webhook URL with a path after the key.

Each test names the part of Kestra's ExecutionController (and its ExecutionControllerTest)
it follows; malformed requests get podium's 400 (podium answers a malformed request 400,
test_api_hardening.py) unless Kestra's answer for them is another status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from daemon.sdk.state import State
from tests.api_helpers import call, form, serving
from tests.harness import Harness, running_triggers, settle
from tests.test_trigger_webhook import HOOK, KEY, NOT_FOUND

GREET = """
id: greet
namespace: ns
inputs:
  - id: name
    type: STRING
  - id: times
    type: INT
    defaults: 1
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.name }} x{{ inputs.times }}"
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: "{{ inputs.name }}"
    extension: .txt
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""

GATE = """
id: gate
namespace: ns
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
        defaults: false
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{ outputs.approve.onResume.approved }}"
    then:
      - id: yes
        type: io.kestra.plugin.core.log.Log
        message: approved
"""


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    for source in (GREET, GATE):
        await h.flow(source)
    async with serving(h) as url:
        yield url


async def ended(api: str, flow: str, **kwargs: Any) -> dict[str, Any]:
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/ns/{flow}?wait=true", **kwargs)
    assert status == 200, doc
    return dict(doc)


async def finished(h: Harness, execution_id: str) -> dict[str, Any]:
    await h.engine.wait(execution_id)
    await h.store.flush()
    doc = await h.store.get_execution(execution_id)
    assert doc is not None
    return doc


# -- replay-with-inputs ---------------------------------------------------------------------


async def test_replay_with_inputs_from_a_form_runs_with_them(h: Harness, api: str) -> None:
    """ExecutionController.replayExecutionWithinputs: multipart inputs as for a new
    execution; the original is labelled system.replayed (innerReplay)."""
    first = await ended(api, "greet", data=form(name="Ada"))
    url = f"{api}/api/v1/executions/{first['id']}/replay-with-inputs"
    status, doc, _ = await call("POST", url, data=form(name="Bo", times="2"))
    assert status == 200, doc
    assert doc["id"] != first["id"] and doc["inputs"] == {"name": "Bo", "times": 2}
    assert {"key": "system.replay", "value": "true"} in doc["labels"]
    replay = await finished(h, doc["id"])
    assert replay["taskRunList"][0]["outputs"] == {"value": "Bo x2"}
    original = await finished(h, first["id"])
    assert {"key": "system.replayed", "value": "true"} in original["labels"]


async def test_replay_with_inputs_as_json_and_without_a_body(h: Harness, api: str) -> None:
    """A JSON object of inputs replaces them; no body at all keeps the original's (as
    kestrapy's replay_execution_with_inputs documents it without inputs)."""
    first = await ended(api, "greet", data=form(name="Ada", times="3"))
    url = f"{api}/api/v1/executions/{first['id']}/replay-with-inputs"
    status, doc, _ = await call("POST", url, json={"name": "Cy"})
    assert (status, doc["inputs"]) == (200, {"name": "Cy", "times": 1})
    status, doc, _ = await call("POST", url)
    assert (status, doc["inputs"]) == (200, {"name": "Ada", "times": 3})


async def test_replay_with_inputs_from_a_task_run_keeps_the_runs_before_it(
    h: Harness, api: str
) -> None:
    """`taskRunId`: the tasks before its task keep their runs (and outputs)."""
    first = await ended(api, "greet", data=form(name="Ada"))
    write = next(r for r in first["taskRunList"] if r["taskId"] == "write")
    url = f"{api}/api/v1/executions/{first['id']}/replay-with-inputs?taskRunId={write['id']}"
    status, doc, _ = await call("POST", url, data=form(name="Di"))
    assert status == 200, doc
    replay = await finished(h, doc["id"])
    runs = {r["taskId"]: r for r in replay["taskRunList"]}
    assert runs["hello"]["outputs"] == {"value": "Ada x1"}  # kept, not run again
    assert runs["write"]["state"]["current"] == State.SUCCESS.value


async def test_replay_with_inputs_that_do_not_fit_is_422(h: Harness, api: str) -> None:
    """FlowInputOutput.readExecutionInputs refuses them: Kestra's 422 `Invalid entity`."""
    first = await ended(api, "greet", data=form(name="Ada"))
    url = f"{api}/api/v1/executions/{first['id']}/replay-with-inputs"
    status, doc, _ = await call("POST", url, data=form(times="many"))
    assert status == 422, doc
    assert doc["message"].startswith("Invalid entity:")
    said = [error["message"] for error in doc["_embedded"]["errors"]]
    assert any("'name'" in m for m in said) and any("'times'" in m for m in said), said
    _, found, _ = await call("GET", f"{api}/api/v1/executions/search?size=50")
    assert found["total"] == 1


async def test_replay_with_inputs_of_unknown_things_is_404(h: Harness, api: str) -> None:
    """An unknown execution (Kestra returns null: 404), task run or revision
    (controlRevision's NoSuchElementException: 404); a revision that is not a number is
    Micronaut's conversion error, 422; a server path for a FILE input is refused."""
    first = await ended(api, "greet", data=form(name="Ada"))
    base = f"{api}/api/v1/executions/{first['id']}/replay-with-inputs"
    missing = await call("POST", f"{api}/api/v1/executions/nope/replay-with-inputs", json={})
    run = await call("POST", f"{base}?taskRunId=nope", json={"name": "x"})
    revision = await call("POST", f"{base}?revision=42", json={"name": "x"})
    letters = await call("POST", f"{base}?revision=two", json={"name": "x"})
    assert [s for s, _, _ in (missing, run, revision, letters)] == [404, 404, 404, 422]
    assert "revision 42" in revision[1]["message"]
    bad = await call("POST", base, data=b"\x00", headers={"Content-Type": "image/png"})
    assert bad[0] == 415


async def test_replay_with_inputs_on_the_tenant_path(h: Harness, api: str) -> None:
    first = await ended(api, "greet", data=form(name="Ada"))
    url = f"{api}/api/v1/main/executions/{first['id']}/replay-with-inputs"
    status, doc, _ = await call("POST", url, data=form(name="Ed"))
    assert (status, doc["inputs"]["name"]) == (200, "Ed")


# -- latest ---------------------------------------------------------------------------------


async def test_latest_executions_are_the_last_to_end_of_each_flow(h: Harness, api: str) -> None:
    """ExecutionController.getLatestExecutions (lastExecutions): one LastExecutionResponse
    per flow that has an ended execution; a flow with none is left out."""
    await ended(api, "greet", data=form(name="a"))
    last = await ended(api, "greet", data=form(name="b"))
    status, paused, _ = await call("POST", f"{api}/api/v1/executions/ns/gate")
    assert status == 200
    body = [
        {"namespace": "ns", "id": "greet"},
        {"namespace": "ns", "id": "gate"},  # paused, not ended
        {"namespace": "ns", "id": "nothing"},
        {"namespace": "ns", "id": "greet"},
    ]
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/latest", json=body)
    assert status == 200, doc
    assert doc == [
        {
            "id": last["id"],
            "flowId": "greet",
            "namespace": "ns",
            "startDate": last["state"]["startDate"],
            "status": "SUCCESS",
        }
    ]
    await h.engine.kill(paused["id"])
    _, doc, _ = await call("POST", f"{api}/api/v1/main/executions/latest", json=body[1:2])
    assert [(d["id"], d["status"]) for d in doc] == [(paused["id"], "KILLED")]
    status, doc, _ = await call("POST", f"{api}/api/v1/executions/latest", json=[])
    assert (status, doc) == (200, [])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"data": b"[{", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"namespace": "ns", "id": "greet"}}, 400, "not an object"),
        ({"json": [{"namespace": "ns"}]}, 400, "item 0 is not"),
        ({"json": [{"namespace": "ns", "id": 3}]}, 400, "item 0 is not"),
        ({"data": b"ns.greet", "headers": {"Content-Type": "text/plain"}}, 415, "text/plain"),
    ],
)
async def test_latest_executions_refuse_a_malformed_body(
    api: str, body: dict[str, Any], status: int, says: str
) -> None:
    got, doc, _ = await call("POST", f"{api}/api/v1/executions/latest", **body)
    assert got == status, doc
    assert says in doc["message"]


# -- file metas -----------------------------------------------------------------------------


async def test_file_metas_give_the_size_of_a_file_of_the_execution(h: Harness, api: str) -> None:
    """ExecutionController.getFileMetadatasFromExecution: Kestra's FileMetas `{"size": n}`,
    with the download's checks (ExecutionControllerTest's file tests)."""
    done = await ended(api, "greet", data=form(name="Ada"))
    uri = next(r for r in done["taskRunList"] if r["taskId"] == "write")["outputs"]["uri"]
    base = f"{api}/api/v1/executions/{done['id']}/file/metas"
    status, doc, _ = await call("GET", base, params={"path": uri})
    assert (status, doc) == (200, {"size": 3})
    other = await ended(api, "greet", data=form(name="Bo"))
    foreign = f"{api}/api/v1/main/executions/{other['id']}/file/metas"
    gone = uri.rsplit("/", 1)[0] + "/missing.txt"
    answers = [
        await call("GET", base),
        await call("GET", base, params={"path": "/etc/passwd"}),
        await call("GET", foreign, params={"path": uri}),
        await call("GET", base, params={"path": gone}),
        await call("GET", f"{api}/api/v1/executions/nope/file/metas", params={"path": uri}),
    ]
    assert [s for s, _, _ in answers] == [400, 400, 403, 404, 404]


# -- the flow of an execution ---------------------------------------------------------------


async def test_flow_for_execution_is_what_one_who_runs_the_flow_sees(h: Harness, api: str) -> None:
    """ExecutionController.getFlowFromExecution: Kestra's FlowForExecution, its inputs as
    written, its tasks by id and type (a flowable with its children, a paused task with the
    inputs it resumes with), its triggers by id and type, never its source."""
    status, doc, _ = await call("GET", f"{api}/api/v1/executions/flows/ns/gate")
    assert status == 200, doc
    assert doc.pop("revision") is None  # never run nor stored: no revision yet
    assert doc == {
        "id": "gate",
        "namespace": "ns",
        "tasks": [
            {
                "id": "approve",
                "type": "io.kestra.plugin.core.flow.Pause",
                "tasks": [],
                "inputs": [{"id": "approved", "type": "BOOLEAN", "defaults": "false"}],
            },
            {
                "id": "branch",
                "type": "io.kestra.plugin.core.flow.If",
                "tasks": [{"id": "yes", "type": "io.kestra.plugin.core.log.Log"}],
            },
        ],
        "errors": [],
        "finally": [],
        "afterExecution": [],
        "triggers": [],
        "disabled": False,
        "deleted": False,
    }
    _, greet, _ = await call("GET", f"{api}/api/v1/main/executions/flows/ns/greet")
    assert greet["inputs"] == [
        {"id": "name", "type": "STRING"},
        {"id": "times", "type": "INT", "defaults": "1"},
    ]
    assert greet["triggers"] == [
        {"id": "nightly", "type": "io.kestra.plugin.core.trigger.Schedule"}
    ]
    assert "source" not in greet


async def test_flow_of_an_execution_is_the_revision_it_ran(h: Harness, api: str) -> None:
    """ExecutionController.getFlowFromExecutionById, and getFlowFromExecution's
    `revision`: a flow changed since answers its latest revision by id, the execution's
    by execution; an unknown execution, flow or revision is 404."""
    first = await ended(api, "greet", data=form(name="Ada"))
    changed = await h.flow(GREET.replace("id: hello", "id: bonjour"))
    second = await h.engine.wait((await h.engine.submit(changed, {"name": "x"})).id)
    assert second.flow_revision == first["flowRevision"] + 1
    _, ran, _ = await call("GET", f"{api}/api/v1/executions/{first['id']}/flow")
    assert (ran["revision"], ran["tasks"][0]["id"]) == (first["flowRevision"], "hello")
    _, latest, _ = await call("GET", f"{api}/api/v1/executions/flows/ns/greet")
    assert (latest["revision"], latest["tasks"][0]["id"]) == (second.flow_revision, "bonjour")
    url = f"{api}/api/v1/executions/flows/ns/greet?revision={first['flowRevision']}"
    _, old, _ = await call("GET", url)
    assert old["tasks"][0]["id"] == "hello"
    answers = [
        await call("GET", f"{api}/api/v1/executions/nope/flow"),
        await call("GET", f"{api}/api/v1/executions/flows/ns/nope"),
        await call("GET", f"{api}/api/v1/executions/flows/ns/greet?revision=99"),
        await call("GET", f"{api}/api/v1/executions/flows/ns/greet?revision=x"),
    ]
    assert [s for s, _, _ in answers] == [404, 404, 404, 422]


# -- webhook with a path --------------------------------------------------------------------


async def test_a_webhook_url_with_a_path_is_the_same_404_as_an_unknown_key(h: Harness) -> None:
    """Kestra's ExecutionController `/webhook/{namespace}/{id}/{key}{/path}` hands the path
    to the trigger (WebhookContext.path), and its Webhook trigger answers 404 to any path:
    the path never becomes a trigger variable. podium answers it as an unknown key, on the
    tenant path too, and counts the request refused; the plain URL still starts one."""
    async with (
        running_triggers(h, HOOK) as th,
        serving(h, webhooks=th.webhooks) as url,
    ):
        await settle()
        base = f"{url}/api/v1/executions/webhook/ns/hook/{KEY}"
        answers = [
            await call("POST", f"{base}/extra", json={"user": {"name": "x"}}),
            await call("GET", f"{base}/a%2Fb"),
            await call("PUT", f"{url}/api/v1/main/executions/webhook/ns/hook/{KEY}/extra"),
            await call("POST", f"{url}/api/v1/executions/webhook/ns/hook/wrong/extra"),
        ]
        assert [(s, d) for s, d, _ in answers] == [(404, NOT_FOUND)] * 4
        assert h.engine.metrics.rejected.get("io.kestra.plugin.core.trigger.Webhook") == 4
        status, doc, _ = await call("POST", base, json={"user": {"name": "Ada"}})
        assert status == 200, doc
        await th.wait_for(1)


async def test_a_webhook_with_a_path_needs_no_credentials_nor_same_site(h: Harness) -> None:
    """Like the plain webhook URL, its twin with a path is open to any caller: its 404 is
    the trigger's, not the 401 of basic auth nor the 403 of the cross-site check."""
    from daemon.config.settings import BasicAuth, Settings

    settings = Settings(
        data_dir=h.engine.data_dir, basic_auth=BasicAuth(username="ada", password="pw")
    )
    async with (
        running_triggers(h, HOOK, settings) as th,
        serving(h, settings, th.webhooks) as url,
        aiohttp.ClientSession() as session,
    ):
        await settle()
        headers = {"Origin": "https://elsewhere.example", "Content-Type": "text/plain"}
        target = f"{url}/api/v1/executions/webhook/ns/hook/{KEY}/extra"
        async with session.post(target, data=b"x", headers=headers) as resp:
            assert (resp.status, await resp.json()) == (404, NOT_FOUND)
