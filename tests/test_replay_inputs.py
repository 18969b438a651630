"""The engine's replay with other inputs or another flow revision (Kestra's
ExecutionController.replayExecutionWithinputs and ExecutionService.replay with `revision`),
and the labels Kestra's innerReplay sets on both executions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowDisabled, InputError, NotFound
from daemon.sdk.state import State
from tests.harness import Harness

GREET = """\
id: greet
namespace: ns
inputs:
  - id: name
    type: STRING
  - id: times
    type: INT
    defaults: 1
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.name }} x{{ inputs.times }}"
"""


async def installed(h: Harness, source: str) -> int:
    """Store `source` as the flow's next revision, as the flows directory does."""
    flow = await asyncio.to_thread(load_flow, source, "greet.yaml")
    loaded = await h.engine.catalog.install(flow)
    assert loaded.revision is not None
    return loaded.revision


async def test_replay_with_inputs_runs_again_with_the_new_inputs_coerced(h: Harness) -> None:
    """ExecutionControllerRunnerTest.replayExecutionFromTaskIdWithInputs: the new inputs
    replace the original's, read as a new execution's (`times` "3" becomes 3, the default
    fills what is left out); the copy is `system.replay`, the original `system.replayed`."""
    await installed(h, GREET)
    original = await h.engine.wait((await h.engine.submit_by_id("ns", "greet", {"name": "a"})).id)
    copy = await h.engine.replay(original.id, inputs={"name": "b", "times": "3"})
    ended = await h.engine.wait(copy.id)
    assert ended.state.current == State.SUCCESS
    assert ended.inputs == {"name": "b", "times": 3}
    assert ended.task_runs[0].outputs == {"value": "b x3"}
    assert ended.labels["system.replay"] == "true"
    stored = await h.store.get_execution(original.id)
    assert stored is not None
    labels = {label["key"]: label["value"] for label in stored["labels"]}
    assert labels["system.replayed"] == "true"
    assert stored["inputs"] == {"name": "a", "times": 1}  # the original keeps its own


async def test_replay_with_inputs_that_do_not_fit_creates_nothing(h: Harness) -> None:
    """Kestra's FlowInputOutput.readExecutionInputs refuses them (422) before the replay."""
    await installed(h, GREET)
    original = await h.engine.wait((await h.engine.submit_by_id("ns", "greet", {"name": "a"})).id)
    with pytest.raises(InputError) as refused:
        await h.engine.replay(original.id, inputs={"times": "many"})
    assert any("name" in m for m in refused.value.messages)
    assert any("times" in m for m in refused.value.messages)
    await h.store.flush()
    _, total = await h.store.search_executions(flow_id="greet")
    assert total == 1


async def test_replay_on_another_revision_runs_that_revision(h: Harness) -> None:
    """ExecutionService.replay(execution, taskRunId, revision): the copy runs the asked
    revision (`flowRevision`), an unknown revision is NotFound (Kestra's controlRevision)."""
    first = await installed(h, GREET)
    original = await h.engine.wait((await h.engine.submit_by_id("ns", "greet", {"name": "a"})).id)
    second = await installed(h, GREET.replace("x{{ inputs.times }}", "times {{ inputs.times }}"))
    copy = await h.engine.wait((await h.engine.replay(original.id, revision=second)).id)
    assert (original.flow_revision, copy.flow_revision) == (first, second)
    assert copy.task_runs[0].outputs == {"value": "a times 1"}
    with pytest.raises(NotFound, match="revision 99"):
        await h.engine.replay(original.id, revision=99)


async def test_replay_of_a_disabled_revision_is_refused(h: Harness) -> None:
    """FlowService.getFlowIfExecutableOrThrow: a disabled flow is not executed (409)."""
    await installed(h, GREET)
    original = await h.engine.wait((await h.engine.submit_by_id("ns", "greet", {"name": "a"})).id)
    disabled = await installed(h, GREET + "disabled: true\n")
    with pytest.raises(FlowDisabled):
        await h.engine.replay(original.id, revision=disabled, inputs={"name": "b"})


async def test_a_file_input_of_a_replay_is_stored_under_the_new_execution(
    h: Harness, tmp_path: Path
) -> None:
    """A FILE input given to the replay lands in the copy's own storage prefix, as the
    inputs of a new execution do."""
    source = """\
id: sized
namespace: ns
inputs:
  - id: data
    type: FILE
tasks:
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ inputs.data }}"
"""
    await installed(h, source)
    first = tmp_path / "first.txt"
    second = tmp_path / "second.txt"
    await asyncio.to_thread(first.write_text, "abc")
    await asyncio.to_thread(second.write_text, "abcdefgh")
    original = await h.engine.wait(
        (await h.engine.submit_by_id("ns", "sized", {"data": str(first)})).id
    )
    copy = await h.engine.wait((await h.engine.replay(original.id, inputs={"data": second})).id)
    assert copy.inputs["data"].startswith(f"kestra:///ns/sized/executions/{copy.id}/")
    assert copy.task_runs[0].outputs == {"size": 8}
