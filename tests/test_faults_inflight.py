"""A message whose execution is stored but whose acknowledgement never reached the broker
(the broker restarted in between) is delivered again and finds its execution: it starts
no second one. RabbitMQ marks the redelivery (`redelivered`), the trigger finds the key it
emitted with in its markers; JetStream redelivers with the same stream sequence, the key.

Kestra's own trigger tests check delivery only (plugin-amqp RealtimeTriggerTest,
plugin-nats RealtimeTriggerTest); this is podium's at-least-once guarantee. The trigger
runs through the daemon's supervisor with an `emit` that holds the first
message's acknowledgement until the broker has restarted, as in test_faults_mqtt.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

import aio_pika
import nats

from daemon.sdk.execution import Execution
from tests.harness import Harness, eventually
from tests.services import Nats, RabbitMQ


async def run_with_held_first_ack(
    h: Harness, source: str, restart: Any, publish: Any, count: int
) -> list[Execution]:
    """Run the flow's trigger; the first emit returns only after `restart` ran."""
    flow = await h.flow(source)
    trigger = flow.triggers[0]
    supervisor = h.supervisor()
    emit = supervisor.emitter(flow, trigger)
    ctx = supervisor.context(flow, trigger)
    stored, restarted = asyncio.Event(), asyncio.Event()
    started: list[Execution] = []

    async def slow_emit(
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Execution:
        execution = await emit(inputs, variables, labels=labels, key=key)
        started.append(execution)
        if len(started) == 1:
            stored.set()
            await restarted.wait()  # the broker restarts before this one is acknowledged
        return execution

    running = asyncio.create_task(trigger.run(slow_emit, ctx))
    try:
        await publish(["first", "second"])
        async with asyncio.timeout(60):
            await stored.wait()
        await asyncio.to_thread(restart)
        restarted.set()
        await publish(["sentinel"])

        async def all_seen() -> bool:
            # Every message emitted, the first one twice (JetStream redelivers it once its
            # ack wait, 30 s, has passed; RabbitMQ at once).
            return len(started) > count

        await eventually(all_seen, "every message emitted, the first twice", timeout=90)
        await h.engine.drain()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    return started


async def test_amqp_redelivery_of_a_stored_message_starts_nothing(
    h: Harness, rabbitmq: RabbitMQ
) -> None:
    name = f"q{uuid.uuid4().hex[:10]}"
    connection = await aio_pika.connect(rabbitmq.url)
    async with connection:
        await (await connection.channel()).declare_queue(name, durable=True)

    async def publish(bodies: list[str]) -> None:
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            for body in bodies:
                await channel.default_exchange.publish(
                    aio_pika.Message(body.encode(), delivery_mode=2), name
                )

    source = f"""id: {name}
namespace: test
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.data }}}}"
triggers:
  - id: watch
    type: io.kestra.plugin.amqp.RealtimeTrigger
    host: 127.0.0.1
    port: {rabbitmq.port}
    username: guest
    password: guest
    queue: {name}
"""
    started = await run_with_held_first_ack(h, source, rabbitmq.restart, publish, 3)
    docs, total = await h.store.search_executions(namespace="test", flow_id=name)
    assert sorted(d["trigger"]["variables"]["data"] for d in docs) == [
        "first",
        "second",
        "sentinel",
    ]
    assert total == 3
    # "first" was delivered again after the restart and emitted with its first key: the
    # emit returned the execution already stored.
    firsts = [e.id for e in started if e.trigger and e.trigger["variables"]["data"] == "first"]
    assert len(firsts) == 2 and len(set(firsts)) == 1, started


async def test_jetstream_redelivery_of_a_stored_message_starts_nothing(
    h: Harness, nats_server: Nats
) -> None:
    name = f"n{uuid.uuid4().hex[:10]}"
    client = await nats.connect(nats_server.url)
    await client.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
    await client.close()

    async def publish(bodies: list[str]) -> None:
        client = await nats.connect(nats_server.url)
        try:
            for body in bodies:
                await client.jetstream().publish(f"{name}.x", body.encode())
        finally:
            await client.close()

    source = f"""id: {name}
namespace: test
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.data }}}}"
triggers:
  - id: watch
    type: io.kestra.plugin.nats.core.RealtimeTrigger
    url: {nats_server.url}
    subject: {name}.>
    batchSize: 1
"""
    started = await run_with_held_first_ack(h, source, nats_server.restart, publish, 3)
    docs, total = await h.store.search_executions(namespace="test", flow_id=name)
    assert sorted(d["trigger"]["variables"]["data"] for d in docs) == [
        "first",
        "second",
        "sentinel",
    ]
    assert total == 3
    firsts = [e.id for e in started if e.trigger and e.trigger["variables"]["data"] == "first"]
    assert len(firsts) == 2 and len(set(firsts)) == 1, started
