"""Resident memory of `podium serve` over many executions: does anything grow per execution?

    .venv/bin/python bench/memory.py [executions]

Runs a real `podium serve` on the embedded store with one webhook flow of two trivial
tasks, fires 50,000 webhooks (32 in flight) and prints the daemon's RSS every 5,000
executions, once they are all stored as done. Target: after warm-up (the first 5,000),
RSS stays flat within 5 MB.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._net import free_port, rss_mb, wait_port  # noqa: E402

TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
STEP = max(1, TOTAL // 10)
IN_FLIGHT = 32
FLOW = """\
id: hook
namespace: bench
inputs:
  - id: n
    type: INT
    defaults: 0
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.n }}"
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: "got {{ outputs.first.value }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: benchkey
"""


async def fire(http: aiohttp.ClientSession, url: str, count: int, start: int) -> None:
    queue = iter(range(start, start + count))

    async def client() -> None:
        for n in queue:
            async with http.post(url, json={"n": n}) as resp:
                if resp.status != 200:
                    raise SystemExit(f"webhook answered {resp.status}: {await resp.text()}")

    await asyncio.gather(*(client() for _ in range(IN_FLIGHT)))


async def settled(http: aiohttp.ClientSession, base: str, expected: int) -> None:
    """Wait until every execution fired so far is SUCCESS (nothing left in memory by design)."""
    while True:
        async with http.get(
            f"{base}/api/v1/executions/search", params={"state": "SUCCESS", "size": "1"}
        ) as resp:
            total = int((await resp.json())["total"])
        if total >= expected:
            return
        await asyncio.sleep(0.2)


async def run(port: int, pid: int) -> None:
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/api/v1/executions/webhook/bench/hook/benchkey"
    print(f"{'executions':>10} {'RSS MB':>8} {'Δ since warm-up':>16} {'rate /s':>8}")
    async with aiohttp.ClientSession() as http:
        warm = 0.0
        for done in range(0, TOTAL, STEP):
            started = time.perf_counter()
            await fire(http, url, STEP, done)
            await settled(http, base, done + STEP)
            rate = STEP / (time.perf_counter() - started)
            rss = rss_mb(pid)
            if done == 0:
                warm = rss
            print(f"{done + STEP:>10} {rss:>8.1f} {rss - warm:>+16.1f} {rate:>8.0f}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(tmp) / "flows"
        flows.mkdir()
        (flows / "hook.yaml").write_text(FLOW)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "podium"), "serve", "--flows", str(flows)]
            + ["--data-dir", str(Path(tmp) / "data"), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_port(port)
            print(f"podium serve, idle: {rss_mb(proc.pid):.1f} MB RSS")
            asyncio.run(run(port, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
