"""`podium validate` and POST /api/v1/flows/validate report everything in one pass: the
errors, the expressions of the parts that did parse, and the warnings, even when the flow
does not load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from tests.api_helpers import call, flow_server, yaml_body
from tests.harness import Harness

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """\
id: broken
namespace: ns
inputs:
  - name: who
    type: STRING
  - id: n
    type: INT
    defaults: abc
tasks:
  - id: a
    type: io.kestra.core.tasks.log.Log
    message: "hello {{ inputs.who"
  - id: b
    type: io.kestra.plugin.core.log.Log
    mesage: typo
    message: "{% if %}"
  - id: p
    type: io.kestra.plugin.core.flow.Pause
    delay: PT1S
    timeout: soon
  - id: c
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    thenn: []
    then:
      - id: d
        type: io.kestra.plugin.core.log.Log
        message: "{{ bad"
outputs:
  - id: o
    value: "{{ outputs.a.value"
"""
UNCLOSED = (
    "the expression does not parse: unexpected end of template, expected 'end of print statement'."
)


def load_error(source: str) -> FlowError:
    with pytest.raises(FlowError) as caught:
        load_flow(textwrap.dedent(source), "f.yaml")
    return caught.value


def test_a_flow_with_errors_still_has_the_expressions_of_its_good_parts_checked() -> None:
    """Kestra's editor shows every problem at once; podium checks the expressions of the
    tasks and outputs that parsed, and of the properties of a task that did not."""
    error = load_error(BROKEN)
    assert [str(p) for p in error.problems] == [
        "f.yaml:8:15: inputs[1].defaults: 'abc' is not an INT",
        f"f.yaml:12:14: tasks[0].message: {UNCLOSED}",
        "f.yaml:15:13: tasks[1].mesage: unknown property 'mesage'; did you mean 'message'?",
        "f.yaml:16:14: tasks[1].message: the expression does not parse: "
        "Expected an expression, got 'end of statement block'",
        "f.yaml:20:14: tasks[2].timeout: 'soon' is not an ISO-8601 duration "
        "(expected e.g. PT15S, PT1H30M, P1D) (got 'soon')",
        "f.yaml:24:12: tasks[3].thenn: unknown property 'thenn'; did you mean 'then'?",
        f"f.yaml:28:18: tasks[3].then[0].message: {UNCLOSED}",
        f"f.yaml:31:12: outputs[0].value: {UNCLOSED}",
    ]


def test_a_flow_with_errors_still_has_its_warnings() -> None:
    """Kestra's validate answers deprecationPaths and warnings beside the constraints."""
    error = load_error(BROKEN)
    assert [(w.line, w.path, w.message) for w in error.warnings] == [
        (4, "inputs[0].name", "'name' is deprecated; use 'id'"),
        (
            11,
            "tasks[0].type",
            "type 'io.kestra.core.tasks.log.Log' is deprecated; use "
            "'io.kestra.plugin.core.log.Log'",
        ),
        (19, "tasks[2].delay", "'delay' is deprecated; use 'pauseDuration'"),
    ]
    assert error.deprecation_paths == ["inputs[0].name", "tasks[0].type", "tasks[2].delay"]
    assert error.infos == [
        "io.kestra.core.tasks.log.Log is replaced by io.kestra.plugin.core.log.Log"
    ]


def test_a_task_that_did_not_build_still_says_its_deprecated_forms() -> None:
    """The Pause fails on `timeout`, yet its deprecated `delay` is named (Kestra's
    deprecationPaths come from the parsed flow, before the constraint validation)."""
    error = load_error("""\
        id: f
        namespace: ns
        tasks:
          - id: p
            type: io.kestra.core.tasks.flows.Pause
            delay: PT1S
            nope: 1
        """)
    assert [str(p) for p in error.problems] == [
        "f.yaml:7:11: tasks[0].nope: unknown property 'nope'"
    ]
    assert [w.path for w in error.warnings] == ["tasks[0].type", "tasks[0].delay"]


def test_malformed_yaml_has_its_one_error_and_nothing_else() -> None:
    """Nothing parsed: no part can be checked, no warning can be given."""
    error = load_error("id: f\nnamespace: ns\ntasks: [\n")
    assert len(error.problems) == 1 and "invalid YAML" in error.problems[0].message
    assert (error.warnings, error.deprecation_paths, error.infos) == ([], [], [])


def test_parts_of_the_wrong_shape_are_skipped_not_crashed_on() -> None:
    """Inputs, outputs and tasks that are not mappings are errors of their own; the walk
    over what parsed goes past them."""
    error = load_error("""\
        id: f
        namespace: ns
        inputs: [12, {id: a, type: INT, defaults: x}]
        outputs: nope
        tasks:
          - just text
          - id: ok
            type: io.kestra.plugin.core.log.Log
            message: "{{ not fine"
        """)
    assert [(p.path, p.message) for p in error.problems] == [
        ("inputs[0]", "Input should be a valid dictionary or instance of InputSpec"),
        ("inputs[1].defaults", "'x' is not an INT"),  # an input of its own still checked
        ("outputs", "Input should be a valid list"),
        ("tasks[0]", error.problems[3].message),
        ("tasks[1].message", error.problems[4].message),
    ]
    assert "expected a mapping with 'id' and 'type'" in error.problems[3].message
    assert "does not parse" in error.problems[4].message
    assert error.warnings == []


def test_podium_validate_prints_errors_and_warnings_in_file_order(tmp_path: Path) -> None:
    """One pass through the file fixes everything; the exit code is 2 on any error."""
    flow = tmp_path / "broken.yaml"
    flow.write_text(BROKEN)
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "validate", str(flow), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:4] == [
        f"{flow}:4:11: inputs[0].name: warning: 'name' is deprecated; use 'id'",
        f"{flow}:8:15: inputs[1].defaults: 'abc' is not an INT",
        f"{flow}:11:11: tasks[0].type: warning: type 'io.kestra.core.tasks.log.Log' is "
        "deprecated; use 'io.kestra.plugin.core.log.Log'",
        f"{flow}:12:14: tasks[0].message: {UNCLOSED}",
    ]
    assert (
        f"{flow}:19:12: tasks[2].delay: warning: 'delay' is deprecated; use 'pauseDuration'"
        in lines
    )
    assert lines[-1] == f"{flow}:31:12: outputs[0].value: {UNCLOSED}"
    assert len(lines) == 11


async def test_the_validate_endpoint_answers_constraints_and_warnings_together(
    h: Harness, tmp_path: Path
) -> None:
    """Kestra FlowController.validateFlows: constraints, deprecationPaths, warnings and
    infos ("X is replaced by Y", FlowValidationService.relocations) in one entry."""
    legacy = BROKEN.replace("id: broken", "id: legacy").split("  - id: b\n")[0]
    legacy = legacy.replace("defaults: abc", "defaults: 1").replace('inputs.who"', 'inputs.who }}"')
    async with flow_server(h, tmp_path / "flows") as server:
        status, doc, _ = await call(
            "POST", f"{server.url}/api/v1/flows/validate", **yaml_body(BROKEN + "---\n" + legacy)
        )
    assert status == 200
    bad, good = doc
    assert (bad["flow"], bad["namespace"]) == ("broken", "ns")
    assert bad["constraints"].splitlines()[0] == "8:15: inputs[1].defaults: 'abc' is not an INT"
    assert len(bad["errors"]) == 8
    assert bad["deprecationPaths"] == ["inputs[0].name", "tasks[0].type", "tasks[2].delay"]
    assert bad["warnings"][0] == "4:11: inputs[0].name: 'name' is deprecated; use 'id'"
    assert bad["infos"] == [
        "io.kestra.core.tasks.log.Log is replaced by io.kestra.plugin.core.log.Log"
    ]
    assert good["errors"] == [] and "constraints" not in good
    assert good["deprecationPaths"] == ["inputs[0].name", "tasks[0].type"]
    assert good["warnings"][1].startswith("43:11: tasks[0].type: type 'io.kestra.core.tasks")
    assert good["infos"] == bad["infos"]


# -- Kestra's other warnings -----------------------------------------------------------------

LISTENER = """\
id: listener
namespace: ns
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: any_end
    type: io.kestra.plugin.core.trigger.Flow
  - id: depends
    type: io.kestra.plugin.core.trigger.Flow
    dependsOn:
      - namespace: ns
        flowId: other
  - id: filtered
    type: io.kestra.plugin.core.trigger.Flow
    when: "{{ flow.namespace == 'ns' }}"
"""
EVERY = (
    "This flow will be triggered for EVERY execution of EVERY flow on your instance. "
    "We recommend adding the dependsOn property to the Flow trigger 'any_end'."
)


def test_a_flow_trigger_with_nothing_to_filter_on_is_warned_about() -> None:
    """Kestra FlowValidationService.warnings: a Flow trigger with neither conditions,
    preconditions, dependsOn nor a `when`; it is no deprecation (not in deprecationPaths)."""
    flow = load_flow(LISTENER, "f.yaml")
    assert [(w.line, w.path, w.message) for w in flow.warnings] == [(8, "triggers[0]", EVERY)]
    assert flow.deprecation_paths == []
    error = load_error(LISTENER + "  - id: broken\n    type: io.kestra.plugin.core.trigger.Flow\n"
                       "    nope: 1\n")  # fmt: skip
    assert [w.message for w in error.warnings] == [EVERY]  # the trigger that did build
    assert error.deprecation_paths == []


async def test_the_validate_endpoint_warns_of_unknown_and_disabled_subflows(
    h: Harness, tmp_path: Path
) -> None:
    """Kestra FlowValidationService.checkValidSubflows: "The subflow 'x' not found in
    namespace 'y'." and "... is disabled ...", as warnings; a templated id is not checked."""
    await h.flow("id: off\nnamespace: ns\ndisabled: true\ntasks:\n  - id: a\n"
                 "    type: io.kestra.plugin.core.log.Log\n    message: hi\n")  # fmt: skip
    parent = """\
id: parent
namespace: ns
tasks:
  - id: missing
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: nowhere
  - id: disabled
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: "off"
  - id: templated
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: "{{ 'any' }}"
"""
    async with flow_server(h, tmp_path / "flows") as server:
        status, doc, _ = await call(
            "POST", f"{server.url}/api/v1/flows/validate", **yaml_body(parent)
        )
    assert status == 200
    assert doc[0]["errors"] == [] and doc[0]["deprecationPaths"] == []
    assert doc[0]["warnings"] == [
        "4:5: tasks[0]: The subflow 'nowhere' not found in namespace 'ns'.",
        "8:5: tasks[1]: The subflow 'off' is disabled in namespace 'ns'.",
    ]
