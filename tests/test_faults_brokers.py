"""Redis, RabbitMQ and NATS under a real `podium serve`: N messages start exactly N
executions although the broker restarts while messages are in flight and podium is
killed (SIGKILL) while it handles a burst, with more messages published while it is down.

The sequence, for each broker:

1. podium runs the flow's RealtimeTrigger; burst A is published; once one of its
   executions exists the broker is stopped and started again (its data kept: Redis's
   append-only file, RabbitMQ's durable queue and persistent messages, JetStream's
   file store);
2. burst B is published; once one of its executions exists, podium is killed;
3. burst C is published while podium is down; podium starts again on the same data;
4. a last message (the sentinel) is published after all the others, and the test waits
   until every message has its execution; the executions hold every message of A, B, C
   and the sentinel, each exactly once.

Kestra's own trigger tests (plugin-redis list/RealtimeTriggerTest, plugin-amqp
RealtimeTriggerTest, plugin-nats RealtimeTriggerTest) check delivery, not faults: the
guarantees tested here are podium's (see the docstrings of triggers/redis.py, amqp.py and
nats.py).
"""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import nats
import pytest

from daemon.sdk.brokers import redis_client
from tests.daemon_process import ServeProcess
from tests.harness import eventually
from tests.services import Nats, RabbitMQ, Redis, ServerProcess

BURST = 10


@dataclass
class Source:
    """One broker family as the test drives it."""

    server: ServerProcess
    trigger: str  # the trigger's YAML, without id
    payload: str  # the trigger variable holding the message
    publish: Callable[[list[str]], Awaitable[None]]


async def redis_source(server: Redis, name: str) -> Source:
    async def publish(messages: list[str]) -> None:
        client = await redis_client(server.url, 10)
        try:
            await client.rpush(name, *messages)  # the trigger pops from the head: FIFO
        finally:
            await client.aclose()

    trigger = f"type: io.kestra.plugin.redis.list.RealtimeTrigger\nurl: {server.url}\nkey: {name}"
    return Source(server, trigger, "value", publish)


async def amqp_source(server: RabbitMQ, name: str) -> Source:
    connection = await aio_pika.connect(server.url)
    async with connection:
        await (await connection.channel()).declare_queue(name, durable=True)

    async def publish(messages: list[str]) -> None:
        connection = await aio_pika.connect(server.url)
        async with connection:
            channel = await connection.channel()
            for message in messages:
                await channel.default_exchange.publish(
                    aio_pika.Message(message.encode(), delivery_mode=2), name
                )

    trigger = (
        f"type: io.kestra.plugin.amqp.RealtimeTrigger\nhost: 127.0.0.1\nport: {server.port}\n"
        f"username: guest\npassword: guest\nqueue: {name}"
    )
    return Source(server, trigger, "data", publish)


async def nats_source(server: Nats, name: str) -> Source:
    client = await nats.connect(server.url)
    await client.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
    await client.close()

    async def publish(messages: list[str]) -> None:
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            for message in messages:
                await js.publish(f"{name}.in", message.encode())
        finally:
            await client.close()

    trigger = (
        f"type: io.kestra.plugin.nats.core.RealtimeTrigger\nurl: {server.url}\nsubject: {name}.>"
    )
    return Source(server, trigger, "data", publish)


@pytest.fixture(params=["redis", "amqp", "nats"])
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """The broker's session server, started outside the event loop."""
    fixture = {"redis": "redis_server", "amqp": "rabbitmq", "nats": "nats_server"}
    found: ServerProcess = request.getfixturevalue(fixture[request.param])
    return found


@pytest.fixture
async def source(server: ServerProcess) -> AsyncIterator[Source]:
    """The broker as the test drives it, running again after the test whatever happened."""
    name = f"f{uuid.uuid4().hex[:10]}"
    if isinstance(server, Redis):
        made = await redis_source(server, name)
    elif isinstance(server, RabbitMQ):
        made = await amqp_source(server, name)
    else:
        assert isinstance(server, Nats)
        made = await nats_source(server, name)
    try:
        yield made
    finally:
        if not server.running:
            await asyncio.to_thread(server.start)


def payloads(daemon: ServeProcess, flow_id: str, variable: str) -> list[str]:
    status, found = daemon.request(
        "GET", f"/api/v1/executions/search?namespace=faults&flowId={flow_id}&size=500"
    )
    assert status == 200, found
    return [doc["trigger"]["variables"][variable] for doc in found["results"]]


async def seen(daemon: ServeProcess, flow_id: str, variable: str, *wanted: str) -> list[str]:
    """Wait until executions carry every message of `wanted`; every payload so far."""
    found: list[str] = []

    async def there() -> bool:
        nonlocal found
        found = await asyncio.to_thread(payloads, daemon, flow_id, variable)
        return set(wanted) <= set(found)

    await eventually(there, f"executions of {sorted(wanted)}", timeout=90, interval=0.05)
    return found


async def test_n_messages_start_n_executions_across_a_broker_restart_and_a_kill(
    tmp_path: Path, source: Source
) -> None:
    name = f"f{uuid.uuid4().hex[:10]}"
    flows, data = tmp_path / "flows", tmp_path / "data"
    await asyncio.to_thread(flows.mkdir)
    trigger = textwrap.indent(source.trigger, "    ")
    await asyncio.to_thread(
        (flows / "broker.yaml").write_text,
        f"id: {name}\nnamespace: faults\ntasks:\n"
        f"  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        f'    message: "{{{{ trigger.{source.payload} }}}}"\n'
        f"triggers:\n  - id: watch\n{trigger}\n",
    )
    burst = {part: [f"{part}{n}" for n in range(BURST)] for part in "ABC"}
    daemon = await asyncio.to_thread(ServeProcess, tmp_path, flows, data)
    again: ServeProcess | None = None
    try:
        await asyncio.to_thread(daemon.start)
        await source.publish(burst["A"])
        await seen(daemon, name, source.payload, "A0")
        await asyncio.to_thread(source.server.restart)  # with A's messages in flight

        await source.publish(burst["B"])
        await seen(daemon, name, source.payload, "B0")
        await asyncio.to_thread(daemon.kill)  # with B's messages in flight

        await source.publish(burst["C"])
        again = await asyncio.to_thread(ServeProcess, tmp_path, flows, data)
        await asyncio.to_thread(again.start)
        await source.publish(["sentinel"])
        # Every message, and then the check that none ran twice. JetStream gives the messages
        # the killed podium had fetched to the next fetch only once their ack wait (30 s)
        # has passed: they may come after the sentinel.
        expected = [*burst["A"], *burst["B"], *burst["C"], "sentinel"]
        found = await seen(again, name, source.payload, *expected)
    finally:
        for process in (daemon, again):
            if process is not None and process.proc is not None and process.proc.poll() is None:
                await asyncio.to_thread(process.stop)
    assert sorted(found) == sorted(expected), (
        f"missing {sorted(set(expected) - set(found))}, "
        f"twice {sorted(p for p in set(found) if found.count(p) > 1)}"
    )
