"""Executor throughput and `podium run` start-up, printed as figures (not asserted).

    .venv/bin/python bench/executor.py

Targets on the 2-core machines: >= 2,000 durable task runs/s, `podium run` of a
trivial flow <= 0.5 s and <= 60 MB peak RSS.
"""

from __future__ import annotations

import asyncio
import compileall
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._peak import measured  # noqa: E402
from daemon.engine.core import Engine  # noqa: E402
from daemon.flows.loader import load_flow  # noqa: E402
from daemon.sdk.state import State  # noqa: E402
from daemon.store import open_store  # noqa: E402

N = 100


def sequential_flow() -> str:
    tasks = "".join(
        f'  - id: r{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: "{{{{ {i} }}}}"\n'
        for i in range(N)
    )
    return f"id: seq\nnamespace: bench\ntasks:\n{tasks}"


def parallel_flow() -> str:
    tasks = "".join(
        f"      - id: r{i}\n        type: io.kestra.plugin.core.debug.Return\n"
        f'        format: "{{{{ {i} }}}}"\n'
        for i in range(N)
    )
    return (
        "id: par\nnamespace: bench\ntasks:\n  - id: p\n"
        "    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n" + tasks
    )


async def throughput(source: str, executions: int, data_dir: Path) -> tuple[float, float]:
    store = open_store(data_dir)
    await store.open()
    engine = Engine(data_dir, store)
    flow = load_flow(source, "bench.yaml")
    try:
        # warm up: revision saved, templates compiled
        warm = await engine.submit(flow)
        await engine.wait(warm.id)
        started = time.perf_counter()
        ids = [(await engine.submit(flow)).id for _ in range(executions)]
        finals = await asyncio.gather(*(engine.wait(i) for i in ids))
        elapsed = time.perf_counter() - started
        assert all(f.state.current == State.SUCCESS for f in finals)
        runs = sum(len(f.task_runs) for f in finals)
    finally:
        await engine.close()
        await store.close()
    return runs / elapsed, elapsed / runs * 1000


def podium_run(flow: Path, data_dir: Path, runs: int) -> tuple[float, float, int]:
    """Best-of-N wall time and the largest peak RSS of `podium run` as a user starts it (a
    fresh process: see bench/_peak.py).

    A user's install has byte-code compiled (pip compiles site-packages; Python writes
    __pycache__ for podium's own source on first run); this sandbox sets
    PYTHONDONTWRITEBYTECODE, so compile once and let the child use the .pyc files.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    best, rss, code = float("inf"), 0.0, 0
    podium = str(ROOT / ".venv" / "bin" / "podium")
    for _ in range(runs):
        run = measured([podium, "run", str(flow), "--data-dir", str(data_dir)], env=env)
        best = min(best, run.wall)
        rss = max(rss, run.peak_mb)
        code = code or run.exit_code
    return best, rss, code


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name, source, executions in (
            ("100 sequential Returns", sequential_flow(), 1),
            ("100 sequential Returns x10 at once", sequential_flow(), 10),
            ("100 parallel Returns", parallel_flow(), 10),
        ):
            rate, per_task = asyncio.run(throughput(source, executions, base / name[:3]))
            print(f"{name:<40} {rate:8.0f} durable task runs/s  {per_task:6.3f} ms/task")
        trivial = base / "trivial.yaml"
        trivial.write_text(
            "id: trivial\nnamespace: bench\ntasks:\n  - id: r\n"
            "    type: io.kestra.plugin.core.debug.Return\n    format: hi\n"
        )
        compileall.compile_dir(str(ROOT / "daemon"), quiet=1)
        compileall.compile_dir(str(ROOT / "tasks"), quiet=1)
        compileall.compile_dir(str(ROOT / "triggers"), quiet=1)
        for label, flow, runs in (
            ("podium run trivial flow (best of 5)", trivial, 5),
            ("podium run 01_hello_world (sleeps 15 s)", ROOT / "flows" / "01_hello_world.yaml", 1),
        ):
            elapsed, rss, code = podium_run(flow, base / "cli", runs)
            print(f"{label:<40} {elapsed:8.3f} s wall  {rss:6.1f} MB peak RSS  exit {code}")


if __name__ == "__main__":
    main()
