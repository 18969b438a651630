"""AMQP 0-9-1 tasks and triggers against a private RabbitMQ.

Kestra's behaviour comes from kestra-io/plugin-amqp: AMQPTest (CreateQueue,
DeclareExchange, QueueBind, Publish, Consume), TriggerTest and RealtimeTriggerTest.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from daemon.sdk.state import State
from tests.harness import Harness, problems, running_triggers
from tests.services import RabbitMQ


@pytest.fixture
def name() -> str:
    return f"q{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def channel(rabbitmq: RabbitMQ, name: str) -> AsyncIterator[AbstractChannel]:
    """A bare client's channel, and a durable queue `name`."""
    connection = await aio_pika.connect(rabbitmq.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True)
        yield channel


def conn(broker: RabbitMQ) -> str:
    return f"host: 127.0.0.1\nport: {broker.port}\nusername: guest\npassword: guest"


def flow(body: str, name: str = "amqp") -> str:
    return f"id: {name}\nnamespace: test\n" + textwrap.dedent(body)


def props(broker: RabbitMQ, indent: int) -> str:
    return textwrap.indent(conn(broker), " " * indent).lstrip()


async def test_declare_bind_publish_consume(h: Harness, rabbitmq: RabbitMQ, name: str) -> None:
    """AMQPTest: CreateQueue, DeclareExchange, QueueBind, Publish (a Message with
    properties, and plain data), Consume into an Ion file of Messages."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: queue
            type: io.kestra.plugin.amqp.CreateQueue
            {props(rabbitmq, 12)}
            name: {name}
          - id: exchange
            type: io.kestra.plugin.amqp.DeclareExchange
            {props(rabbitmq, 12)}
            name: {name}-x
            exchangeType: FANOUT
          - id: bind
            type: io.kestra.plugin.amqp.QueueBind
            {props(rabbitmq, 12)}
            exchange: {name}-x
            queue: {name}
          - id: publish
            type: io.kestra.plugin.amqp.Publish
            {props(rabbitmq, 12)}
            exchange: {name}-x
            serdeType: JSON
            from:
              - data: {{"n": 1}}
                headers: {{h: v}}
                messageId: m1
                appId: podium
              - data: {{"n": 2}}
          - id: consume
            type: io.kestra.plugin.amqp.Consume
            {props(rabbitmq, 12)}
            queue: {name}
            serdeType: JSON
            maxRecords: 10
        """)
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs["queue"] == {"queue": name}
    assert outputs["bind"] == {"queue": name, "exchange": f"{name}-x"}
    assert outputs["publish"] == {"messagesCount": 2}
    assert outputs["consume"]["count"] == 2
    text = await h.engine.resources.storage.read_text(outputs["consume"]["uri"])
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["data"] == {"n": 1} and first["messageId"] == "m1"
    assert first["headers"] == {"h": "v"} and first["appId"] == "podium"
    assert second["data"] == {"n": 2}


async def test_consume_needs_a_bound(h: Harness, rabbitmq: RabbitMQ, name: str) -> None:
    execution = await h.run(
        flow(f"""
        tasks:
          - id: consume
            type: io.kestra.plugin.amqp.Consume
            {props(rabbitmq, 12)}
            queue: {name}
        """)
    )
    assert execution.state.current == State.FAILED
    assert any("maxDuration or maxRecords" in line for line in await h.logs(execution))


async def test_a_missing_queue_fails_the_task(h: Harness, rabbitmq: RabbitMQ, name: str) -> None:
    execution = await h.run(
        flow(f"""
        tasks:
          - id: consume
            type: io.kestra.plugin.amqp.Consume
            {props(rabbitmq, 12)}
            queue: {name}-missing
            maxRecords: 1
        """)
    )
    assert execution.state.current == State.FAILED
    assert any("NOT_FOUND" in line for line in await h.logs(execution))


def test_a_trigger_without_queue_is_a_load_error() -> None:
    found = problems(
        """
        id: f
        namespace: test
        tasks: [{id: l, type: io.kestra.plugin.core.log.Log, message: x}]
        triggers:
          - id: t
            type: io.kestra.plugin.amqp.RealtimeTrigger
            host: localhost
        """
    )
    assert any("queue" in p for p in found), found


async def test_realtime_trigger_acks_after_the_execution(
    h: Harness, rabbitmq: RabbitMQ, channel: AbstractChannel, name: str
) -> None:
    """RealtimeTriggerTest: one execution per message, `trigger.data`; a JSON message
    that does not parse starts nothing and is acknowledged; the queue ends empty."""
    source = flow(
        f"""
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.data }}}}"
        triggers:
          - id: watch
            type: io.kestra.plugin.amqp.RealtimeTrigger
            {props(rabbitmq, 12)}
            queue: {name}
            serdeType: JSON
        """,
        name,
    )
    for body in (b'{"n": 1}', b"not json", b'{"n": 2}'):
        await channel.default_exchange.publish(aio_pika.Message(body), name)
    async with running_triggers(h, source) as th:
        found = await th.wait_for(2)
        await th.finished()

        async def drained() -> bool:
            queue = await channel.declare_queue(name, durable=True, passive=True)
            return queue.declaration_result.message_count == 0

        from tests.harness import eventually

        await eventually(drained, "the queue drained")
    assert sorted(e.trigger["variables"]["data"]["n"] for e in found) == [1, 2]


async def test_batch_trigger_one_execution_per_batch(
    h: Harness, rabbitmq: RabbitMQ, channel: AbstractChannel, name: str
) -> None:
    """TriggerTest: `trigger.count` and `trigger.uri`."""
    for n in range(3):
        await channel.default_exchange.publish(aio_pika.Message(f"m{n}".encode()), name)
    source = flow(
        f"""
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.count }}}}"
        triggers:
          - id: watch
            type: io.kestra.plugin.amqp.Trigger
            {props(rabbitmq, 12)}
            queue: {name}
            maxRecords: 3
            interval: PT1S
        """,
        name,
    )
    async with running_triggers(h, source) as th:
        [execution] = await th.wait_for(1)
    assert execution.trigger["variables"]["count"] == 3
