"""Syntax Kestra 1.x still accepts (deprecated forms load with a warning naming the current
form) and the validations Kestra applies at load.

Each test names the Kestra source, test or documentation page the behaviour comes from.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tests.api_helpers import call, flow_server, yaml_body
from tests.harness import Harness, eventually, problems, task_states


def loaded(source: str) -> list[str]:
    """The warnings of a flow that loads, as `podium validate` prints them."""
    flow = load_flow(textwrap.dedent(source).lstrip(), "f.yaml")
    return [f"{w.line}:{w.column}: {w.path}: {w.message}" for w in flow.warnings]


# -- deprecated forms that load, with a warning ---------------------------------------------


async def test_input_name_is_the_id_it_became(h: Harness) -> None:
    """Kestra PR #2950 (inputs named by `name` before 0.15): `name` is read as `id`."""
    source = """
        id: f
        namespace: ns
        inputs:
          - name: who
            type: STRING
        tasks:
          - id: hi
            type: io.kestra.plugin.core.log.Log
            message: "hello {{ inputs.who }}"
    """
    assert loaded(source) == ["4:11: inputs[0].name: 'name' is deprecated; use 'id'"]
    ex = await h.run(source, {"who": "Ada"})
    assert await h.logs(ex) == ["hello Ada"]


def test_legacy_type_names_and_task_defaults_are_reported() -> None:
    """Kestra 0.17 renamed io.kestra.core.tasks.* to io.kestra.plugin.core.* (aliases kept);
    `taskDefaults` became `pluginDefaults`."""
    assert loaded("""
        id: f
        namespace: ns
        taskDefaults:
          - type: io.kestra.core.tasks.log.Log
            values: {level: WARN}
        tasks:
          - id: hi
            type: io.kestra.core.tasks.log.Log
            message: hi
    """) == [
        "4:3: taskDefaults: 'taskDefaults' is deprecated; use 'pluginDefaults'",
        "8:11: tasks[0].type: type 'io.kestra.core.tasks.log.Log' is deprecated; "
        "use 'io.kestra.plugin.core.log.Log'",
    ]


async def test_run_if_is_the_when_it_became_in_kestra_2(h: Harness) -> None:
    """Kestra docs migration-guide/v2.0.0/run-if-renamed-when: tasks' `runIf` is renamed
    `when`, the old name a deprecated alias; both skip the task when falsy."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: old
            type: io.kestra.plugin.core.log.Log
            message: old name
            runIf: "{{ 1 == 2 }}"
          - id: new
            type: io.kestra.plugin.core.log.Log
            message: new name
            when: "{{ 1 == 1 }}"
    """
    assert loaded(source) == ["7:12: tasks[0].runIf: 'runIf' is deprecated; use 'when'"]
    ex = await h.run(source)
    assert task_states(ex) == {"old": "SKIPPED", "new": "SUCCESS"}
    assert await h.logs(ex) == ["new name"]


async def test_foreach_and_each_are_reported_removed_in_kestra_2(h: Harness) -> None:
    """Kestra docs migration-guide/v2.0.0/foreach-loop: ForEach and ForEachItem are removed
    in 2.0, Loop replaces them (EachSequential/EachParallel went long before); podium still
    runs a 1.x flow that uses them, and says what to write instead."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2]
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: "{{ taskrun.value }}"
          - id: seq
            type: io.kestra.core.tasks.flows.EachSequential
            value: [3]
            tasks:
              - id: b
                type: io.kestra.plugin.core.log.Log
                message: "{{ taskrun.value }}"
          - id: loop
            type: io.kestra.plugin.core.flow.Loop
            values: [4]
            tasks:
              - id: c
                type: io.kestra.plugin.core.log.Log
                message: "{{ item.value }}"
    """
    removed = "is deprecated; Kestra 2.0 removed it: use 'io.kestra.plugin.core.flow.Loop'"
    assert loaded(source) == [
        f"5:11: tasks[0].type: type 'io.kestra.plugin.core.flow.ForEach' {removed}",
        f"12:11: tasks[1].type: type 'io.kestra.core.tasks.flows.EachSequential' {removed}",
    ]
    ex = await h.run(source)
    assert ex.state.current == State.SUCCESS
    assert sorted(await h.logs(ex)) == ["1", "2", "3"]


def test_plugin_defaults_and_forced_are_reported_removed_in_kestra_2() -> None:
    """Kestra docs migration-guide/v2.0.0/plugin-defaults-removed and
    plugin-defaults-forced-removed: Kestra 2.0 refuses both; podium still applies them, as a
    1.x flow expects, and says so."""
    flow = load_flow(
        textwrap.dedent("""\
        id: f
        namespace: ns
        pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            values: {message: from the defaults}
          - type: io.kestra.plugin.core.log
            forced: true
            values: {level: WARN}
        tasks:
          - id: hi
            type: io.kestra.plugin.core.log.Log
        """),
        "f.yaml",
    )
    assert [f"{w.line}:{w.column}: {w.path}: {w.message}" for w in flow.warnings] == [
        "4:3: pluginDefaults: 'pluginDefaults' is deprecated; Kestra 2.0 removed it: set the "
        "values on the tasks (or in 'variables')",
        "7:13: pluginDefaults[1].forced: 'forced' is deprecated; Kestra 2.0 removed it",
    ]
    task = flow.tasks[0]
    assert (task.message, task.level) == ("from the defaults", "WARN")  # type: ignore[attr-defined]


async def test_listeners_run_after_the_end_without_changing_the_state(h: Harness) -> None:
    """Kestra Listener (docs PR #503): when the execution ends, the tasks of each listener
    whose conditions hold run in it; their result never changes its final state."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
        listeners:
          - conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [FAILED]
            tasks:
              - id: on_failure
                type: io.kestra.plugin.core.log.Log
                message: "listener saw {{ execution.state }}"
              - id: also_fails
                type: io.kestra.plugin.core.execution.Fail
          - conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [SUCCESS]
            tasks:
              - id: on_success
                type: io.kestra.plugin.core.log.Log
                message: never
    """
    assert loaded(source)[0].startswith("7:3: listeners: 'listeners' is deprecated; use")
    ex = await h.run(source)
    assert ex.state.current == State.FAILED
    assert task_states(ex) == {"boom": "FAILED", "on_failure": "SUCCESS", "also_fails": "FAILED"}
    assert "listener saw FAILED" in await h.logs(ex)


async def test_pause_tasks_run_after_the_resume(h: Harness) -> None:
    """Kestra Pause (deprecated `tasks`, `delay`): the children run once it is resumed and
    the Pause ends in their state; `delay` is `pauseDuration`."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Pause
            delay: PT1H
            tasks:
              - id: after
                type: io.kestra.plugin.core.log.Log
                message: resumed
    """
    assert [w.split(": ", 2)[1] for w in loaded(source)] == ["tasks[0].delay", "tasks[0].tasks"]
    ex = await h.start(source)

    async def paused() -> bool:
        return ex.state.current == State.PAUSED

    await eventually(paused, "the execution pausing")
    assert await h.engine.resume(ex.id, {})
    ended = await h.engine.wait(ex.id)
    assert ended.state.current == State.SUCCESS
    assert task_states(ended) == {"wait": "SUCCESS", "after": "SUCCESS"}


async def test_subflow_outputs_render_on_the_child(h: Harness) -> None:
    """Kestra Subflow.createSubflowExecutionResult (deprecated `outputs`): rendered against
    the child execution when it has no flow outputs of its own."""
    await h.flow("""
        id: child
        namespace: ns
        tasks:
          - id: make
            type: io.kestra.plugin.core.debug.Return
            format: made by the child
    """)
    source = """
        id: parent
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
            outputs:
              result: "{{ outputs.make.value }}"
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ outputs.call.outputs.result }}"
    """
    assert loaded(source)[0].startswith("9:7: tasks[0].outputs: 'outputs' is deprecated")
    ex = await h.run(source)
    assert ex.state.current == State.SUCCESS, ex.error
    assert await h.logs(ex) == ["made by the child"]


async def test_jdbc_legacy_fetch_flags_choose_the_fetch_type(h: Harness) -> None:
    """Kestra JdbcQueryInterface: the deprecated `fetchOne`, `store`, `fetch` booleans are read
    before `fetchType`, fetchOne first."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: q
            type: io.kestra.plugin.jdbc.duckdb.Query
            sql: select 42 as answer
            fetch: true
            fetchOne: true
    """
    assert [w.split(": ", 2)[1] for w in loaded(source)] == ["tasks[0].fetch", "tasks[0].fetchOne"]
    ex = await h.run(source)
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs["row"] == {"answer": 42}


def test_script_runner_and_docker_mean_a_task_runner() -> None:
    """Kestra migration guide "runner" (0.18): `runner: PROCESS|DOCKER` and `docker.image` are
    the Process or Docker task runner and `containerImage`."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: in_docker
            type: io.kestra.plugin.scripts.python.Script
            runner: DOCKER
            docker:
              image: python:3.11-slim
              pullPolicy: NEVER
            script: print(1)
          - id: here
            type: io.kestra.plugin.scripts.shell.Commands
            runner: PROCESS
            commands: [echo hi]
    """
    flow = load_flow(textwrap.dedent(source).lstrip(), "f.yaml")
    docker, process = flow.tasks
    assert docker.task_runner.type == "io.kestra.plugin.scripts.runner.docker.Docker"  # type: ignore[attr-defined]
    assert docker.task_runner.pull_policy == "NEVER"  # type: ignore[attr-defined]
    assert docker.container_image == "python:3.11-slim"  # type: ignore[attr-defined]
    assert process.task_runner.type == "io.kestra.plugin.core.runner.Process"  # type: ignore[attr-defined]
    assert [w.split(": ", 2)[1] for w in loaded(source)] == [
        "tasks[0].runner",
        "tasks[0].docker",
        "tasks[1].runner",
    ]


def test_slack_execution_payload_loads_and_is_reported_as_ignored() -> None:
    """Kestra SlackTemplate.run: SlackExecution inherits `payload` and overwrites it with the
    execution summary."""
    (warning,) = loaded("""
        id: f
        namespace: ns
        tasks:
          - id: alert
            type: io.kestra.plugin.notifications.slack.SlackExecution
            url: https://hooks.slack.com/services/x
            payload: '{"text": "mine"}'
    """)
    assert "SlackExecution sends the execution summary and ignores it" in warning


# -- values Kestra accepts that podium refused ----------------------------------------------


async def test_an_expression_where_an_enum_is_expected_is_rendered_then_checked(
    h: Harness,
) -> None:
    """Kestra Property<T> (0.20+): `runContext.render(property).as(T)`; the expression is
    rendered at run time and the value checked then."""
    source = """
        id: f
        namespace: ns
        inputs:
          - id: level
            type: STRING
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            level: "{{ inputs.level }}"
            message: hi
    """
    ex = await h.run(source, {"level": "WARN"})
    assert ex.state.current == State.SUCCESS
    assert [line["level"] for line in await h.store.logs(ex.id)] == ["WARN"]
    ex = await h.run(source, {"level": "LOUD"})
    assert ex.state.current == State.FAILED
    assert "invalid property after rendering: level" in (ex.error or "")


async def test_exit_accepts_cancelled_and_an_expression(h: Harness) -> None:
    """Kestra exit-cancelled.yaml / ExitState: CANCELED (and CANCELLED) end the execution
    CANCELLED; the state may be an expression."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: "{{ 'CANCEL' ~ 'LED' }}"
    """)
    assert ex.state.current == State.CANCELLED
    assert task_states(ex) == {"stop": "CANCELLED"}


def test_every_kestra_state_names_a_state() -> None:
    """Kestra State.Type: RETRIED, RESUBMITTED... are states flows name in Flow triggers."""
    load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
          - id: t
            type: io.kestra.plugin.core.trigger.Flow
            states: [CANCELLED, RETRIED, RESUBMITTED, SUBMITTED, BREAKPOINT]
    """),
        "f.yaml",
    )


async def test_label_values_may_be_numbers_and_null_means_unset(h: Harness) -> None:
    """Kestra PR #5726 (numeric and boolean label values are stored as text) and Jackson's
    null (`defaults: null`, `labels: null`...) as a property not set."""
    ex = await h.run("""
        id: f
        namespace: ns
        labels:
          year: 2025
          flag: true
        variables: null
        pluginDefaults: null
        inputs:
          - id: x
            type: STRING
            required: false
            defaults: null
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: "{{ labels.year }} {{ labels.flag }} {{ inputs.x ?? 'none' }}"
    """)
    assert ex.state.current == State.SUCCESS
    assert await h.logs(ex) == ["2025 true none"]
    assert ex.labels["year"] == "2025"


def test_mail_addresses_may_be_expressions() -> None:
    """Kestra MailSend (plugin-notifications): `from`, `to` are Property<String>, rendered
    at run time; a literal is still checked at load."""
    load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        inputs:
          - {id: to, type: STRING}
        tasks:
          - id: mail
            type: io.kestra.plugin.notifications.mail.MailSend
            host: localhost
            from: "{{ inputs.to }}"
            to: "{{ inputs.to }};ops@example.com"
            subject: hi
    """),
        "f.yaml",
    )
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: mail
            type: io.kestra.plugin.notifications.mail.MailSend
            host: localhost
            from: nobody
            to: a@example.com
    """) == ["f.yaml:7:11: tasks[0].from: 'nobody' is not an email address (got 'nobody')"]


# -- where the warnings show -----------------------------------------------------------------

DEPRECATED = """\
id: old
namespace: ns
inputs:
  - name: who
    type: STRING
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def test_podium_validate_prints_the_warnings(tmp_path: Path) -> None:
    """The flow loads (exit 0) and each deprecated form is printed with file:line:col."""
    flow = tmp_path / "old.yaml"
    flow.write_text(DEPRECATED)
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "validate", str(flow), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{flow}: ok (ns.old, 1 tasks)"
    assert result.stderr.splitlines() == [
        f"{flow}:4:11: inputs[0].name: warning: 'name' is deprecated; use 'id'"
    ]


async def test_the_validate_endpoint_returns_the_warnings(h: Harness, tmp_path: Path) -> None:
    """Kestra's POST /api/v1/flows/validate answers `deprecationPaths` and `warnings`."""
    async with flow_server(h, tmp_path / "flows") as server:
        status, doc, _ = await call(
            "POST", f"{server.url}/api/v1/flows/validate", **yaml_body(DEPRECATED)
        )
    assert status == 200
    assert doc[0]["errors"] == []
    assert doc[0]["deprecationPaths"] == ["inputs[0].name"]
    assert doc[0]["warnings"] == ["4:11: inputs[0].name: 'name' is deprecated; use 'id'"]


# -- validations -------------------------------------------------------------------------------


def test_a_flow_that_starts_itself_is_refused() -> None:
    """Kestra FlowValidator ("Recursive call to flow [ns.id]", PR #1646)."""
    assert problems("""
        id: again
        namespace: ns
        tasks:
          - id: me
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: again
    """) == ["f.yaml:4:5: tasks[0]: Recursive call to flow [ns.again]"]


async def test_flows_starting_each_other_are_refused_when_the_cycle_closes(
    h: Harness, tmp_path: Path
) -> None:
    """Kestra issue #18491 (mutual recursion spawns executions without bound): the flow that
    closes the cycle is refused, by the API and by the flows directory."""
    caller = """
        id: {me}
        namespace: ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: {other}
    """
    async with flow_server(h, tmp_path / "flows") as server:
        status, _, _ = await call(
            "POST",
            f"{server.url}/api/v1/flows",
            **yaml_body(textwrap.dedent(caller.format(me="a", other="b"))),
        )
        assert status == 200
        status, doc, _ = await call(
            "POST",
            f"{server.url}/api/v1/flows",
            **yaml_body(textwrap.dedent(caller.format(me="b", other="a"))),
        )
    assert status == 422
    assert "Recursive call to flow [ns.b] through ns.b -> ns.a -> ns.b" in json.dumps(doc)


async def test_subflows_nest_a_bounded_depth_at_run_time(h: Harness) -> None:
    """A flow starting itself through an expression (which no load check sees) stops at the
    depth limit instead of creating executions without end (issue #14: 58,572 in 60 s)."""
    ex = await h.run("""
        id: deep
        namespace: ns
        tasks:
          - id: again
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: "{{ flow.id }}"
    """)
    assert ex.state.current == State.FAILED
    executions, total = await h.store.search_executions(namespace="ns", size=100)
    assert total == 11
    assert "nested 11 deep, over the limit of 10" in " ".join(
        e.get("error") or "" for e in executions
    )


def test_references_with_dashes_need_brackets() -> None:
    """Kestra FlowValidator (issue #4090): `inputs.my-input` and `outputs.my-task` are
    subtractions in an expression."""
    assert problems("""
        id: f
        namespace: ns
        inputs:
          - id: server-fqn
            type: STRING
        tasks:
          - id: get-ip
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.server-fqn }}"
          - id: fine
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs['server-fqn'] }} {{ outputs['get-ip'].value }}"
          - id: wrong
            type: io.kestra.plugin.core.log.Log
            message: "{{ outputs.get-ip.value }}"
    """) == [
        "f.yaml:7:5: tasks[0]: Invalid input reference: use inputs['server-fqn'] instead of "
        "inputs.server-fqn; keys with dashes require bracket notation",
        "f.yaml:13:5: tasks[2]: Invalid output reference: use outputs['get-ip'] instead of "
        "outputs.get-ip; keys with dashes require bracket notation",
    ]


def test_dashed_references_kestra_does_not_match_load() -> None:
    """Kestra FlowValidator's patterns only match `{{ inputs.my-input }}` whole and
    `{{ outputs.my-task.attr }}` opening an expression: the docs' conditional-branching
    guide (`{{ outputs.log-site-up ?? outputs.log-site-down }}` in a flow output) and
    Kestra's own flows/valids/flow-with-optional-outputs.yml (`{{ outputs.invalid-task }}`)
    save in Kestra, so they load here."""
    flow = load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        inputs:
          - id: my-input
            type: STRING
        tasks:
          - id: log-site-up
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.other ?? inputs.my-input }}"
        outputs:
          - id: status
            type: STRING
            value: "{{ outputs.first ?? outputs.log-site-up }}"
          - id: optional
            type: STRING
            value: "{{ outputs.invalid-task }}"
        """).lstrip(),
        "f.yaml",
    )
    assert [output.id for output in flow.outputs] == ["status", "optional"]


def test_an_unclosed_expression_is_reported_where_it_is() -> None:
    """An expression that does not parse fails at load with file:line:col (in Kestra it
    saves and fails when the task runs)."""
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: "hello {{ inputs.name"
          - id: b
            type: io.kestra.plugin.scripts.shell.Script
            script: |
              echo one
              echo "{{ outputs.a }"
    """) == [
        "f.yaml:6:14: tasks[0].message: the expression does not parse: unexpected end of "
        "template, expected 'end of print statement'.",
        "f.yaml:11:1: tasks[1].script: the expression does not parse: unexpected '}'",
    ]


def test_system_labels_and_empty_labels_are_refused() -> None:
    """Kestra FlowValidator ("System labels can only be set by Kestra itself") and PR #11317
    (empty label values)."""
    assert problems("""
        id: f
        namespace: ns
        labels:
          system.correlationId: mine
          team: ""
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
    """) == ["f.yaml:4:3: labels: label 'team' has an empty value; give it a value or remove it"]
    assert problems("""
        id: f
        namespace: ns
        labels:
          system.correlationId: mine
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
    """) == [
        "f.yaml:4:25: labels.system.correlationId: System labels can only be set by Kestra "
        "itself, offending label: system.correlationId=mine"
    ]


def test_a_foreach_over_null_is_refused_at_load() -> None:
    """Kestra ForEach (`values` @NotNull)."""
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: null
            tasks:
              - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
    """) == ["f.yaml:6:13: tasks[0].values: Input should be a valid list"]


def test_loading_does_not_raise_for_pebble_only_operators() -> None:
    """Pebble syntax podium rewrites (`??`, `contains`, `..`) parses at load."""
    with pytest.raises(FlowError):
        load_flow("id: f\nnamespace: ns\ntasks: []\n", "f.yaml")
    load_flow(
        textwrap.dedent("""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: "{{ x ?? 'y' }} {{ [1] contains 1 ? 'a' : 'b' }} {{ 1..2 }}"
    """),
        "f.yaml",
    )


def test_an_input_nested_under_another_is_refused() -> None:
    """Kestra FlowValidator ("Input path 'a' conflicts with 'a.b'"): dotted ids nest."""
    assert problems("""
        id: f
        namespace: ns
        inputs:
          - {id: user, type: STRING}
          - {id: user.name, type: STRING}
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
    """) == [
        "f.yaml:4:10: inputs[0].id: Input path 'user' conflicts with 'user.name'; one cannot "
        "be nested under the other."
    ]


def test_a_for_each_item_starting_its_own_flow_is_refused() -> None:
    """Kestra FlowValidator: ForEachItem is an ExecutableTask, checked as Subflow is."""
    assert problems("""
        id: again
        namespace: ns
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ inputs.file }}"
            namespace: ns
            flowId: again
    """) == ["f.yaml:4:5: tasks[0]: Recursive call to flow [ns.again]"]


# -- scalars, as Jackson reads them ---------------------------------------------------------


async def test_a_number_given_to_a_text_property_is_its_text(h: Harness) -> None:
    """Kestra reads flows with Jackson (io.kestra.core.serializers.JacksonMapper), whose
    String deserializer takes any scalar: `message: 42`, `format: 1.5` and an input written
    `- id: 1` are the texts "42", "1.5" and "1"."""
    source = """
        id: f
        namespace: ns
        inputs:
          - id: 1
            type: STRING
            defaults: one
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: 42
          - id: ret
            type: io.kestra.plugin.core.debug.Return
            format: 1.5
          - id: both
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs['1'] }} {{ outputs.ret.value }}"
            timeout: PT1M
        """
    ex = await h.run(source)
    assert ex.state.current == State.SUCCESS, ex.error
    assert await h.logs(ex) == ["42"]
    assert [tr.outputs for tr in ex.task_runs[1:]] == [{"value": "1.5"}, {"value": "one 1.5"}]


async def test_a_boolean_given_to_a_text_property_is_its_text(h: Harness) -> None:
    """Jackson's String deserializer takes a boolean too: `message: true` logs "true",
    `commands: [false]` runs `false`. A property that takes a boolean keeps it, and a
    boolean where neither text nor boolean fits is still refused."""
    source = """
        id: f
        namespace: ns
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: true
          - id: ret
            type: io.kestra.plugin.core.debug.Return
            format: false
            allowFailure: true
        """
    ex = await h.run(source)
    assert ex.state.current == State.SUCCESS, ex.error
    assert await h.logs(ex) == ["true"]
    assert ex.task_runs[1].outputs == {"value": "false"}
    commands = load_flow(
        "id: f\nnamespace: ns\ntasks:\n  - id: t\n"
        "    type: io.kestra.plugin.scripts.shell.Commands\n    commands: [false, 'echo x']\n",
        "f.yaml",
    )
    assert commands.tasks[0].commands == ["false", "echo x"]  # type: ignore[attr-defined]
    with pytest.raises(FlowError, match="retry"):
        load_flow(
            "id: f\nnamespace: ns\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
            "    message: x\n    retry: true\n",
            "f.yaml",
        )


async def test_assets_are_accepted_on_tasks_and_triggers(h: Harness) -> None:
    """Kestra's Task and AbstractTrigger `assets` (AssetsDeclaration: enableAuto, inputs,
    outputs), as core/src/test/resources/flows/valids/assets.yaml declares them. podium
    keeps no asset catalogue: the flow loads and runs, the declaration is only checked."""
    source = """
        id: f
        namespace: io.kestra.tests
        tasks:
          - id: static
            type: io.kestra.plugin.core.debug.Return
            format: whatever
            assets:
              enableAuto: false
              inputs:
                - id: assets-flow-static-asset-existing-input-uid
              outputs:
                - namespace: io.kestra.tests
                  id: assets-flow-static-asset-existing-output-uid
                  type: TABLE
                  displayName: My Static Table Asset
                  system: MY_DB_SYSTEM
                  metadata:
                    owner: data-team
        triggers:
          - id: hook
            type: io.kestra.plugin.core.trigger.Webhook
            key: abcdefghij
            assets:
              outputs:
                - {id: incoming, type: FILE}
        """
    ex = await h.run(source)
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs == {"value": "whatever"}
    with pytest.raises(FlowError, match=r"assets\.outputs: .*outputs\[0\] needs type"):
        load_flow(
            "id: f\nnamespace: ns\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
            "    message: x\n    assets:\n      outputs: [{id: a}]\n",
            "f.yaml",
        )
