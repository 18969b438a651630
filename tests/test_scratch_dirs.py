"""Ended executions' directories under data/tmp go in batches (issue #18), and all go.

Issue #13 finding 10 (data/tmp kept one directory per execution) is the behaviour; the
batching is what keeps one thread hop per execution off a short execution's cost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.engine import scratch
from daemon.engine.scratch import ScratchDirs


def _make(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name / "task").mkdir(parents=True)
        (root / name / "task" / "left.txt").write_text("x")


def _left(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch of directories removed, in order."""
    sizes: list[int] = []
    remove = scratch._remove

    def counted(paths: list[Path]) -> None:
        sizes.append(len(paths))
        remove(paths)

    monkeypatch.setattr(scratch, "_remove", counted)
    return sizes


async def test_directories_of_executions_ended_together_go_in_one_batch(
    tmp_path: Path, batches: list[int]
) -> None:
    names = [f"ex{n}" for n in range(50)]
    await asyncio.to_thread(_make, tmp_path, [*names, "still-running"])
    dirs = ScratchDirs(tmp_path, keep=lambda: False)
    for name in names:
        dirs.ended(name)
    await dirs.settle()
    assert await asyncio.to_thread(_left, tmp_path) == ["still-running"]
    assert sum(batches) == 50
    assert len(batches) <= 2, batches  # the first alone at most, then the rest together
    dirs.ended("still-running")  # a later one starts a new batch
    await dirs.settle()
    assert await asyncio.to_thread(_left, tmp_path) == []


async def test_kept_with_keep_working_dirs_and_a_missing_directory_is_no_error(
    tmp_path: Path,
) -> None:
    await asyncio.to_thread(_make, tmp_path, ["kept"])
    keep = True
    dirs = ScratchDirs(tmp_path, keep=lambda: keep)
    dirs.ended("kept")
    await dirs.settle()
    assert await asyncio.to_thread(_left, tmp_path) == ["kept"]
    keep = False
    dirs.ended("never-made")
    dirs.ended("kept")
    await dirs.settle()
    assert await asyncio.to_thread(_left, tmp_path) == []


async def test_executions_ending_one_after_the_other_share_a_batch(
    tmp_path: Path, batches: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Webhooks one at a time: each execution ends a moment after the previous one; their
    directories still go to the thread together, and settling does not wait out the
    delay (an hour here: waiting it out would fail the test by its timeout)."""
    names = [f"ex{n}" for n in range(20)]
    await asyncio.to_thread(_make, tmp_path, names)
    monkeypatch.setattr(scratch, "BATCH_DELAY", 3600.0)
    dirs = ScratchDirs(tmp_path, keep=lambda: False)
    for name in names:
        dirs.ended(name)
        await asyncio.sleep(0.01)  # the next execution ends a little later
    assert batches == []
    await asyncio.wait_for(dirs.settle(), 60)
    assert batches == [20]
    assert await asyncio.to_thread(_left, tmp_path) == []


async def test_a_directory_wanted_again_before_its_batch_goes_is_kept(
    tmp_path: Path, batches: list[int]
) -> None:
    """An execution restarted right after it ended (or a task run of it making its working
    directory) keeps its directory: the batch waiting to remove it leaves it out."""
    await asyncio.to_thread(_make, tmp_path, ["restarted", "done"])
    dirs = ScratchDirs(tmp_path, keep=lambda: False)
    dirs.ended("restarted")
    dirs.ended("done")
    dirs.wanted("restarted")
    await dirs.settle()
    assert await asyncio.to_thread(_left, tmp_path) == ["restarted"]
    assert batches == [1]
    dirs.ended("restarted")  # ended again, for good this time
    await dirs.settle()
    assert await asyncio.to_thread(_left, tmp_path) == []
