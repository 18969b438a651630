"""The names Kestra's core plug-ins had before 0.17, still accepted as aliases.

Kestra docs, migration guide 0.17.0 "Renamed Plugins": `io.kestra.core.tasks.*.*` became
`io.kestra.plugin.core.*.*` (and conditions, triggers and task runners likewise), "all
non-breaking changes as we leverage aliases". Public flows (kestra-io/examples, the
blueprints) are still written with the old names: `io.kestra.core.tasks.flows.Flow`
(Kestra's deprecated `Flow` task, a `Subflow` declaring that alias) and the
`DockerTaskRunner` of the task-runner table among them.
"""

from __future__ import annotations

import pytest

from daemon.flows.loader import load_flow
from daemon.flows.registry import default_plugins
from daemon.sdk.state import State
from tests.harness import Harness, task_states

# (old name, new name) of every renamed core task, trigger and condition podium implements
RENAMED = [
    ("io.kestra.core.models.conditions.types.DateTimeBetweenCondition",
     "io.kestra.plugin.core.condition.DateTimeBetweenCondition"),
    ("io.kestra.core.models.conditions.types.DayWeekCondition",
     "io.kestra.plugin.core.condition.DayWeekCondition"),
    ("io.kestra.core.models.conditions.types.DayWeekInMonthCondition",
     "io.kestra.plugin.core.condition.DayWeekInMonthCondition"),
    ("io.kestra.core.models.conditions.types.ExecutionFlowCondition",
     "io.kestra.plugin.core.condition.ExecutionFlowCondition"),
    ("io.kestra.core.models.conditions.types.ExecutionLabelsCondition",
     "io.kestra.plugin.core.condition.ExecutionLabelsCondition"),
    ("io.kestra.core.models.conditions.types.ExecutionNamespaceCondition",
     "io.kestra.plugin.core.condition.ExecutionNamespaceCondition"),
    ("io.kestra.core.models.conditions.types.ExecutionStatusCondition",
     "io.kestra.plugin.core.condition.ExecutionStatusCondition"),
    ("io.kestra.core.models.conditions.types.HasRetryAttemptCondition",
     "io.kestra.plugin.core.condition.HasRetryAttemptCondition"),
    ("io.kestra.core.models.conditions.types.MultipleCondition",
     "io.kestra.plugin.core.condition.MultipleCondition"),
    ("io.kestra.core.models.conditions.types.NotCondition",
     "io.kestra.plugin.core.condition.NotCondition"),
    ("io.kestra.core.models.conditions.types.OrCondition",
     "io.kestra.plugin.core.condition.OrCondition"),
    ("io.kestra.core.models.conditions.types.PublicHolidayCondition",
     "io.kestra.plugin.core.condition.PublicHolidayCondition"),
    ("io.kestra.core.models.conditions.types.TimeBetweenCondition",
     "io.kestra.plugin.core.condition.TimeBetweenCondition"),
    ("io.kestra.core.models.conditions.types.VariableCondition",
     "io.kestra.plugin.core.condition.ExpressionCondition"),
    ("io.kestra.core.models.conditions.types.WeekendCondition",
     "io.kestra.plugin.core.condition.WeekendCondition"),
    ("io.kestra.core.models.triggers.types.Flow", "io.kestra.plugin.core.trigger.Flow"),
    ("io.kestra.core.models.triggers.types.Schedule", "io.kestra.plugin.core.trigger.Schedule"),
    ("io.kestra.core.models.triggers.types.Webhook", "io.kestra.plugin.core.trigger.Webhook"),
    ("io.kestra.core.tasks.debugs.Echo", "io.kestra.plugin.core.debug.Echo"),
    ("io.kestra.core.tasks.debugs.Return", "io.kestra.plugin.core.debug.Return"),
    ("io.kestra.core.tasks.executions.Counts", "io.kestra.plugin.core.execution.Count"),
    ("io.kestra.core.tasks.executions.Fail", "io.kestra.plugin.core.execution.Fail"),
    ("io.kestra.core.tasks.executions.Labels", "io.kestra.plugin.core.execution.Labels"),
    ("io.kestra.core.tasks.flows.AllowFailure", "io.kestra.plugin.core.flow.AllowFailure"),
    ("io.kestra.core.tasks.flows.Dag", "io.kestra.plugin.core.flow.Dag"),
    ("io.kestra.core.tasks.flows.EachParallel", "io.kestra.plugin.core.flow.EachParallel"),
    ("io.kestra.core.tasks.flows.EachSequential", "io.kestra.plugin.core.flow.EachSequential"),
    ("io.kestra.core.tasks.flows.Flow", "io.kestra.plugin.core.flow.Subflow"),
    ("io.kestra.core.tasks.flows.ForEachItem", "io.kestra.plugin.core.flow.ForEachItem"),
    ("io.kestra.core.tasks.flows.If", "io.kestra.plugin.core.flow.If"),
    ("io.kestra.core.tasks.flows.Parallel", "io.kestra.plugin.core.flow.Parallel"),
    ("io.kestra.core.tasks.flows.Pause", "io.kestra.plugin.core.flow.Pause"),
    ("io.kestra.core.tasks.flows.Sequential", "io.kestra.plugin.core.flow.Sequential"),
    ("io.kestra.core.tasks.flows.Subflow", "io.kestra.plugin.core.flow.Subflow"),
    ("io.kestra.core.tasks.flows.Switch", "io.kestra.plugin.core.flow.Switch"),
    ("io.kestra.core.tasks.flows.Template", "io.kestra.plugin.core.flow.Template"),
    ("io.kestra.core.tasks.flows.WorkingDirectory", "io.kestra.plugin.core.flow.WorkingDirectory"),
    ("io.kestra.core.tasks.log.Fetch", "io.kestra.plugin.core.log.Fetch"),
    ("io.kestra.core.tasks.log.Log", "io.kestra.plugin.core.log.Log"),
    ("io.kestra.core.tasks.storages.Concat", "io.kestra.plugin.core.storage.Concat"),
    ("io.kestra.core.tasks.storages.DeduplicateItems",
     "io.kestra.plugin.core.storage.DeduplicateItems"),
    ("io.kestra.core.tasks.storages.Delete", "io.kestra.plugin.core.storage.Delete"),
    ("io.kestra.core.tasks.storages.FilterItems", "io.kestra.plugin.core.storage.FilterItems"),
    ("io.kestra.core.tasks.storages.LocalFiles", "io.kestra.plugin.core.storage.LocalFiles"),
    ("io.kestra.core.tasks.storages.Purge", "io.kestra.plugin.core.storage.Purge"),
    ("io.kestra.core.tasks.storages.PurgeExecution",
     "io.kestra.plugin.core.storage.PurgeExecution"),
    ("io.kestra.core.tasks.storages.Reverse", "io.kestra.plugin.core.storage.Reverse"),
    ("io.kestra.core.tasks.storages.Size", "io.kestra.plugin.core.storage.Size"),
    ("io.kestra.core.tasks.storages.Split", "io.kestra.plugin.core.storage.Split"),
    ("io.kestra.core.tasks.templating.TemplatedTask",
     "io.kestra.plugin.core.templating.TemplatedTask"),
    ("io.kestra.core.tasks.trigger.Toggle", "io.kestra.plugin.core.trigger.Toggle"),
    ("io.kestra.plugin.fs.http.Download", "io.kestra.plugin.core.http.Download"),
    ("io.kestra.plugin.fs.http.Request", "io.kestra.plugin.core.http.Request"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new"), RENAMED)
def test_the_name_before_0_17_is_the_same_plugin(old: str, new: str) -> None:
    plugins = default_plugins()
    registries = (plugins.tasks, plugins.triggers, plugins.conditions)
    found = [(r.get(old), r.get(new)) for r in registries if old in r]
    assert found, f"{old} is not a registered name"
    assert found[0][0] is found[0][1]


async def test_the_old_flow_task_runs_a_subflow(h: Harness) -> None:
    """kestra-io/examples blueprints/13_trigger_subflow.yml: `io.kestra.core.tasks.flows.Flow`
    (Kestra's Flow.java, `aliases = "io.kestra.core.tasks.flows.Flow"`) starts the child."""
    await h.flow("""
        id: subflow
        namespace: blueprint
        inputs:
          - id: data
            type: STRING
        tasks:
          - id: echo
            type: io.kestra.plugin.core.debug.Return
            format: "got {{ inputs.data }}"
        outputs:
          - id: got
            type: STRING
            value: "{{ outputs.echo.value }}"
    """)
    ex = await h.run("""
        id: trigger_subflow
        namespace: blueprint
        tasks:
          - id: taskA
            type: io.kestra.core.tasks.debugs.Return
            format: "{{task.id}} - Flow A"
          - id: flowB
            type: io.kestra.core.tasks.flows.Flow
            namespace: blueprint
            flowId: subflow
            inputs:
              data: "{{ outputs.taskA.value }}"
    """)
    assert task_states(ex) == {"taskA": "SUCCESS", "flowB": "SUCCESS"}
    assert ex.state.current == State.SUCCESS
    flow_b = next(tr for tr in ex.task_runs if tr.task_id == "flowB")
    assert flow_b.outputs["outputs"] == {"got": "got taskA - Flow A"}


def test_the_docker_task_runner_keeps_its_name_before_0_17() -> None:
    """Migration guide 0.17.0, "Renamed Task Runners": DockerTaskRunner became Docker."""
    flow = load_flow(
        """
id: f
namespace: ns
tasks:
  - id: py
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.DockerTaskRunner
    containerImage: ubuntu
    commands: [echo hi]
""",
        "f.yaml",
    )
    runner = flow.tasks[0].task_runner  # type: ignore[attr-defined]
    assert type(runner).__name__ == "Docker"
