"""Message -> first task start of `podium serve` for Redis, RabbitMQ (AMQP) and NATS
JetStream, beside the same message -> receive time of a bare client of each broker.

    .venv/bin/python bench/brokers.py

Starts private servers (redis-server, rabbitmq-server, nats-server -js) on free ports in
a temp dir and one `podium serve` whose flows have each family's RealtimeTrigger. A
sample: one message published, then podium's stored RUNNING time of the execution's
first task (same machine, same clock). The bare client consumes as podium's trigger does
(BLMOVE, a basic.consume with manual acks, a JetStream durable pull consumer) and
acknowledges after receipt; podium also stores the execution before it acknowledges.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLES = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


class Servers:
    """redis-server, nats-server -js and rabbitmq-server (with its own epmd), private."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis, self.nats, self.amqp = free_port(), free_port(), free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.procs.append(
            subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def start(self) -> None:
        self.spawn(["redis-server", "--port", str(self.redis), "--bind", "127.0.0.1",
                    "--dir", str(self.root), "--save", "", "--appendonly", "yes"])  # fmt: skip
        self.spawn(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.nats),
                    "-sd", str(self.root / "js")])  # fmt: skip
        epmd, dist = free_port(), free_port()
        self.spawn([shutil.which("epmd") or "epmd", "-port", str(epmd), "-address", "127.0.0.1"])
        wait_port(epmd)
        rabbit = self.root / "rabbit"
        rabbit.mkdir()
        (rabbit / "enabled_plugins").write_text("[].\n")
        (rabbit / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp}\nloopback_users = none\n"
        )
        env = {
            **os.environ,
            "HOME": str(rabbit),
            "RABBITMQ_NODENAME": f"bench{self.amqp}@localhost",
            "RABBITMQ_DIST_PORT": str(dist),
            "ERL_EPMD_PORT": str(epmd),
            "RABBITMQ_MNESIA_BASE": str(rabbit / "mnesia"),
            "RABBITMQ_LOG_BASE": str(rabbit / "log"),
            "RABBITMQ_CONFIG_FILE": str(rabbit / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(rabbit / "enabled_plugins"),
        }
        self.spawn(["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        for port in (self.redis, self.nats, self.amqp):
            wait_port(port)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<28} p50 {statistics.median(values):7.2f} ms   "
        f"p99 {percentile(values, 0.99):7.2f} ms   (n={len(values)})"
    )


class Podium:
    def __init__(self, base: Path, servers: Servers) -> None:
        self.base = base
        self.port = free_port()
        flows = base / "flows"
        flows.mkdir()
        triggers = {
            "redis": f"type: io.kestra.plugin.redis.list.RealtimeTrigger\n    url: "
            f"redis://127.0.0.1:{servers.redis}/0\n    key: bench",
            "amqp": f"type: io.kestra.plugin.amqp.RealtimeTrigger\n    host: 127.0.0.1\n"
            f"    port: {servers.amqp}\n    queue: bench",
            "nats": f"type: io.kestra.plugin.nats.core.RealtimeTrigger\n    url: "
            f"nats://127.0.0.1:{servers.nats}\n    subject: bench.podium",
        }
        for name, trigger in triggers.items():
            (flows / f"{name}.yaml").write_text(
                f"id: {name}\nnamespace: bench\ntasks:\n  - id: first\n"
                "    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
                f"triggers:\n  - id: t\n    {trigger}\n"
            )
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/podium"), "serve", "--flows", str(flows), "--data-dir",
             str(base / "data"), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)

    async def first_task_start(
        self, http: aiohttp.ClientSession, flow_id: str, seen: set[str]
    ) -> datetime:
        from daemon.store import open_store

        store = open_store(self.base / "data")
        await store.open()
        try:
            while True:
                results, _ = await store.search_executions(
                    namespace="bench", flow_id=flow_id, size=5
                )
                fresh = [doc for doc in results if doc["id"] not in seen]
                if fresh:
                    execution_id = str(fresh[0]["id"])
                    seen.add(execution_id)
                    break
                await asyncio.sleep(0.002)
        finally:
            await store.close()
        while True:
            url = f"http://127.0.0.1:{self.port}/api/v1/executions/{execution_id}"
            async with http.get(url) as resp:
                doc = await resp.json()
            for run in doc.get("taskRunList") or []:
                for h in run["state"]["histories"]:
                    if h["state"] == "RUNNING":
                        return datetime.fromisoformat(h["date"])
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def sample(
    publish: Callable[[str], Awaitable[None]], received: Callable[[], Awaitable[datetime]]
) -> list[float]:
    out = []
    for i in range(SAMPLES):
        sent = datetime.now(UTC)
        await publish(f"m{i}")
        out.append((await received() - sent).total_seconds() * 1000)
    return out


async def measure(servers: Servers, podium: Podium) -> None:
    import aio_pika
    import nats
    import redis.asyncio

    r = redis.asyncio.Redis(port=servers.redis)
    amqp = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{servers.amqp}/")
    channel = await amqp.channel()
    for queue in ("bench", "bare"):
        await channel.declare_queue(queue, durable=True)
    nc = await nats.connect(f"nats://127.0.0.1:{servers.nats}")
    js = nc.jetstream()
    await js.add_stream(name="bench", subjects=["bench.>"])
    await asyncio.sleep(3)  # the triggers connect and subscribe
    async with aiohttp.ClientSession() as http:
        results: dict[str, list[float]] = {}

        async def rpush(key: str, value: str) -> None:
            await r.rpush(key, value)

        async def bare_redis() -> datetime:
            await r.blmove("bare", "bare-staging", 5, "LEFT", "RIGHT")
            await r.lpop("bare-staging")
            return datetime.now(UTC)

        seen: dict[str, set[str]] = {"redis": set(), "amqp": set(), "nats": set()}
        results["redis: bare client"] = await sample(lambda m: rpush("bare", m), bare_redis)
        results["redis: podium"] = await sample(
            lambda m: rpush("bench", m),
            lambda: podium.first_task_start(http, "redis", seen["redis"]),
        )

        inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        bare_queue = await channel.get_queue("bare")
        await bare_queue.consume(inbox.put)

        async def publish_amqp(queue: str, body: str) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(body.encode(), delivery_mode=2), queue
            )

        async def bare_amqp() -> datetime:
            message = await inbox.get()
            await message.ack()
            return datetime.now(UTC)

        results["amqp: bare client"] = await sample(lambda m: publish_amqp("bare", m), bare_amqp)
        results["amqp: podium"] = await sample(
            lambda m: publish_amqp("bench", m),
            lambda: podium.first_task_start(http, "amqp", seen["amqp"]),
        )

        sub = await js.pull_subscribe("bench.bare", durable="bare")

        async def bare_nats() -> datetime:
            while True:
                try:
                    [msg] = await sub.fetch(1, timeout=5)
                except nats.errors.TimeoutError:
                    continue
                await msg.ack()
                return datetime.now(UTC)

        async def publish_nats(subject: str, body: str) -> None:
            await js.publish(subject, body.encode())

        results["nats: bare client"] = await sample(
            lambda m: publish_nats("bench.bare", m), bare_nats
        )
        results["nats: podium"] = await sample(
            lambda m: publish_nats("bench.podium", m),
            lambda: podium.first_task_start(http, "nats", seen["nats"]),
        )
    print(f"message -> first task start (podium) / receive (bare client), {SAMPLES} messages each")
    for name, values in results.items():
        report(name, values)
    await nc.close()
    await amqp.close()
    await r.aclose()


def main() -> None:
    for binary in ("redis-server", "nats-server", "/usr/lib/rabbitmq/bin/rabbitmq-server"):
        if not shutil.which(binary):
            raise SystemExit(f"{binary} is missing: run .ci/ensure-packages as root")
    base = Path(tempfile.mkdtemp(prefix="podium-bench-brokers-"))
    servers = Servers(base)
    podium: Podium | None = None
    try:
        servers.start()
        podium = Podium(base, servers)
        asyncio.run(measure(servers, podium))
    finally:
        if podium is not None:
            podium.stop()
        servers.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
