"""Kestra core tasks podium lacked: debug.Wait, kv.GetKeys, kv.Put, metric.Publish."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from daemon.sdk.errors import FlowError, NotFound
from daemon.sdk.state import State, iso
from tests.api_helpers import call, serving
from tests.harness import Harness, running_triggers


def flow(tasks: str) -> str:
    return "id: f\nnamespace: company.team\ntasks:\n" + tasks


async def outputs(h: Harness, source: str, state: State = State.SUCCESS) -> dict[str, Any]:
    execution = await h.run(flow(source))
    assert execution.state.current == state, execution.error
    return {run.task_id: run.outputs for run in execution.task_runs}


async def test_debug_wait_logs_and_waits(h: Harness) -> None:
    """Kestra's debug/Wait.java: logs "Waiting for <duration>", then sleeps it."""
    execution = await h.run(
        flow("  - id: wait\n    type: io.kestra.plugin.core.debug.Wait\n    duration: PT0.01S\n")
    )
    assert execution.state.current == State.SUCCESS
    assert await h.logs(execution) == ["Waiting for PT0.01S"]


async def test_kv_get_keys_lists_the_namespace_keys_by_prefix(h: Harness) -> None:
    """Kestra's GetKeysTest: all keys of the flow's namespace, or those with the prefix;
    another namespace by `namespace`."""
    for namespace, key in [("company.team", "a1"), ("company.team", "a2"),
                           ("company.team", "b"), ("other", "a3")]:  # fmt: skip
        await h.store.kv.set(namespace, key, 1)
    found = await outputs(
        h,
        """
  - id: all
    type: io.kestra.plugin.core.kv.GetKeys
  - id: prefixed
    type: io.kestra.plugin.core.kv.GetKeys
    prefix: "{{ 'a' }}"
  - id: other
    type: io.kestra.plugin.core.kv.GetKeys
    namespace: other
  - id: none
    type: io.kestra.plugin.core.kv.GetKeys
    namespace: empty
""",
    )
    assert sorted(found["all"]["keys"]) == ["a1", "a2", "b"]
    assert sorted(found["prefixed"]["keys"]) == ["a1", "a2"]
    assert found["other"] == {"keys": ["a3"]}
    assert found["none"] == {"keys": []}


@pytest.mark.parametrize(
    ("stored", "value", "expected"),
    [
        (None, "new-value", "new-value"),
        ("old", "new-value", "new-value"),
        ({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 10}}, {"a": {"b": 10, "c": 2}, "d": 3}),
        (
            {"json-key-1": "x", "nested": {"other": True}},
            [{"key": "json-key-1", "value": "my new value"}, {"key": "nested.field", "value": 123}],
            {"json-key-1": "my new value", "nested": {"other": True, "field": 123}},
        ),
        (None, [{"key": "a.b", "value": 1}], {"a": {"b": 1}}),
        ({"a": 1}, [{"value": [1, 2]}], [1, 2]),
    ],
)
async def test_kv_put_merges_into_what_is_stored(
    h: Harness, stored: Any, value: Any, expected: Any
) -> None:
    """Kestra's kv/Put.java (its two examples and mergeValues): maps deep-merged, keyed
    entries set (dotted) fields, a single unkeyed entry or a plain value replaces."""
    if stored is not None:
        await h.store.kv.set("company.team", "k", stored)
    put = "  - id: put\n    type: io.kestra.plugin.core.kv.Put\n    key: k\n"
    await outputs(h, put + f"    value: {json.dumps(value)}\n")
    assert await h.store.kv.get("company.team", "k") == (True, expected)


async def test_kv_put_keeps_the_expiry(h: Harness) -> None:
    """Put writes the merged value with the stored entry's metadata (its expiry) kept."""
    expires = iso(h.engine.resources.clock.now() + timedelta(days=2))
    await h.store.kv.set("company.team", "k", {"a": 1}, expires_at=expires)
    await outputs(
        h, "  - id: put\n    type: io.kestra.plugin.core.kv.Put\n    key: k\n    value: {b: 2}\n"
    )
    [entry] = await h.store.kv.list("company.team")
    assert entry["value"] == {"a": 1, "b": 2}
    assert entry["expiresAt"] == expires


@pytest.mark.parametrize(
    ("stored", "props", "message"),
    [
        (None, "errorOnMissing: true\n    value: 1",
         "No value found for key 'k' in namespace 'company.team' and `errorOnMissing` is set "
         "to true"),
        ("text", "value: [{key: a, value: 1}]",
         "cannot apply keyed `value` updates to a stored value that is not a map"),
        (None, "value: [{value: 1}, {value: 2}]",
         "`value` entries without `key` can only be used as a single item"),
        (None, "value: [{key: '', value: 1}]",
         "each keyed `value` entry must have a non-empty string `key`"),
    ],
)  # fmt: skip
async def test_kv_put_refusals_change_nothing(
    h: Harness, stored: Any, props: str, message: str
) -> None:
    """Put's errors (NoSuchElementException, IllegalArgumentException) fail the task and
    leave the stored value as it was."""
    if stored is not None:
        await h.store.kv.set("company.team", "k", stored)
    execution = await h.run(
        flow(f"  - id: put\n    type: io.kestra.plugin.core.kv.Put\n    key: k\n    {props}\n")
    )
    assert execution.state.current == State.FAILED
    assert message in (await h.logs(execution))[-1]
    assert await h.store.kv.get("company.team", "k") == (
        (True, stored) if stored is not None else (False, None)
    )


PUBLISH = """
  - id: publish
    type: io.kestra.plugin.core.metric.Publish
    metrics:
      - type: counter
        name: rows
        value: "{{ 2 + 3 }}"
        tags:
          table: trips
          year: 2024
      - type: timer
        name: took
        value: PT1.5S
      - type: gauge
        name: left
        value: -2
"""


async def test_metric_publish_lands_in_the_execution_metrics_api(h: Harness) -> None:
    """Kestra's metric/Publish.java (counter and timer entries, tags as text): each metric is
    recorded on the task run, listed in the outputs and served by /api/v1/metrics/{id}."""
    async with serving(h) as url:
        execution = await h.run(flow(PUBLISH))
        assert execution.state.current == State.SUCCESS
        status, page, _ = await call("GET", f"{url}/api/v1/metrics/{execution.id}")
    assert status == 200
    assert [
        (m["name"], m["type"], m["value"], m["tags"], m["taskId"]) for m in page["results"]
    ] == [
        ("rows", "counter", 5.0, {"table": "trips", "year": "2024"}, "publish"),
        ("took", "timer", 1.5, {}, "publish"),
        ("left", "gauge", -2.0, {}, "publish"),
    ]
    assert execution.task_runs[0].outputs["metrics"][0] == {
        "name": "rows", "type": "counter", "value": 5.0, "tags": {"table": "trips", "year": "2024"}
    }  # fmt: skip


async def test_metric_publish_refuses_a_bad_metric_at_load(h: Harness) -> None:
    with pytest.raises(FlowError) as caught:
        await h.flow(
            flow(
                "  - id: p\n    type: io.kestra.plugin.core.metric.Publish\n    metrics:\n"
                "      - {type: histogram, name: x, value: 1}\n"
            )
        )
    assert str(caught.value) == (
        "test.yaml:7:9: tasks[0].metrics[0]: Input tag 'histogram' found using 'type' does not "
        "match any of the expected tags: 'counter', 'gauge', 'timer'"
    )


async def test_kill_ends_this_execution_killed_before_its_next_tasks(h: Harness) -> None:
    """Kestra's execution/Kill.java (1.x): the current execution ends KILLED; the tasks
    after the Kill do not run."""
    execution = await h.run(
        flow(
            "  - id: kill\n    type: io.kestra.plugin.core.execution.Kill\n"
            "  - id: after\n    type: io.kestra.plugin.core.log.Log\n    message: not run\n"
        )
    )
    assert execution.state.current == State.KILLED
    assert [run.task_id for run in execution.task_runs] == ["kill"]
    assert "not run" not in await h.logs(execution)


async def test_kill_another_execution_by_id(h: Harness) -> None:
    """Kill's earlier `executionId` property: another running execution is killed; an ended
    one is left as it is; an unknown id fails the task."""
    sleeper = await h.flow(
        "id: sleeper\nnamespace: company.team\ntasks:\n"
        "  - id: sleep\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT1H\n"
    )
    running = await h.start(sleeper)
    killer = "  - id: kill\n    type: io.kestra.plugin.core.execution.Kill\n"
    done = await h.run(flow(killer + f"    executionId: {running.id}\n"))
    assert done.state.current == State.SUCCESS, done.error
    assert (await h.engine.wait(running.id)).state.current == State.KILLED
    again = await h.run(flow(killer + f"    executionId: {running.id}\n"))
    assert again.state.current == State.SUCCESS
    assert (await h.logs(again))[-1] == f"execution {running.id} already ended KILLED"
    unknown = await h.run(flow(killer + "    executionId: nope\n"))
    assert unknown.state.current == State.FAILED
    assert (await h.logs(unknown))[-1] == "execution nope not found"


WRITER = """
id: old
namespace: company.team.etl
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: some data
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.fail }}"
"""


async def test_purge_executions_deletes_ended_matching_executions_with_logs_and_files(
    h: Harness,
) -> None:
    """Kestra's PurgeExecutionsTest: executions of the namespace (sub-namespaces included)
    or flow, in the states asked, started before endDate, go with their logs, metrics and
    stored files; the counts are the outputs. storage.Purge is its legacy name."""
    old = await h.flow(WRITER)
    purged = [await h.run(old), await h.run(old)]
    failed = await h.run(old, {"fail": True})
    other = await h.run(WRITER.replace("company.team.etl", "company.other"))
    assert [e.state.current for e in (*purged, failed, other)] == [
        State.SUCCESS, State.SUCCESS, State.FAILED, State.SUCCESS
    ]  # fmt: skip
    uri = purged[0].task_runs[0].outputs["uri"]
    storage = h.engine.resources.storage
    assert await storage.path(uri)
    purge = """
  - id: purge
    type: io.kestra.plugin.core.storage.Purge
    namespace: company.team
    states: [SUCCESS]
    endDate: "{{ now() | dateAdd(1, 'DAYS') }}"
"""
    found = await outputs(h, purge)
    assert found["purge"] == {
        "executionsCount": 2, "logsCount": 2, "metricsCount": 0, "storagesCount": 2
    }  # fmt: skip
    for gone in purged:
        assert await h.store.get_execution(gone.id) is None
        assert await h.store.logs(gone.id) == []
    with pytest.raises(NotFound):
        await storage.path(uri)
    for kept in (failed, other):
        assert await h.store.get_execution(kept.id) is not None


async def test_purge_executions_by_flow_and_date_window(h: Harness) -> None:
    """flowId with namespace selects one flow; startDate/endDate bound the start dates."""
    old = await h.flow(WRITER)
    done = await h.run(old)
    before = "{{ now() | dateAdd(-1, 'DAYS') }}"
    found = await outputs(
        h,
        "  - id: none\n    type: io.kestra.plugin.core.execution.PurgeExecutions\n"
        f'    namespace: company.team.etl\n    flowId: old\n    endDate: "{before}"\n'
        "  - id: all\n    type: io.kestra.plugin.core.execution.PurgeExecutions\n"
        f'    namespace: company.team.etl\n    flowId: old\n    startDate: "{before}"\n'
        "    endDate: \"{{ now() | dateAdd(1, 'DAYS') }}\"\n    purgeStorage: false\n",
    )
    assert found["none"]["executionsCount"] == 0
    assert found["all"] == {
        "executionsCount": 1, "logsCount": 1, "metricsCount": 0, "storagesCount": 0
    }  # fmt: skip
    assert await h.store.get_execution(done.id) is None


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ("purgeLog: false",
         "purgeExecution removes the execution's logs and metrics with it here: set purgeLog "
         "and purgeMetric to true (or purgeExecution to false)"),
        ("purgeExecution: false",
         "purgeLog/purgeMetric without purgeExecution: podium removes an execution's logs and "
         "metrics only with the execution"),
        ("flowId: x", "flowId needs namespace"),
    ],
)  # fmt: skip
async def test_purge_executions_refuses_what_it_cannot_do_exactly(
    h: Harness, props: str, message: str
) -> None:
    old = await h.flow(WRITER)
    kept = await h.run(old)
    execution = await h.run(
        flow(
            "  - id: purge\n    type: io.kestra.plugin.core.execution.PurgeExecutions\n"
            f"    endDate: \"{{{{ now() | dateAdd(1, 'DAYS') }}}}\"\n    {props}\n"
        )
    )
    assert execution.state.current == State.FAILED
    assert (await h.logs(execution))[-1] == message
    assert await h.store.get_execution(kept.id) is not None


SCHEDULED = """
id: scheduled
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: tick
triggers:
  - id: schedule
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
"""


def toggle(enabled: bool, trigger: str = "schedule") -> str:
    return flow(
        "  - id: toggle\n    type: io.kestra.plugin.core.trigger.Toggle\n"
        f"    namespace: company.team\n    flowId: scheduled\n    trigger: {trigger}\n"
        f"    enabled: {str(enabled).lower()}\n"
    )


async def test_toggle_disables_and_enables_a_trigger_durably(h: Harness) -> None:
    """Kestra's trigger/Toggle.java (its example: enable or disable `schedule`): the trigger
    is stopped and marked disabled as the API's PUT /api/v1/triggers does, then back."""
    async with running_triggers(h, SCHEDULED) as th:
        assert th.triggers.enabled(th.flow, "schedule")
        off = await h.run(toggle(False))
        assert off.state.current == State.SUCCESS, off.error
        assert not th.triggers.enabled(th.flow, "schedule")
        assert (await h.logs(off))[-1] == "trigger schedule of company.team.scheduled disabled"
        on = await h.run(toggle(True))
        assert on.state.current == State.SUCCESS, on.error
        assert th.triggers.enabled(th.flow, "schedule")
        unknown = await h.run(toggle(False, "nope"))
        assert unknown.state.current == State.FAILED
        assert (await h.logs(unknown))[-1] == (
            "Unable to toggle: flow company.team.scheduled has no trigger 'nope'"
        )


async def test_toggle_without_triggers_running_fails_clearly(h: Harness) -> None:
    """`podium run` runs no triggers: Toggle says so instead of pretending."""
    await h.flow(SCHEDULED)
    execution = await h.run(toggle(False))
    assert execution.state.current == State.FAILED
    assert (await h.logs(execution))[-1] == (
        "Unable to toggle: this process runs no triggers (podium run): nothing to toggle"
    )


async def test_purge_logs_keeps_error_lines_and_the_executions(h: Harness) -> None:
    """Kestra's log/PurgeLogs.java, its "keep error logs" example: lines at the listed
    levels written before endDate go; the execution stays; the counts are the outputs
    (podium's store holds execution logs only: nonExecutionLogsCount is 0)."""
    noisy = await h.run(
        flow(
            "  - id: info\n    type: io.kestra.plugin.core.log.Log\n    message: chatter\n"
            "  - id: error\n    type: io.kestra.plugin.core.log.Log\n    message: broken\n"
            "    level: ERROR\n"
        )
    )
    found = await outputs(
        h,
        "  - id: purge\n    type: io.kestra.plugin.core.log.PurgeLogs\n"
        "    namespace: company.team\n    flowId: f\n"
        "    endDate: \"{{ now() | dateAdd(1, 'MINUTES') }}\"\n"
        "    logLevels: [TRACE, DEBUG, INFO, WARN]\n",
    )
    assert found["purge"] == {"count": 1, "executionLogsCount": 1, "nonExecutionLogsCount": 0}
    assert await h.logs(noisy) == ["broken"]
    assert await h.store.get_execution(noisy.id) is not None


TEMPLATED = """
  - id: templated
    type: io.kestra.plugin.core.templating.TemplatedTask
    spec: |
      type: io.kestra.plugin.core.debug.Return
      {{ inputs.property }}: "{{ '{{ flow.id }}' }} and {{ inputs.value }}"
"""


async def test_templated_task_renders_its_spec_then_runs_it(h: Harness) -> None:
    """Kestra's templating/TemplatedTask.java (its example sets a property named by an
    input): the spec is rendered, built, its own expressions rendered, and run; its
    outputs are the task's."""
    source = (
        "id: f\nnamespace: company.team\ninputs:\n"
        "  - id: property\n    type: STRING\n    defaults: format\n"
        "  - id: value\n    type: STRING\n    defaults: hello\n"
        "tasks:" + TEMPLATED
    )
    execution = await h.run(source)
    assert execution.state.current == State.SUCCESS, execution.error
    assert execution.task_runs[0].outputs == {"value": "f and hello"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type: io.kestra.plugin.core.templating.TemplatedTask\n      spec: x",
         "The templated task cannot be of type 'io.kestra.plugin.core.templating.TemplatedTask'"),
        ("type: io.kestra.plugin.core.flow.Sequential\n      tasks: []",
         "spec: io.kestra.plugin.core.flow.Sequential is a flowable task: the task must be a "
         "runnable one"),
        ("type: io.kestra.plugin.core.debug.Retrun",
         "spec: unknown task type 'io.kestra.plugin.core.debug.Retrun'; did you mean "
         "io.kestra.plugin.core.debug.Return?"),
        ("type: io.kestra.plugin.core.log.Log\n      mesage: hi",
         "spec: message: Field required; mesage: Extra inputs are not permitted"),
        ("- just a list", "spec must be a task (a YAML mapping)"),
    ],
)  # fmt: skip
async def test_templated_task_refuses_a_bad_spec(h: Harness, spec: str, message: str) -> None:
    execution = await h.run(
        flow(
            "  - id: templated\n    type: io.kestra.plugin.core.templating.TemplatedTask\n"
            f"    spec: |\n      {spec}\n"
        )
    )
    assert execution.state.current == State.FAILED
    assert (await h.logs(execution))[-1] == message


async def test_purge_kv_deletes_expired_keys_by_default(h: Harness) -> None:
    """Kestra's kv/PurgeKV.java: `behavior` defaults to expired keys only; `expiredOnly`
    (deprecated) wins when set; `keyPattern` is a glob; `size` counts what went."""
    now = h.engine.resources.clock.now()
    past = iso(now - timedelta(days=1))
    await h.store.kv.set("company.team", "stale", 1, expires_at=past)
    await h.store.kv.set("company.team", "kept", 2)
    await h.store.kv.set("company.team", "tmp_a", 3)
    found = await outputs(
        h,
        "  - id: expired\n    type: io.kestra.plugin.core.kv.PurgeKV\n"
        "    namespaces: [company]\n"
        "  - id: tmp\n    type: io.kestra.plugin.core.kv.PurgeKV\n"
        "    keyPattern: 'tmp_*'\n    expiredOnly: false\n",
    )
    assert found == {"expired": {"size": 1}, "tmp": {"size": 1}}
    assert [e["key"] for e in await h.store.kv.list("company.team")] == ["kept"]


async def test_purge_kv_refuses_two_namespace_filters(h: Harness) -> None:
    with pytest.raises(FlowError) as caught:
        await h.flow(
            flow(
                "  - id: p\n    type: io.kestra.plugin.core.kv.PurgeKV\n"
                "    namespaces: [a]\n    namespacePattern: 'b*'\n"
            )
        )
    assert str(caught.value) == (
        "test.yaml:4:5: tasks[0]: use namespaces or namespacePattern, not both"
    )
