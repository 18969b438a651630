"""Executions per second and event-to-start latency of 1, 2 and 3 `podium serve` nodes on
one PostgreSQL, beside one node on the embedded SQLite store.

    .venv/bin/python bench/cluster.py [--events 3000] [--concurrency 24]

Each run starts fresh nodes (a private PostgreSQL for the cluster runs, its own database
per run), sends the webhook events from a second process (tests/webhook_sender.py, round
robin over the nodes, each event with its Idempotency-Key), and waits until every
execution has ended. Throughput is events / (first send -> last execution ended); latency
is from the moment an event's POST was sent to its execution's RUNNING time as stored.
Same machine, same clock. The machine has 2 cores: nodes compete with each other, the
database and the sender for them, so more nodes measure coordination cost more than gain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.sdk.execution import derived_id  # noqa: E402
from daemon.store import open_store  # noqa: E402
from tests import services  # noqa: E402  (the tests' private PostgreSQL)
from tests.cluster_helpers import fresh_database  # noqa: E402
from tests.daemon_process import ServeProcess  # noqa: E402

FLOW = """\
id: hook
namespace: bench.cluster
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.n }}"
triggers:
  - id: in
    type: io.kestra.plugin.core.trigger.Webhook
    key: bench-key
"""
PATH = "/api/v1/executions/webhook/bench.cluster/hook/bench-key"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ended(store_url: str, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Every execution's stored doc once all have ended."""
    store = open_store(store_url)
    await store.open()
    try:
        deadline = time.monotonic() + timeout
        docs: dict[str, dict[str, Any]] = {}
        pending = list(ids)
        while pending:
            still = []
            for execution_id in pending:
                doc = await store.get_execution(execution_id)
                if doc is None or doc["state"]["current"] not in (
                    "SUCCESS",
                    "FAILED",
                    "WARNING",
                    "KILLED",
                ):
                    still.append(execution_id)
                else:
                    docs[execution_id] = doc
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{len(pending)} executions did not end")
                await asyncio.sleep(0.2)
        return docs
    finally:
        await store.close()


def run(
    label: str, store_url: str, nodes: int, events: int, concurrency: int, base: Path
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    flows = work / "flows"
    flows.mkdir()
    (flows / "hook.yaml").write_text(FLOW)
    procs = []
    try:
        for _ in range(nodes):
            node = ServeProcess(work, flows, work / "data", args=("--store", store_url))
            procs.append(node.start())
        prefix = f"{label}-"
        sender = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "webhook_sender.py"),
                "--count",
                str(events),
                "--concurrency",
                str(concurrency),
                "--prefix",
                prefix,
                "--path",
                PATH,
                *(f"http://127.0.0.1:{p.port}" for p in procs),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        sent = json.loads(sender.stdout)
        keys = {
            derived_id("bench.cluster", "hook", "in", f"{prefix}{i}"): f"{prefix}{i}"
            for i in range(events)
        }
        docs = asyncio.run(ended(store_url, list(keys), 600))
        starts, ends = [], []
        for execution_id, doc in docs.items():
            histories = doc["state"]["histories"]
            running = next(h["date"] for h in histories if h["state"] == "RUNNING")
            starts.append(
                datetime.fromisoformat(running).timestamp() - sent["sent_at"][keys[execution_id]]
            )
            ends.append(datetime.fromisoformat(doc["state"]["endDate"]).timestamp())
        first = min(sent["sent_at"].values())
        states = {d["state"]["current"] for d in docs.values()}
        return {
            "label": label,
            "nodes": nodes,
            "events": events,
            "states": states,
            "rate": events / (max(ends) - first),
            "p50": statistics.median(starts) * 1000,
            "p99": percentile(starts, 0.99) * 1000,
        }
    finally:
        for proc in procs:
            proc.stop()


async def on_fresh_database(server: str, job: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    async with fresh_database(server) as url:
        return await asyncio.to_thread(job, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=24)
    args = parser.parse_args()
    results = []
    with services.postgres() as server, tempfile.TemporaryDirectory(prefix="podium-bc-") as t:
        base = Path(t)
        results.append(
            run(
                "sqlite", str(base / "sqlite" / "podium.db"), 1, args.events, args.concurrency, base
            )
        )
        for nodes in (1, 2, 3):
            results.append(
                asyncio.run(
                    on_fresh_database(
                        server,
                        lambda url, n=nodes: run(
                            f"pg{n}", url, n, args.events, args.concurrency, base
                        ),
                    )
                )
            )
    print(
        f"\n{args.events} webhook events, {args.concurrency} concurrent senders, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'store':<22}{'nodes':>6}{'executions/s':>14}{'p50 ms':>10}{'p99 ms':>10}  states")
    for r in results:
        store = "SQLite (embedded)" if r["label"] == "sqlite" else "PostgreSQL cluster"
        print(
            f"{store:<22}{r['nodes']:>6}{r['rate']:>14.0f}{r['p50']:>10.1f}{r['p99']:>10.1f}"
            f"  {','.join(sorted(r['states']))}"
        )


if __name__ == "__main__":
    main()
