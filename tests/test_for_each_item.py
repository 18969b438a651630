"""ForEachItem: a file of items cut into batches, one subflow execution per batch, and
the three task runs (`_split`, `_items`, `_merge`) Kestra shows for it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness

# ForEachItemCaseTest's items: 102 lines of a left-padded number; 4 rows a batch: 26.
ITEMS = "".join(f"{i:>20}\n" for i in range(102))

SUBFLOW = """
    id: for-each-item-subflow
    namespace: io.kestra.tests
    inputs:
      - id: items
        type: STRING
    tasks:
      - id: per-item
        type: io.kestra.plugin.core.debug.Return
        format: "{{ read(inputs.items) }}"
    outputs:
      - id: value
        value: "{{ outputs['per-item'].value }}"
        type: STRING
    """

PARENT = """
    id: for-each-item
    namespace: io.kestra.tests
    inputs:
      - id: file
        type: FILE
    tasks:
      - id: each
        type: io.kestra.core.tasks.flows.ForEachItem
        items: "{{ inputs.file }}"
        batch:
          rows: 4
        namespace: io.kestra.tests
        flowId: for-each-item-subflow
        wait: true
        transmitFailed: true
        inputs:
          items: "{{ taskrun.items }}"
    """


@pytest.fixture
async def items(tmp_path: Path) -> Path:
    path = tmp_path / "file.txt"
    await asyncio.to_thread(path.write_text, ITEMS)
    return path


async def children(h: Harness, flow_id: str) -> list[Execution]:
    docs, _ = await h.store.search_executions(flow_id=flow_id, size=200)
    return [Execution.from_json(d) for d in docs]


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def test_one_subflow_execution_per_batch(h: Harness, items: Path) -> None:
    """ForEachItemCaseTest.forEachItem: 26 child executions, each given its batch as
    `taskrun.items` and its number as `taskrun.iteration` (trigger variable
    `taskRunIteration`, from 0); the parent has 4 task runs and `each_items` counts 26
    SUCCESS."""
    await h.flow(SUBFLOW)
    ex = await h.run(PARENT, {"file": str(items)})
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    assert [tr.task_id for tr in ex.task_runs] == ["each", "each_split", "each_items", "each_merge"]
    each_items = ex.task_runs[2]
    assert len(each_items.attempts) == 1
    assert each_items.outputs["numberOfBatches"] == 26
    assert each_items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 26}
    kids = await children(h, "for-each-item-subflow")
    assert len(kids) == 26
    assert all(k.state.current == State.SUCCESS for k in kids)
    assert sorted(k.trigger["variables"]["taskRunIteration"] for k in kids) == list(range(26))
    first = next(k for k in kids if k.trigger["variables"]["taskRunIteration"] == 0)
    assert first.trigger["id"] == "each_items"
    assert first.trigger["variables"]["executionId"] == ex.id
    assert re.fullmatch(
        r"kestra:///io/kestra/tests/for-each-item/executions/.*/tasks/each_split/.*\.txt",
        first.inputs["items"],
    )
    assert first.outputs == {"value": ITEMS[:84]}  # its 4 lines
    last = next(k for k in kids if k.trigger["variables"]["taskRunIteration"] == 25)
    assert last.outputs == {"value": ITEMS[-42:]}  # the 2 left


async def test_an_empty_file_starts_nothing(h: Harness, tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItemEmptyItems: 4 task runs, SUCCESS, and `each_items`
    without outputs."""
    await h.flow(SUBFLOW)
    empty = tmp_path / "empty.txt"
    await asyncio.to_thread(empty.write_text, "")
    ex = await h.run(PARENT, {"file": str(empty)})
    assert ex.state.current == State.SUCCESS
    assert len(ex.task_runs) == 4
    assert ex.task_runs[2].outputs == {}
    assert await children(h, "for-each-item-subflow") == []


async def test_without_wait_every_started_batch_counts_as_success(h: Harness, items: Path) -> None:
    """ForEachItemCaseTest.forEachItemNoWait: the parent ends with `iterations` SUCCESS=26,
    RUNNING=0 and no CREATED, without waiting; the children all end SUCCESS later."""
    await h.flow(SUBFLOW)
    ex = await h.run(PARENT.replace("wait: true", "wait: false"), {"file": str(items)})
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[2].outputs["iterations"] == {"RUNNING": 0, "SUCCESS": 26}
    kids = await children(h, "for-each-item-subflow")
    ended = [await h.engine.wait(k.id) for k in kids]
    assert len(ended) == 26 and all(k.state.current == State.SUCCESS for k in ended)


FAILING_SUBFLOW = """
    id: for-each-item-subflow
    namespace: io.kestra.tests
    inputs:
      - id: items
        type: STRING
    tasks:
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
    """


async def test_failed_subflows_fail_it(h: Harness, items: Path) -> None:
    """ForEachItemCaseTest.forEachItemFailed: every child FAILED gives `each_items` FAILED
    (iterations FAILED=26 kept), no `each_merge`: 3 task runs, the execution FAILED."""
    await h.flow(FAILING_SUBFLOW)
    ex = await h.run(PARENT, {"file": str(items)})
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_runs] == ["each", "each_split", "each_items"]
    each_items = ex.task_runs[2]
    assert each_items.state.current == State.FAILED
    assert each_items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "FAILED": 26}
    errors = await h.logs(ex, "ERROR")
    assert any("26 of 26 subflow executions" in e for e in errors), errors


async def test_with_transmit_failed_false_failed_subflows_do_not_fail_it(
    h: Harness, items: Path
) -> None:
    """ForEachItem `transmitFailed: false`: the subflows' failure is not the parent's."""
    await h.flow(FAILING_SUBFLOW)
    flow = PARENT.replace("transmitFailed: true", "transmitFailed: false")
    ex = await h.run(flow, {"file": str(items)})
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[2].outputs["iterations"]["FAILED"] == 26


async def test_subflow_outputs_are_merged_in_batch_order(h: Harness, items: Path) -> None:
    """ForEachItemCaseTest.forEachItemWithSubflowOutputs (for-each-item-outputs.yaml):
    `each_merge.subflowOutputs` is a file of 26 lines, one per subflow, in batch order."""
    await h.flow(SUBFLOW)
    ex = await h.run(
        PARENT
        + """
      - id: return
        type: io.kestra.core.tasks.debugs.Return
        format: "{{ outputs.each_merge.subflowOutputs }}"
    """,
        {"file": str(items)},
    )
    assert ex.state.current == State.SUCCESS
    assert len(ex.task_runs) == 5
    merged = await read(h, ex.task_runs[3].outputs["subflowOutputs"])
    lines = merged.splitlines()
    assert len(lines) == 26
    import json

    values = [json.loads(line)["value"] for line in lines]
    assert "".join(values) == ITEMS


async def test_a_restart_runs_again_only_the_failed_batches(h: Harness, tmp_path: Path) -> None:
    """ForEachItemCaseTest.restartForEachItem (restartBehavior RETRY_FAILED): after a
    restart the failed batches run again and the ones that succeeded are kept; the parent
    ends SUCCESS with its 4 task runs."""
    await h.flow(f"""
        id: restart-child
        namespace: io.kestra.tests
        inputs:
          - id: iteration
            type: INT
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - '[ "{{{{ inputs.iteration }}}}" != 1 ] || test -f {tmp_path}/once ||
                 {{ touch {tmp_path}/once; exit 1; }}'
        """)
    source = tmp_path / "three.txt"
    await asyncio.to_thread(source.write_text, "a\nb\nc\n")
    ex = await h.run(
        """
        id: restart-for-each-item
        namespace: io.kestra.tests
        inputs:
          - id: file
            type: FILE
          - id: batch
            type: INT
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ inputs.file }}"
            batch:
              rows: "{{ inputs.batch }}"
            namespace: io.kestra.tests
            flowId: restart-child
            inputs:
              iteration: "{{ taskrun.iteration }}"
        """,
        {"file": str(source), "batch": "1"},
    )
    assert ex.state.current == State.FAILED
    assert len(ex.task_runs) == 3
    assert ex.task_runs[2].outputs["iterations"]["FAILED"] == 1
    restarted = await h.engine.restart(ex.id)
    final = await h.engine.wait(restarted.id)
    assert final.state.current == State.SUCCESS, await h.logs(final)
    assert [tr.task_id for tr in final.task_runs] == [
        "each",
        "each_split",
        "each_items",
        "each_merge",
    ]
    assert final.task_runs[2].outputs["iterations"]["SUCCESS"] == 3
    kids = await children(h, "restart-child")
    assert len(kids) == 4  # the 3 batches, and the failed one once more


async def test_labels_go_to_the_subflows(h: Harness, items: Path) -> None:
    """ForEachItem `labels` (a map or a list of key/value, rendered) and `inheritLabels`
    (the parent execution's labels too)."""
    await h.flow(SUBFLOW)
    ex = await h.run(
        """
        id: for-each-item
        namespace: io.kestra.tests
        labels:
          team: data
        inputs:
          - id: file
            type: FILE
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ inputs.file }}"
            batch:
              rows: 50
            namespace: io.kestra.tests
            flowId: for-each-item-subflow
            inheritLabels: true
            labels:
              - key: from
                value: "{{ flow.id }}"
            inputs:
              items: "{{ taskrun.items }}"
        """,
        {"file": str(items)},
    )
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    kids = await children(h, "for-each-item-subflow")
    assert len(kids) == 3
    assert all(k.labels["from"] == "for-each-item" and k.labels["team"] == "data" for k in kids)


async def test_items_that_are_not_a_stored_file_fail_the_split(h: Harness) -> None:
    """ForEachItemSplit: "Unable to split the items from ..., this is not an internal
    storage URI!"."""
    await h.flow(SUBFLOW)
    ex = await h.run(PARENT.replace('"{{ inputs.file }}"', "/etc/passwd"), {"file": __file__})
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_runs] == ["each", "each_split"]
    errors = await h.logs(ex, "ERROR")
    assert errors[0] == (
        "Unable to split the items from /etc/passwd, this is not an internal storage URI!"
    )


async def test_an_unknown_subflow_fails_with_its_name(h: Harness, items: Path) -> None:
    """ExecutableUtils.subflowExecution: a subflow that does not exist fails `_items`."""
    ex = await h.run(PARENT, {"file": str(items)})
    assert ex.state.current == State.FAILED
    errors = await h.logs(ex, "ERROR")
    assert any("io.kestra.tests.for-each-item-subflow not found" in e for e in errors), errors


@pytest.mark.parametrize(
    ("batch", "sizes"),
    [
        ("rows: 40", [40, 40, 22]),
        ("bytes: 1KB", [49, 49, 4]),  # 21-byte lines; a batch closes at >= 1024 bytes
        ("partitions: 4", [26, 26, 25, 25]),
    ],
)
async def test_batches_by_rows_bytes_or_partitions(
    h: Harness, items: Path, batch: str, sizes: list[int]
) -> None:
    """ForEachItem.Batch (StorageService.split): rows, readable bytes, partitions."""
    await h.flow(SUBFLOW)
    ex = await h.run(PARENT.replace("rows: 4", batch), {"file": str(items)})
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    kids = sorted(
        await children(h, "for-each-item-subflow"),
        key=lambda k: k.trigger["variables"]["taskRunIteration"],
    )
    assert [len(k.outputs["value"].splitlines()) for k in kids] == sizes


async def test_subflow_started_twice_under_one_key_is_one_execution(h: Harness) -> None:
    """RunContext.run_subflow's `key`: an `_items` attempt run again after a crash finds
    the executions the interrupted one started instead of starting each batch twice."""
    await h.flow(SUBFLOW)
    flow = await h.flow("""
        id: parent
        namespace: io.kestra.tests
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: x
        """)
    parent = await h.run(flow)
    ctx = h.task_context(flow, parent, parent.task_runs[0])
    inputs = {"items": "kestra:///nothing"}
    one = await ctx.run_subflow(
        "io.kestra.tests", "for-each-item-subflow", inputs, {}, False, key="0"
    )
    two = await ctx.run_subflow(
        "io.kestra.tests", "for-each-item-subflow", inputs, {}, False, key="0"
    )
    other = await ctx.run_subflow(
        "io.kestra.tests", "for-each-item-subflow", inputs, {}, False, key="1"
    )
    assert one.id == two.id != other.id
    await h.engine.wait(one.id)
    await h.engine.wait(other.id)
