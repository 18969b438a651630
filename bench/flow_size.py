"""Validating big flows: seconds per flow, and the longest the event loop stalls meanwhile
(what /health feels), for flows up to `max-flow-size` and for a 46 MB file it refuses.

Issue #13 found a 100,000-task flow taking 27 s to validate and a 46 MB flow file stalling
/health for 7.7 s. Prints figures, asserts nothing.

Run: .venv/bin/python bench/flow_size.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from daemon.config.settings import Settings
from daemon.flows.loader import load_flow_file
from daemon.sdk.errors import FlowError

TASK = "  - id: t{n}\n    type: io.kestra.plugin.core.log.Log\n    message: hello {n}\n"


def flow_of(size: int) -> str:
    """A flow of Log tasks, about `size` bytes."""
    head = "id: big\nnamespace: bench\ntasks:\n"
    tasks, total, n = [], len(head), 0
    while total + len(TASK) + 20 < size:
        task = TASK.format(n=n)
        tasks.append(task)
        total += len(task)
        n += 1
    return head + "".join(tasks)


async def measure(path: Path, limit: int) -> tuple[float, float, str]:
    """(seconds to load or refuse, longest loop stall in seconds, outcome)."""
    stalls: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            stalls.append(loop.time() - before - 0.01)

    ticker = asyncio.create_task(tick())
    start = time.perf_counter()
    try:
        flow = await asyncio.to_thread(load_flow_file, path, None, limit)
        outcome = f"loaded, {len(flow.tasks)} tasks"
    except FlowError as exc:
        outcome = "refused: " + exc.problems[0].message
    elapsed = time.perf_counter() - start
    done.set()
    await ticker
    return elapsed, max(stalls, default=0.0), outcome


async def main() -> None:
    limit = Settings.model_fields["max_flow_size"].default
    with tempfile.TemporaryDirectory() as tmp:
        for size in (limit // 10, limit // 2, limit, 46 * 1024 * 1024):
            path = Path(tmp) / f"flow-{size}.yaml"
            await asyncio.to_thread(path.write_text, flow_of(size))
            bytes_ = (await asyncio.to_thread(path.stat)).st_size
            elapsed, stall, outcome = await measure(path, limit)
            print(
                f"{bytes_:>11,} bytes: {elapsed:7.3f} s, longest loop stall "
                f"{stall * 1000:7.1f} ms; {outcome[:90]}"
            )


if __name__ == "__main__":
    asyncio.run(main())
