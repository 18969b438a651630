"""Redis tasks and list triggers against a private redis-server.

Kestra's behaviour comes from kestra-io/plugin-redis: ListPushTest, ListPopTest, SetTest,
GetTest, DeleteTest, PublishTest, list/TriggerTest and list/RealtimeTriggerTest.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from pathlib import Path

import pytest

from daemon.sdk.brokers import redis_client
from daemon.sdk.state import State
from tests.harness import Harness, problems, running_triggers
from tests.services import Redis


@pytest.fixture
def key() -> str:
    return f"k{uuid.uuid4().hex[:10]}"


def flow(body: str, name: str = "redis") -> str:
    return f"id: {name}\nnamespace: test\n" + textwrap.dedent(body)


async def test_list_push_then_pop_into_a_file(h: Harness, redis_server: Redis, key: str) -> None:
    """ListPushTest / ListPopTest: LPUSH to the head, LPOP from the head, into an Ion file;
    `maxRecords` bounds the pop."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: push
            type: io.kestra.plugin.redis.list.ListPush
            url: {redis_server.url}
            key: {key}
            serdeType: JSON
            from: [{{"n": 1}}, {{"n": 2}}, {{"n": 3}}]
          - id: pop
            type: io.kestra.plugin.redis.list.ListPop
            url: {redis_server.url}
            key: {key}
            serdeType: JSON
            maxRecords: 2
            count: 1
          - id: read
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ read(outputs.pop.uri) }}}}"
        """)
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs["push"] == {"count": 3}
    assert outputs["pop"]["count"] == 2
    text = await h.engine.resources.storage.read_text(outputs["pop"]["uri"])
    lines = text.splitlines()
    assert [json.loads(line) for line in lines] == [{"n": 3}, {"n": 2}]
    client = await redis_client(redis_server.url, 10)
    try:
        assert await client.lrange(key, 0, -1) == [b'{"n": 1}']
    finally:
        await client.aclose()


async def test_list_pop_needs_a_bound(h: Harness, redis_server: Redis, key: str) -> None:
    """ListPop: "maxDuration or maxRecords must be set to avoid infinite loop"."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: pop
            type: io.kestra.plugin.redis.list.ListPop
            url: {redis_server.url}
            key: {key}
        """)
    )
    assert execution.state.current == State.FAILED
    assert any("maxDuration or maxRecords" in line for line in await h.logs(execution))


async def test_set_get_delete(h: Harness, redis_server: Redis, key: str) -> None:
    """SetTest (get: true gives oldValue), GetTest (JSON serde), DeleteTest (count,
    failedOnMissing)."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: first
            type: io.kestra.plugin.redis.string.Set
            url: {redis_server.url}
            key: {key}
            value: {{"a": 1}}
            serdeType: JSON
          - id: second
            type: io.kestra.plugin.redis.string.Set
            url: {redis_server.url}
            key: {key}
            value: {{"a": 2}}
            serdeType: JSON
            get: true
            options:
              expirationDuration: PT1H
          - id: get
            type: io.kestra.plugin.redis.string.Get
            url: {redis_server.url}
            key: {key}
            serdeType: JSON
          - id: delete
            type: io.kestra.plugin.redis.string.Delete
            url: {redis_server.url}
            keys: [{key}, {key}-missing]
          - id: missing
            type: io.kestra.plugin.redis.string.Delete
            url: {redis_server.url}
            keys: [{key}]
            failedOnMissing: true
        """)
    )
    outputs = {tr.task_id: tr.outputs for tr in execution.task_runs}
    assert outputs["second"] == {"oldValue": '{"a": 1}'}
    assert outputs["get"] == {"key": key, "data": {"a": 2}}
    assert outputs["delete"] == {"count": 1}
    assert execution.state.current == State.FAILED  # the last delete found nothing
    assert [tr.state.current for tr in execution.task_runs][-1] == State.FAILED


async def test_get_of_a_missing_key_fails_with_failed_on_missing(
    h: Harness, redis_server: Redis, key: str
) -> None:
    """plugin-redis string/Get.java: `failedOnMissing` (default false) fails the task with
    "Missing keys '<key>'"; without it a missing key is `data: null`."""
    execution = await h.run(
        flow(f"""
        tasks:
          - id: lenient
            type: io.kestra.plugin.redis.string.Get
            url: {redis_server.url}
            key: {key}-absent
          - id: strict
            type: io.kestra.plugin.redis.string.Get
            url: {redis_server.url}
            key: {key}-absent
            failedOnMissing: true
        """)
    )
    assert execution.task_runs[0].outputs == {"key": f"{key}-absent", "data": None}
    assert execution.state.current == State.FAILED
    assert execution.error == f"task 'strict': Missing keys '{key}-absent'"


async def test_publish_reaches_a_subscriber(h: Harness, redis_server: Redis) -> None:
    """pubsub/PublishTest: each item of `from` is one message on the channel."""
    channel = f"c{uuid.uuid4().hex[:8]}"
    client = await redis_client(redis_server.url, 10)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    try:
        execution = await h.run(
            flow(f"""
            tasks:
              - id: publish
                type: io.kestra.plugin.redis.pubsub.Publish
                url: {redis_server.url}
                channel: {channel}
                from: [one, two]
            """)
        )
        assert execution.task_runs[0].outputs == {"count": 2}
        got = []
        async with asyncio.timeout(10):
            while len(got) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message:
                    got.append(message["data"])
        assert got == [b"one", b"two"]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_an_unreachable_server_fails_the_task(h: Harness, key: str) -> None:
    execution = await h.run(
        flow(f"""
        tasks:
          - id: get
            type: io.kestra.plugin.redis.string.Get
            url: redis://127.0.0.1:1/0
            key: {key}
        """)
    )
    assert execution.state.current == State.FAILED
    assert any("Redis at 127.0.0.1:1" in line for line in await h.logs(execution))


def test_a_trigger_without_key_is_a_load_error() -> None:
    found = problems(
        """
        id: f
        namespace: test
        tasks: [{id: l, type: io.kestra.plugin.core.log.Log, message: x}]
        triggers:
          - id: t
            type: io.kestra.plugin.redis.list.RealtimeTrigger
            url: redis://localhost:6379/0
        """
    )
    assert any("key" in p for p in found), found


def realtime(server: Redis, key: str, name: str, serde: str = "STRING") -> str:
    return flow(
        f"""
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.value }}}}"
        triggers:
          - id: watch
            type: io.kestra.plugin.redis.list.RealtimeTrigger
            url: {server.url}
            key: {key}
            serdeType: {serde}
        """,
        name,
    )


async def test_realtime_trigger_runs_one_execution_per_item(
    h: Harness, redis_server: Redis, key: str
) -> None:
    """list/RealtimeTriggerTest: one execution per item, `trigger.value`; a JSON item that
    does not parse starts nothing and is not left in flight."""
    client = await redis_client(redis_server.url, 10)
    try:
        async with running_triggers(h, realtime(redis_server, key, "rt", "JSON")) as th:
            await client.rpush(key, '{"n": 1}', "not json", '{"n": 2}')
            found = await th.wait_for(2)
            await th.finished()
        values = sorted(e.trigger["variables"]["value"]["n"] for e in found)
        assert values == [1, 2]
        assert await client.hlen("podium:trigger:test.rt.watch:inflight") == 0
        assert await client.llen(key) == 0
    finally:
        await client.aclose()


async def test_realtime_when_picks_items_and_a_refused_one_is_not_left_in_flight(
    h: Harness, redis_server: Redis, key: str
) -> None:
    """Kestra 2.0's `when` on every trigger (docs migration-guide/v2.0.0/
    trigger-conditions-redesign): rendered with the item as `trigger.value`; a refused
    item starts nothing and is popped all the same."""
    source = realtime(redis_server, key, "rtw", "JSON").replace(
        "serdeType: JSON", 'serdeType: JSON\n    when: "{{ trigger.value.n is even }}"'
    )
    client = await redis_client(redis_server.url, 10)
    try:
        async with running_triggers(h, source) as th:
            await client.rpush(key, '{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}')
            found = await th.wait_for(2)
            await th.finished()
            await client.rpush(key, '{"n": 6}')
            found = await th.wait_for(3)
        assert [e.trigger["variables"]["value"]["n"] for e in found] == [2, 4, 6]
        assert await client.hlen("podium:trigger:test.rtw.watch:inflight") == 0
        assert await client.llen(key) == 0
    finally:
        await client.aclose()


async def test_batch_trigger_stores_items_in_one_file(
    h: Harness, redis_server: Redis, key: str
) -> None:
    """list/TriggerTest: one execution per batch, `trigger.uri` and `trigger.count`."""
    client = await redis_client(redis_server.url, 10)
    try:
        await client.rpush(key, "a", "b", "c")
        source = flow(f"""
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "{{{{ trigger.count }}}}"
            triggers:
              - id: watch
                type: io.kestra.plugin.redis.list.Trigger
                url: {redis_server.url}
                key: {key}
                maxRecords: 3
                count: 2
                interval: PT1S
            """)
        async with running_triggers(h, source) as th:
            [execution] = await th.wait_for(1)
        variables = execution.trigger["variables"]
        assert variables["count"] == 3
        text = await h.engine.resources.storage.read_text(variables["uri"])
        assert text.splitlines() == ['"a"', '"b"', '"c"']
    finally:
        await client.aclose()


async def test_items_in_flight_after_a_crash_run_once(
    h: Harness, redis_server: Redis, key: str, tmp_path: Path
) -> None:
    """A batch recorded in flight whose execution was stored (the trigger died before it
    forgot the batch) is not run again; one whose execution was not stored is."""
    client = await redis_client(redis_server.url, 10)
    base = "podium:trigger:test.crash.watch"
    try:
        await client.set(f"{base}:epoch", "E")
        await client.set(f"{base}:seq", 2)
        await client.hset(f"{base}:inflight", mapping={"1": '["first"]', "2": '["second"]'})
        flow_source = realtime(redis_server, key, "crash")
        loaded = await h.flow(flow_source)
        from daemon.sdk.execution import derived_id

        # The first one's execution exists: its id derives from the batch's key.
        existing = await h.engine.submit(
            loaded,
            {},
            trigger={"id": "watch", "type": "x", "variables": {"value": "first"}},
            execution_id=derived_id("test", "crash", "watch", "E:1"),
        )
        await h.engine.wait(existing.id)
        async with running_triggers(h, flow_source) as th:
            await th.wait_for(1)
            await th.finished()
            await client.rpush(key, "third")
            await th.wait_for(2)
            await th.finished()
        docs, total = await h.store.search_executions(namespace="test", flow_id="crash")
        assert sorted(d["trigger"]["variables"]["value"] for d in docs) == [
            "first",
            "second",
            "third",
        ]
        assert total == 3
        assert await client.hlen(f"{base}:inflight") == 0
    finally:
        await client.aclose()
