"""Loading flows: valid Kestra YAML loads; every kind of mistake is reported at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from daemon.flows.loader import load_flow, load_flow_file
from daemon.flows.registry import Plugins, Registry
from daemon.sdk.errors import FlowError
from daemon.sdk.plugin import Task
from tasks.core import Log
from tests.harness import problems

FLOWS = Path(__file__).resolve().parent.parent / "flows"


def test_every_example_flow_loads() -> None:
    files = sorted(FLOWS.glob("*.yaml"))
    assert files, "flows/ has no example flows"
    for file in files:
        flow = load_flow_file(file)
        assert flow.tasks


def test_hello_world_is_the_seed_flow() -> None:
    flow = load_flow_file(FLOWS / "01_hello_world.yaml")
    assert (flow.namespace, flow.id) == ("zoomcamp", "01_hello_world")
    assert [t.id for t in flow.tasks] == [
        "hello_message",
        "generate_output",
        "sleep",
        "log_output",
        "goodbye_message",
    ]
    assert flow.concurrency is not None
    assert (flow.concurrency.behavior, flow.concurrency.limit) == ("FAIL", 2)
    log = flow.tasks[0]
    assert isinstance(log, Log)
    assert log.level == "ERROR"  # from pluginDefaults
    assert flow.triggers[0].disabled is True
    assert flow.variables["welcome_message"] == "Hello, {{ inputs.name }}!"


def test_full_kestra_type_and_legacy_type_name_load_the_same_class() -> None:
    flow = load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
          - id: b
            type: io.kestra.core.tasks.log.Log
            message: hi
        """),
        "f.yaml",
    )
    assert type(flow.tasks[0]) is type(flow.tasks[1]) is Log


def test_yaml_syntax_error_names_line_and_column() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks: [
          - id: a
        """) == [
        "f.yaml:4:3: invalid YAML: expected the node content, but found '-' "
        "(while parsing a flow node)"
    ]


def test_duplicate_yaml_key_is_an_error() -> None:
    assert problems("""
        id: f
        namespace: ns
        id: g
        tasks: []
        """) == ["f.yaml:3:1: id: duplicate key 'id'"]


def test_unknown_type_suggests_the_closest_names() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Logg
            message: hi
        """) == [
        "f.yaml:5:11: tasks[0].type: unknown task type "
        "'io.kestra.plugin.core.log.Logg'; did you mean io.kestra.plugin.core.log.Log?"
    ]


def test_short_unknown_type_suggests_by_last_segment() -> None:
    [message] = problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: Sleep
            duration: PT1S
        """)
    assert message.startswith(
        "f.yaml:5:11: tasks[0].type: unknown task type 'Sleep'; did you "
        "mean io.kestra.plugin.core.flow.Sleep"
    )


def test_unknown_property_is_an_error_with_a_hint() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            mesage: hi
        """) == [
        "f.yaml:4:5: tasks[0]: missing required property 'message'",
        "f.yaml:6:13: tasks[0].mesage: unknown property 'mesage'; did you mean 'message'?",
    ]


def test_missing_required_flow_properties_are_all_reported() -> None:
    assert problems("""
        id: f
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        """) == ["f.yaml:1:1: missing required property 'namespace'"]


def test_every_error_of_a_file_is_reported_at_once() -> None:
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
          - id: a
            type: io.kestra.plugin.core.debug.Return
          - id: c
            type: nope.Nope
          - id: d
            type: io.kestra.plugin.core.flow.Sleep
            duration: soon
        """)
    assert found == [
        "f.yaml:4:5: tasks[0]: missing required property 'message'",
        "f.yaml:6:9: tasks[1].id: duplicate task id 'a'",
        "f.yaml:9:11: tasks[2].type: unknown task type 'nope.Nope'",
        "f.yaml:12:15: tasks[3].duration: 'soon' is not an ISO-8601 duration "
        "(expected e.g. PT15S, PT1H30M, P1D) (got 'soon')",
    ]


def test_duplicate_task_id_inside_a_nested_branch_is_an_error() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.flow.If
            condition: "true"
            then:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: hi
        """) == ["f.yaml:8:13: tasks[0].then[0].id: duplicate task id 'a'"]


def test_nested_unknown_type_points_inside_the_branch() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.flow.If
            condition: "true"
            then:
              - id: b
                type: io.kestra.plugin.core.log.Lg
                message: hi
        """) == [
        "f.yaml:9:15: tasks[0].then[0].type: unknown task type "
        "'io.kestra.plugin.core.log.Lg'; did you mean io.kestra.plugin.core.log.Log?"
    ]


def test_depends_on_naming_no_task_is_an_error() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: hi
            dependsOn: [zz]
        """) == [
        "f.yaml:10:17: tasks[1].dependsOn[0]: dependsOn names 'zz', which is not a "
        "task of this list (a, b)"
    ]


def test_depends_on_cycle_is_an_error() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
            dependsOn: [c]
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: hi
            dependsOn: [a]
          - id: c
            type: io.kestra.plugin.core.log.Log
            message: hi
            dependsOn: [b]
        """) == ["f.yaml:7:16: tasks[0].dependsOn: dependsOn cycle: a -> c -> b -> a"]


def test_bad_namespace_and_task_id_are_refused() -> None:
    found = problems("""
        id: "my flow"
        namespace: Bad Space
        tasks:
          - id: "-a"
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    assert [p.split(": ")[1] for p in found] == ["id", "namespace", "tasks[0].id"]


def test_plugin_defaults_match_by_type_prefix_and_forced_overrides() -> None:
    flow = load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
            level: WARN
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: hi
        pluginDefaults:
          - type: io.kestra.plugin.core.log
            values:
              level: DEBUG
        """),
        "f.yaml",
    )
    assert [t.level for t in flow.tasks] == ["WARN", "DEBUG"]  # type: ignore[attr-defined]
    forced = load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
            level: WARN
        pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            forced: true
            values:
              level: ERROR
        """),
        "f.yaml",
    )
    assert forced.tasks[0].level == "ERROR"  # type: ignore[attr-defined]


def test_labels_as_map_or_list() -> None:
    for labels in ("labels:\n  team: data\n", "labels:\n  - key: team\n    value: data\n"):
        flow = load_flow(
            "id: f\nnamespace: ns\n"
            + labels
            + "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
            "    message: hi\n",
            "f.yaml",
        )
        assert flow.labels == {"team": "data"}


def test_templated_property_is_type_checked_only_when_not_a_template() -> None:
    flow = load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.flow.Sleep
            duration: "{{ inputs.wait }}"
        """),
        "f.yaml",
    )
    assert flow.tasks[0].duration == "{{ inputs.wait }}"  # type: ignore[attr-defined]


def test_trigger_with_bad_cron_is_a_load_error() -> None:
    [message] = problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: s
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 10 * *"
        """)
    assert message == (
        "f.yaml:10:11: triggers[0].cron: cron expression has 4 fields, expected 5 "
        "(minute hour day-of-month month day-of-week) (got '0 10 * *')"
    )


def test_an_empty_file_and_a_list_are_not_flows() -> None:
    assert problems("") == ["f.yaml:1:1: a flow must be a YAML mapping"]
    assert problems("- a\n- b\n") == ["f.yaml:1:1: a flow must be a YAML mapping"]


def test_unreadable_file_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read flow file"):
        load_flow_file(tmp_path / "missing.yaml")


def test_registry_refuses_duplicate_types() -> None:
    registry: Registry[Task] = Registry("task")
    registry.register(Log)

    class Other(Task):
        types = ("io.kestra.plugin.core.log.Log",)

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Other)


def test_registry_lists_every_shipped_task_under_its_kestra_name() -> None:
    from daemon.flows.registry import default_plugins

    plugins: Plugins = default_plugins()
    for name in (
        "io.kestra.plugin.core.log.Log",
        "io.kestra.plugin.core.debug.Return",
        "io.kestra.plugin.core.flow.Sleep",
        "io.kestra.plugin.core.execution.Fail",
        "io.kestra.plugin.core.execution.Labels",
        "io.kestra.plugin.core.output.OutputValues",
        "io.kestra.plugin.core.execution.Exit",
        "io.kestra.plugin.core.flow.Sequential",
        "io.kestra.plugin.core.flow.Parallel",
        "io.kestra.plugin.core.flow.Dag",
        "io.kestra.plugin.core.flow.If",
        "io.kestra.plugin.core.flow.Switch",
        "io.kestra.plugin.core.flow.ForEach",
        "io.kestra.plugin.core.flow.AllowFailure",
        "io.kestra.plugin.core.flow.Subflow",
    ):
        assert name in plugins.tasks
    assert "io.kestra.plugin.core.trigger.Schedule" in plugins.triggers


def test_plugin_defaults_reach_triggers_conditions_and_task_runners() -> None:
    """Kestra's PluginDefaultService applies pluginDefaults to every mapping with a `type`
    (recursiveDefaults), not to tasks alone: the blueprint hubspot-postgres-sync gives its
    jdbc Trigger its `url` that way. Here a Schedule trigger, its condition and a script
    task's taskRunner each take a value only a default gives them."""
    flow = load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - id: script
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["true"]
            taskRunner:
              type: io.kestra.plugin.scripts.runner.docker.Docker
        triggers:
          - id: daily
            type: io.kestra.plugin.core.trigger.Schedule
            conditions:
              - type: io.kestra.plugin.core.condition.DayWeek
        pluginDefaults:
          - type: io.kestra.plugin.core.trigger.Schedule
            values:
              cron: "0 10 * * *"
              timezone: Europe/Paris
          - type: io.kestra.plugin.core.condition
            values:
              dayOfWeek: MONDAY
          - type: io.kestra.plugin.scripts.runner.docker
            values:
              pullPolicy: NEVER
        """),
        "f.yaml",
    )
    trigger = flow.triggers[0]
    assert (trigger.cron, trigger.timezone) == ("0 10 * * *", "Europe/Paris")  # type: ignore[attr-defined]
    assert trigger.conditions[0].day_of_week == "MONDAY"  # type: ignore[attr-defined]
    assert flow.tasks[0].task_runner.pull_policy == "NEVER"  # type: ignore[attr-defined]
