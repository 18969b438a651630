"""Core task properties typed as Kestra types them: what Kestra declares `Property<...>`
takes an expression, rendered and type-checked when the task runs (a bad value fails the
task run then); what Kestra keeps a plain type (`@PluginProperty` without `dynamic`, a
plain field) is refused at load when it holds an expression.

Each test names the Kestra class (core/src/main/java/io/kestra/plugin/core/...) it follows.
"""

from __future__ import annotations

from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, problems, task_states


def single(task: str) -> str:
    return "id: f\nnamespace: ns\ntasks:\n" + task


# -- Property<...> in Kestra: expressions welcome ------------------------------------------


async def test_echo_level_may_be_an_expression(h: Harness) -> None:
    """debug/Echo.java: `Property<Level> level`."""
    ex = await h.run(
        single("""
  - id: echo
    type: io.kestra.plugin.core.debug.Echo
    format: hello
    level: "{{ 'WARN' }}"
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert await h.logs(ex, "WARN") == ["hello"]


async def test_an_echo_level_rendering_no_level_fails_the_task(h: Harness) -> None:
    ex = await h.run(
        single("""
  - id: echo
    type: io.kestra.plugin.core.debug.Echo
    format: hello
    level: "{{ 'LOUD' }}"
""")
    )
    assert ex.state.current == State.FAILED
    assert "invalid property after rendering: level" in (ex.error or ""), ex.error


async def test_fetch_level_may_be_an_expression(h: Harness) -> None:
    """log/Fetch.java: `Property<Level> level`; only the lines at it or above are fetched."""
    ex = await h.run(
        single("""
  - id: chatty
    type: io.kestra.plugin.core.log.Log
    message: just saying
  - id: alarm
    type: io.kestra.plugin.core.log.Log
    level: ERROR
    message: on fire
  - id: fetch
    type: io.kestra.plugin.core.log.Fetch
    level: "{{ 'ERR' ~ 'OR' }}"
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[-1].outputs["size"] == 1


async def test_purge_kv_behavior_may_hold_expressions(h: Harness) -> None:
    """kv/PurgeKV.java: `Property<KvPurgeBehavior> behavior`."""
    await h.store.kv.set("ns", "fresh", 1)
    ex = await h.run(
        single("""
  - id: purge
    type: io.kestra.plugin.core.kv.PurgeKV
    namespaces: [ns]
    behavior:
      type: key
      expiredOnly: "{{ 1 > 2 }}"
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs == {"size": 1}
    assert await h.store.kv.list("ns") == []


async def test_a_purge_kv_behavior_rendering_no_boolean_fails_the_task(h: Harness) -> None:
    ex = await h.run(
        single("""
  - id: purge
    type: io.kestra.plugin.core.kv.PurgeKV
    behavior:
      expiredOnly: "{{ 'sometimes' }}"
""")
    )
    assert ex.state.current == State.FAILED
    assert "invalid property after rendering: behavior.expiredOnly" in (ex.error or "")


async def test_subflow_inherit_labels_may_be_an_expression(h: Harness) -> None:
    """flow/Subflow.java: `Property<Boolean> inheritLabels` (wait, transmitFailed stay plain
    Booleans)."""
    await h.flow("""
        id: child
        namespace: ns
        tasks:
          - id: hi
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    ex = await h.run("""
        id: parent
        namespace: ns
        labels:
          team: data
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
            inheritLabels: "{{ flow.id == 'parent' }}"
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    docs, _ = await h.store.search_executions(flow_id="child", size=10)
    (child,) = [Execution.from_json(d) for d in docs]
    assert child.labels.get("team") == "data"


async def test_loop_until_check_frequency_may_hold_expressions(h: Harness) -> None:
    """flow/LoopUntil.java: CheckFrequency's maxIterations, maxDuration and interval are
    Property<...>; `condition` is a Property<String> (a YAML boolean is its text)."""
    ex = await h.run(
        single("""
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: false
    checkFrequency:
      maxIterations: "{{ 1 + 1 }}"
      interval: "{{ 'PT0.01S' }}"
    tasks:
      - id: step
        type: io.kestra.plugin.core.log.Log
        message: "{{ outputs.loop.iterationCount }}"
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs == {"iterationCount": 2}


def test_a_loop_until_interval_that_is_not_positive_is_refused_at_load() -> None:
    """Kestra PR #18714: `@DurationMin(millis = 1)` on interval and maxDuration, and
    `@Positive` maxIterations, refuse a literal when the flow is saved."""
    for frequency, where in (
        ("interval: PT0S", "interval"),
        ("maxDuration: PT0S", "maxDuration"),
        ("maxIterations: 0", "maxIterations"),
    ):
        found = problems(
            single(f"""
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{{{ true }}}}"
    checkFrequency:
      {frequency}
    tasks:
      - id: step
        type: io.kestra.plugin.core.log.Log
        message: hi
""")
        )
        assert len(found) == 1 and f"checkFrequency.{where}" in found[0], found


async def test_a_loop_until_interval_rendering_zero_fails_the_loop(h: Harness) -> None:
    """The same constraint on an expression: the LoopUntil task run fails when it starts
    (Kestra PR #18714: the flowable task run, not the execution's processing)."""
    ex = await h.run(
        single("""
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ true }}"
    checkFrequency:
      interval: "{{ 'PT0S' }}"
    tasks:
      - id: step
        type: io.kestra.plugin.core.log.Log
        message: hi
""")
    )
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"loop": "FAILED"}
    assert "checkFrequency.interval: must be a positive duration" in (ex.error or ""), ex.error


# -- plain types in Kestra: no expression --------------------------------------------------


def test_for_each_concurrency_limit_takes_no_expression() -> None:
    """flow/ForEach.java: `@PluginProperty Integer concurrencyLimit` (not a Property)."""
    found = problems(
        single("""
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [a, b]
    concurrencyLimit: "{{ 2 }}"
    tasks:
      - id: step
        type: io.kestra.plugin.core.log.Log
        message: hi
""")
    )
    assert len(found) == 1 and "tasks[0].concurrencyLimit" in found[0], found
    assert "valid integer" in found[0], found


def test_each_parallel_concurrent_takes_no_expression() -> None:
    """flow/EachParallel.java: `@PluginProperty Integer concurrent` (unlike Parallel's)."""
    found = problems(
        single("""
  - id: each
    type: io.kestra.plugin.core.flow.EachParallel
    value: [a, b]
    concurrent: "{{ 2 }}"
    tasks:
      - id: step
        type: io.kestra.plugin.core.log.Log
        message: hi
""")
    )
    assert len(found) == 1 and "tasks[0].concurrent" in found[0], found


def test_subflow_wait_and_transmit_failed_take_no_expression() -> None:
    """flow/Subflow.java: `@PluginProperty Boolean wait` and `transmitFailed`: the executor
    reads them before any rendering."""
    found = problems(
        single("""
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: child
    wait: "{{ true }}"
    transmitFailed: "{{ true }}"
""")
    )
    assert len(found) == 2, found
    assert any("tasks[0].wait" in p for p in found) and any(
        "tasks[0].transmitFailed" in p for p in found
    ), found


def test_switch_cases_and_toggle_enabled_take_no_expression() -> None:
    """flow/Switch.java keeps `cases` a plain map; trigger/Toggle.java a plain Boolean."""
    found = problems(
        single("""
  - id: toggle
    type: io.kestra.plugin.core.trigger.Toggle
    trigger: schedule
    enabled: "{{ true }}"
""")
    )
    assert len(found) == 1 and "tasks[0].enabled" in found[0], found
