"""API latency with many stored executions: the executions list (search) and an execution
page (one execution with its task runs), as the UI asks for them. The target is 200 ms
each; this prints p50/p99, it asserts nothing.

Run: .venv/bin/python bench/api.py [executions, default 10000] [requests, default 200]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from daemon.api.server import create_app
from daemon.config.settings import Settings
from daemon.engine.core import Engine
from daemon.engine.webhooks import WebhookRegistry
from daemon.sdk.execution import Execution, TaskRun, new_id
from daemon.sdk.state import State, StateHistory
from daemon.store import open_store
from daemon.store.base import Store

FLOWS = ("extract", "transform", "load", "report")
STATES = (State.SUCCESS, State.SUCCESS, State.SUCCESS, State.FAILED, State.WARNING)
TASKS_PER_EXECUTION = 5


def history(start: datetime, end_state: State) -> StateHistory:
    states = StateHistory(State.CREATED, start)
    states.set(State.RUNNING, start + timedelta(milliseconds=5))
    states.set(end_state, start + timedelta(seconds=3))
    return states


async def fill(store: Store, count: int) -> list[str]:
    """`count` executions with their task runs, queued without waiting and committed once."""
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for n in range(count):
        flow = FLOWS[n % len(FLOWS)]
        at = start + timedelta(minutes=n)
        execution = Execution(
            id=new_id(),
            namespace="bench.team",
            flow_id=flow,
            flow_revision=1,
            state=history(at, rng.choice(STATES)),
            inputs={"day": f"{at:%Y-%m-%d}"},
            labels={"team": "data", "run": str(n % 7)},
        )
        for task in range(TASKS_PER_EXECUTION):
            execution.task_runs.append(
                TaskRun(
                    id=new_id(),
                    execution_id=execution.id,
                    namespace="bench.team",
                    flow_id=flow,
                    task_id=f"task{task}",
                    state=history(at, State.SUCCESS),
                    attempts=[history(at, State.SUCCESS)],
                    outputs={"rows": n * task, "uri": f"kestra:///bench/{execution.id}/{task}.csv"},
                )
            )
        await store.save_execution(execution.to_json(task_runs=False), wait=False)
        for run in execution.task_runs:
            await store.save_task_run(run.to_json(), wait=False)
        ids.append(execution.id)
    await store.flush()
    return ids


async def timed(session: aiohttp.ClientSession, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        began = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"{url}: {resp.status}")
        times.append((time.perf_counter() - began) * 1000)
    return times


def report(label: str, times: list[float]) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{label:<46} n={len(times):<5} p50 {statistics.median(times):7.1f} ms   "
        f"p99 {p99:7.1f} ms   max {ordered[-1]:7.1f} ms"
    )


async def main(count: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        store = open_store(data)
        await store.open()
        began = time.perf_counter()
        ids = await fill(store, count)
        print(
            f"stored {count} executions with {count * TASKS_PER_EXECUTION} task runs in "
            f"{time.perf_counter() - began:.1f} s"
        )
        engine = Engine(data, store)
        app = create_app(engine, Settings(data_dir=data), WebhookRegistry())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/executions"
        rng = random.Random(11)
        try:
            async with aiohttp.ClientSession() as session:
                await timed(session, [f"{base}/search"] * 5)  # warm up
                report(
                    "GET /executions/search (first page, 25)",
                    await timed(session, [f"{base}/search?size=25"] * requests),
                )
                report(
                    "GET /executions/search (page 200, 25)",
                    await timed(session, [f"{base}/search?size=25&page=200"] * requests),
                )
                report(
                    "GET /executions/search (flow + state + label)",
                    await timed(
                        session,
                        [f"{base}/search?size=25&flowId=load&state=FAILED&labels=run:3"] * requests,
                    ),
                )
                report(
                    "GET /executions/{id} (5 task runs)",
                    await timed(session, [f"{base}/{rng.choice(ids)}" for _ in range(requests)]),
                )
        finally:
            await runner.cleanup()
            await store.close()


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 10_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 200,
        )
    )
