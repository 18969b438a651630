"""Storage tasks over stored files: Write, LocalFiles, FilterItems, DeduplicateItems and
Reverse, on real files of the storage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def run_on(
    h: Harness, tmp_path: Path, content: str, task: str, name: str = "items.ion"
) -> Execution:
    source = tmp_path / name
    await asyncio.to_thread(source.write_text, content)
    return await h.run(
        "id: f\nnamespace: ns\ninputs:\n  - id: file\n    type: FILE\ntasks:\n" + task,
        {"file": str(source)},
    )


async def test_write_stores_the_content(h: Harness) -> None:
    """WriteTest.run: "Hello World" with extension .txt gives a stored file."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: write
            type: io.kestra.plugin.core.storage.Write
            content: "Hello {{ 'World' }}"
            extension: .txt
          - id: plain
            type: io.kestra.plugin.core.storage.Write
            content: no extension
        """)
    assert ex.state.current == State.SUCCESS
    uri = ex.task_runs[0].outputs["uri"]
    assert uri.startswith("kestra://") and uri.endswith(".txt")
    assert await read(h, uri) == "Hello World"
    assert ex.task_runs[1].outputs["uri"].endswith(".tmp")


async def test_local_files_writes_inputs_and_stores_outputs(h: Harness) -> None:
    """LocalFilesTest.run: three input files (one rendered, one a kestra:// file copied),
    `outputs` keeps one as `uris`, which leaves the directory: 2 files remain."""
    ex = await h.run("""
        id: f
        namespace: ns
        variables:
          toto: tata
        tasks:
          - id: source
            type: io.kestra.plugin.core.storage.Write
            content: "key: value"
          - id: local
            type: io.kestra.core.tasks.storages.LocalFiles
            inputs:
              hello-input.txt: Hello Input
              execution.txt: "{{ vars.toto }}"
              application-test.yml: "{{ outputs.source.uri }}"
            outputs:
              - hello-input.txt
          - id: listing
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - echo ignored
        """)
    assert ex.state.current == State.SUCCESS
    uris = ex.task_runs[1].outputs["uris"]
    assert list(uris) == ["hello-input.txt"]
    assert await read(h, uris["hello-input.txt"]) == "Hello Input"


async def test_local_files_in_a_working_directory_leave_the_rest(h: Harness) -> None:
    """LocalFilesTest.run and .recursive: the stored file leaves, the others stay (2 of
    3), with their contents; `test/**` collects a tree keyed by relative path."""
    ex = await h.run("""
        id: f
        namespace: ns
        variables:
          toto: tata
        tasks:
          - id: source
            type: io.kestra.plugin.core.storage.Write
            content: "key: value"
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: local
                type: io.kestra.plugin.core.storage.LocalFiles
                inputs:
                  test/hello-input.txt: Hello Input
                  test/sub/dir/2/execution.txt: "{{ vars.toto }}"
                  test/sub/dir/3/application-test.yml: "{{ outputs.source.uri }}"
                outputs:
                  - test/hello-input.txt
              - id: rest
                type: io.kestra.plugin.core.storage.LocalFiles
                outputs:
                  - test/**
        """)
    assert ex.state.current == State.SUCCESS
    rest = ex.task_runs[-1].outputs["uris"]
    assert sorted(rest) == ["test/sub/dir/2/execution.txt", "test/sub/dir/3/application-test.yml"]
    assert await read(h, rest["test/sub/dir/2/execution.txt"]) == "tata"
    assert await read(h, rest["test/sub/dir/3/application-test.yml"]) == "key: value"


async def test_local_files_fails_on_an_input_that_does_not_render(h: Harness) -> None:
    """LocalFilesTest.failWithExistingInputFile: an undefined variable in an input fails
    the task."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: local
            type: io.kestra.plugin.core.storage.LocalFiles
            inputs:
              execution.txt: "{{ toto }}"
        """)
    assert ex.state.current == State.FAILED
    assert "toto" in (await h.logs(ex, "ERROR"))[0]


VALID = "".join(f'{{key:"k{i}",value:{i}}}\n' for i in range(1, 5))
INVALID = VALID.replace("value:2", 'value:"dummy"')


def filter_task(condition: str, **props: str) -> str:
    lines = [
        "  - id: filter",
        "    type: io.kestra.plugin.core.storage.FilterItems",
        '    from: "{{ inputs.file }}"',
        f"    filterCondition: {json.dumps(condition)}",
    ]
    return "\n".join(lines + [f"    {k}: {v}" for k, v in props.items()]) + "\n"


@pytest.mark.parametrize(
    ("items", "condition", "props", "processed", "dropped", "kept"),
    [
        (VALID, " {{ value % 2 == 0 }} ", {}, 4, 2, ["k2", "k4"]),
        (VALID, " {{ value % 2 == 0 }} ", {"filterType": "EXCLUDE"}, 4, 2, ["k1", "k3"]),
        (INVALID, " {{ value % 2 == 0 }} ", {"errorOrNullBehavior": "INCLUDE"}, 4, 2, ["k2", "k4"]),
        (INVALID, " {{ value % 2 == 0 }} ", {"errorOrNullBehavior": "EXCLUDE"}, 4, 3, ["k4"]),
        (VALID, "{{ value }}", {}, 4, 0, ["k1", "k2", "k3", "k4"]),
    ],
    ids=["include", "exclude", "invalid-include", "invalid-exclude", "non-boolean"],
)
async def test_filter_items(
    h: Harness,
    tmp_path: Path,
    items: str,
    condition: str,
    props: dict[str, str],
    processed: int,
    dropped: int,
    kept: list[str],
) -> None:
    """FilterItemsTest (ForInclude, ForExclude, InvalidRecordsForInclude/Exclude,
    NotMatchGivenNonBooleanValue): Ion items, the condition rendered per item with its
    fields; kept items are written as they were read."""
    ex = await run_on(h, tmp_path, items, filter_task(condition, **props))
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    out = ex.task_runs[0].outputs
    assert (out["processedItemsTotal"], out["droppedItemsTotal"]) == (processed, dropped)
    lines = (await read(h, out["uri"])).splitlines()
    assert [line.split('"')[1] for line in lines] == kept
    assert all(line in items.splitlines() for line in lines)


async def test_filter_items_fails_on_an_item_it_cannot_judge(h: Harness, tmp_path: Path) -> None:
    """FilterItemsTest.shouldThrowExceptionGivenInvalidRecordsForFail: with the default
    `errorOrNullBehavior: FAIL`, an item the condition cannot render with fails the task."""
    ex = await run_on(h, tmp_path, INVALID, filter_task("{{ value % 2 == 0 }}"))
    assert ex.state.current == State.FAILED
    [error] = await h.logs(ex, "ERROR")
    assert error.startswith(
        'Expression `{{ value % 2 == 0 }}` failed on item `{key:"k2",value:"dummy"}`'
    )


async def test_filter_items_reads_json_lines_and_refuses_garbage(
    h: Harness, tmp_path: Path
) -> None:
    """FilterItems reads its lines with an Ion reader, which takes JSON too; a line that is
    neither fails the task, naming the line."""
    ex = await run_on(
        h,
        tmp_path,
        '{"product_id": "20"}\n{"product_id": "21"}\n',
        filter_task("{{ (product_id | number) == 20 }}"),
        "items.json",
    )
    assert ex.task_runs[0].outputs["droppedItemsTotal"] == 1
    ex = await run_on(h, tmp_path, '{"a": 1}\n{not ion\n', filter_task("{{ true }}"))
    assert ex.state.current == State.FAILED
    assert (await h.logs(ex, "ERROR"))[0].startswith("line 2 is not an Ion or JSON value")


DUPLICATES = [
    ("k1", "v1"),
    ("k2", "v1"),
    ("k3", "v1"),
    ("k1", "v2"),
    ("k2", "v2"),
    ("k2", None),
    ("k3", "v2"),
    ("k1", "v3"),
]


def ion(key: str, value: Any) -> str:
    return f'{{key:"{key}",v1:"{key}",v2:{"null" if value is None else json.dumps(value)}}}'


async def test_deduplicate_items_keeps_the_last_of_each_key(h: Harness, tmp_path: Path) -> None:
    """DeduplicateItemsTest.shouldDeduplicateFileGivenKeyExpression: 8 items, `expr`
    " {{ key }} ": 3 keys, 5 dropped, the last of each in their order."""
    items = "".join(ion(k, v) + "\n" for k, v in DUPLICATES)
    task = (
        "  - id: dedup\n    type: io.kestra.plugin.core.storage.DeduplicateItems\n"
        '    from: "{{ inputs.file }}"\n    expr: " {{ key }} "\n'
    )
    ex = await run_on(h, tmp_path, items, task)
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    out = ex.task_runs[0].outputs
    assert (out["numKeys"], out["droppedItemsTotal"], out["processedItemsTotal"]) == (3, 5, 8)
    lines = (await read(h, out["uri"])).splitlines()
    assert lines == [ion("k2", None), ion("k3", "v2"), ion("k1", "v3")]


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        ("1\n2\n3\n", "get.yml", "3\n2\n1\n"),
        ("1\n2\n3", "get.txt", "3\n2\n1\n"),
        ("a\r\nb\r\n", "crlf.csv", "b\na\n"),
        ("", "empty.txt", ""),
    ],
)
async def test_reverse_writes_the_lines_backwards(
    h: Harness, tmp_path: Path, content: str, name: str, expected: str
) -> None:
    """ReverseTest.run: "1\\n2\\n3\\n" stored as get.yml gives "3\\n2\\n1\\n" in a file with
    the same extension; a missing final line end gives no empty line."""
    task = (
        "  - id: reverse\n    type: io.kestra.core.tasks.storages.Reverse\n"
        '    from: "{{ inputs.file }}"\n'
    )
    ex = await run_on(h, tmp_path, content, task, name)
    assert ex.state.current == State.SUCCESS
    uri = ex.task_runs[0].outputs["uri"]
    assert uri.endswith(Path(name).suffix)
    assert await read(h, uri) == expected


async def test_reverse_of_a_file_larger_than_its_block(h: Harness, tmp_path: Path) -> None:
    """Reverse reads by blocks (a file larger than memory is fine): lines across block
    boundaries come out whole; `separator` ends each line."""
    lines = [f"line {i:06d} " + "x" * (i % 50) for i in range(20_000)]
    task = (
        "  - id: reverse\n    type: io.kestra.plugin.core.storage.Reverse\n"
        '    from: "{{ inputs.file }}"\n    separator: ";"\n'
    )
    ex = await run_on(h, tmp_path, "\n".join(lines) + "\n", task, "big.txt")
    assert ex.state.current == State.SUCCESS
    assert await read(h, ex.task_runs[0].outputs["uri"]) == ";".join(reversed(lines)) + ";"
