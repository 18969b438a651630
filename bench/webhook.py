"""The webhook path of `podium serve` beside its floor, a bare aiohttp handler, in one run.

    .venv/bin/python bench/webhook.py

Both servers are fresh processes on this machine, driven by the same aiohttp client:
- sequential requests (one at a time): p50 / p99 of the HTTP round trip; podium answers
  once the execution is stored (the trigger's 200 carries its id), the floor answers `{}`;
- 50 requests in flight for a few seconds: podium executions started per second (each
  request one stored execution that then runs) against the floor's responses per second.
Targets (issue #18): p50 <= 2x the floor, p99 <= 4x, concurrent >= 0.5x.

`podium serve` runs on uvloop (its `event-loop` setting), so the floor is measured on both
loops: bare aiohttp on asyncio's loop (the issue's floor) and on uvloop (the same loop as
podium's). The ratios are against the first; the second shows how much of podium's gain
is the loop's alone.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._net import free_port, percentile, wait_port  # noqa: E402

SEQUENTIAL = 2000
IN_FLIGHT = 50
SECONDS = 5.0
FLOW = """\
id: hook
namespace: bench
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: benchkey
"""
BARE = textwrap.dedent(
    """
    import sys
    from aiohttp import web

    if sys.argv[2] == "uvloop":
        import asyncio, uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def hook(request):
        await request.read()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/v1/executions/webhook/{namespace}/{flowId}/{key}", hook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)


async def sequential(url: str) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession() as http:
        for n in range(SEQUENTIAL + 200):
            started = time.perf_counter()
            async with http.post(url, json={"n": n}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"{url} answered {resp.status}")
            if n >= 200:  # the first 200 warm connections, caches and the page cache
                out.append((time.perf_counter() - started) * 1000)
    return out


async def concurrent(url: str) -> float:
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as http:
        stop_at = time.perf_counter() + SECONDS

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                async with http.post(url, json={"n": 1}) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(IN_FLIGHT)))
        return done / (time.perf_counter() - started)


def measure(url: str) -> tuple[list[float], float]:
    return asyncio.run(sequential(url)), asyncio.run(concurrent(url))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(tmp) / "flows"
        flows.mkdir()
        (flows / "hook.yaml").write_text(FLOW)
        bare_port, bare_uv_port, podium_port = free_port(), free_port(), free_port()
        path = "/api/v1/executions/webhook/bench/hook/benchkey"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        bare = subprocess.Popen([sys.executable, "-c", BARE, str(bare_port), "asyncio"])
        bare_uv = subprocess.Popen([sys.executable, "-c", BARE, str(bare_uv_port), "uvloop"])
        podium = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "podium"), "serve", "--flows", str(flows)]
            + ["--data-dir", str(Path(tmp) / "data"), "--port", str(podium_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            for port in (bare_port, bare_uv_port, podium_port):
                wait_port(port)
            floor_seq, floor_rate = measure(f"http://127.0.0.1:{bare_port}{path}")
            uv_seq, uv_rate = measure(f"http://127.0.0.1:{bare_uv_port}{path}")
            seq, rate = measure(f"http://127.0.0.1:{podium_port}{path}")
        finally:
            for proc in (bare, bare_uv, podium):
                proc.terminate()
                proc.wait(timeout=60)
    rows = [
        ("sequential p50 (ms)", statistics.median(seq), statistics.median(floor_seq)),
        ("sequential p99 (ms)", percentile(seq, 0.99), percentile(floor_seq, 0.99)),
        (f"{IN_FLIGHT} in flight (/s)", rate, floor_rate),
    ]
    uv_floor = [statistics.median(uv_seq), percentile(uv_seq, 0.99), uv_rate]
    head = f"{'webhook':<24} {'podium':>10} {'bare aiohttp':>13} {'ratio':>7}"
    print(f"{head} {'bare on uvloop':>15}")
    for (name, ours, floor), uv in zip(rows, uv_floor, strict=True):
        print(f"{name:<24} {ours:>10.2f} {floor:>13.2f} {ours / floor:>7.2f} {uv:>15.2f}")


if __name__ == "__main__":
    main()
