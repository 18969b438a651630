"""One execution of 30 parallel tasks that each sleep 2 s, on 1, 2 and 3 `podium serve`
nodes with `worker-slots: 2` sharing one PostgreSQL (issue #17), beside one node on the
embedded SQLite store with the same 2 task slots (`max-concurrent-tasks: 2`).

    .venv/bin/python bench/cluster_workers.py [--tasks 30] [--sleep 2] [--slots 2]

Each run starts fresh nodes (a private PostgreSQL, a database per run), submits the
execution through the first node's API and waits until it ended. Printed: the wall time
from submission to its end, task runs per second, and how many task runs each node took.
With 2 slots per node, 30 tasks of 2 s need 15 rounds on one node (~30 s), 8 on two
(~16 s) and 5 on three (~10 s). Same machine, same clock.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402  (the tests' private PostgreSQL)
from tests.cluster_helpers import fresh_database  # noqa: E402
from tests.daemon_process import ServeProcess  # noqa: E402
from tests.worker_nodes import (  # noqa: E402
    FINAL,
    parallel_flow,
    runs_per_node,
    start_node,
    stop_all,
)


def timed_execution(node: ServeProcess, timeout: float) -> tuple[float, str, str]:
    started = time.monotonic()
    execution_id = node.create_execution("bench.workers", "fan")["id"]
    final = node.wait_execution(execution_id, FINAL, timeout=timeout)
    return time.monotonic() - started, execution_id, final["state"]["current"]


def local_run(flows: Path, slots: int, timeout: float) -> float:
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        node = ServeProcess(
            Path(tmp),
            flows,
            Path(tmp) / "data",
            env={"PODIUM_MAX_CONCURRENT_TASKS": str(slots)},
        )
        node.start()
        try:
            seconds, _, state = timed_execution(node, timeout)
        finally:
            node.stop()
    assert state == "SUCCESS", state
    return seconds


def cluster_run(server_dsn: str, flows: Path, nodes: int, slots: int, timeout: float) -> str:
    runner = asyncio.Runner()
    manager = fresh_database(server_dsn)
    dsn = runner.run(manager.__aenter__())
    try:
        with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
            started = [
                start_node(Path(tmp), dsn, flows, f"node{i + 1}", "--worker-slots", str(slots))
                for i in range(nodes)
            ]
            try:
                seconds, execution_id, state = timed_execution(started[0], timeout)
            finally:
                stop_all(started)
            assert state == "SUCCESS", state
            per_node = runs_per_node(dsn, execution_id)
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()
    return f"{seconds:6.1f} s  per node: {dict(sorted(per_node.items()))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    timeout = args.tasks * args.sleep * 3 + 60
    with tempfile.TemporaryDirectory(prefix="podium-bench-flows-") as flows_dir:
        flows = Path(flows_dir)
        duration = f"PT{args.sleep:g}S"
        (flows / "fan.yaml").write_text(parallel_flow("bench.workers", "fan", args.tasks, duration))
        print(
            f"one execution, {args.tasks} parallel tasks sleeping {args.sleep:g} s, "
            f"{args.slots} worker slots per node"
        )
        seconds = local_run(flows, args.slots, timeout)
        print(
            f"  1 node, SQLite (max-concurrent-tasks {args.slots}): {seconds:6.1f} s  "
            f"({args.tasks / seconds:.2f} task runs/s)"
        )
        with services.postgres() as server_dsn:
            for count in (1, 2, 3):
                figure = cluster_run(server_dsn, flows, count, args.slots, timeout)
                seconds = float(figure.split(" s", 1)[0])
                print(
                    f"  {count} node(s), PostgreSQL: {figure}  "
                    f"({args.tasks / seconds:.2f} task runs/s)"
                )


if __name__ == "__main__":
    main()
