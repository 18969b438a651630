"""NATS tasks and JetStream triggers against a private nats-server -js.

Kestra's behaviour comes from kestra-io/plugin-nats: core/ProduceTest, ConsumeTest,
RequestTest, RealtimeTriggerTest, TriggerTest and kv/PutTest, GetTest, DeleteTest,
CreateBucketTest.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client

from daemon.sdk.state import State
from tests.harness import Harness, problems, running_triggers
from tests.services import Nats


@pytest.fixture
def name() -> str:
    return f"n{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def nc(nats_server: Nats, name: str) -> AsyncIterator[Client]:
    """A bare client, and a stream `name` capturing the subjects `name.>`."""
    client = await nats.connect(nats_server.url)
    await client.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
    yield client
    await client.close()


def flow(body: str, name: str = "nats") -> str:
    return f"id: {name}\nnamespace: test\n" + textwrap.dedent(body)


async def test_produce_then_consume(h: Harness, nats_server: Nats, nc: Client, name: str) -> None:
    """core/ProduceTest and ConsumeTest: messages of `from` with headers, consumed into an
    Ion file of {subject, headers, data, timestamp}."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: produce
            type: io.kestra.plugin.nats.core.Produce
            url: {nats_server.url}
            subject: {name}.in
            from:
              - headers: {{h: v}}
                data: first
              - data: second
          - id: consume
            type: io.kestra.plugin.nats.core.Consume
            url: {nats_server.url}
            subject: {name}.>
            durableId: {name}
            pollDuration: PT1S
        """)
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs["produce"] == {"messagesCount": 2}
    assert outputs["consume"]["messagesCount"] == 2
    text = await h.engine.resources.storage.read_text(outputs["consume"]["uri"])
    rows = text.splitlines()
    assert '"data":"first"' in rows[0] and '"headers":{"h":["v"]}' in rows[0]
    assert '"data":"second"' in rows[1]


async def test_request_gets_the_reply(h: Harness, nats_server: Nats, nc: Client, name: str) -> None:
    """RequestTest: the reply's data is `response`; no responder gives None."""

    async def answer(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(b"hello " + msg.data)

    await nc.subscribe(f"{name}-rpc.greet", cb=answer)
    execution = await h.run(
        flow(f"""
        tasks:
          - id: ask
            type: io.kestra.plugin.nats.core.Request
            url: {nats_server.url}
            subject: {name}-rpc.greet
            from: {{data: bob}}
            requestTimeout: 2000
          - id: nobody
            type: io.kestra.plugin.nats.core.Request
            url: {nats_server.url}
            subject: {name}-rpc.nobody
            from: {{data: x}}
            requestTimeout: PT0.5S
        """)
    )
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs == {"ask": {"response": "hello bob"}, "nobody": {"response": None}}


async def test_kv_create_put_get_delete(h: Harness, nats_server: Nats, name: str) -> None:
    """kv/CreateBucketTest, PutTest, GetTest, DeleteTest."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: create
            type: io.kestra.plugin.nats.kv.CreateBucket
            url: {nats_server.url}
            name: {name}
            historyPerKey: 2
          - id: put
            type: io.kestra.plugin.nats.kv.Put
            url: {nats_server.url}
            bucketName: {name}
            values:
              key1: value1
              key2: {{sub: [1, 2]}}
          - id: get
            type: io.kestra.plugin.nats.kv.Get
            url: {nats_server.url}
            bucketName: {name}
            keys: [key1, key2, missing]
          - id: delete
            type: io.kestra.plugin.nats.kv.Delete
            url: {nats_server.url}
            bucketName: {name}
            keys: [key1]
          - id: again
            type: io.kestra.plugin.nats.kv.Get
            url: {nats_server.url}
            bucketName: {name}
            keys: [key1, key2]
        """)
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs["create"]["bucket"] == name and outputs["create"]["history"] == 2
    assert outputs["put"] == {"revisions": {"key1": 1, "key2": 2}}
    assert outputs["get"] == {"output": {"key1": "value1", "key2": {"sub": [1, 2]}}}
    assert outputs["again"] == {"output": {"key2": {"sub": [1, 2]}}}


def test_a_trigger_without_subject_is_a_load_error() -> None:
    found = problems(
        """
        id: f
        namespace: test
        tasks: [{id: l, type: io.kestra.plugin.core.log.Log, message: x}]
        triggers:
          - id: t
            type: io.kestra.plugin.nats.core.RealtimeTrigger
            url: nats://localhost:4222
        """
    )
    assert any("subject" in p for p in found), found


async def test_realtime_trigger_one_execution_per_message(
    h: Harness, nats_server: Nats, nc: Client, name: str
) -> None:
    """RealtimeTriggerTest: one execution per message, `trigger.data`; messages published
    before the trigger started arrive too (deliverPolicy All, durable consumer)."""
    js = nc.jetstream()
    await js.publish(f"{name}.a", b"before")
    source = flow(
        f"""
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.data }}}}"
        triggers:
          - id: watch
            type: io.kestra.plugin.nats.core.RealtimeTrigger
            url: {nats_server.url}
            subject: {name}.>
        """,
        name,
    )
    async with running_triggers(h, source) as th:
        await js.publish(f"{name}.b", b"after", headers={"k": "v"})
        found = await th.wait_for(2)
        await th.finished()
    variables = sorted((e.trigger["variables"] for e in found), key=lambda v: v["data"])
    assert [v["data"] for v in variables] == ["after", "before"]
    assert variables[0]["subject"] == f"{name}.b" and variables[0]["headers"] == {"k": ["v"]}
    info = await js.consumer_info(name, f"podium_test_{name}_watch")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_batch_trigger_one_execution_per_batch(
    h: Harness, nats_server: Nats, nc: Client, name: str
) -> None:
    """TriggerTest: `trigger.messagesCount` and `trigger.uri`."""
    js = nc.jetstream()
    for n in range(3):
        await js.publish(f"{name}.x", f"m{n}".encode())
    source = flow(
        f"""
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.messagesCount }}}}"
        triggers:
          - id: watch
            type: io.kestra.plugin.nats.core.Trigger
            url: {nats_server.url}
            subject: {name}.>
            durableId: {name}-batch
            maxRecords: 3
            pollDuration: PT0.5S
            interval: PT1S
        """,
        name,
    )
    async with running_triggers(h, source) as th:
        [execution] = await th.wait_for(1)
    assert execution.trigger["variables"]["messagesCount"] == 3
