"""Kestra's Python SDK, `kestrapy` 1.3.1 (the SDK of Kestra 1.3), unchanged against a real
`podium serve`: every call goes to `/api/v1/main/...` as it would to a Kestra server.

kestrapy validates each answer with its pydantic models, but when one does not validate it
silently falls back to an unchecked `model_construct` (`BaseApi._construct_model`). The
`client` fixture turns that fallback into a failure, so each answer below validates
against Kestra's own models. The calls are those of kestrapy's `ExecutionsApi`, `FlowsApi`,
`KVApi`, `LogsApi` and `TriggersApi` (kestra-io/client-sdk, python/python-sdk), and the
behaviour they check is Kestra's ExecutionControllerTest / FlowControllerTest /
KVControllerTest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kestrapy import KestraClient
from kestrapy.base_api import BaseApi
from kestrapy.exceptions import NotFoundException, UnauthorizedException
from kestrapy.models.query_filter import QueryFilter
from kestrapy.models.state_type import StateType

from tests.daemon_process import ServeProcess

TENANT = "main"
USER, PASSWORD = "ada@example.com", "Pa55-word"
NS = "company.team"

GREET = """\
id: greet
namespace: company.team
labels:
  team: data
inputs:
  - id: name
    type: STRING
    defaults: World
  - id: times
    type: INT
    defaults: 1
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }} x{{ inputs.times }}"
  - id: report
    type: io.kestra.plugin.core.storage.Write
    content: "{{ inputs.name }},{{ inputs.times }}"
    extension: .csv
outputs:
  - id: report
    type: FILE
    value: "{{ outputs.report.uri }}"
"""

SLOW = """\
id: slow
namespace: company.team
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10M
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: k3y-for-kestrapy
"""

GATE = """\
id: gate
namespace: company.team
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "approved={{ outputs.approve.onResume.approved }}"
"""

GUARDED = """\
id: guarded
namespace: company.team
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ kv('go', errorOnMissing=false) != 'yes' }}"
    errorMessage: the go key is not set
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: went
"""


def _strict(data: dict[str, Any], model: type[Any]) -> Any:
    """What kestrapy falls back to when its model refuses an answer: the model's own
    validation error instead, naming the field podium got wrong."""
    model.model_validate(data)
    raise AssertionError(f"{model.__name__} refused {data!r} and then accepted it")


@pytest.fixture(scope="module")
def podium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("kestrapy")
    (root / "flows").mkdir()
    env = {"PODIUM_BASIC_AUTH_USERNAME": USER, "PODIUM_BASIC_AUTH_PASSWORD": PASSWORD}
    serve = ServeProcess(root, root / "flows", root / "data", env=env).start()
    try:
        yield serve
    finally:
        assert serve.stop() == 0, serve.output()


@pytest.fixture
def client(podium: ServeProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[KestraClient]:
    monkeypatch.setattr(BaseApi, "_construct_model", staticmethod(_strict))
    with KestraClient(host=podium.url(""), username=USER, password=PASSWORD, timeout=60) as kc:
        yield kc


def _ensure(client: KestraClient, source: str) -> None:
    """Create the flow, or update it when an earlier test of the module created it."""
    flow_id = source.split("\n", 1)[0].removeprefix("id: ")
    try:
        client.flows.flow(NS, flow_id, TENANT)
    except NotFoundException:
        client.flows.create_flow(TENANT, source)
    else:
        client.flows.update_flow(NS, flow_id, TENANT, source)


def _until_ended(client: KestraClient, execution_id: str) -> Any:
    """Kestra's SSE follow, through kestrapy, to the execution's last state."""
    last = None
    for last in client.executions.follow_execution(execution_id, TENANT):
        if last.state.current in (StateType.SUCCESS, StateType.FAILED, StateType.KILLED):
            break
    assert last is not None
    return last


def test_create_update_and_delete_a_flow_from_yaml(client: KestraClient) -> None:
    """FlowControllerTest: create, update (a new revision), read with its source, delete."""
    source = GREET.replace("id: greet", "id: crud")
    created = client.flows.create_flow(TENANT, source)
    assert (created.namespace, created.id, created.revision) == (NS, "crud", 1)
    assert created.source == source
    assert [(i.id, i.defaults.actual_instance) for i in created.inputs] == [
        ("name", "World"),
        ("times", "1"),
    ]
    changed = source.replace("Hello,", "Hi,")
    updated = client.flows.update_flow(NS, "crud", TENANT, changed)
    assert (updated.revision, updated.source) == (2, changed)
    found = client.flows.flow(NS, "crud", TENANT, source=True)
    assert (found.revision, found.source, found.labels[0].key) == (2, changed, "team")
    assert "crud" in [f.id for f in client.flows.search_flows(TENANT, page=1, size=50).results]
    in_ns = client.flows.search_flows(
        TENANT, filters=[QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": NS})]
    )
    assert "crud" in [f.id for f in in_ns.results]
    other = client.flows.search_flows(
        TENANT, filters=[QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": "x"})]
    )
    assert (other.results, other.total) == ([], 0)
    client.flows.delete_flow(NS, "crud", TENANT)
    with pytest.raises(NotFoundException):
        client.flows.flow(NS, "crud", TENANT)


def test_create_an_execution_with_inputs_and_wait(client: KestraClient) -> None:
    """ExecutionControllerTest: inputs as multipart fields, labels, `wait=true`."""
    _ensure(client, GREET)
    done = client.executions.create_execution(
        TENANT, NS, "greet", wait=True, labels=["run:sdk"], inputs={"name": "Ada", "times": 3}
    )
    assert done.state.current == StateType.SUCCESS
    assert done.inputs == {"name": "Ada", "times": 3}
    assert {(lb.key, lb.value) for lb in done.labels} >= {("run", "sdk")}
    assert [tr.task_id for tr in done.task_run_list] == ["hello", "report"]
    assert done.outputs["report"].startswith("kestra:///company/team/greet/executions/")


def test_a_file_input_is_uploaded_and_read_back(client: KestraClient) -> None:
    """ExecutionControllerTest (file inputs): kestrapy sends bytes as a multipart file part;
    the execution's input is the stored file's kestra:// URI, downloadable again."""
    source = """\
id: upload
namespace: company.team
inputs:
  - id: data
    type: FILE
tasks:
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ inputs.data }}"
"""
    _ensure(client, source)
    done = client.executions.create_execution(
        TENANT, NS, "upload", wait=True, inputs={"data": ("rows.csv", b"a,b\n1,2\n", "text/csv")}
    )
    assert done.state.current == StateType.SUCCESS
    uri = done.inputs["data"]
    assert uri.startswith("kestra:///") and uri.endswith("rows.csv")
    assert client.executions.download_file_from_execution(done.id, uri, TENANT) == b"a,b\n1,2\n"
    assert next(tr for tr in done.task_run_list if tr.task_id == "size").outputs == {"size": 8}


def test_get_and_follow_an_execution_created_without_waiting(client: KestraClient) -> None:
    _ensure(client, GREET)
    created = client.executions.create_execution(TENANT, NS, "greet")
    assert created.state.current in (StateType.CREATED, StateType.RUNNING)
    ended = _until_ended(client, created.id)
    assert ended.state.current == StateType.SUCCESS
    fetched = client.executions.execution(created.id, TENANT)
    assert (fetched.id, fetched.flow_id, fetched.deleted) == (created.id, "greet", False)
    assert fetched.state.histories[0].state == StateType.CREATED


def test_search_executions_with_kestra_filters(client: KestraClient) -> None:
    """ExecutionController.searchExecutions with QueryFilter, and searchExecutionsByFlowId."""
    _ensure(client, GREET)
    run = client.executions.create_execution(TENANT, NS, "greet", wait=True, labels=["pick:me"])
    found = client.executions.search_executions(
        TENANT,
        page=1,
        size=10,
        filters=[
            QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": NS}),
            QueryFilter(field="FLOW_ID", operation="EQUALS", value={"value": "greet"}),
            QueryFilter(field="LABELS", operation="EQUALS", value={"pick": "me"}),
            QueryFilter(field="STATE", operation="IN", value={"value": ["SUCCESS", "FAILED"]}),
        ],
    )
    assert [e["id"] for e in found["results"]] == [run.id]
    by_flow = client.executions.search_executions_by_flow_id(TENANT, NS, "greet", size=100)
    assert run.id in [e["id"] for e in by_flow["results"]]
    assert by_flow["total"] >= 1


def test_kill_a_running_execution(client: KestraClient) -> None:
    """ExecutionControllerTest.kill: DELETE .../kill, the execution ends KILLED."""
    _ensure(client, SLOW)
    created = client.executions.create_execution(TENANT, NS, "slow")
    for seen in client.executions.follow_execution(created.id, TENANT):
        if seen.state.current == StateType.RUNNING:
            break
    client.executions.kill_execution(created.id, TENANT)
    assert _until_ended(client, created.id).state.current == StateType.KILLED


def test_restart_a_failed_execution_once_the_cause_is_fixed(client: KestraClient) -> None:
    """ExecutionControllerTest.restart: the failed task runs again in the same execution."""
    _ensure(client, GUARDED)
    client.kv.delete_key_value(NS, "go", TENANT)
    failed = client.executions.create_execution(TENANT, NS, "guarded", wait=True)
    assert failed.state.current == StateType.FAILED
    client.kv.set_key_value(NS, "go", TENANT, '"yes"')
    restarted = client.executions.restart_execution(failed.id, TENANT)
    assert restarted.id == failed.id
    ended = _until_ended(client, failed.id)
    assert ended.state.current == StateType.SUCCESS
    check = next(tr for tr in ended.task_run_list if tr.task_id == "check")
    assert [a.state.current for a in check.attempts] == [StateType.FAILED, StateType.SUCCESS]


def test_replay_an_execution(client: KestraClient) -> None:
    """ExecutionControllerTest.replay: a new execution of the same flow and inputs."""
    _ensure(client, GREET)
    first = client.executions.create_execution(
        TENANT, NS, "greet", wait=True, inputs={"name": "Bo"}
    )
    replay = client.executions.replay_execution(first.id, TENANT)
    assert replay.id != first.id
    ended = _until_ended(client, replay.id)
    assert (ended.state.current, ended.inputs["name"]) == (StateType.SUCCESS, "Bo")


def test_resume_a_paused_execution_with_its_inputs(client: KestraClient) -> None:
    """ExecutionControllerTest.resume with the Pause task's onResume inputs."""
    _ensure(client, GATE)
    created = client.executions.create_execution(TENANT, NS, "gate")
    for seen in client.executions.follow_execution(created.id, TENANT):
        if seen.state.current == StateType.PAUSED:
            break
    client.executions.resume_execution(created.id, TENANT, inputs={"approved": True})
    assert _until_ended(client, created.id).state.current == StateType.SUCCESS
    lines = client.logs.list_logs_from_execution(created.id, TENANT, task_id="after")
    assert [line.message for line in lines] == ["approved=true"]


def test_download_the_logs_and_an_output_file(client: KestraClient) -> None:
    """LogControllerTest (list, download) and ExecutionController's file download."""
    _ensure(client, GREET)
    done = client.executions.create_execution(
        TENANT, NS, "greet", wait=True, inputs={"name": "Cy", "times": 2}
    )
    lines = client.logs.list_logs_from_execution(done.id, TENANT)
    assert [(line.task_id, line.message) for line in lines] == [("hello", "Hello, Cy x2")]
    assert lines[0].execution_id == done.id and lines[0].level.value == "INFO"
    text = client.logs.download_logs_from_execution(done.id, TENANT)
    assert text.rstrip("\n").endswith("INFO Hello, Cy x2")
    content = client.executions.download_file_from_execution(
        done.id, done.outputs["report"], TENANT
    )
    assert content == b"Cy,2"


def test_kv_set_get_and_delete(client: KestraClient) -> None:
    """KVControllerTest: typed values, and a deleted key is 404."""
    client.kv.set_key_value(NS, "threshold", TENANT, "42")
    client.kv.set_key_value(NS, "owner", TENANT, '"data team"')
    client.kv.set_key_value(NS, "conf", TENANT, '{"retries": 3}')
    number = client.kv.key_value(NS, "threshold", TENANT)
    assert (number.type.value, number.value) == ("NUMBER", 42)
    assert client.kv.key_value(NS, "owner", TENANT).value == "data team"
    assert client.kv.key_value(NS, "conf", TENANT).value == {"retries": 3}
    assert client.kv.delete_key_value(NS, "threshold", TENANT) is True
    with pytest.raises(NotFoundException):
        client.kv.key_value(NS, "threshold", TENANT)


def test_list_the_triggers(client: KestraClient) -> None:
    """TriggerControllerTest.search, and the triggers of one flow."""
    _ensure(client, SLOW)
    found = client.triggers.search_triggers(TENANT, page=1, size=100)
    nightly = [r for r in found["results"] if r["triggerContext"]["triggerId"] == "nightly"]
    assert len(nightly) == 1
    assert nightly[0]["abstractTrigger"]["cron"] == "0 2 * * *"
    assert nightly[0]["triggerContext"]["nextExecutionDate"].endswith("T02:00:00Z")
    of_flow = client.triggers.search_triggers_for_flow(TENANT, NS, "slow")
    assert "nightly" in [r["triggerId"] for r in of_flow["results"]]


def test_start_a_flow_by_its_webhook_under_the_tenant(client: KestraClient) -> None:
    """The Webhook trigger's URL in Kestra 1.x: /api/v1/main/executions/webhook/..."""
    _ensure(client, SLOW)
    answer = client.executions.trigger_execution_by_get_webhook(
        TENANT, NS, "slow", "k3y-for-kestrapy"
    )
    assert (answer.flow_id, answer.trigger.id) == ("slow", "hook")
    client.executions.kill_execution(answer.id, TENANT)
    assert _until_ended(client, answer.id).state.current == StateType.KILLED


def test_another_tenant_and_missing_credentials_are_refused(
    podium: ServeProcess, client: KestraClient
) -> None:
    with pytest.raises(NotFoundException, match="podium serves one tenant, 'main'"):
        client.flows.search_flows("acme")
    with KestraClient(host=podium.url("")) as anonymous, pytest.raises(UnauthorizedException):
        anonymous.flows.search_flows(TENANT)
