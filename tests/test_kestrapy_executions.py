"""kestrapy 1.3.1's ExecutionsApi calls for replay with inputs, the latest executions, the
flow of an execution, its graph, a file's size, webhooks with a path and the
follow-dependencies stream, unchanged against a real `podium serve` (`/api/v1/main/...`).

As in test_kestrapy.py, kestrapy's silent fall-back to an unchecked model is turned into a
failure, so that every answer validates against Kestra's own models. The behaviour checked
is that of Kestra's ExecutionController and ExecutionControllerTest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kestrapy import KestraClient
from kestrapy.base_api import BaseApi
from kestrapy.exceptions import NotFoundException
from kestrapy.models.execution_repository_interface_flow_filter import (
    ExecutionRepositoryInterfaceFlowFilter,
)
from kestrapy.models.state_type import StateType

from tests.daemon_process import ServeProcess

TENANT = "main"
USER, PASSWORD = "ada@example.com", "Pa55-word"
NS = "company.team"
KEY = "k3y-with-a-path"

REPORT = """\
id: report
namespace: company.team
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
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.times > 1 }}"
    then:
      - id: many
        type: io.kestra.plugin.core.log.Log
        message: many
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: k3y-with-a-path
    inputs:
      name: hooked
"""

CHILD = """\
id: child
namespace: company.team
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: child
"""

PARENT = """\
id: parent
namespace: company.team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
"""


def _strict(data: dict[str, Any], model: type[Any]) -> Any:
    model.model_validate(data)
    raise AssertionError(f"{model.__name__} refused {data!r} and then accepted it")


@pytest.fixture(scope="module")
def podium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("kestrapy-executions")
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


def _ensure(client: KestraClient, *sources: str) -> None:
    for source in sources:
        flow_id = source.split("\n", 1)[0].removeprefix("id: ")
        try:
            client.flows.flow(NS, flow_id, TENANT)
        except NotFoundException:
            client.flows.create_flow(TENANT, source)


def _until_ended(client: KestraClient, execution_id: str) -> Any:
    last = None
    for last in client.executions.follow_execution(execution_id, TENANT):
        if last.state.current in (StateType.SUCCESS, StateType.FAILED, StateType.KILLED):
            break
    assert last is not None
    return last


def test_replay_execution_with_inputs(client: KestraClient) -> None:
    """replayExecutionWithinputs: the new inputs, multipart as kestrapy sends them; without
    inputs, the original's."""
    _ensure(client, REPORT)
    first = client.executions.create_execution(
        TENANT, NS, "report", wait=True, inputs={"name": "a"}
    )
    replay = client.executions.replay_execution_with_inputs(
        first.id, TENANT, inputs={"name": "b", "times": 2}
    )
    ended = _until_ended(client, replay.id)
    assert (ended.state.current, ended.inputs) == (StateType.SUCCESS, {"name": "b", "times": 2})
    again = client.executions.replay_execution_with_inputs(first.id, TENANT)
    assert _until_ended(client, again.id).inputs == {"name": "a", "times": 1}
    labels = {(lb.key, lb.value) for lb in client.executions.execution(first.id, TENANT).labels}
    assert ("system.replayed", "true") in labels


def test_latest_executions(client: KestraClient) -> None:
    """getLatestExecutions: the last ended execution of each flow asked for."""
    _ensure(client, REPORT)
    client.executions.create_execution(TENANT, NS, "report", wait=True, inputs={"name": "a"})
    last = client.executions.create_execution(TENANT, NS, "report", wait=True, inputs={"name": "z"})
    found = client.executions.latest_executions(
        TENANT,
        [
            ExecutionRepositoryInterfaceFlowFilter(namespace=NS, id="report"),
            ExecutionRepositoryInterfaceFlowFilter(namespace=NS, id="never"),
        ],
    )
    assert [(e.id, e.flow_id, e.namespace, e.status) for e in found] == [
        (last.id, "report", NS, StateType.SUCCESS)
    ]
    assert found[0].start_date == last.state.start_date


def test_flow_from_execution_by_id_and_by_flow(client: KestraClient) -> None:
    """getFlowFromExecutionById and getFlowFromExecution (with `revision`)."""
    _ensure(client, REPORT)
    done = client.executions.create_execution(TENANT, NS, "report", wait=True, inputs={"name": "a"})
    ran = client.executions.flow_from_execution_by_id(done.id, TENANT)
    assert (ran.id, ran.namespace, ran.revision) == ("report", NS, done.flow_revision)
    assert [t.id for t in ran.tasks] == ["hello", "write", "branch"]
    assert [t.id for t in ran.tasks[2].tasks] == ["many"]
    assert [(i.id, i.type.value) for i in ran.inputs] == [("name", "STRING"), ("times", "INT")]
    assert [(t.id, t.type) for t in ran.triggers] == [
        ("hook", "io.kestra.plugin.core.trigger.Webhook")
    ]
    revision = done.flow_revision
    by_flow = client.executions.flow_from_execution(TENANT, NS, "report", revision=revision)
    assert by_flow.revision == done.flow_revision and by_flow.deleted is False
    with pytest.raises(NotFoundException):
        client.executions.flow_from_execution(TENANT, NS, "report", revision=999)


def test_execution_flow_graph_with_a_subflow_expanded(client: KestraClient) -> None:
    """getExecutionFlowGraph: Kestra's FlowGraph of the revision the execution ran, the
    subflow task expanded into its subflow's graph when asked."""
    _ensure(client, CHILD, PARENT)
    done = client.executions.create_execution(TENANT, NS, "parent", wait=True)
    assert done.state.current == StateType.SUCCESS
    graph = client.executions.execution_flow_graph(done.id, TENANT)
    assert [n.uid for n in graph.nodes if n.type.endswith("SubflowGraphTask")] == ["root.call"]
    assert (len(graph.nodes), len(graph.edges), graph.clusters) == (3, 2, [])
    expanded = client.executions.execution_flow_graph(done.id, TENANT, subflows=["root.call"])
    assert [c.cluster.uid for c in expanded.clusters] == ["cluster_root.call"]
    assert "root.call.work" in [n.uid for n in expanded.nodes]
    assert all(e.relation is not None for e in expanded.edges)


def test_file_metadatas_from_execution(client: KestraClient) -> None:
    """getFileMetadatasFromExecution: Kestra's FileMetas of a file of the execution."""
    _ensure(client, REPORT)
    done = client.executions.create_execution(
        TENANT, NS, "report", wait=True, inputs={"name": "sized"}
    )
    uri = next(tr for tr in done.task_run_list if tr.task_id == "write").outputs["uri"]
    assert client.executions.file_metadatas_from_execution(done.id, uri, TENANT).size == 5


def test_webhooks_with_a_path_are_refused_by_the_webhook_trigger(client: KestraClient) -> None:
    """triggerExecutionBy{Get,Post,Put}WebhookWithPath: the route hands the path to the
    trigger, and Kestra's Webhook trigger answers 404 to a path (Webhook.evaluate)."""
    _ensure(client, REPORT)
    executions = client.executions
    for call in (
        executions.trigger_execution_by_get_webhook_with_path,
        executions.trigger_execution_by_post_webhook_with_path,
        executions.trigger_execution_by_put_webhook_with_path,
    ):
        with pytest.raises(NotFoundException):
            call(TENANT, NS, "report", KEY, "deeper/path")
    hooked = executions.trigger_execution_by_get_webhook(TENANT, NS, "report", KEY)
    assert (hooked.namespace, hooked.flow_id) == (NS, "report")


def test_follow_dependencies_execution(client: KestraClient) -> None:
    """followDependenciesExecutions: `start`, then each linked flow's execution of the same
    correlation id, here already ended (not destinationOnly: no flow leads to the parent,
    the links are those it leads to)."""
    _ensure(client, CHILD, PARENT)
    done = client.executions.create_execution(TENANT, NS, "parent", wait=True)
    seen = list(
        client.executions.follow_dependencies_execution(
            done.id, TENANT, destination_only=False, expand_all=True
        )
    )
    assert seen[0].execution_id == done.id and seen[0].state is None
    assert sorted((e.flow_id, e.state.current) for e in seen[1:]) == [
        ("child", StateType.SUCCESS),
        ("parent", StateType.SUCCESS),
    ]
