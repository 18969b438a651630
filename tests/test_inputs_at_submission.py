"""Inputs as an execution is created: templated `defaults`, and values for no input.

Input `defaults` written as expressions are rendered when the execution is created.

Kestra's docs (workflow-components/inputs, "Dynamic inputs": `defaults: "{{ now() }}"` on a
DATETIME input, and workflow-components/checks, `run_date` of the guarded_ingest flow) and
Kestra's FlowInputOutput.resolveDefaultValue: an input's `defaults` is a Property, rendered
with the flow, the execution and the inputs already given, then typed like a given value.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import InputError
from daemon.sdk.state import State
from tests.harness import Harness


async def test_a_datetime_default_of_now_is_the_creation_time(h: Harness) -> None:
    ex = await h.run("""
        id: test
        namespace: company.team
        inputs:
          - id: date
            type: DATETIME
            defaults: "{{ now() }}"
        tasks:
          - id: print_date
            type: io.kestra.plugin.core.debug.Return
            format: "hello on {{ inputs.date }}"
    """)
    assert ex.state.current == State.SUCCESS
    created = datetime.fromisoformat(ex.inputs["date"].replace("Z", "+00:00"))
    assert abs((created - ex.state.start).total_seconds()) < 60
    assert ex.task_runs[0].outputs["value"] == f"hello on {ex.inputs['date']}"


async def test_a_default_sees_the_flow_and_the_inputs_given(h: Harness) -> None:
    source = """
        id: greet
        namespace: company.team
        inputs:
          - id: name
            type: STRING
          - id: greeting
            type: STRING
            defaults: "{{ flow.namespace }}: hello {{ inputs.name }}"
        tasks:
          - {id: say, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.greeting }}"}
    """
    ex = await h.run(source, {"name": "Ada"})
    assert ex.inputs["greeting"] == "company.team: hello Ada"
    given = await h.run(source, {"name": "Ada", "greeting": "{{ not rendered }}"})
    assert given.inputs["greeting"] == "{{ not rendered }}"  # a value given is not rendered


async def test_a_rendered_default_is_typed_like_a_given_value(h: Harness) -> None:
    with pytest.raises(InputError) as info:
        await h.run("""
            id: typed
            namespace: ns
            inputs:
              - id: count
                type: INT
                defaults: "{{ 'many' }}"
            tasks:
              - {id: t, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.count }}"}
        """)
    assert "count" in str(info.value)


async def test_a_default_that_does_not_render_refuses_the_execution(h: Harness) -> None:
    with pytest.raises(InputError) as info:
        await h.run("""
            id: broken
            namespace: ns
            inputs:
              - id: when
                type: DATETIME
                defaults: "{{ inputs.nothing.deeper }}"
            tasks:
              - {id: t, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.when }}"}
        """)
    assert "input 'when': its defaults do not render" in str(info.value)


def test_a_templated_default_is_not_typed_when_the_flow_loads() -> None:
    flow = load_flow(
        "id: f\nnamespace: ns\ninputs:\n  - id: d\n    type: DATETIME\n"
        '    defaults: "{{ now() }}"\n'
        "tasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n",
        "f.yaml",
    )
    assert flow.inputs[0].defaults == "{{ now() }}"


async def test_a_value_for_no_declared_input_is_logged_and_dropped(h: Harness) -> None:
    """Kestra FlowInputOutput.readExecutionInputs: "Input {} was provided for workflow {}.{}
    but isn't declared in the workflow inputs", a warning; the execution runs. The schedules
    of kestra-io/examples flows/03_helloParametrizedScheduled.yml pass `name` and `value`."""
    ex = await h.run(
        """
        id: helloParametrizedScheduled
        namespace: prod
        inputs:
          - name: user
            type: STRING
            defaults: Data Engineer
            required: false
        tasks:
          - id: hello
            type: io.kestra.core.tasks.log.Log
            message: Hello {{ inputs.user }} from Kestra!
        """,
        {"name": "user", "value": "minutely flow"},
    )
    assert ex.state.current == State.SUCCESS
    assert ex.inputs == {"user": "Data Engineer"}
    logs = await h.logs(ex, level="WARN")
    assert logs[:2] == [
        "Input name was provided for workflow prod.helloParametrizedScheduled but isn't "
        "declared in the workflow inputs",
        "Input value was provided for workflow prod.helloParametrizedScheduled but isn't "
        "declared in the workflow inputs",
    ]
