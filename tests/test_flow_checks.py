"""Flow-level `checks` (Kestra 1.x `condition`, renamed `when` in 2.0): tested on the inputs
of an execution asked for through the API, they block it, create it FAILED, or let it run.

Kestra: docs migration-guide/v2.0.0/checks-condition-renamed-when and
workflow-components/checks; FlowServiceTest (getFailedChecks), CheckTest (resolveBehavior),
ExecutionController.create (BLOCK_EXECUTION refused, FAIL_EXECUTION created FAILED).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from daemon.app.cli import EXIT_INVALID
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tests.api_helpers import call, form, serving
from tests.harness import Harness
from tests.test_cli import podium


def checked(checks: str, inputs: str = "") -> str:
    """A flow with an `env` input (and `inputs`), whose task logs it, and these checks."""
    return (
        textwrap.dedent("""\
        id: guarded
        namespace: ns
        inputs:
          - id: env
            type: STRING
            defaults: dev
        """)
        + textwrap.indent(textwrap.dedent(inputs), "  ")
        + textwrap.dedent("""\
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "running in {{ inputs.env }}"
        checks:
        """)
        + textwrap.indent(textwrap.dedent(checks).strip(), "  ")
        + "\n"
    )


PRODUCTION_ONLY = checked("""
    - when: "{{ inputs.environment == 'production' }}"
      message: This flow can only run in production
      behavior: BLOCK_EXECUTION
      style: ERROR
""").replace("inputs.environment", "inputs.env")


async def post(url: str, **inputs: str) -> tuple[int, dict[str, object]]:
    status, doc, _ = await call(
        "POST", f"{url}/api/v1/executions/ns/guarded?wait=true", data=form(**inputs)
    )
    return status, doc


async def test_a_when_check_that_is_false_blocks_the_execution(h: Harness) -> None:
    """The 2.0 guide's example: `when` false with BLOCK_EXECUTION creates no execution and
    answers the check's message; true, the execution runs."""
    await h.flow(PRODUCTION_ONLY)
    async with serving(h) as url:
        status, doc = await post(url, env="dev")
        assert status == 422, doc
        assert doc["message"] == (
            "Invalid entity: Flow execution blocked: one or more condition checks evaluated "
            "to false. Failed checks: This flow can only run in production"
        )
        assert doc["_embedded"] == {"errors": [{"message": "This flow can only run in production"}]}
        assert (await h.store.search_executions())[1] == 0
        status, doc = await post(url, env="production")
    assert status == 200, doc
    assert doc["state"]["current"] == "SUCCESS"


async def test_the_1x_condition_name_still_works_and_is_reported_deprecated(h: Harness) -> None:
    """Kestra 2.0 keeps `condition` as a deprecated alias of `when`."""
    source = PRODUCTION_ONLY.replace("- when:", "- condition:")
    flow = await h.flow(source)
    assert [f"{w.path}: {w.message}" for w in flow.warnings] == [
        "checks[0].condition: 'condition' is deprecated; use 'when'"
    ]
    async with serving(h) as url:
        assert (await post(url, env="dev"))[0] == 422
        assert (await post(url, env="production"))[0] == 200


async def test_fail_execution_creates_it_failed_and_runs_nothing(h: Harness) -> None:
    """FAIL_EXECUTION: the execution exists, FAILED, with Kestra's warning in its logs and
    none of its tasks run."""
    await h.flow(
        checked("""
        - when: "{{ inputs.env != 'dev' }}"
          message: not in dev
          behavior: FAIL_EXECUTION
    """)
    )
    async with serving(h) as url:
        status, doc = await post(url, env="dev")
    assert status == 200, doc
    assert doc["state"]["current"] == "FAILED"
    assert doc["taskRunList"] == []
    await h.store.flush()
    lines = await h.store.logs(str(doc["id"]))
    assert [(line["level"], line["message"]) for line in lines] == [
        (
            "WARN",
            "Flow execution failed because one or more condition checks evaluated to false.",
        )
    ]


async def test_the_strictest_behavior_of_the_failed_checks_wins(h: Harness) -> None:
    """Check.resolveBehavior: BLOCK over FAIL over CREATE; a CREATE_EXECUTION check alone lets
    the execution run, and a check that holds does not count."""
    await h.flow(
        checked("""
        - when: "{{ inputs.env == 'prod' }}"
          message: only a warning
          behavior: CREATE_EXECUTION
          style: WARNING
        - when: "{{ inputs.env != 'blocked' }}"
          message: blocked
        - when: "{{ inputs.env != 'failed' and inputs.env != 'blocked' }}"
          message: failed
          behavior: FAIL_EXECUTION
    """)
    )
    async with serving(h) as url:
        status, doc = await post(url, env="dev")  # only the CREATE check fails
        assert (status, doc["state"]["current"]) == (200, "SUCCESS")
        status, doc = await post(url, env="failed")  # CREATE and FAIL
        assert (status, doc["state"]["current"]) == (200, "FAILED")
        status, doc = await post(url, env="blocked")  # all three
        assert status == 422
        assert str(doc["message"]).endswith("Failed checks: only a warning, blocked, failed")


async def test_a_check_reads_typed_and_nested_inputs_and_the_flow(h: Harness) -> None:
    """FlowServiceTest: `flow` is there, an input is typed (an INT compares as a number)
    and a dotted input id reads as a nested path (`inputs.environment.region`)."""
    await h.flow(
        checked(
            """
            - when: "{{ inputs.count > 2 and flow.id == 'guarded' }}"
              message: count too small
            - when: "{{ inputs.environment.region == 'EU' }}"
              message: region must be EU
            """,
            inputs="""\
                - id: count
                  type: INT
                - id: environment.region
                  type: STRING
            """,
        )
    )
    async with serving(h) as url:
        status, doc = await post(url, count="3", **{"environment.region": "EU"})
        assert (status, doc["state"]["current"]) == (200, "SUCCESS")
        status, doc = await post(url, count="10", **{"environment.region": "US"})
        assert status == 422
        assert doc["_embedded"] == {"errors": [{"message": "region must be EU"}]}


async def test_a_check_that_cannot_be_rendered_blocks_with_the_reason(h: Harness) -> None:
    """FlowServiceTest.shouldReturnCheckWithErrorMessageWhenExceptionThrown: a check whose
    expression fails blocks, its message saying why, even when it asks only to warn."""
    await h.flow(
        checked("""
        - when: "{{ inputs.env.missing.deeper }}"
          message: ignored
          behavior: CREATE_EXECUTION
    """)
    )
    async with serving(h) as url:
        status, doc = await post(url)
    assert status == 422
    (error,) = doc["_embedded"]["errors"]  # type: ignore[index]
    assert error["message"].startswith("Failed to evaluate check condition. Cause: ")


async def test_only_true_passes_a_check(h: Harness) -> None:
    """`renderTyped` and Boolean.TRUE.equals: text that is not `true` fails the check, as
    `false` does."""
    await h.flow(
        checked("""
        - when: "{{ inputs.env }}"
          message: not true
    """)
    )
    async with serving(h) as url:
        assert (await post(url, env="yes"))[0] == 422
        assert (await post(url, env="true"))[0] == 200


async def test_checks_do_not_apply_to_executions_triggers_and_subflows_start(
    h: Harness,
) -> None:
    """Kestra tests checks in its ExecutionController only: an execution submitted by the
    engine itself (a trigger, a subflow) is not refused."""
    flow = await h.flow(PRODUCTION_ONLY)
    execution = await h.start(flow, {"env": "dev"})
    assert (await h.engine.wait(execution.id)).state.current == State.SUCCESS


def test_podium_run_applies_the_checks(tmp_path: Path) -> None:
    """`podium run` is a run asked for by hand, as the UI's Execute button: blocked, it
    exits as for invalid inputs and says why."""
    path = tmp_path / "guarded.yaml"
    path.write_text(PRODUCTION_ONLY)
    result = podium("run", str(path), "-i", "env=dev", data_dir=tmp_path / "data")
    assert result.returncode == EXIT_INVALID
    assert "Failed checks: This flow can only run in production" in result.stderr
    ok = podium("run", str(path), "-i", "env=production", data_dir=tmp_path / "data")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            "- message: no expression",
            "t.yaml:12:5: checks[0]: missing required property 'when'",
        ),
        (
            '- when: "{{ true }}"\n  condition: "{{ true }}"\n  message: both',
            "t.yaml:12:5: checks[0]: set 'when' or its older name 'condition', not both",
        ),
        (
            '- when: "{{ inputs.env"\n  message: unclosed',
            "t.yaml:12:11: checks[0].when: the expression does not parse: unexpected end of "
            "template, expected 'end of print statement'.",
        ),
        (
            '- when: "{{ true }}"\n  message: bad\n  behavior: BLOCK',
            "t.yaml:14:15: checks[0].behavior: Input should be 'BLOCK_EXECUTION', "
            "'FAIL_EXECUTION' or 'CREATE_EXECUTION' (got 'BLOCK')",
        ),
        (
            '- when: "{{ true }}"\n  message: ""',
            "t.yaml:13:14: checks[0].message: String should have at least 1 character (got '')",
        ),
    ],
)
def test_malformed_checks_are_load_errors(check: str, message: str) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(checked(check), "t.yaml")
    assert [str(p) for p in caught.value.problems] == [message]
