"""Core storage tasks on real stored files, and the KV tasks on the real SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.engine.core import Engine
from daemon.flows.registry import default_plugins
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from daemon.store import open_store
from tests.harness import Harness

LINES = "".join(f"row {i} [{'even' if i % 2 == 0 else 'odd'}]\n" for i in range(1, 6))


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeClock]]:
    """Engine and store on one fake clock, so that a KV ttl can pass without waiting."""
    clock = FakeClock()
    plugins = await asyncio.to_thread(default_plugins)
    store = open_store(tmp_path / "data", clock=clock)
    await store.open()
    harness = Harness(Engine(tmp_path / "data", store, clock=clock, plugins=plugins), store)
    yield harness, clock
    await harness.close()


@pytest.fixture
async def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "rows.txt"
    await asyncio.to_thread(path.write_text, LINES)
    return path


def task(task_id: str, kind: str, **props: Any) -> str:
    lines = [f"  - id: {task_id}", f"    type: io.kestra.plugin.core.{kind}"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in props.items()]
    return "\n".join(lines)


def flow(*tasks: str, file_input: bool = False) -> str:
    inputs = "inputs:\n  - id: file\n    type: FILE\n" if file_input else ""
    return "id: f\nnamespace: ns\n" + inputs + "tasks:\n" + "\n".join(tasks) + "\n"


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def error(h: Harness, ex: Execution) -> str:
    assert ex.state.current == State.FAILED
    [message] = await h.logs(ex, "ERROR")
    return message


async def run_file(h: Harness, text_file: Path, *tasks: str) -> Execution:
    return await h.run(flow(*tasks, file_input=True), {"file": str(text_file)})


# -- storage -----------------------------------------------------------------------------


async def test_split_by_rows_then_concat_gives_the_file_back(h: Harness, text_file: Path) -> None:
    ex = await run_file(
        h,
        text_file,
        task("split", "storage.Split", **{"from": "{{ inputs.file }}"}, rows=2),
        task("concat", "storage.Concat", files="{{ outputs.split.uris }}", extension=".txt"),
    )
    assert ex.state.current == State.SUCCESS
    uris = ex.task_runs[0].outputs["uris"]
    assert [uri.rsplit("/", 1)[1] for uri in uris] == ["rows-0.txt", "rows-1.txt", "rows-2.txt"]
    assert [await read(h, uri) for uri in uris] == [
        "row 1 [odd]\nrow 2 [even]\n",
        "row 3 [odd]\nrow 4 [even]\n",
        "row 5 [odd]\n",
    ]
    concat = ex.task_runs[1].outputs["uri"]
    assert concat.endswith("/concat.txt")
    assert await read(h, concat) == LINES


async def test_concat_puts_the_separator_after_each_file(h: Harness, text_file: Path) -> None:
    ex = await run_file(
        h,
        text_file,
        task(
            "concat",
            "storage.Concat",
            files=["{{ inputs.file }}", "{{ inputs.file }}"],
            separator="--\n",
        ),
    )
    assert await read(h, ex.task_runs[0].outputs["uri"]) == f"{LINES}--\n{LINES}--\n"


@pytest.mark.parametrize(
    ("how", "parts"),
    [
        (
            {"bytes": "20B"},
            ["row 1 [odd]\nrow 2 [even]\n", "row 3 [odd]\nrow 4 [even]\n", "row 5 [odd]\n"],
        ),
        (
            {"partitions": 2},
            ["row 1 [odd]\nrow 3 [odd]\nrow 5 [odd]\n", "row 2 [even]\nrow 4 [even]\n"],
        ),
        (
            {"partitions": 9},
            [f"row {i} [{'even' if i % 2 == 0 else 'odd'}]\n" for i in range(1, 6)],
        ),
        (
            {"regexPattern": r"\[(\w+)\]"},
            ["row 1 [odd]\nrow 3 [odd]\nrow 5 [odd]\n", "row 2 [even]\nrow 4 [even]\n"],
        ),
    ],
)
async def test_split_by_size_partitions_or_key(
    h: Harness, text_file: Path, how: dict[str, Any], parts: list[str]
) -> None:
    ex = await run_file(
        h, text_file, task("split", "storage.Split", **{"from": "{{ inputs.file }}"}, **how)
    )
    assert ex.state.current == State.SUCCESS
    assert [await read(h, uri) for uri in ex.task_runs[0].outputs["uris"]] == parts


async def test_split_needs_exactly_one_way_to_split(h: Harness) -> None:
    with pytest.raises(
        FlowError, match="Split needs exactly one of bytes, partitions, rows or regexPattern"
    ):
        await h.flow(flow(task("split", "storage.Split", **{"from": "kestra:///x"})))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        (
            {"bytes": "ten megs"},
            "invalid size 'ten megs': expected a positive number of bytes "
            "such as 1048576, 512KB, 10MB or 1GB",
        ),
        (
            {"regexPattern": "(unclosed"},
            "invalid regexPattern '(unclosed': missing ), unterminated subpattern at position 0",
        ),
    ],
)
async def test_split_with_a_malformed_setting_fails(
    h: Harness, text_file: Path, how: dict[str, str], message: str
) -> None:
    ex = await run_file(
        h, text_file, task("split", "storage.Split", **{"from": "{{ inputs.file }}"}, **how)
    )
    assert await error(h, ex) == message


async def test_size_gives_the_stored_file_size(h: Harness, text_file: Path) -> None:
    ex = await run_file(h, text_file, task("size", "storage.Size", uri="{{ inputs.file }}"))
    assert ex.task_runs[0].outputs == {"size": len(LINES)}


async def test_size_of_a_path_that_is_no_storage_uri_fails(h: Harness) -> None:
    ex = await h.run(flow(task("size", "storage.Size", uri="/etc/passwd")))
    assert await error(h, ex) == "'/etc/passwd' is not a storage URI (kestra:///...)"


async def test_delete_removes_a_file_and_reports_a_missing_one(h: Harness, text_file: Path) -> None:
    ex = await run_file(
        h,
        text_file,
        task("first", "storage.Delete", uri="{{ inputs.file }}"),
        task("again", "storage.Delete", uri="{{ inputs.file }}"),
        task("strict", "storage.Delete", uri="{{ inputs.file }}", errorOnMissing=True),
    )
    uri = ex.inputs["file"]
    assert [tr.outputs for tr in ex.task_runs[:2]] == [
        {"uri": uri, "deleted": True},
        {"uri": uri, "deleted": False},
    ]
    assert await error(h, ex) == f"Unable to find file '{uri}'"


async def test_purge_deletes_every_file_of_the_execution_only(h: Harness, text_file: Path) -> None:
    other = await run_file(h, text_file, task("noop", "debug.Return", format="x"))
    ex = await run_file(
        h,
        text_file,
        task("split", "storage.Split", **{"from": "{{ inputs.file }}"}, rows=3),
        task("purge", "storage.PurgeCurrentExecutionFiles"),
        task("size", "storage.Size", uri="{{ inputs.file }}"),
    )
    split, purge, _ = ex.task_runs
    assert sorted(purge.outputs["uris"]) == sorted([ex.inputs["file"], *split.outputs["uris"]])
    assert await error(h, ex) == f"no stored file at {ex.inputs['file']}"
    assert await read(h, other.inputs["file"]) == LINES


async def test_purge_of_an_execution_without_files_deletes_nothing(h: Harness) -> None:
    ex = await h.run(flow(task("purge", "storage.PurgeCurrentExecutionFiles")))
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs == {"uris": []}


# -- KV ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kv_type", "stored"),
    [
        ("42", "NUMBER", 42),
        ("3.5", "NUMBER", 3.5),
        ("TRUE", "BOOLEAN", True),
        ("2024-01-31T10:00:00+02:00", "DATETIME", "2024-01-31T10:00:00+02:00"),
        ("2024-01-31T08:00:00Z", "DATETIME", "2024-01-31T08:00:00Z"),
        ("2024-01-31", "DATE", "2024-01-31"),
        ("PT90M", "DURATION", "PT1H30M"),
        ('{"a": [1, 2]}', "JSON", {"a": [1, 2]}),
        ("42", "STRING", "42"),
        ("42", None, "42"),
    ],
)
async def test_kv_set_stores_typed_values_that_get_and_kv_read(
    h: Harness, value: str, kv_type: str | None, stored: Any
) -> None:
    props: dict[str, Any] = {"key": "k", "value": value}
    if kv_type:
        props["kvType"] = kv_type
    ex = await h.run(
        flow(
            task("set", "kv.Set", **props),
            task("get", "kv.Get", key="k"),
            task("show", "debug.Return", format="{{ kv('k') | json }}"),
        )
    )
    assert ex.state.current == State.SUCCESS
    assert await h.store.kv.get("ns", "k") == (True, stored)
    assert ex.task_runs[1].outputs == {"value": stored}
    assert json.loads(ex.task_runs[2].outputs["value"]) == stored


async def test_kv_set_keeps_a_yaml_map_as_it_is(h: Harness) -> None:
    ex = await h.run(
        "id: f\nnamespace: ns\ntasks:\n  - id: set\n    type: io.kestra.plugin.core."
        "kv.Set\n    key: k\n    value:\n      name: '{{ flow.id }}'\n      n: 2\n"
    )
    assert ex.state.current == State.SUCCESS
    assert await h.store.kv.get("ns", "k") == (True, {"name": "f", "n": 2})


@pytest.mark.parametrize(
    ("value", "kv_type", "message"),
    [
        ("abc", "NUMBER", "value 'abc' is not a valid NUMBER (expected e.g. 42 or 3.14)"),
        ("true", "NUMBER", "value 'true' is not a valid NUMBER (expected e.g. 42 or 3.14)"),
        ("yes", "BOOLEAN", "value 'yes' is not a valid BOOLEAN (expected true or false)"),
        (
            "2024-01-31T10:00:00",
            "DATETIME",
            "value '2024-01-31T10:00:00' is not a valid DATETIME "
            "(expected an ISO-8601 date-time with an offset, e.g. 2024-01-31T10:00:00Z)",
        ),
        (
            "31/01/2024",
            "DATE",
            "value '31/01/2024' is not a valid DATE (expected an ISO-8601 date, e.g. 2024-01-31)",
        ),
        (
            "5 minutes",
            "DURATION",
            "value '5 minutes' is not a valid DURATION (expected an ISO-8601 duration, e.g. PT5M)",
        ),
        ("{a: 1}", "JSON", "value '{a: 1}' is not a valid JSON (expected JSON text)"),
    ],
)
async def test_kv_set_of_a_value_that_is_not_its_type_fails(
    h: Harness, value: str, kv_type: str, message: str
) -> None:
    ex = await h.run(flow(task("set", "kv.Set", key="k", value=value, kvType=kv_type)))
    assert await error(h, ex) == message
    assert await h.store.kv.get("ns", "k") == (False, None)


async def test_kv_type_outside_the_list_is_a_load_error(h: Harness) -> None:
    with pytest.raises(FlowError, match="kvType"):
        await h.flow(flow(task("set", "kv.Set", key="k", value="1", kvType="INTEGER")))


async def test_kv_pairs_are_scoped_by_namespace(h: Harness) -> None:
    ex = await h.run(
        flow(
            task("set", "kv.Set", key="k", value="v", namespace="team.other"),
            task("here", "kv.Get", key="k"),
            task("there", "kv.Get", key="k", namespace="team.other"),
        )
    )
    assert [tr.outputs for tr in ex.task_runs[1:]] == [{"value": None}, {"value": "v"}]


async def test_kv_set_without_overwrite_refuses_an_existing_key(h: Harness) -> None:
    await h.store.kv.set("ns", "k", "old")
    ex = await h.run(flow(task("set", "kv.Set", key="k", value="new", overwrite=False)))
    assert await error(h, ex) == (
        "Cannot set value for key 'k' in namespace 'ns': it already exists and `overwrite` is false"
    )
    assert await h.store.kv.get("ns", "k") == (True, "old")


async def test_kv_ttl_expires_the_pair(fake: tuple[Harness, FakeClock]) -> None:
    h, clock = fake
    ex = await h.run(flow(task("set", "kv.Set", key="k", value="v", ttl="PT1H")))
    assert ex.state.current == State.SUCCESS
    [pair] = await h.store.kv.list("ns")
    assert pair["expiresAt"] == "2026-01-01T01:00:00.000000Z"
    await clock.advance(3599)
    assert await h.store.kv.get("ns", "k") == (True, "v")
    await clock.advance(2)
    later = await h.run(flow(task("get", "kv.Get", key="k")))
    assert later.task_runs[0].outputs == {"value": None}


async def test_kv_get_and_delete_with_error_on_missing_fail(h: Harness) -> None:
    missing = "No value found for key 'nope' in namespace 'ns' and `errorOnMissing` is set to true"
    get = await h.run(flow(task("get", "kv.Get", key="nope", errorOnMissing=True)))
    assert await error(h, get) == missing
    delete = await h.run(flow(task("del", "kv.Delete", key="nope", errorOnMissing=True)))
    assert await error(h, delete) == missing


async def test_kv_delete_reports_whether_the_key_was_there(h: Harness) -> None:
    await h.store.kv.set("ns", "k", 1)
    ex = await h.run(flow(task("first", "kv.Delete", key="k"), task("again", "kv.Delete", key="k")))
    assert [tr.outputs for tr in ex.task_runs] == [{"deleted": True}, {"deleted": False}]
