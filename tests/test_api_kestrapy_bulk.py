"""kestrapy 1.3.1's ExecutionsApi bulk and state-changing calls, unchanged, against a real
`podium serve`: every `*_by_ids` / `*_by_query` method (kill, delete, pause, resume,
restart, replay, force-run, unqueue, labels, change-status) and the single pause,
update_execution_status, force_run_execution, unqueue_execution, update_task_run_state and
delete_execution with Kestra's flags. As in tests/test_kestrapy.py, a kestrapy model that
refuses an answer fails the test instead of being silently bypassed.

The behaviour checked is ExecutionControllerTest's (resumeByIds, changeStatusByIds,
replayByIds, deleteByIds, setLabelsByIds, shouldPauseByIdsRunningFlows,
shouldUnqueueByIdsQueuedFlows, shouldForRunByIdsFlows, shouldForceRunAQueuedFlow...).
Each test has its own namespace, so a by-query call finds only its executions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kestrapy import KestraClient
from kestrapy.base_api import BaseApi
from kestrapy.exceptions import BadRequestException, NotFoundException
from kestrapy.models.execution_controller_set_labels_by_ids_request import (
    ExecutionControllerSetLabelsByIdsRequest,
)
from kestrapy.models.execution_controller_state_request import ExecutionControllerStateRequest
from kestrapy.models.label import Label
from kestrapy.models.query_filter import QueryFilter
from kestrapy.models.state_type import StateType

from tests.daemon_process import ServeProcess
from tests.test_kestrapy import PASSWORD, TENANT, USER, _strict

SLOW = """\
id: slow
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10M
"""

QUEUED = """\
id: queued
namespace: {ns}
concurrency:
  behavior: QUEUE
  limit: 1
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10M
"""

QUICK = """\
id: quick
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""

FAILING = """\
id: failing
namespace: {ns}
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: not yet
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""


@pytest.fixture(scope="module")
def podium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("kestrapy-bulk")
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


class Flows:
    """The flows of one test's namespace, and its executions in the states it needs."""

    def __init__(self, client: KestraClient, ns: str) -> None:
        self.client, self.ns = client, ns
        for source in (SLOW, QUEUED, QUICK, FAILING):
            client.flows.create_flow(TENANT, source.format(ns=ns))

    @property
    def in_ns(self) -> list[QueryFilter]:
        return [QueryFilter(field="NAMESPACE", operation="EQUALS", value={"value": self.ns})]

    def where(self, *states: str) -> list[QueryFilter]:
        state = QueryFilter(field="STATE", operation="IN", value={"value": list(states)})
        return [*self.in_ns, state]

    def start(self, flow: str, **kwargs: Any) -> str:
        return str(self.client.executions.create_execution(TENANT, self.ns, flow, **kwargs).id)

    def ended(self, flow: str = "quick") -> str:
        return self.start(flow, wait=True)

    def state(self, execution_id: str) -> StateType:
        return self.client.executions.execution(execution_id, TENANT).state.current

    def until(self, execution_id: str, *states: StateType) -> StateType:
        """Poll (bounded) until the execution is in one of `states`."""
        deadline = time.monotonic() + 30
        while (current := self.state(execution_id)) not in states:
            assert time.monotonic() < deadline, f"{execution_id} stayed {current}"
            time.sleep(0.05)
        return current

    def running(self) -> str:
        execution_id = self.start("slow")
        self.until(execution_id, StateType.RUNNING)
        return execution_id


def test_kill_by_ids_and_by_query(client: KestraClient) -> None:
    """killExecutionsByIds / killExecutionsByQuery; an ended one refuses the batch (400)."""
    f = Flows(client, "bulk.kill")
    first, second, third = f.running(), f.running(), f.running()
    assert client.executions.kill_executions_by_ids(TENANT, [first]) == {"count": 1}
    assert f.until(first, StateType.KILLED) == StateType.KILLED
    with pytest.raises(BadRequestException, match="invalid bulk kill"):
        client.executions.kill_executions_by_ids(TENANT, [first, second])
    assert f.state(second) == StateType.RUNNING
    answer = client.executions.kill_executions_by_query(TENANT, filters=f.where("RUNNING"))
    assert answer == {"count": 2}
    assert {f.until(e, StateType.KILLED) for e in (second, third)} == {StateType.KILLED}


def test_delete_by_ids_by_query_and_one_with_kestras_flags(client: KestraClient) -> None:
    """deleteExecutionsByIds (a BulkResponse), deleteExecutionsByQuery, and deleteExecution
    with deleteLogs=false: the logs stay."""
    f = Flows(client, "bulk.delete")
    first, second, third = f.ended(), f.ended(), f.ended()
    answer = client.executions.delete_executions_by_ids(TENANT, [first])
    assert answer.count == 1
    with pytest.raises(NotFoundException):
        client.executions.execution(first, TENANT)
    client.executions.delete_execution(second, TENANT, delete_logs=False)
    assert [line.message for line in client.logs.list_logs_from_execution(second, TENANT)] == [
        "hello"
    ]
    running = f.running()
    answer = client.executions.delete_executions_by_query(
        TENANT, filters=f.in_ns, include_non_terminated=True
    )
    assert answer == {"count": 2}
    for gone in (third, running):
        with pytest.raises(NotFoundException):
            client.executions.execution(gone, TENANT)


def test_pause_and_resume_one_by_ids_and_by_query(client: KestraClient) -> None:
    """pauseExecution (200, no body), pauseExecutionsByIds/ByQuery and
    resumeExecutionsByIds/ByQuery."""
    f = Flows(client, "bulk.pause")
    first, second, third = f.running(), f.running(), f.running()
    assert client.executions.pause_execution(first, TENANT) is None
    assert f.state(first) == StateType.PAUSED
    assert client.executions.pause_executions_by_ids(TENANT, [second]) == {"count": 1}
    answer = client.executions.pause_executions_by_query(TENANT, filters=f.where("RUNNING"))
    assert answer == {"count": 1}
    assert {f.state(e) for e in (first, second, third)} == {StateType.PAUSED}
    assert client.executions.resume_executions_by_ids(TENANT, [first]) == {"count": 1}
    assert f.state(first) == StateType.RUNNING
    answer = client.executions.resume_executions_by_query(TENANT, filters=f.where("PAUSED"))
    assert answer == {"count": 2}
    with pytest.raises(BadRequestException, match="execution not in state PAUSED"):
        client.executions.resume_executions_by_ids(TENANT, [first])
    client.executions.kill_executions_by_query(TENANT, filters=f.where("RUNNING"))


def test_restart_and_replay_by_ids_and_by_query(client: KestraClient) -> None:
    """restartExecutionsByIds/ByQuery (FAILED ones) and replayExecutionsByIds/ByQuery."""
    f = Flows(client, "bulk.restart")
    failed, other = f.ended("failing"), f.ended("failing")
    assert client.executions.restart_executions_by_ids(TENANT, [failed]) == {"count": 1}
    assert f.until(failed, StateType.FAILED) == StateType.FAILED
    answer = client.executions.restart_executions_by_query(TENANT, filters=f.where("FAILED"))
    assert answer == {"count": 2}
    f.until(other, StateType.FAILED)
    f.until(failed, StateType.FAILED)
    done = f.ended()
    with pytest.raises(BadRequestException, match="execution not in state FAILED"):
        client.executions.restart_executions_by_ids(TENANT, [done])
    assert client.executions.replay_executions_by_ids(TENANT, [done]) == {"count": 1}
    replays = client.executions.replay_executions_by_query(
        TENANT, filters=f.where("SUCCESS"), latest_revision=True
    )
    assert replays["count"] >= 1
    found = client.executions.search_executions(TENANT, size=100, filters=f.in_ns)
    assert found["total"] >= 3 + 1 + replays["count"]


def test_labels_by_ids_and_by_query(client: KestraClient) -> None:
    """setLabelsOnTerminatedExecutionsByIds (SetLabelsByIdsRequest) and ...ByQuery; and
    the single call, whose kestrapy Label carries `additional_properties` (ignored)."""
    f = Flows(client, "bulk.labels")
    first, second = f.ended(), f.ended()
    request = ExecutionControllerSetLabelsByIdsRequest(
        executions_id=[first], execution_labels=[Label(key="team", value="data")]
    )
    assert client.executions.set_labels_on_terminated_executions_by_ids(TENANT, request) == {
        "count": 1
    }
    answer = client.executions.set_labels_on_terminated_executions_by_query(
        TENANT, [Label(key="stage", value="prod")], filters=f.in_ns
    )
    assert answer == {"count": 2}
    labels = {(lb.key, lb.value) for lb in client.executions.execution(first, TENANT).labels}
    assert labels >= {("team", "data"), ("stage", "prod")}
    assert ("stage", "prod") in {
        (lb.key, lb.value) for lb in client.executions.execution(second, TENANT).labels
    }
    one = client.executions.set_labels_on_terminated_execution(
        second, TENANT, [Label(key="owner", value="ada")]
    )
    assert {(lb.key, lb.value) for lb in one.labels} >= {("stage", "prod"), ("owner", "ada")}


def test_change_status_one_by_ids_and_by_query(client: KestraClient) -> None:
    """updateExecutionStatus (the Execution), updateExecutionsStatusByIds/ByQuery."""
    f = Flows(client, "bulk.status")
    first, second = f.ended(), f.ended()
    changed = client.executions.update_execution_status(first, StateType.WARNING, TENANT)
    assert (changed.id, changed.state.current) == (first, StateType.WARNING)
    answer = client.executions.update_executions_status_by_ids(TENANT, StateType.FAILED, [second])
    assert answer == {"count": 1}
    answer = client.executions.update_executions_status_by_query(
        TENANT, StateType.SUCCESS, filters=f.in_ns
    )
    assert answer == {"count": 2}
    assert {f.state(e) for e in (first, second)} == {StateType.SUCCESS}


def test_unqueue_and_force_run_one_by_ids_and_by_query(client: KestraClient) -> None:
    """unqueueExecution, forceRunExecution, unqueueExecutionsByIds/ByQuery and
    forceRunByIds/forceRunExecutionsByQuery on executions a concurrency limit queued."""
    f = Flows(client, "bulk.queue")
    holder = f.start("queued")
    f.until(holder, StateType.RUNNING)
    queued = [f.start("queued") for _ in range(5)]
    for execution_id in queued:
        f.until(execution_id, StateType.QUEUED)
    unqueued = client.executions.unqueue_execution(queued[0], TENANT)
    assert unqueued.id == queued[0]
    f.until(queued[0], StateType.RUNNING)
    cancelled = client.executions.unqueue_execution(queued[1], TENANT, state=StateType.CANCELLED)
    assert cancelled.state.current == StateType.CANCELLED
    forced = client.executions.force_run_execution(queued[2], TENANT)
    assert forced.id == queued[2]
    f.until(queued[2], StateType.RUNNING)
    answer = client.executions.unqueue_executions_by_ids(TENANT, StateType.FAILED, [queued[3]])
    assert answer == {"count": 1}
    assert f.state(queued[3]) == StateType.FAILED
    answer = client.executions.force_run_by_ids(TENANT, [queued[4], holder])
    assert answer == {"count": 2}
    f.until(queued[4], StateType.RUNNING)
    again = f.start("queued")
    f.until(again, StateType.QUEUED)
    answer = client.executions.unqueue_executions_by_query(
        TENANT, new_state=StateType.CANCELLED, filters=f.where("QUEUED")
    )
    assert answer == {"count": 1}
    last = f.start("queued")
    f.until(last, StateType.QUEUED)
    answer = client.executions.force_run_executions_by_query(TENANT, filters=f.where("QUEUED"))
    assert answer == {"count": 1}
    f.until(last, StateType.RUNNING)
    client.executions.kill_executions_by_query(TENANT, filters=f.where("RUNNING"))


def test_update_a_task_runs_state(client: KestraClient) -> None:
    """updateTaskRunState (ExecutionService.markAs): the failed task run set SUCCESS, the
    execution runs on and ends SUCCESS."""
    f = Flows(client, "bulk.markas")
    failed = f.ended("failing")
    execution = client.executions.execution(failed, TENANT)
    check = next(tr.id for tr in execution.task_run_list if tr.task_id == "check")
    request = ExecutionControllerStateRequest(task_run_id=check, state=StateType.SUCCESS)
    restarted = client.executions.update_task_run_state(failed, TENANT, request)
    assert restarted.state.current == StateType.RESTARTED
    assert f.until(failed, StateType.SUCCESS) == StateType.SUCCESS
    ended = client.executions.execution(failed, TENANT)
    assert {tr.task_id: tr.state.current for tr in ended.task_run_list} == {
        "check": StateType.SUCCESS,
        "after": StateType.SUCCESS,
    }
