"""Send N webhook events across several podium nodes, each exactly once as far as podium
is concerned: every event carries its own Idempotency-Key, and a request that fails (the
node died, the connection dropped) is sent again to the next node with the same key.

    .venv/bin/python tests/webhook_sender.py --count 10000 --concurrency 32 \\
        --path /api/v1/executions/webhook/ns/flow/key URL [URL ...]

Prints one JSON line: {"sent": N, "failed": [...], "seconds": s, "sent_at": {key: epoch}}.
Bounded in count and time: gives up on an event after --deadline seconds in all.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from typing import Any

import aiohttp


async def send_all(
    urls: list[str], path: str, count: int, concurrency: int, deadline: float, prefix: str
) -> dict[str, Any]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    sent_at: dict[str, float] = {}
    failed: list[str] = []
    retries = 0
    nodes = itertools.cycle(range(len(urls)))
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal retries
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            key = f"{prefix}{i}"
            node = next(nodes)
            attempt = 0
            while True:
                url = urls[(node + attempt) % len(urls)] + path
                if key not in sent_at:
                    sent_at[key] = time.time()
                try:
                    async with session.post(
                        url, json={"n": i}, headers={"Idempotency-Key": key}
                    ) as response:
                        await response.read()
                        if response.status == 200:
                            break
                        problem = f"HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    problem = type(exc).__name__
                attempt += 1
                retries += 1
                if time.monotonic() - started > deadline:
                    failed.append(f"{key}: {problem}")
                    break
                await asyncio.sleep(min(0.05 * attempt, 1.0))

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {
        "sent": count - len(failed),
        "failed": failed,
        "retries": retries,
        "seconds": time.monotonic() - started,
        "sent_at": sent_at,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="base URLs of the nodes")
    parser.add_argument("--path", required=True, help="webhook path on every node")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--prefix", default="event-", help="Idempotency-Key prefix")
    args = parser.parse_args(argv)
    result = asyncio.run(
        send_all(
            [u.rstrip("/") for u in args.urls],
            args.path,
            args.count,
            args.concurrency,
            args.deadline,
            args.prefix,
        )
    )
    print(json.dumps(result))
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
