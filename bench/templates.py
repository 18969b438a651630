"""What a templated property costs per task, beside the same flow with literal values.

    .venv/bin/python bench/templates.py

Issue #18: 100 sequential tasks whose one property is `{{ ... }}` should cost at most 1.5x
the same tasks with that property written out. Both flows run in one engine, rounds
alternated so that both sides see the same machine; each side's best round counts.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.engine.core import Engine  # noqa: E402
from daemon.flows.loader import load_flow  # noqa: E402
from daemon.sdk.state import State  # noqa: E402
from daemon.store import open_store  # noqa: E402

N = 100
EXECUTIONS = 1
ROUNDS = 30


def flow(task_type: str, prop: str, templated: bool) -> str:
    value = "{{{{ taskrun.id | length }}}} {i}" if templated else "36 {i}"
    tasks = "".join(
        f'  - id: t{i}\n    type: {task_type}\n    {prop}: "{value.format(i=i)}"\n'
        for i in range(N)
    )
    return f"id: bench_{prop}_{templated}\nnamespace: bench\ntasks:\n{tasks}"


async def per_task_ms(literal: str, templated: str, data_dir: Path) -> tuple[float, float]:
    """Best-of-rounds ms per task run of each flow, rounds alternated in one engine so that
    a busy machine weighs on both sides alike."""
    store = open_store(data_dir)
    await store.open()
    engine = Engine(data_dir, store)
    flows = [load_flow(literal, "literal.yaml"), load_flow(templated, "templated.yaml")]
    best = [float("inf"), float("inf")]
    try:
        for loaded in flows:  # warm up: revisions saved, templates compiled
            await engine.wait((await engine.submit(loaded)).id)
        for _ in range(ROUNDS):
            for side, loaded in enumerate(flows):
                started = time.perf_counter()
                for _ in range(EXECUTIONS):
                    final = await engine.wait((await engine.submit(loaded)).id)
                    assert final.state.current == State.SUCCESS, final.state.current
                elapsed = (time.perf_counter() - started) / (EXECUTIONS * N) * 1000
                best[side] = min(best[side], elapsed)
    finally:
        await engine.close()
        await store.close()
    return best[0], best[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for label, task_type, prop in (
            ("Log message", "io.kestra.plugin.core.log.Log", "message"),
            ("Return format", "io.kestra.plugin.core.debug.Return", "format"),
        ):
            literal, templated = asyncio.run(
                per_task_ms(flow(task_type, prop, False), flow(task_type, prop, True), base / prop)
            )
            print(
                f"{N} sequential {label:<14} literal {literal:6.3f} ms/task  "
                f"templated {templated:6.3f} ms/task  ratio {templated / literal:4.2f}x "
                "(target <= 1.50x)"
            )


if __name__ == "__main__":
    main()
