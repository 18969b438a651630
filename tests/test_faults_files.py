"""Local file triggers under a real `podium serve` killed (SIGKILL) while it delivers files.

Files are dropped while podium is down; podium starts, and is killed as soon as the first
of their executions exists, with most files claimed or about to be; it starts again on the
same data. Every file must then have run exactly once: none lost (claimed without an
execution), none twice (its execution created again). Kestra's own tests of the local
triggers (plugin-fs `local/TriggerTest`, `local/RealtimeTriggerTest`) check delivery, not
crashes: the guarantee is podium's (see triggers/fs_delivery.py), issue #13 finding 1.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.daemon_process import ServeProcess
from tests.harness import eventually

FILES = 120

TRIGGERS = {
    "realtime": """
        type: io.kestra.plugin.fs.local.RealtimeTrigger
        from: {inbox}
        stableFor: PT0S
    """,
    "polling": """
        type: io.kestra.plugin.fs.local.Trigger
        from: {inbox}
        stableFor: PT0S
        interval: PT1S
        maxFiles: 4
    """,
}


def write_flow(flows: Path, inbox: Path, kind: str) -> None:
    trigger = textwrap.indent(textwrap.dedent(TRIGGERS[kind]).strip(), "    ")
    (flows / "files.yaml").write_text(
        "id: files\nnamespace: faults\ntasks:\n"
        "  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        '    message: "{{ trigger }}"\n'
        f"triggers:\n  - id: inbox\n{trigger.format(inbox=inbox)}\n"
    )


def delivered(daemon: ServeProcess) -> Counter[str]:
    """How many executions in the store carry each file."""
    status, found = daemon.request(
        "GET", "/api/v1/executions/search?namespace=faults&flowId=files&size=1000"
    )
    assert status == 200, found
    counts: Counter[str] = Counter()
    for doc in found["results"]:
        variables = doc["trigger"]["variables"]
        for file in variables.get("files") or [variables.get("file")]:
            counts[file["name"]] += 1
    return counts


async def wait_for(daemon: ServeProcess, names: set[str]) -> Counter[str]:
    counts: Counter[str] = Counter()

    async def there() -> bool:
        nonlocal counts
        counts = await asyncio.to_thread(delivered, daemon)
        return names <= set(counts)

    await eventually(there, f"executions of {len(names)} files", timeout=60, interval=0.05)
    return counts


@pytest.mark.parametrize("kind", ["realtime", "polling"])
@pytest.mark.timeout(240)
async def test_files_dropped_while_down_run_once_each_across_a_kill(
    tmp_path: Path, kind: str
) -> None:
    flows, data, inbox = tmp_path / "flows", tmp_path / "data", tmp_path / "in"

    def prepare() -> None:
        flows.mkdir()
        inbox.mkdir()
        write_flow(flows, inbox, kind)
        for n in range(FILES):
            (inbox / f"f{n:03}.csv").write_text(f"file {n}\n")

    await asyncio.to_thread(prepare)
    env = {"PODIUM_ALLOWED_PATHS": str(inbox)}
    daemon = await asyncio.to_thread(ServeProcess, tmp_path, flows, data, env)
    again: ServeProcess | None = None
    try:
        # Not waiting for READY=1: the trigger delivers files before the port opens.
        await asyncio.to_thread(daemon.start, False)
        line = await asyncio.to_thread(daemon.wait_line, "podium serving", 60)
        daemon.port = int(line.split("http://", 1)[1].split(":", 1)[1].split(" ", 1)[0])

        async def first() -> bool:
            return bool(await asyncio.to_thread(delivered, daemon))

        await eventually(first, "a first execution", timeout=60, interval=0.01)
        await asyncio.to_thread(daemon.kill)

        again = await asyncio.to_thread(ServeProcess, tmp_path, flows, data, env)
        await asyncio.to_thread(again.start)
        names = {f"f{n:03}.csv" for n in range(FILES)}
        await wait_for(again, names)
        # A last file after all the others: once it ran, nothing is left in flight.
        await asyncio.to_thread((inbox / "sentinel.csv").write_text, "last\n")
        counts = await wait_for(again, {*names, "sentinel.csv"})
    finally:
        for process in (daemon, again):
            if process is not None and process.proc is not None and process.proc.poll() is None:
                await asyncio.to_thread(process.stop)
    twice = sorted(name for name, n in counts.items() if n > 1)
    assert not twice, f"run more than once: {twice}"
    assert set(counts) == {*names, "sentinel.csv"}
