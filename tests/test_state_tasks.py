"""Kestra's state store tasks, io.kestra.plugin.core.state.Set/Get/Delete (and their
io.kestra.core.tasks.states.* names), as Kestra's StateTest and StateNamespaceTest
(core/src/test/java/io/kestra/plugin/core/state/) run them."""

from __future__ import annotations

import pytest

from daemon.flows.deprecations import deprecations
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tests.harness import Harness


def flow(flow_id: str, tasks: str, namespace: str = "io.kestra.tests") -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}"


def outputs(ex: object) -> dict[str, object]:
    return {tr.task_id: tr.outputs for tr in ex.task_runs}  # type: ignore[attr-defined]


async def test_set_merges_get_reads_delete_removes(h: Harness) -> None:
    """StateTest.run: an empty state, a first Set, a merge that replaces a key and adds
    one, Delete, and an empty state again; values are rendered."""
    ex = await h.run(
        flow(
            "states",
            """
  - id: empty
    type: io.kestra.plugin.core.state.Get
  - id: first
    type: io.kestra.plugin.core.state.Set
    data:
      "{{ flow.id }}": "{{ 1 }}"
  - id: one
    type: io.kestra.plugin.core.state.Get
  - id: second
    type: io.kestra.core.tasks.states.Set
    data:
      "{{ flow.id }}": "2"
      test2: "3"
  - id: two
    type: io.kestra.core.tasks.states.Get
  - id: delete
    type: io.kestra.plugin.core.state.Delete
  - id: gone
    type: io.kestra.plugin.core.state.Get
""",
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    out = outputs(ex)
    assert out["empty"] == {"count": 0, "data": {}}
    assert out["first"] == {
        "count": 1,
        "key": "kestra:///io/kestra/tests/states/states/tasks-states/default",
    }
    assert out["one"] == {"count": 1, "data": {"states": "1"}}
    assert out["two"] == {"count": 2, "data": {"states": "2", "test2": "3"}}
    assert out["delete"] == {"deleted": True}
    assert out["gone"] == {"count": 0, "data": {}}


async def test_a_state_outlives_its_execution_and_is_the_flows_own(h: Harness) -> None:
    """StateNamespaceTest: `namespace: true` is shared by the namespace's flows, the
    default state is the flow's own; a named state is apart from the default one."""
    setter = flow(
        "setter",
        """
  - id: mine
    type: io.kestra.plugin.core.state.Set
    name: myState
    data: {john: doe}
  - id: shared
    type: io.kestra.plugin.core.state.Set
    namespace: true
    data: {jane: roe}
""",
    )
    assert (await h.run(setter)).state.current == State.SUCCESS
    again = await h.run(
        flow(
            "setter",
            """
  - id: mine
    type: io.kestra.plugin.core.state.Get
    name: myState
  - id: default
    type: io.kestra.plugin.core.state.Get
""",
        )
    )
    other = await h.run(
        flow(
            "other",
            """
  - id: shared
    type: io.kestra.plugin.core.state.Get
    namespace: true
  - id: flows_own
    type: io.kestra.plugin.core.state.Get
    name: myState
""",
        )
    )
    assert outputs(again) == {
        "mine": {"count": 1, "data": {"john": "doe"}},
        "default": {"count": 0, "data": {}},
    }
    assert outputs(other) == {
        "shared": {"count": 1, "data": {"jane": "roe"}},
        "flows_own": {"count": 0, "data": {}},
    }


async def test_each_foreach_value_has_its_state_unless_taskrun_value_is_false(
    h: Harness,
) -> None:
    """AbstractState.taskrunValue: isolated by `taskrun.value` by default."""
    ex = await h.run(
        flow(
            "each",
            """
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: own
        type: io.kestra.plugin.core.state.Set
        data: {"{{ taskrun.value }}": "x"}
      - id: together
        type: io.kestra.plugin.core.state.Set
        name: together
        taskrunValue: false
        data: {"{{ taskrun.value }}": "x"}
""",
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    counts = sorted(
        (tr.task_id, (tr.outputs or {})["count"])
        for tr in ex.task_runs
        if tr.task_id in ("own", "together")
    )
    assert counts == [("own", 1), ("own", 1), ("together", 1), ("together", 2)]


@pytest.mark.parametrize("task", ["Get", "Delete"])
async def test_error_on_missing_fails_the_task(h: Harness, task: str) -> None:
    """StateTest.getThrow and deleteThrow."""
    ex = await h.run(
        flow(
            "missing",
            f"""
  - id: t
    type: io.kestra.plugin.core.state.{task}
    name: nothing-here
    errorOnMissing: true
""",
        )
    )
    assert ex.state.current == State.FAILED
    assert ex.error == "task 't': Unable to find the state file 'nothing-here'"


async def test_delete_of_no_state_says_so(h: Harness) -> None:
    ex = await h.run(flow("nothing", "  - id: t\n    type: io.kestra.plugin.core.state.Delete\n"))
    assert ex.state.current == State.SUCCESS
    assert outputs(ex) == {"t": {"deleted": False}}


def test_the_tasks_load_with_a_deprecation_naming_the_kv_store() -> None:
    loaded = load_flow(flow("f", "  - id: t\n    type: io.kestra.core.tasks.states.Get\n"))
    assert any("use io.kestra.plugin.core.kv" in text for _, text in deprecations(loaded))


@pytest.mark.parametrize(
    "task",
    [
        "  - id: t\n    type: io.kestra.plugin.core.state.Set\n    data: [a, b]\n",
        "  - id: t\n    type: io.kestra.plugin.core.state.Get\n    errorOnMissing: maybe\n",
        "  - id: t\n    type: io.kestra.plugin.core.state.Get\n    key: x\n",
    ],
)
def test_malformed_state_tasks_are_refused_when_the_flow_loads(task: str) -> None:
    with pytest.raises(FlowError):
        load_flow(flow("f", task))
