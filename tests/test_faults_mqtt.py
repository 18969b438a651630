"""Mosquitto restarted under a running MQTT trigger: it reconnects, and every QoS 1 message
sent around the restart starts exactly one execution.

What is physically possible, and what these tests do:

* Messages published while the broker is down cannot reach it: a publisher with a
  persistent session (paho) keeps them and sends them once the broker is back.
* "Right after the broker is back and before the trigger has reconnected": podium reaches
  the broker through a TCP relay the test holds closed while the broker restarts and those
  messages are published, so the order is certain, not a race; the broker's own log
  confirms the trigger's client had not connected again by then.
* In flight: messages delivered to the trigger and not yet acknowledged (one with its
  execution stored, others not even read) when the broker restarts. The broker persisted
  them with the session and delivers them again (DUP); none starts a second execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from daemon.config.settings import Settings
from daemon.engine.webhooks import WebhookRegistry
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.daemon_process import ServeProcess
from tests.harness import Harness, eventually
from tests.services import Mosquitto

TRIGGER_LOG = "daemon.engine.supervisor"


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def broker(mosquitto: Mosquitto) -> AsyncIterator[Mosquitto]:
    """The session's broker, running again after the test whatever happened."""
    try:
        yield mosquitto
    finally:
        if not mosquitto.running:
            await asyncio.to_thread(mosquitto.start)


async def pub(broker: Mosquitto, topic: str, message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        message,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


class Relay:
    """A TCP relay to the broker, as a load balancer in front of it would be. `hold()`
    turns new connections away (accepted, then closed at once); `release()` lets them
    through again. Connections end when either side ends."""

    def __init__(self, upstream: Mosquitto) -> None:
        self.upstream = upstream
        self.holding = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.holding:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream.host, self.upstream.port
                )
            except OSError:
                return
            try:
                pipes = [
                    asyncio.create_task(_pipe(reader, up_writer)),
                    asyncio.create_task(_pipe(up_reader, writer)),
                ]
                self._pipes.update(pipes)
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                self._pipes.difference_update(pipes)
            finally:
                up_writer.close()
                with contextlib.suppress(OSError):
                    await up_writer.wait_closed()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class QueuingPublisher:
    """A paho client with a persistent session that publishes at QoS 1 whether the broker
    is up or not: what it cannot send yet it keeps, and sends on reconnecting."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.reconnect_delay_set(0.1, 1)
        self.broker = broker
        self.acknowledged: set[int] = set()
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        with self._lock:
            self.acknowledged.add(mid)

    def connect(self) -> None:
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: str) -> int:
        return self.client.publish(topic, payload, qos=1).mid

    def wait_acknowledged(self, mids: list[int], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.acknowledged.issuperset(mids):
                    return
            time.sleep(0.05)
        raise AssertionError(f"the broker never acknowledged messages {mids}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connections_of(broker: Mosquitto, client_id: str) -> int:
    """How often the broker logged a connection of this client id."""
    return broker.log.read_text(errors="replace").count(f" as {client_id} (")


def payloads(daemon: ServeProcess, flow_id: str) -> list[str]:
    status, found = daemon.request(
        "GET", f"/api/v1/executions/search?namespace=faults&flowId={flow_id}&size=100"
    )
    assert status == 200, found
    return sorted(doc["trigger"]["variables"]["payload"] for doc in found["results"])


async def executions_reach(daemon: ServeProcess, flow_id: str, count: int) -> list[str]:
    found: list[str] = []

    async def reached() -> bool:
        nonlocal found
        found = await asyncio.to_thread(payloads, daemon, flow_id)
        return len(found) >= count

    await eventually(reached, timeout=60)
    return found


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_serve_reconnects_after_a_broker_restart_and_runs_each_message_once(
    tmp_path: Path, broker: Mosquitto, name: str, version: str
) -> None:
    flows, data = tmp_path / "flows", tmp_path / "data"
    await asyncio.to_thread(flows.mkdir)
    async with Relay(broker) as relay:
        await asyncio.to_thread(
            (flows / "mqtt.yaml").write_text,
            textwrap.dedent(f"""
            id: {name}
            namespace: faults
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "{{{{ trigger.payload }}}}"
            triggers:
              - id: mqtt
                type: io.kestra.plugin.mqtt.RealtimeTrigger
                server: tcp://127.0.0.1:{relay.port}
                clientId: {name}
                topic: {name}/q
                serdeType: STRING
                version: {version}
            """),
        )
        daemon = await asyncio.to_thread(ServeProcess, tmp_path, flows, data)
        publisher = await asyncio.to_thread(QueuingPublisher, broker, f"{name}-pub")
        try:
            await asyncio.to_thread(daemon.start)
            await asyncio.to_thread(publisher.connect)
            await pub(broker, f"{name}/q", "before")  # once it runs, the trigger is subscribed
            assert await executions_reach(daemon, name, 1) == ["before"]

            relay.hold()
            mark = len(daemon.lines)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(daemon.wait_line, "lost the connection to", 30, mark)
            down = [publisher.publish(f"{name}/q", f"down {n}") for n in range(3)]
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(publisher.wait_acknowledged, down)
            for n in range(3):
                await pub(broker, f"{name}/q", f"up {n}")
            # All six are with the broker, and the trigger has not connected again yet.
            assert await asyncio.to_thread(connections_of, broker, name) == 1

            relay.release()
            await asyncio.to_thread(daemon.wait_line, "connected to", 60, mark)
            await executions_reach(daemon, name, 7)
            await pub(broker, f"{name}/q", "sentinel")  # nothing else is on its way
            assert await executions_reach(daemon, name, 8) == sorted(
                ["before", "down 0", "down 1", "down 2", "up 0", "up 1", "up 2", "sentinel"]
            )
            assert daemon.proc is not None and daemon.proc.poll() is None
        finally:
            await asyncio.to_thread(publisher.close)
            if daemon.proc is not None:
                assert await asyncio.to_thread(daemon.stop) == 0, daemon.output()
    assert await asyncio.to_thread(connections_of, broker, name) == 2
    line = next(line for line in daemon.lines if "connected to" in line)
    assert (
        f"faults.{name} trigger mqtt: connected to tcp://127.0.0.1:{relay.port} again "
        "after " in line
    )


# -- in flight when the broker restarts -------------------------------------------------------


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_messages_in_flight_when_the_broker_restarts_run_once(
    h: Harness, broker: Mosquitto, name: str, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The first message's execution is stored but its acknowledgement not sent, the two
    others are delivered and not yet read, when the broker restarts."""
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    flow = await h.flow(
        textwrap.dedent(f"""
        id: {name}
        namespace: faults
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.payload }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: tcp://{broker.host}:{broker.port}
            clientId: {name}
            topic: {name}/f
            serdeType: STRING
            version: {version}
        """)
    )
    settings = Settings(data_dir=h.engine.data_dir)
    trigger = flow.triggers[0]
    supervisor = h.engine.supervisor(WebhookRegistry(), settings.allowed_paths)
    emit = supervisor.emitter(flow, trigger)
    ctx = supervisor.context(flow, trigger)
    stored = asyncio.Event()
    restarted = asyncio.Event()
    started: list[Execution] = []

    async def slow_emit(
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Execution:
        execution = await emit(inputs, variables)
        started.append(execution)
        if len(started) == 1:
            stored.set()
            await restarted.wait()  # the broker restarts before this message is acknowledged
        return execution

    running = asyncio.create_task(trigger.run(slow_emit, ctx))
    try:
        key = f"trigger:faults:{name}:mqtt:session"

        async def subscribed() -> bool:
            return await h.store.state.get(key) is not None

        await eventually(subscribed, timeout=60)
        for n in range(3):
            await pub(broker, f"{name}/f", f"in flight {n}")
        async with asyncio.timeout(30):
            await stored.wait()
        await asyncio.to_thread(broker.restart)
        restarted.set()

        async def reconnected() -> bool:
            return any("again after" in r.getMessage() for r in caplog.records)

        await eventually(reconnected, timeout=60)
        await pub(broker, f"{name}/f", "sentinel")

        async def all_four() -> bool:
            return len(started) >= 4

        await eventually(all_four, timeout=60)
        await h.engine.drain()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    docs, total = await h.store.search_executions(namespace="faults", flow_id=name)
    assert total == 4
    assert sorted(d["trigger"]["variables"]["payload"] for d in docs) == [
        "in flight 0",
        "in flight 1",
        "in flight 2",
        "sentinel",
    ]
    assert all(d["state"]["current"] == State.SUCCESS for d in docs)
    # The broker did deliver the stored one again; its execution was found, none started.
    again = [r.getMessage() for r in caplog.records if "was delivered again" in r.getMessage()]
    assert any("its execution " + started[0].id in message for message in again), again
