"""Event-to-first-task latency of `podium serve`, sustained webhook rate, idle RSS.

    .venv/bin/python bench/latency.py

Runs a real `podium serve` on the embedded store, a private Mosquitto, and measures from
the moment an event is sent (webhook POST, file closed in a watched folder, MQTT publish)
to the first task run's RUNNING time that podium stored. Same machine, same clock.
Targets: webhook p50 <= 5 ms, p99 <= 20 ms; MQTT p50 <= 10 ms; file drop (no stability
wait) p50 <= 50 ms; idle daemon with 100 flows <= 80 MB RSS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


def flow(flow_id: str, trigger: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: bench\ntasks:\n  - id: first\n"
        "    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
        f"triggers:\n{trigger}"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.flows = base / "flows"
        self.incoming = base / "incoming"
        self.flows.mkdir()
        self.incoming.mkdir()
        self.port = free_port()
        self.mqtt_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.broker: subprocess.Popen[bytes] | None = None

    def start_broker(self) -> None:
        conf = self.base / "mosquitto.conf"
        conf.write_text(f"listener {self.mqtt_port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        self.broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        wait_port(self.mqtt_port)

    def write_flows(self) -> None:
        (self.flows / "hook.yaml").write_text(
            flow(
                "hook",
                "  - id: hook\n    type: "
                "io.kestra.plugin.core.trigger.Webhook\n"
                "    key: benchkey\n",
            )
        )
        (self.flows / "drop.yaml").write_text(
            flow(
                "drop",
                "  - id: drop\n    type: io.kestra.plugin.fs.local.RealtimeTrigger\n"
                f"    from: {self.incoming}\n    on: CREATE_OR_UPDATE\n    stableFor: PT0S\n",
            )
        )
        (self.flows / "mqtt.yaml").write_text(
            flow(
                "mqtt",
                "  - id: mqtt\n    type: io.kestra.plugin.mqtt.RealtimeTrigger\n"
                f"    server: tcp://127.0.0.1:{self.mqtt_port}\n    topic: bench/latency\n"
                "    qos: 1\n    serdeType: STRING\n",
            )
        )

    def start_podium(self, flows: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PODIUM_ALLOWED_PATHS"] = str(self.incoming)
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "podium"),
                "serve",
                "--flows",
                str(flows),
                "--data-dir",
                str(self.base / f"data-{flows.name}"),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_port(self.port)

    def stop_podium(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    async def first_task_start(self, http: aiohttp.ClientSession, execution_id: str) -> datetime:
        while True:
            async with http.get(
                f"http://127.0.0.1:{self.port}/api/v1/executions/{execution_id}"
            ) as resp:
                doc = await resp.json()
            for run in doc.get("taskRunList") or []:
                for h in run["state"]["histories"]:
                    if h["state"] == "RUNNING":
                        return datetime.fromisoformat(h["date"])
            await asyncio.sleep(0.01)

    async def latest_execution(self, flow_id: str, seen: set[str]) -> str:
        """The newest execution of a flow not seen before (file and MQTT give no id back),
        read from the daemon's store file as `podium executions list` does."""
        from daemon.store import open_store

        store = open_store(self.base / "data-flows")
        await store.open()
        try:
            while True:
                results, _ = await store.search_executions(
                    namespace="bench", flow_id=flow_id, size=5
                )
                for doc in results:
                    if doc["id"] not in seen:
                        seen.add(doc["id"])
                        return str(doc["id"])
                await asyncio.sleep(0.002)
        finally:
            await store.close()

    async def webhook(self, http: aiohttp.ClientSession) -> list[float]:
        out = []
        url = f"http://127.0.0.1:{self.port}/api/v1/executions/webhook/bench/hook/benchkey"
        for _ in range(SAMPLES):
            sent = datetime.now(UTC)
            async with http.post(url, json={"n": 1}) as resp:
                execution_id = (await resp.json())["id"]
            started = await self.first_task_start(http, execution_id)
            out.append((started - sent).total_seconds() * 1000)
        return out

    async def file_drop(self, http: aiohttp.ClientSession) -> list[float]:
        out: list[float] = []
        seen: set[str] = set()
        for i in range(SAMPLES // 4):
            path = self.incoming / f"f{i}.csv"
            sent = datetime.now(UTC)
            await asyncio.to_thread(path.write_text, f"row {i}\n")
            execution_id = await self.latest_execution("drop", seen)
            started = await self.first_task_start(http, execution_id)
            out.append((started - sent).total_seconds() * 1000)
        return out

    async def mqtt(self, http: aiohttp.ClientSession) -> list[float]:
        import aiomqtt

        out: list[float] = []
        seen: set[str] = set()
        async with aiomqtt.Client("127.0.0.1", self.mqtt_port) as client:
            for i in range(SAMPLES // 2):
                sent = datetime.now(UTC)
                await client.publish("bench/latency", f"m{i}", qos=1)
                execution_id = await self.latest_execution("mqtt", seen)
                started = await self.first_task_start(http, execution_id)
                out.append((started - sent).total_seconds() * 1000)
        return out

    async def sustained(
        self, http: aiohttp.ClientSession, seconds: float = 5, clients: int = 16
    ) -> float:
        url = f"http://127.0.0.1:{self.port}/api/v1/executions/webhook/bench/hook/benchkey"
        done = 0
        stop_at = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                async with http.post(url, json={"n": 1}) as resp:
                    if resp.status == 200:
                        done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.perf_counter() - started)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:<34} p50 {statistics.median(values):7.2f} ms   p99 "
        f"{percentile(values, 0.99):7.2f} ms   (n={len(values)})"
    )


async def measure(bench: Bench) -> None:
    async with aiohttp.ClientSession() as http:
        await bench.webhook(http)  # warm-up: templates, connections, page cache
        report("webhook -> first task start", await bench.webhook(http))
        report("file drop -> first task start", await bench.file_drop(http))
        report("MQTT publish -> first task start", await bench.mqtt(http))
        rate = await bench.sustained(http)
        print(f"{'sustained webhook executions':<34} {rate:7.0f} /s (16 clients, 5 s)")


def main() -> None:
    if not shutil.which("mosquitto"):
        raise SystemExit("mosquitto is missing: apt-get install mosquitto")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        bench.start_broker()
        bench.write_flows()
        try:
            bench.start_podium(bench.flows)
            asyncio.run(measure(bench))
            bench.stop_podium()
            many = Path(tmp) / "many"
            many.mkdir()
            for i in range(100):
                (many / f"f{i}.yaml").write_text(
                    flow(
                        f"f{i}",
                        f"  - id: hook\n    type: "
                        "io.kestra.plugin.core.trigger.Webhook\n"
                        f"    key: k{i}\n",
                    )
                )
            bench.start_podium(many)
            time.sleep(3)
            assert bench.proc is not None
            print(f"{'idle daemon with 100 flows':<34} {rss_mb(bench.proc.pid):7.1f} MB RSS")
        finally:
            bench.stop_podium()
            if bench.broker is not None:
                bench.broker.terminate()
                bench.broker.wait()


if __name__ == "__main__":
    sys.exit(main())
