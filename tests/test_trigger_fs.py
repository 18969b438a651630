"""Local file triggers on real files: stability, exactly-once by content, catch-up, actions."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from daemon.config.settings import Settings
from daemon.flows.loader import load_flow
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, TriggerHarness, problems, running_triggers

# watchdog warns (from its own thread) when `mkdir -p` makes it watch a new directory twice;
# harmless, and pytest's warnings-as-errors would kill that thread.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Callback with id .* already exists for watch:RuntimeWarning"
)

TASKS = """
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.file.name }}"
"""

BATCH_TASKS = """
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.count }}"
"""


def flow(trigger: str, tasks: str = TASKS, head: str = "") -> str:
    """A flow `ns.f` with one trigger `w` (its properties indented as in `triggers:`)."""
    body = textwrap.indent(textwrap.dedent(trigger).strip(), "    ")
    return f"id: f\nnamespace: ns\n{head}{tasks}\ntriggers:\n  - id: w\n{body}\n"


def realtime(inbox: Path, extra: str = "") -> str:
    return flow(
        f"type: io.kestra.plugin.fs.local.RealtimeTrigger\nfrom: {inbox}\n"
        f"stableFor: PT0.3S\n{textwrap.dedent(extra)}"
    )


def polling(inbox: Path, extra: str = "") -> str:
    return flow(
        f"type: io.kestra.plugin.fs.local.Trigger\nfrom: {inbox}\nstableFor: PT0.3S\n"
        f"{textwrap.dedent(extra)}",
        BATCH_TASKS,
    )


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "in"
    path.mkdir()
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", allowed_paths=[tmp_path / "in", tmp_path / "archive"]
    )


async def write(path: Path, data: str | bytes) -> None:
    def put() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    await asyncio.to_thread(put)


class Lines(logging.Handler):
    """The daemon's own lines about triggers, to wait for (bounded) instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self._changed.set()

    async def wait_for(self, fragment: str, count: int = 1, timeout: float = 10) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(found := [line for line in self.lines if fragment in line]) < count:
                self._changed.clear()
                await self._changed.wait()
        return found


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("daemon.engine.supervisor")
    handler, level = Lines(), logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@asynccontextmanager
async def watching(
    h: Harness, source: str, settings: Settings, lines: Lines
) -> AsyncIterator[TriggerHarness]:
    """The flow's trigger, once it watches: what happens from then on is seen by events."""
    before = sum(": watching " in line for line in lines.lines)
    async with running_triggers(h, source, settings) as th:
        await lines.wait_for(": watching ", before + 1)
        yield th


def variables(execution: Execution) -> dict[str, Any]:
    """What the flow reads as `trigger`."""
    assert execution.trigger is not None
    found: dict[str, Any] = execution.trigger["variables"]
    return found


def file_of(execution: Execution) -> dict[str, Any]:
    file: dict[str, Any] = variables(execution)["file"]
    return file


def names_in(execution: Execution) -> list[str]:
    return [f["name"] for f in variables(execution)["files"]]


def slow_write(path: Path, chunks: int, size: int, pause: float) -> None:
    """A slow copy: one open file written chunk by chunk, closed after the last byte."""
    with path.open("wb") as out:
        for i in range(chunks):
            out.write(bytes([65 + i]) * size)
            out.flush()
            time.sleep(pause)


# -- stability ------------------------------------------------------------------------------


async def test_slow_copy_fires_once_after_the_last_byte_with_its_full_size(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    async with watching(h, realtime(inbox), settings, lines) as th:
        # pauses longer than stableFor: only the close says the copy is over
        await asyncio.to_thread(slow_write, inbox / "big.csv", 5, 1000, 0.45)
        await write(inbox / "after.csv", "sentinel")
        first, second = await th.wait_for(2)
    assert file_of(first)["name"] == "big.csv"
    assert file_of(first)["size"] == 5000
    assert file_of(second)["name"] == "after.csv"  # big.csv did not fire a second time
    assert variables(first)["changeType"] == "CREATE"


async def test_zero_stable_for_fires_on_close_not_on_create(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    source = realtime(inbox).replace("stableFor: PT0.3S", "stableFor: PT0S")
    async with watching(h, source, settings, lines) as th:
        await asyncio.to_thread(slow_write, inbox / "a.csv", 5, 100, 0.1)
        await write(inbox / "b.csv", "sentinel")
        first, second = await th.wait_for(2)
    assert (file_of(first)["name"], file_of(first)["size"]) == ("a.csv", 500)
    assert file_of(second)["name"] == "b.csv"


# -- exactly once by content -----------------------------------------------------------------


async def test_same_content_dropped_again_starts_nothing_and_changed_content_starts_one(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    async with watching(h, realtime(inbox), settings, lines) as th:
        await write(inbox / "a.csv", "x,y\n1,2\n")
        (first,) = await th.wait_for(1)
        await asyncio.to_thread((inbox / "a.csv").unlink)
        await write(inbox / "a.csv", "x,y\n1,2\n")  # the same file, dropped again
        await lines.wait_for(f"{inbox / 'a.csv'} was processed before")
        await write(inbox / "b.csv", "sentinel")
        executions = await th.wait_for(2)
        assert file_of(executions[1])["name"] == "b.csv"
        await write(inbox / "a.csv", "x,y\n1,2\n3,4\n")
        executions = await th.wait_for(3)
    changed = executions[2]
    assert file_of(changed)["name"] == "a.csv"
    assert file_of(changed)["size"] == 12
    assert file_of(changed)["sha256"] != file_of(first)["sha256"]
    assert variables(changed)["changeType"] == "UPDATE"


async def test_files_present_at_start_are_processed_once_across_restarts(
    tmp_path: Path, inbox: Path, settings: Settings, lines: Lines
) -> None:
    await write(inbox / "a.csv", "a")
    await write(inbox / "b.csv", "b")
    h = await Harness.open(tmp_path / "data")
    try:
        async with watching(h, polling(inbox), settings, lines) as th:
            (execution,) = await th.wait_for(1)
            assert sorted(names_in(execution)) == ["a.csv", "b.csv"]
            await th.finished()
    finally:
        await h.close()
    h = await Harness.open(tmp_path / "data")  # a restarted daemon on the same data dir
    try:
        async with watching(h, polling(inbox), settings, lines) as th:
            await lines.wait_for(f"{inbox / 'a.csv'} was processed before")
            await lines.wait_for(f"{inbox / 'b.csv'} was processed before")
            await write(inbox / "c.csv", "c")
            (execution,) = await th.wait_for(1)
            assert names_in(execution) == ["c.csv"]
    finally:
        await h.close()


async def test_file_claimed_when_the_daemon_died_before_its_execution_runs_once_at_start(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    """Issue #13 finding 1, the state a kill -9 leaves between a claim and its execution:
    the file claimed, its batch written down, no execution. At start the batch is emitted
    again under its key: the file runs once. (The real kill: tests/test_faults_files.py.)"""
    await write(inbox / "a.csv", "a")
    digest = hashlib.sha256(b"a").hexdigest()
    path = str(inbox / "a.csv")
    key = ":".join(("trigger", "ns", "f", "w"))
    await h.store.state.set(
        f"{key}:pending:{path}:{digest}", {"batch": "b1", "changeType": "CREATE", "attempt": 0}
    )
    assert await h.store.state.claim(f"{key}:file:{path}:{digest}")
    assert await h.store.state.claim(f"{key}:path:{path}")
    async with watching(h, polling(inbox), settings, lines) as th:
        await lines.wait_for("were claimed when podium stopped")
        (execution,) = await th.wait_for(1)
        await write(inbox / "b.csv", "b")
        (_, after) = await th.wait_for(2)
    assert names_in(execution) == ["a.csv"]
    assert variables(execution)["files"][0]["changeType"] == "CREATE"
    assert names_in(after) == ["b.csv"]
    assert await h.store.state.get(f"{key}:pending:{path}:{digest}") == {}


async def test_file_whose_execution_cannot_be_created_is_retried_by_the_fixed_flow(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    broken = flow(
        f"type: io.kestra.plugin.fs.local.RealtimeTrigger\nfrom: {inbox}\nstableFor: PT0.3S\n",
        head="inputs:\n  - id: needed\n    type: STRING\n",
    )
    await write(inbox / "a.csv", "a")
    async with watching(h, broken, settings, lines) as th:
        (line,) = await lines.wait_for("no execution for")
        assert th.executions == []
    assert line.startswith(f"ns.f trigger w: no execution for {inbox / 'a.csv'}: ")
    assert line.endswith("; it is retried when the trigger restarts or the file changes")
    async with watching(h, realtime(inbox), settings, lines) as th:  # the flow, fixed
        (execution,) = await th.wait_for(1)
    assert file_of(execution)["name"] == "a.csv"
    assert variables(execution)["changeType"] == "CREATE"


# -- what Kestra's triggers do ----------------------------------------------------------------

READ_FIRST_FILE = """
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{ read(trigger.files[0].uri) }}"
"""


async def test_trigger_files_carry_kestras_file_fields_and_a_readable_stored_copy(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    source = flow(
        f"type: io.kestra.plugin.fs.local.Trigger\nfrom: {inbox}\nstableFor: PT0.3S\n",
        READ_FIRST_FILE,
    )
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "a.csv", "hello")
        await th.wait_for(1)
        (execution,) = await th.finished()
    assert execution.state.current == State.SUCCESS
    assert await h.logs(execution) == ["hello"]
    assert variables(execution)["count"] == 1
    (file,) = variables(execution)["files"]
    assert file["path"] == file["localPath"] == str(inbox / "a.csv")
    assert (file["name"], file["parent"], file["size"]) == ("a.csv", str(inbox), 5)
    assert file["changeType"] == "CREATE"
    assert file["uri"].startswith("kestra:///ns/f/triggers/w/")
    assert file["lastModified"] == file["modifiedDate"]
    assert file["lastModified"].endswith("Z")


async def test_move_action_moves_each_file_after_its_execution_exists(
    h: Harness, tmp_path: Path, inbox: Path, settings: Settings, lines: Lines
) -> None:
    archive = tmp_path / "archive"
    source = polling(inbox, f"action: MOVE\nmoveDirectory: {archive}\n")
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "a.csv", "one")
        await lines.wait_for(f"moved {inbox / 'a.csv'} to {archive / 'a.csv'}")
        await write(inbox / "a.csv", "one")  # processed before: moved, no new execution
        await lines.wait_for(f"moved {inbox / 'a.csv'} to {archive / 'a-1.csv'}")
        await write(inbox / "b.csv", "two")
        await lines.wait_for(f"moved {inbox / 'b.csv'} to {archive / 'b.csv'}")
        executions = await th.finished()
    assert [names_in(e) for e in executions] == [["a.csv"], ["b.csv"]]
    assert await asyncio.to_thread(os.listdir, inbox) == []
    assert await asyncio.to_thread(lambda: sorted(os.listdir(archive))) == [
        "a-1.csv",
        "a.csv",
        "b.csv",
    ]


async def test_delete_action_removes_the_file_and_the_flow_still_reads_its_copy(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    source = flow(
        f"type: io.kestra.plugin.fs.local.Trigger\nfrom: {inbox}\n"
        "stableFor: PT0.3S\naction: DELETE\n",
        READ_FIRST_FILE,
    )
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "a.csv", "content")
        await lines.wait_for(f"deleted {inbox / 'a.csv'}")
        (execution,) = await th.finished()
    assert await asyncio.to_thread(os.listdir, inbox) == []
    assert await h.logs(execution) == ["content"]


async def test_realtime_when_on_the_file_starts_only_matching_files(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    """Kestra 2.0's `when` (docs migration-guide/v2.0.0/trigger-conditions-redesign: every
    trigger type) renders with the file as `trigger.file`; a refused file is settled all the
    same: dropped again unchanged, it is not tested again."""
    source = realtime(
        inbox, "when: \"{{ trigger.file.size > 3 and trigger.file.name | endsWith('.csv') }}\"\n"
    )
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "small.csv", "ab")
        await write(inbox / "big.txt", "abcdef")
        await lines.wait_for("conditions do not hold", 2)
        await write(inbox / "big.csv", "abcdef")
        (execution,) = await th.wait_for(1)
        await asyncio.to_thread((inbox / "small.csv").unlink)
        await write(inbox / "small.csv", "ab")
        await lines.wait_for(f"{inbox / 'small.csv'} was processed before")
    assert file_of(execution)["name"] == "big.csv"
    assert len(th.executions) == 1


async def test_polling_action_runs_on_a_batch_when_refuses(
    h: Harness, tmp_path: Path, inbox: Path, settings: Settings, lines: Lines
) -> None:
    """Kestra's polling trigger moves its files before the execution is tested: a batch
    `when` refuses (it sees `trigger.files` and `trigger.count`) is moved all the same."""
    archive = tmp_path / "archive"
    source = polling(
        inbox,
        f"action: MOVE\nmoveDirectory: {archive}\n"
        "when: \"{{ trigger.files[0].name != 'skip.csv' and trigger.count == 1 }}\"\n",
    )
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "skip.csv", "one")
        await lines.wait_for(f"moved {inbox / 'skip.csv'} to {archive / 'skip.csv'}")
        await write(inbox / "keep.csv", "two")
        await lines.wait_for(f"moved {inbox / 'keep.csv'} to {archive / 'keep.csv'}")
        executions = await th.finished()
    assert [names_in(e) for e in executions] == [["keep.csv"]]
    assert [line for line in lines.lines if "do not hold" in line] == [
        f"ns.f trigger w: the trigger's conditions do not hold; {inbox / 'skip.csv'} starts "
        "no execution"
    ]


async def test_max_files_splits_a_batch_into_several_executions(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    for i in range(5):
        await write(inbox / f"{i}.csv", str(i))
    async with watching(h, polling(inbox, "maxFiles: 2\n"), settings, lines) as th:
        executions = await th.wait_for(3)
    assert [len(names_in(e)) for e in executions] == [2, 2, 1]
    assert sorted(n for e in executions for n in names_in(e)) == [f"{i}.csv" for i in range(5)]


async def test_not_recursive_ignores_subdirectories(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    async with watching(h, realtime(inbox), settings, lines) as th:
        await write(inbox / "sub" / "deep.csv", "deep")
        await write(inbox / "top.csv", "top")
        (execution,) = await th.wait_for(1)
    assert file_of(execution)["name"] == "top.csv"


async def test_recursive_sees_files_in_new_and_existing_subdirectories(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    await write(inbox / "old" / "present.csv", "p")
    async with watching(h, realtime(inbox, "recursive: true\n"), settings, lines) as th:
        (first,) = await th.wait_for(1)
        await write(inbox / "new" / "deeper" / "fresh.csv", "f")
        executions = await th.wait_for(2)
    assert file_of(first)["path"] == str(inbox / "old" / "present.csv")
    assert file_of(executions[1])["path"] == str(inbox / "new" / "deeper" / "fresh.csv")


async def test_glob_filter_keeps_only_matching_names(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    async with watching(h, realtime(inbox, 'filter: "*.csv"\n'), settings, lines) as th:
        await write(inbox / "notes.txt", "skip")
        await write(inbox / "data.csv", "keep")
        (execution,) = await th.wait_for(1)
    assert file_of(execution)["name"] == "data.csv"


async def test_realtime_reg_exp_matches_the_whole_path(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    source = realtime(inbox, "regExp: '.*/in/keep-[0-9]+\\.csv'\n")
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "keep-x.csv", "skip")
        await write(inbox / "keep-12.csv", "keep")
        (execution,) = await th.wait_for(1)
    assert file_of(execution)["name"] == "keep-12.csv"


async def test_polling_reg_exp_matches_the_file_name(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    source = polling(inbox, "regExp: 'keep-[0-9]+\\.csv'\n")
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "keep-x.csv", "skip")
        await write(inbox / "keep-12.csv", "keep")
        (execution,) = await th.wait_for(1)
    assert names_in(execution) == ["keep-12.csv"]


async def test_realtime_on_delete_fires_once_per_deleted_file(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    async with watching(h, realtime(inbox, "on: DELETE\n"), settings, lines) as th:
        await write(inbox / "gone.csv", "data")
        await asyncio.to_thread((inbox / "gone.csv").unlink)
        (execution,) = await th.wait_for(1)
    assert variables(execution)["changeType"] == "DELETE"
    assert (file_of(execution)["path"], file_of(execution)["size"]) == (
        str(inbox / "gone.csv"),
        None,
    )


async def test_file_names_reach_the_flow_as_data_not_as_templates(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    async with watching(h, realtime(inbox), settings, lines) as th:
        await write(inbox / "{{ 7*7 }}.csv", "x")
        await th.wait_for(1)
        (execution,) = await th.finished()
    assert await h.logs(execution) == ["{{ 7*7 }}.csv"]


# -- directories the trigger refuses -------------------------------------------------------


async def stopped(h: Harness, source: str, settings: Settings, lines: Lines) -> str:
    """The supervisor's one line when the trigger gives up, once it has."""
    async with running_triggers(h, source, settings) as th:
        (line,) = await lines.wait_for(" stopped: ")
        assert th.triggers.running(th.flow.uid) == 0  # it returned right after saying so
        assert th.executions == []
    return line


async def test_directory_outside_the_allowed_paths_stops_the_trigger(
    h: Harness, tmp_path: Path, lines: Lines
) -> None:
    elsewhere = tmp_path / "elsewhere"
    await asyncio.to_thread(elsewhere.mkdir)
    settings = Settings(data_dir=tmp_path / "data", allowed_paths=[tmp_path / "in", "/data"])
    assert await stopped(h, realtime(elsewhere), settings, lines) == (
        f"ns.f trigger w stopped: directory {elsewhere} is not under the allowed paths "
        f"({tmp_path / 'in'}, /data); add it to allowed-paths in podium.yaml or "
        "PODIUM_ALLOWED_PATHS"
    )


async def test_no_allowed_paths_at_all_stops_the_trigger(
    h: Harness, tmp_path: Path, inbox: Path, lines: Lines
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert await stopped(h, realtime(inbox), settings, lines) == (
        f"ns.f trigger w stopped: directory {inbox} is not under the allowed paths (none are "
        "configured); add it to allowed-paths in podium.yaml or PODIUM_ALLOWED_PATHS"
    )


async def test_move_directory_outside_the_allowed_paths_stops_the_trigger(
    h: Harness, tmp_path: Path, inbox: Path, lines: Lines
) -> None:
    settings = Settings(data_dir=tmp_path / "data", allowed_paths=[inbox])
    source = polling(inbox, f"action: MOVE\nmoveDirectory: {tmp_path / 'archive'}\n")
    assert await stopped(h, source, settings, lines) == (
        f"ns.f trigger w stopped: moveDirectory {tmp_path / 'archive'} is not under the "
        f"allowed paths ({inbox}); add it to allowed-paths in podium.yaml or "
        "PODIUM_ALLOWED_PATHS"
    )


async def test_the_triggers_own_allowed_paths_narrow_the_servers(
    h: Harness, tmp_path: Path, inbox: Path, lines: Lines
) -> None:
    """plugin-fs AbstractTrigger.validatePath: `from` must be within the trigger's
    `allowedPaths`, after resolving symlinks (a link inside pointing outside is refused);
    the daemon's allowed paths allow all of tmp_path here."""
    settings = Settings(data_dir=tmp_path / "data", allowed_paths=[tmp_path])
    elsewhere = tmp_path / "elsewhere"
    await asyncio.to_thread(elsewhere.mkdir)
    await asyncio.to_thread((inbox / "link").symlink_to, elsewhere)
    for source_dir in (elsewhere, inbox / "link"):
        source = realtime(source_dir, f"allowedPaths: [{inbox}]\n")
        assert await stopped(h, source, settings, lines) == (
            f"ns.f trigger w stopped: directory {source_dir} is not under the trigger's "
            f"allowedPaths ({inbox})"
        )
        lines.lines.clear()
    source = polling(inbox, f"action: MOVE\nmoveDirectory: {elsewhere}\nallowedPaths: [{inbox}]\n")
    assert await stopped(h, source, settings, lines) == (
        f"ns.f trigger w stopped: moveDirectory {elsewhere} is not under the trigger's "
        f"allowedPaths ({inbox})"
    )


async def test_the_triggers_allowed_paths_never_widen_the_servers(
    h: Harness, tmp_path: Path, inbox: Path, lines: Lines
) -> None:
    """A flow cannot grant itself a directory the daemon does not allow: under its own
    allowedPaths but not under the daemon's, the trigger still stops."""
    settings = Settings(data_dir=tmp_path / "data", allowed_paths=[tmp_path / "archive"])
    source = realtime(inbox, f"allowedPaths: [{tmp_path}]\n")
    assert await stopped(h, source, settings, lines) == (
        f"ns.f trigger w stopped: directory {inbox} is not under the allowed paths "
        f"({tmp_path / 'archive'}); add it to allowed-paths in podium.yaml or "
        "PODIUM_ALLOWED_PATHS"
    )


async def test_a_directory_within_the_triggers_allowed_paths_is_watched(
    h: Harness, tmp_path: Path, inbox: Path, settings: Settings, lines: Lines
) -> None:
    """The pre-0.23 Kestra form (`allowedPaths` on the trigger) runs unchanged."""
    source = polling(
        inbox,
        f"allowedPaths: [{tmp_path / 'in'}, {tmp_path / 'archive'}]\naction: MOVE\n"
        f"moveDirectory: {tmp_path / 'archive'}\n",
    )
    async with watching(h, source, settings, lines) as th:
        await write(inbox / "a.csv", "a")
        (execution,) = await th.wait_for(1)
    assert names_in(execution) == ["a.csv"]


def test_malformed_allowed_paths_are_load_errors() -> None:
    """allowedPaths is a list of absolute directories, at least one (an empty list would
    allow nothing: Kestra's "Missing configuration: 'allowedPaths' must be set")."""
    base = "type: io.kestra.plugin.fs.local.Trigger\nfrom: /srv/in\n"
    assert problems(flow(base + "allowedPaths: [srv]\n")) == [
        "f.yaml:13:20: triggers[0].allowedPaths[0]: must be an absolute directory path (got 'srv')"
    ]
    assert problems(flow(base + "allowedPaths: []\n")) == [
        "f.yaml:13:19: triggers[0].allowedPaths: List should have at least 1 item after "
        "validation, not 0 (got [])"
    ]
    assert problems(flow(base + "allowedPaths: /srv\n"))[0].startswith(
        "f.yaml:13:19: triggers[0].allowedPaths: Input should be a valid list"
    )


async def test_missing_directory_stops_the_trigger_and_says_how_to_fix_it(
    h: Harness, tmp_path: Path, settings: Settings, lines: Lines
) -> None:
    missing = tmp_path / "in" / "nope"
    assert await stopped(h, realtime(missing), settings, lines) == (
        f"ns.f trigger w stopped: directory {missing} does not exist; create it, then save "
        "the flow again or restart podium (watched directories are not created)"
    )


# -- load-time errors --------------------------------------------------------------------------


def test_move_without_move_directory_is_a_load_error() -> None:
    source = flow("type: io.kestra.plugin.fs.local.Trigger\nfrom: /srv/in\naction: MOVE\n")
    assert problems(source) == [
        "f.yaml:13:13: triggers[0].action: MOVE needs 'moveDirectory', the directory files "
        "are moved to (got 'MOVE')"
    ]


def test_unknown_on_value_bad_duration_and_relative_path_are_load_errors() -> None:
    source = flow(
        "type: io.kestra.plugin.fs.local.RealtimeTrigger\nfrom: in\non: MODIFY\n"
        "stableFor: soon\nregExp: '(['\n"
    )
    assert problems(source) == [
        "f.yaml:12:11: triggers[0].from: must be an absolute directory path (got 'in')",
        "f.yaml:13:9: triggers[0].on: Input should be 'CREATE', 'UPDATE', 'DELETE' or "
        "'CREATE_OR_UPDATE' (got 'MODIFY')",
        "f.yaml:14:16: triggers[0].stableFor: 'soon' is not an ISO-8601 duration (expected e.g. "
        "PT15S, PT1H30M, P1D) (got 'soon')",
        "f.yaml:15:13: triggers[0].regExp: invalid regular expression: unterminated character "
        "set at position 1 (got '([')",
    ]


def test_polling_limits_are_load_errors() -> None:
    source = flow(
        "type: io.kestra.plugin.fs.local.Trigger\nfrom: /srv/in\ninterval: PT0S\n"
        "maxFiles: 0\nstableFor: -PT1S\naction: ARCHIVE\n"
    )
    assert problems(source) == [
        "f.yaml:13:15: triggers[0].interval: must be positive (got 'PT0S')",
        "f.yaml:14:15: triggers[0].maxFiles: Input should be greater than or equal to 1 (got 0)",
        "f.yaml:15:16: triggers[0].stableFor: must not be negative (got '-PT1S')",
        "f.yaml:16:13: triggers[0].action: Input should be 'NONE', 'MOVE' or 'DELETE' "
        "(got 'ARCHIVE')",
    ]


def test_realtime_trigger_has_no_interval_as_in_kestra() -> None:
    source = flow(
        "type: io.kestra.plugin.fs.local.RealtimeTrigger\nfrom: /srv/in\ninterval: PT10S\n"
    )
    assert problems(source) == ["f.yaml:13:15: triggers[0].interval: unknown property 'interval'"]


def test_kestra_example_loads_unchanged() -> None:
    source = textwrap.dedent("""
        id: local_trigger_flow
        namespace: company.team
        tasks:
          - id: for_each_file
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{ trigger.files }}"
            tasks:
              - id: return
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value | jq('.path') }}"
        triggers:
          - id: watch
            type: io.kestra.plugin.fs.local.Trigger
            from: "/home/dev/kestra"
            interval: PT10S
            action: MOVE
            recursive: true
            moveDirectory: "/home/dev/archive/"
        """)
    trigger = load_flow(source, "f.yaml").triggers[0]
    assert trigger.model_dump(include={"from_", "move_directory", "recursive"}) == {
        "from_": "/home/dev/kestra",
        "move_directory": "/home/dev/archive",
        "recursive": True,
    }


async def test_on_update_fires_only_for_changed_content(
    h: Harness, inbox: Path, settings: Settings, lines: Lines
) -> None:
    await write(inbox / "a.csv", "first")
    async with watching(h, realtime(inbox, "on: UPDATE\n"), settings, lines) as th:
        await lines.wait_for(f"{inbox / 'a.csv'} is a CREATE, not fired (on: UPDATE)")
        await write(inbox / "a.csv", "second")
        (execution,) = await th.wait_for(1)
    assert variables(execution)["changeType"] == "UPDATE"
    assert (file_of(execution)["name"], file_of(execution)["size"]) == ("a.csv", 6)


async def test_symlinks_are_not_followed_out_of_the_watched_directory(
    h: Harness, tmp_path: Path, inbox: Path, settings: Settings, lines: Lines
) -> None:
    await write(tmp_path / "secret.csv", "secret")
    async with watching(h, realtime(inbox), settings, lines) as th:
        await asyncio.to_thread((inbox / "link.csv").symlink_to, tmp_path / "secret.csv")
        await write(inbox / "after.csv", "sentinel")
        (execution,) = await th.wait_for(1)
    assert file_of(execution)["name"] == "after.csv"


@pytest.mark.parametrize("action", ["DELETE", "MOVE"])
async def test_subdirectory_swapped_for_a_symlink_before_the_file_settles_reaches_nothing_outside(
    h: Harness, tmp_path: Path, inbox: Path, settings: Settings, lines: Lines, action: str
) -> None:
    """Issue #13 finding 2: an uploader writes `sub/x.csv`, then swaps `sub` for a symlink
    to a directory outside the allowed paths before the file settles. Nothing outside may
    be read into storage, deleted or moved. Kestra's plugin-fs local `Trigger` reads only
    under `allowed-paths` (LocalFileSystemConfiguration); the symlink race is podium's."""
    outside, archive = tmp_path / "outside", tmp_path / "archive"
    await write(outside / "x.csv", "secret")
    source = polling(inbox, f"recursive: true\naction: {action}\nmoveDirectory: {archive}\n")
    source = source.replace("stableFor: PT0.3S", "stableFor: PT1S")

    def swap() -> None:
        (inbox / "sub").rename(tmp_path / "gone")  # out of the watched tree
        (inbox / "sub").symlink_to(outside, target_is_directory=True)

    async with watching(h, source, settings, lines) as th:
        await write(inbox / "sub" / "x.csv", "inside")
        await asyncio.to_thread(swap)
        await write(inbox / "after.csv", "sentinel")
        done = "deleted" if action == "DELETE" else "moved"
        await lines.wait_for(f"{done} {inbox / 'after.csv'}", timeout=20)
        executions = await th.finished()
    assert [names_in(e) for e in executions] == [["after.csv"]]
    assert await asyncio.to_thread((outside / "x.csv").read_text) == "secret"
    assert not [line for line in lines.lines if "x.csv" in line and done in line]

    def stored() -> list[str]:
        return [p.read_text() for p in (tmp_path / "data" / "storage").rglob("*") if p.is_file()]

    assert "secret" not in await asyncio.to_thread(stored)
