"""MQTT: RealtimeTrigger, the batching Trigger and the Publish task, against a real Mosquitto.

Every test uses its own topics and client ids: the broker (and the sessions it keeps)
is shared by the whole test session.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import os
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.config.settings import Settings
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow
from daemon.sdk.clock import FakeClock
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import Emit
from daemon.sdk.state import State
from tests.harness import Harness, eventually, problems, running_triggers
from tests.services import Mosquitto

TRIGGER_LOG = "daemon.engine.supervisor"


@pytest.fixture
def name() -> str:
    """A topic prefix and client-id part no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


async def run_cli(*argv: str, cwd: Path | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"{argv[0]} failed: {out.decode()}"
    return out.decode()


async def pub(broker: Mosquitto, topic: str, message: str, *options: str) -> None:
    await run_cli(
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
        *options,
    )


async def subscribed(h: Harness, flow: Flow, trigger_id: str = "mqtt") -> None:
    """Wait until the trigger's subscription is recorded, i.e. acknowledged by the broker."""
    key = f"trigger:{flow.namespace}:{flow.id}:{trigger_id}:session"

    async def recorded() -> bool:
        return await h.store.state.get(key) is not None

    await eventually(recorded)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(text in record.getMessage() for record in caplog.records)

    return check


def realtime(
    broker: Mosquitto,
    name: str,
    topic: str,
    *,
    serde: str = "STRING",
    message: str = "got {{ trigger.payload }}",
    extra: str = "",
) -> str:
    return textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{message}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: tcp://{broker.host}:{broker.port}
            clientId: {name}
            topic: {topic}
            serdeType: {serde}
        """) + textwrap.indent(textwrap.dedent(extra), "    ")


def variables(execution: Execution) -> dict[str, Any]:
    """What the flow reads as `trigger.*`."""
    assert execution.trigger is not None
    assert execution.trigger["type"].startswith("io.kestra.plugin.mqtt.")
    found: dict[str, Any] = execution.trigger["variables"]
    return found


async def logs_of(h: Harness, executions: list[Execution]) -> list[str]:
    out = []
    for execution in executions:
        ended = await h.engine.wait(execution.id)
        assert ended.state.current == State.SUCCESS
        out += await h.logs(ended)
    return out


# -- RealtimeTrigger ---------------------------------------------------------------------


async def test_each_qos1_message_starts_one_execution_with_its_payload(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    async with running_triggers(h, realtime(mosquitto, name, f"{name}/in")) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/in", "first")
        await pub(mosquitto, f"{name}/in", "second")
        executions = await th.wait_for(2)
        assert await logs_of(h, executions) == ["got first", "got second"]
        trigger = variables(executions[0])
        assert {k: trigger[k] for k in ("topic", "qos", "retain", "payload")} == {
            "topic": f"{name}/in",
            "qos": 1,
            "retain": False,
            "payload": "first",
        }
        assert isinstance(trigger["id"], int) and trigger["id"] > 0


async def test_json_serde_gives_the_flow_a_map(h: Harness, mosquitto: Mosquitto, name: str) -> None:
    source = realtime(
        mosquitto,
        name,
        f"{name}/json",
        serde="JSON",
        message="{{ trigger.payload.sensor }}={{ trigger.payload.value }}",
    )
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/json", '{"sensor": "cpu", "value": 0.5}')
        [execution] = await th.wait_for(1)
        assert await logs_of(h, [execution]) == ["cpu=0.5"]
        assert variables(execution)["payload"] == {"sensor": "cpu", "value": 0.5}


async def test_bytes_serde_gives_base64_text(h: Harness, mosquitto: Mosquitto, name: str) -> None:
    async with running_triggers(h, realtime(mosquitto, name, f"{name}/raw", serde="BYTES")) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/raw", "hi!")
        [execution] = await th.wait_for(1)
        assert await logs_of(h, [execution]) == ["got aGkh"]


async def test_wildcard_topics_match_whole_levels(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    source = realtime(
        mosquitto, name, f"[{name}/+/temp, {name}/alarm/#]", message="{{ trigger.topic }}"
    )
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        for topic in ("kitchen/temp", "kitchen/humidity", "alarm/door/front", "alarm"):
            await pub(mosquitto, f"{name}/{topic}", "x")
        executions = await th.wait_for(3)
        await pub(mosquitto, f"{name}/sentinel/temp", "x")
        executions = await th.wait_for(4)
        assert await logs_of(h, executions) == [
            f"{name}/kitchen/temp",
            f"{name}/alarm/door/front",
            f"{name}/alarm",
            f"{name}/sentinel/temp",
        ]


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_messages_published_while_stopped_run_after_restart_and_none_twice(
    h: Harness, mosquitto: Mosquitto, name: str, version: str
) -> None:
    source = realtime(mosquitto, name, f"{name}/q", extra=f"version: {version}\n")
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await th.triggers.stop_all()
        for n in range(3):
            await pub(mosquitto, f"{name}/q", f"offline {n}")
        th.triggers.start(th.flow)
        await th.wait_for(3)
        await pub(mosquitto, f"{name}/q", "sentinel")
        executions = await th.wait_for(4)
        await th.triggers.stop_all()
        th.triggers.start(th.flow)
        await pub(mosquitto, f"{name}/q", "after second restart")
        executions = await th.wait_for(5)
        assert await logs_of(h, executions) == [
            "got offline 0",
            "got offline 1",
            "got offline 2",
            "got sentinel",
            "got after second restart",
        ]


async def test_retained_message_is_not_run_again_when_the_trigger_restarts(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    await pub(mosquitto, f"{name}/config", "retained", "-r")
    async with running_triggers(h, realtime(mosquitto, name, f"{name}/config")) as th:
        [first] = await th.wait_for(1)
        assert variables(first)["retain"] is True
        await th.triggers.stop_all()
        th.triggers.start(th.flow)
        await pub(mosquitto, f"{name}/config", "live")
        executions = await th.wait_for(2)
        assert await logs_of(h, executions) == ["got retained", "got live"]
    await run_cli(
        "mosquitto_pub",
        "-h",
        mosquitto.host,
        "-p",
        str(mosquitto.port),
        "-r",
        "-n",
        "-t",
        f"{name}/config",
    )  # clears the retained message


def crashing_trigger(
    h: Harness, flow: Flow, die: Callable[[Emit, Mapping[str, Any]], Awaitable[Execution]]
) -> asyncio.Task[None]:
    """The flow's trigger running as the daemon runs it, but with `die` around its emit."""
    settings = Settings(data_dir=h.engine.data_dir)
    trigger = flow.triggers[0]
    supervisor = h.engine.supervisor(WebhookRegistry(), settings.allowed_paths)
    emit = supervisor.emitter(flow, trigger)
    ctx = supervisor.context(flow, trigger)

    async def dying_emit(
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> Execution:
        return await die(emit, variables)

    return asyncio.create_task(trigger.run(dying_emit, ctx))


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_message_redelivered_after_a_crash_between_store_and_ack_runs_once(
    h: Harness, mosquitto: Mosquitto, name: str, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    source = realtime(mosquitto, name, f"{name}/crash", extra=f"version: {version}\n")
    flow = await h.flow(source)
    stored = asyncio.Event()

    async def store_then_die(emit: Emit, variables: Mapping[str, Any]) -> Execution:
        await emit({}, variables)
        stored.set()
        await asyncio.Event().wait()  # podium dies here: emit never returns, nothing is acked
        raise AssertionError("unreachable")

    crashing = crashing_trigger(h, flow, store_then_die)
    await subscribed(h, flow)
    await pub(mosquitto, f"{name}/crash", "once")
    async with asyncio.timeout(20):
        await stored.wait()
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing
    await h.engine.drain()  # the stored execution ends before the trigger comes back

    async with running_triggers(h, source) as th:
        await pub(mosquitto, f"{name}/crash", "sentinel")
        [execution] = await th.wait_for(1)
        assert await logs_of(h, [execution]) == ["got sentinel"]
    docs, total = await h.store.search_executions(namespace="mqtt.test", flow_id=name)
    assert total == 2
    assert sorted(d["trigger"]["variables"]["payload"] for d in docs) == ["once", "sentinel"]
    assert any(
        "was delivered again; its execution" in r.getMessage()
        and "none is started" in r.getMessage()
        for r in caplog.records
    )


async def test_message_whose_execution_was_never_stored_is_delivered_again(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    source = realtime(mosquitto, name, f"{name}/lost")
    flow = await h.flow(source)
    received = asyncio.Event()

    async def die_before_storing(emit: Emit, variables: Mapping[str, Any]) -> Execution:
        received.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    crashing = crashing_trigger(h, flow, die_before_storing)
    await subscribed(h, flow)
    await pub(mosquitto, f"{name}/lost", "keep me")
    async with asyncio.timeout(20):
        await received.wait()
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing

    async with running_triggers(h, source) as th:
        await pub(mosquitto, f"{name}/lost", "sentinel")
        executions = await th.wait_for(2)
        assert await logs_of(h, executions) == ["got keep me", "got sentinel"]


async def test_trigger_reconnects_when_the_broker_restarts(
    h: Harness, mosquitto: Mosquitto, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    async with running_triggers(h, realtime(mosquitto, name, f"{name}/r")) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/r", "before")
        await th.wait_for(1)
        await asyncio.to_thread(mosquitto.restart)
        await pub(mosquitto, f"{name}/r", "after")  # queued in the persisted session
        executions = await th.wait_for(2)
        assert await logs_of(h, executions) == ["got before", "got after"]
    lost = [r.getMessage() for r in caplog.records if "lost the connection" in r.getMessage()]
    assert lost and lost[0].startswith(
        f"mqtt.test.{name} trigger mqtt: lost the connection to "
        f"tcp://{mosquitto.host}:{mosquitto.port} ("
    )
    assert lost[0].endswith("); reconnecting, backing off up to 30s")
    assert len(lost) == 1
    assert any(
        r.getMessage().startswith(
            f"mqtt.test.{name} trigger mqtt: connected to tcp://{mosquitto.host}:{mosquitto.port} "
            "again after "
        )
        for r in caplog.records
    )


async def test_broker_unreachable_at_start_is_retried_until_it_is_up(
    h: Harness, mosquitto: Mosquitto, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    await asyncio.to_thread(mosquitto.stop)
    try:
        async with running_triggers(h, realtime(mosquitto, name, f"{name}/late")) as th:
            await eventually(logged(caplog, "cannot connect to"))
            await asyncio.to_thread(mosquitto.start)
            await subscribed(h, th.flow)
            await pub(mosquitto, f"{name}/late", "finally")
            [execution] = await th.wait_for(1)
            assert await logs_of(h, [execution]) == ["got finally"]
    finally:
        if not mosquitto.running:
            await asyncio.to_thread(mosquitto.start)
    [refused] = [r.getMessage() for r in caplog.records if "cannot connect to" in r.getMessage()]
    assert refused.startswith(
        f"mqtt.test.{name} trigger mqtt: cannot connect to "
        f"tcp://{mosquitto.host}:{mosquitto.port} ("
    )


async def test_malformed_json_payload_starts_no_execution_and_is_logged(
    h: Harness, mosquitto: Mosquitto, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    async with running_triggers(h, realtime(mosquitto, name, f"{name}/j", serde="JSON")) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/j", "{not json")
        await pub(mosquitto, f"{name}/j", '"sentinel"')
        [execution] = await th.wait_for(1)
        assert await logs_of(h, [execution]) == ["got sentinel"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"mqtt.test.{name} trigger mqtt: the payload of a message on topic '{name}/j' is not "
        "valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)); no execution started"
    ]


async def test_message_outside_the_trigger_conditions_starts_no_execution(
    h: Harness, mosquitto: Mosquitto, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    source = realtime(
        mosquitto,
        name,
        f"{name}/c",
        extra="""
        conditions:
          - type: io.kestra.plugin.core.condition.DateTimeBetween
            before: "2000-01-01T00:00:00Z"
        """,
    )
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/c", "too late")
        await eventually(logged(caplog, "conditions do not hold"))
        assert th.executions == []
    assert [r.getMessage() for r in caplog.records if "conditions" in r.getMessage()] == [
        f"mqtt.test.{name} trigger mqtt: the trigger's conditions do not hold; the message "
        f"on topic '{name}/c' starts no execution"
    ]


async def test_when_on_the_payload_picks_the_messages_that_start_an_execution(
    h: Harness, mosquitto: Mosquitto, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Kestra 2.0's `when` on a realtime trigger (docs migration-guide/v2.0.0/
    trigger-conditions-redesign: every trigger type gains it) renders with the message as
    `trigger`: its payload, topic, qos; a refused message is acknowledged and logged."""
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    source = realtime(
        mosquitto,
        name,
        f"{name}/+/w",
        serde="JSON",
        message="{{ trigger.payload.kind }} on {{ trigger.topic }}",
        extra="""
        when: "{{ trigger.payload.kind == 'order' and trigger.topic | endsWith('/shop/w') }}"
        """,
    )
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/shop/w", '{"kind": "refund"}')
        await pub(mosquitto, f"{name}/depot/w", '{"kind": "order"}')
        await pub(mosquitto, f"{name}/shop/w", '{"kind": "order"}')
        [execution] = await th.wait_for(1)
        await pub(mosquitto, f"{name}/shop/w", '{"kind": "order", "n": 2}')
        executions = await th.wait_for(2)
        assert executions[0] is execution
        assert await logs_of(h, executions) == [f"order on {name}/shop/w"] * 2
    refused = [r.getMessage() for r in caplog.records if "do not hold" in r.getMessage()]
    assert refused == [
        f"mqtt.test.{name} trigger mqtt: the trigger's conditions do not hold; the message "
        f"on topic '{name}/{where}/w' starts no execution"
        for where in ("shop", "depot")
    ]


# -- the batching Trigger ----------------------------------------------------------------


def batch(broker: Mosquitto, name: str, extra: str) -> str:
    return textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.messagesCount }}}} {{{{ trigger.uri }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.Trigger
            server: tcp://{broker.host}:{broker.port}
            clientId: {name}
            topic: {name}/b
        """) + textwrap.indent(textwrap.dedent(extra), "    ")


async def batch_records(h: Harness, execution: Execution) -> list[dict[str, object]]:
    text = await h.engine.resources.storage.read_text(variables(execution)["uri"])
    return [json.loads(line) for line in text.splitlines()]


async def test_batch_trigger_starts_one_execution_per_max_records_messages(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    async with running_triggers(h, batch(mosquitto, name, "maxRecords: 3\n")) as th:
        await subscribed(h, th.flow)
        for n in range(7):
            await pub(mosquitto, f"{name}/b", json.dumps({"n": n}))
        executions = await th.wait_for(2)
        assert [variables(e)["messagesCount"] for e in executions] == [3, 3]
        first = await batch_records(h, executions[0])
        assert [r["payload"] for r in first] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert {(r["topic"], r["qos"], r["retain"]) for r in first} == {(f"{name}/b", 1, False)}
        second = await batch_records(h, executions[1])
        assert [r["payload"] for r in second] == [{"n": 3}, {"n": 4}, {"n": 5}]
        uri = str(variables(executions[0])["uri"])
        assert uri.startswith(f"kestra:///mqtt/test/{name}/triggers/mqtt/")
        assert uri.endswith(".ion")
        assert len(await logs_of(h, executions)) == 2


async def test_batch_when_sees_the_batch_and_a_refused_batch_is_not_delivered_again(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    """A batching trigger's `when` renders with what its execution would get:
    `trigger.messagesCount` and `trigger.uri` (whose lines `read()` reads). A batch it
    refuses starts nothing, and its messages are acknowledged: they do not come back."""
    source = batch(
        mosquitto,
        name,
        """\
        maxRecords: 2
        when: "{{ not (read(trigger.uri) contains 'skip') and trigger.messagesCount == 2 }}"
        """,
    )
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        for payload in ("a", "skip", "b", "c"):
            await pub(mosquitto, f"{name}/b", json.dumps(payload))
        [execution] = await th.wait_for(1)
        assert [r["payload"] for r in await batch_records(h, execution)] == ["b", "c"]
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await pub(mosquitto, f"{name}/b", '"d"')
        await pub(mosquitto, f"{name}/b", '"e"')
        [execution] = await th.wait_for(1)
        assert [r["payload"] for r in await batch_records(h, execution)] == ["d", "e"]
    _, total = await h.store.search_executions(namespace="mqtt.test", flow_id=name)
    assert total == 2


async def test_batch_redelivered_after_a_crash_between_store_and_ack_runs_once(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    source = batch(mosquitto, name, "maxRecords: 2\n")
    flow = await h.flow(source)
    stored = asyncio.Event()

    async def store_then_die(emit: Emit, variables: Mapping[str, Any]) -> Execution:
        await emit({}, variables)
        stored.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    crashing = crashing_trigger(h, flow, store_then_die)
    await subscribed(h, flow)
    await pub(mosquitto, f"{name}/b", "1")
    await pub(mosquitto, f"{name}/b", "2")
    async with asyncio.timeout(20):
        await stored.wait()
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing
    await h.engine.drain()

    async with running_triggers(h, source) as th:
        await pub(mosquitto, f"{name}/b", "3")
        await pub(mosquitto, f"{name}/b", "4")
        [execution] = await th.wait_for(1)
        assert [r["payload"] for r in await batch_records(h, execution)] == [3, 4]
    _, total = await h.store.search_executions(namespace="mqtt.test", flow_id=name)
    assert total == 2


async def test_batch_closes_max_duration_after_its_first_message(
    tmp_path: Path, mosquitto: Mosquitto, name: str
) -> None:
    clock = FakeClock()
    h = await Harness.open(tmp_path, clock=clock)
    try:
        source = batch(mosquitto, name, "maxRecords: 100\nmaxDuration: PT30S\n")
        async with running_triggers(h, source) as th:
            await subscribed(h, th.flow)
            await pub(mosquitto, f"{name}/b", "1")
            await pub(mosquitto, f"{name}/b", "2")

            async def timer_set() -> bool:  # at the batch's first message
                return clock.sleeping > 0

            await eventually(timer_set)
            await clock.advance(29)
            assert th.executions == []
            async with asyncio.timeout(20):
                while not th.executions:
                    await clock.advance(1)
                    await asyncio.sleep(0.02)
            [execution] = th.executions
            assert variables(execution)["messagesCount"] == 2
            assert [r["payload"] for r in await batch_records(h, execution)] == [1, 2]
    finally:
        await h.close()


# -- Publish -----------------------------------------------------------------------------


async def make_session(broker: Mosquitto, client_id: str, topic: str) -> None:
    """A persistent mosquitto_sub session, so what is published next waits for it."""
    await run_cli(
        "mosquitto_sub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-c",
        "-i",
        client_id,
        "-t",
        topic,
        "-E",
    )


async def drain_session(broker: Mosquitto, client_id: str, topic: str, count: int) -> list[str]:
    out = await run_cli(
        "mosquitto_sub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-c",
        "-i",
        client_id,
        "-t",
        topic,
        "-C",
        str(count),
        "-W",
        "20",
    )
    return out.splitlines()


def publish_flow(broker: Mosquitto, name: str, properties: str) -> str:
    return textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: publish
            type: io.kestra.plugin.mqtt.Publish
            server: tcp://{broker.host}:{broker.port}
            clientId: {name}-producer
            topic: "{name}/{{{{ flow.id }}}}"
        """) + textwrap.indent(textwrap.dedent(properties), "    ")


async def test_publish_map_list_and_text_reach_a_subscriber(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    topic = f"{name}/{name}"
    await make_session(mosquitto, f"{name}-sub", topic)
    ex = await h.run(
        publish_flow(
            mosquitto,
            name,
            """
        serdeType: JSON
        from:
          - {"sensor": "cpu", "value": "{{ 1 + 1 }}"}
          - [1, 2]
          - plain
        """,
        )
    )
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    assert ex.task_runs[0].outputs == {"messagesCount": 3}
    assert await drain_session(mosquitto, f"{name}-sub", topic, 3) == [
        '{"sensor": "cpu", "value": "2"}',
        "[1, 2]",
        '"plain"',
    ]

    # mosquitto_sub -C may leave before acknowledging its last messages: a fresh session
    await make_session(mosquitto, f"{name}-sub2", topic)
    ex = await h.run(
        publish_flow(
            mosquitto,
            name,
            """
        serdeType: STRING
        from: "hello {{ flow.namespace }}"
        """,
        )
    )
    assert ex.task_runs[0].outputs == {"messagesCount": 1}
    assert await drain_session(mosquitto, f"{name}-sub2", topic, 1) == ["hello mqtt.test"]


async def test_publish_sends_each_line_of_a_stored_file(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    topic = f"{name}/{name}"
    await make_session(mosquitto, f"{name}-sub", topic)
    lines = '{"n": 1}\n"two"\n\n3\n'
    uri = await h.engine.resources.storage.put(lines.encode(), prefix="/x", name="rows.ion")
    ex = await h.run(publish_flow(mosquitto, name, f"serdeType: STRING\nfrom: '{uri}'\n"))
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    assert ex.task_runs[0].outputs == {"messagesCount": 3}
    assert await drain_session(mosquitto, f"{name}-sub", topic, 3) == ['{"n": 1}', "two", "3"]


async def test_published_messages_round_trip_into_a_trigger(
    h: Harness, mosquitto: Mosquitto, name: str
) -> None:
    source = realtime(
        mosquitto,
        name,
        f"{name}-pub/{name}-pub",
        serde="JSON",
        message="{{ trigger.payload.greeting }}",
    )
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        ex = await h.run(
            publish_flow(
                mosquitto,
                f"{name}-pub",
                """
            serdeType: JSON
            retain: false
            qos: 2
            from: {"greeting": "hello from podium"}
            """,
            )
        )
        assert ex.state.current == State.SUCCESS, await h.logs(ex)
        [execution] = await th.wait_for(1)
        assert await logs_of(h, [execution]) == ["hello from podium"]


async def test_publish_of_a_file_with_a_line_that_is_not_json_fails(h: Harness, name: str) -> None:
    uri = await h.engine.resources.storage.put(
        b'{"ok": 1}\nnot json\n', prefix="/x", name="rows.ion"
    )
    ex = await h.run(
        textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: publish
            type: io.kestra.plugin.mqtt.Publish
            server: tcp://127.0.0.1:1
            topic: a
            serdeType: JSON
            from: "{uri}"
        """)
    )
    assert ex.state.current == State.FAILED
    assert await h.logs(ex, level="ERROR") == [
        f"line 2 of {uri} is not JSON (Expecting value: line 1 column 1 (char 0))"
    ]


async def test_publish_bytes_needs_base64_text(h: Harness, name: str) -> None:
    ex = await h.run(
        textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: publish
            type: io.kestra.plugin.mqtt.Publish
            server: tcp://127.0.0.1:1
            topic: a
            serdeType: BYTES
            from: "not base64!"
        """)
    )
    assert ex.state.current == State.FAILED
    assert await h.logs(ex, level="ERROR") == [
        "serdeType BYTES needs base64 text, got 'not base64!'"
    ]


async def test_publish_to_an_unreachable_broker_fails_the_task(h: Harness, name: str) -> None:
    from services import free_port

    ex = await h.run(
        textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: publish
            type: io.kestra.plugin.mqtt.Publish
            server: tcp://127.0.0.1:{free_port()}
            clientId: {name}
            topic: a
            serdeType: STRING
            from: x
        """)
    )
    assert ex.state.current == State.FAILED
    [message] = await h.logs(ex, level="ERROR")
    assert message.startswith("cannot publish to tcp://127.0.0.1:")
    assert "Connection refused" in message


# -- TLS ---------------------------------------------------------------------------------


@dataclass
class TlsBroker:
    port: int
    ca: Path


@pytest.fixture
async def tls_broker(tmp_path: Path) -> AsyncIterator[TlsBroker]:
    """A Mosquitto with only a TLS listener, its certificate signed by a throw-away CA."""
    from services import free_port

    certs = tmp_path / "certs"
    await asyncio.to_thread(certs.mkdir)
    await asyncio.to_thread((certs / "san.ext").write_text, "subjectAltName=IP:127.0.0.1\n")
    for argv in (
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=podium test CA",
        ],
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    ):
        await run_cli("openssl", *argv, cwd=certs)
    port = free_port()
    conf = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        f"cafile {certs / 'ca.crt'}",
        f"certfile {certs / 'server.crt'}",
        f"keyfile {certs / 'server.key'}",
    ]
    if os.geteuid() == 0:
        conf.append("user root")  # else it drops to `mosquitto`, who cannot read tmp_path
    await asyncio.to_thread((tmp_path / "tls.conf").write_text, "\n".join(conf) + "\n")
    proc = await asyncio.create_subprocess_exec(
        "mosquitto",
        "-c",
        str(tmp_path / "tls.conf"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    try:
        await eventually(listening)
        yield TlsBroker(port, certs / "ca.crt")
    finally:
        proc.terminate()
        await proc.wait()


async def test_trigger_and_publish_work_over_tls_with_a_private_ca(
    h: Harness, tls_broker: TlsBroker, name: str
) -> None:
    source = textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.payload }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: ssl://127.0.0.1:{tls_broker.port}
            clientId: {name}
            crt: {tls_broker.ca}
            topic: {name}/tls
            serdeType: STRING
        """)
    pem = await asyncio.to_thread(tls_broker.ca.read_text)
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await run_cli(
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(tls_broker.port),
            "--cafile",
            str(tls_broker.ca),
            "-q",
            "1",
            "-t",
            f"{name}/tls",
            "-m",
            "from the cli",
        )
        await th.wait_for(1)
        ex = await h.run(
            textwrap.dedent(f"""
            id: {name}-pub
            namespace: mqtt.test
            inputs:
              - id: ca
                type: STRING
            tasks:
              - id: publish
                type: io.kestra.plugin.mqtt.Publish
                server: ssl://127.0.0.1:{tls_broker.port}
                clientId: {name}-pub
                crt: "{{{{ inputs.ca }}}}"
                topic: {name}/tls
                serdeType: STRING
                from: from the task
            """),
            {"ca": pem},
        )
        assert ex.state.current == State.SUCCESS, await h.logs(ex)
        executions = await th.wait_for(2)
        assert await logs_of(h, executions) == ["from the cli", "from the task"]


# paho leaves the socket of a failed TLS handshake to the garbage collector: collected
# here, in this test, so that its ResourceWarning does not fail whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_tls_against_an_unknown_ca_is_refused_and_retried(
    h: Harness, tls_broker: TlsBroker, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    source = textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: ssl://127.0.0.1:{tls_broker.port}
            topic: x
        """)
    async with running_triggers(h, source):
        await eventually(logged(caplog, "cannot connect to"))
    [refused] = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert "CERTIFICATE_VERIFY_FAILED" in refused
    gc.collect()


# -- configuration errors ----------------------------------------------------------------


TRIGGER = """
    id: f
    namespace: ns
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    triggers:
      - id: t
        type: io.kestra.plugin.mqtt.{kind}
        {props}
    """


def trigger_problems(props: str, kind: str = "RealtimeTrigger") -> list[str]:
    return problems(TRIGGER.format(kind=kind, props=props.replace("\n", "\n        ")))


def test_bad_server_url_is_a_load_error() -> None:
    assert trigger_problems("server: http://broker:1883\ntopic: a") == [
        "f.yaml:10:13: triggers[0].server: must be tcp://host:port or ssl://host:port "
        "(got 'http://broker:1883')"
    ]
    assert trigger_problems("server: tcp://broker:99999\ntopic: a") == [
        "f.yaml:10:13: triggers[0].server: the port must be a number from 1 to 65535 "
        "(got 'tcp://broker:99999')"
    ]
    assert trigger_problems("server: tcp://:1883\ntopic: a") == [
        "f.yaml:10:13: triggers[0].server: the server URL has no host (got 'tcp://:1883')"
    ]


def test_qos_serde_version_and_topic_are_checked_at_load() -> None:
    assert trigger_problems(
        "server: tcp://h\ntopic: [ok/+, a/#/b, x+]\nqos: 3\nserdeType: XML\nversion: V4"
    ) == [
        "f.yaml:11:19: triggers[0].topic[1]: '#' must be a whole level and the last one "
        "(got 'a/#/b')",
        "f.yaml:11:26: triggers[0].topic[2]: '+' must be a whole level (got 'x+')",
        "f.yaml:12:10: triggers[0].qos: Input should be 0, 1 or 2 (got 3)",
        "f.yaml:13:16: triggers[0].serdeType: Input should be 'STRING', 'JSON' or 'BYTES' "
        "(got 'XML')",
        "f.yaml:14:14: triggers[0].version: Input should be 'V3' or 'V5' (got 'V4')",
    ]
    assert trigger_problems("server: tcp://h\ntopic: []", kind="Trigger") == [
        "f.yaml:11:12: triggers[0].topic: at least one topic is needed (got [])"
    ]
    assert trigger_problems("server: tcp://h\ntopic: a\nmaxRecords: 0", kind="Trigger") == [
        "f.yaml:12:17: triggers[0].maxRecords: Input should be greater than or equal to 1 (got 0)"
    ]


def test_kestra_names_and_defaults_load() -> None:
    flow = load_flow(
        TRIGGER.format(
            kind="Trigger",
            props=(
                "server: ssl://broker\n        clientId: c\n        topic: a/+\n"
                "        mqttVersion: V3\n        maxRecords: 10\n        maxDuration: PT5S"
            ),
        ),
        "f.yaml",
    )
    trigger = flow.triggers[0]
    assert trigger.model_dump(include={"version", "qos", "serde_type", "topic"}) == {
        "version": "V3",
        "qos": 1,
        "serde_type": "JSON",
        "topic": ["a/+"],
    }


def test_publish_with_bad_properties_is_a_load_error() -> None:
    assert problems("""
        id: f
        namespace: ns
        tasks:
          - id: p
            type: io.kestra.plugin.mqtt.Publish
            server: ws://broker
            topic: a/+
            qos: 3
            serdeType: AVRO
            from: x
        """) == [
        "f.yaml:6:13: tasks[0].server: must be tcp://host:port or ssl://host:port "
        "(got 'ws://broker')",
        "f.yaml:7:12: tasks[0].topic: a published topic cannot hold the wildcards '+' or '#' "
        "(got 'a/+')",
        "f.yaml:8:10: tasks[0].qos: Input should be 0, 1 or 2 (got 3)",
        "f.yaml:9:16: tasks[0].serdeType: Input should be 'STRING', 'JSON' or 'BYTES' (got 'AVRO')",
    ]


# -- shared subscriptions and cluster nodes -------------------------------------------------


def test_shared_subscriptions_are_checked_at_load() -> None:
    assert trigger_problems(
        "server: tcp://h\ntopic: [$share/g/a/+, $share//a, $share/g+/a, $share/g, $share/g/a/#/b]"
    ) == [
        "f.yaml:11:27: triggers[0].topic[1]: a shared subscription is $share/<group>/<filter>, "
        "with a group name that holds neither '+' nor '#' (got '$share//a')",
        "f.yaml:11:38: triggers[0].topic[2]: a shared subscription is $share/<group>/<filter>, "
        "with a group name that holds neither '+' nor '#' (got '$share/g+/a')",
        "f.yaml:11:51: triggers[0].topic[3]: a shared subscription is $share/<group>/<filter>: "
        "the filter is missing (got '$share/g')",
        "f.yaml:11:61: triggers[0].topic[4]: '#' must be a whole level and the last one "
        "(got '$share/g/a/#/b')",
    ]


def test_only_a_trigger_on_shared_subscriptions_alone_may_run_on_every_node() -> None:
    def exclusive(topics: str, kind: str = "RealtimeTrigger") -> bool:
        flow = load_flow(
            TRIGGER.format(kind=kind, props=f"server: tcp://h\n        topic: {topics}"), "f.yaml"
        )
        return flow.triggers[0].exclusive()

    assert exclusive("a/b") is True
    assert exclusive("[$share/g/a, $share/g/b/#]") is False
    assert exclusive("[$share/g/a, a/b]") is True  # every node would get a/b
    assert exclusive("$share/g/a", kind="Trigger") is False


async def shared_node(tmp_path: Path, node_id: str) -> Harness:
    harness = await Harness.open(tmp_path / node_id)
    harness.engine.options.node_id = node_id
    return harness


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_a_shared_subscription_splits_messages_between_nodes_none_twice(
    tmp_path: Path, mosquitto: Mosquitto, name: str, version: str
) -> None:
    source = textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.payload }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: tcp://{mosquitto.host}:{mosquitto.port}
            topic: $share/{name}/{name}/jobs/+
            serdeType: STRING
            version: {version}
        """)
    nodes = [await shared_node(tmp_path, "node-a"), await shared_node(tmp_path, "node-b")]
    try:
        async with running_triggers(nodes[0], source) as a, running_triggers(nodes[1], source) as b:
            for node in nodes:
                key = f"trigger:mqtt.test:{name}:mqtt:session:{node.engine.options.node_id}"
                await eventually(lambda node=node, key=key: has_state(node, key))

            async def reached(total: int) -> bool:
                return len(a.executions) + len(b.executions) >= total

            count = 20
            for n in range(count):
                await pub(mosquitto, f"{name}/jobs/{n % 3}", f"job {n}")
            await eventually(lambda: reached(count))
            payloads = [variables(e)["payload"] for e in [*a.executions, *b.executions]]
            assert sorted(payloads) == sorted(f"job {n}" for n in range(count))
            assert a.executions and b.executions  # the broker gave each node its share
            await a.finished()
            await b.finished()
            # Nothing more comes: the next message is the only one after the 20.
            await pub(mosquitto, f"{name}/jobs/0", "sentinel")
            await eventually(lambda: reached(count + 1))
            assert len(a.executions) + len(b.executions) == count + 1
    finally:
        for node in nodes:
            await node.close()
    log = await asyncio.to_thread(mosquitto.log.read_text)
    for node_id in ("node-a", "node-b"):  # one client, one session per node
        assert f" as podium-mqtt.test.{name}.mqtt-{node_id} " in log


async def has_state(h: Harness, key: str) -> bool:
    return await h.store.state.get(key) is not None


async def test_an_exclusive_trigger_keeps_its_client_id_on_a_cluster_node(
    tmp_path: Path, mosquitto: Mosquitto, name: str
) -> None:
    """One node at a time runs it: the same client id wherever it runs keeps the session,
    and with it the messages queued while it moved."""
    node = await shared_node(tmp_path, "node-a")
    try:
        async with running_triggers(node, realtime(mosquitto, name, f"{name}/plain")) as th:
            await subscribed(node, th.flow)
            await pub(mosquitto, f"{name}/plain", "one")
            [execution] = await th.wait_for(1)
            assert await logs_of(node, [execution]) == ["got one"]
    finally:
        await node.close()
    log = await asyncio.to_thread(mosquitto.log.read_text)
    assert f" as {name} (" in log and f" as {name}-node-a " not in log


# -- templated connection properties ------------------------------------------------------


@dataclass
class PasswordBroker:
    port: int
    user: str
    password: str


@pytest.fixture
async def password_broker(tmp_path: Path) -> AsyncIterator[PasswordBroker]:
    """A Mosquitto that takes only one user with its password."""
    from services import free_port

    port, user, password = free_port(), "podium", f"pw-{uuid.uuid4().hex}"
    passwords = tmp_path / "passwords"
    await run_cli("mosquitto_passwd", "-c", "-b", str(passwords), user, password)
    conf = [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwords}"]
    if os.geteuid() == 0:
        conf.append("user root")
    await asyncio.to_thread((tmp_path / "auth.conf").write_text, "\n".join(conf) + "\n")
    proc = await asyncio.create_subprocess_exec(
        "mosquitto",
        "-c",
        str(tmp_path / "auth.conf"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    try:
        await eventually(listening)
        yield PasswordBroker(port, user, password)
    finally:
        proc.terminate()
        await proc.wait()


def secret_env(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv(f"SECRET_{key}", base64.b64encode(value.encode()).decode())


async def test_trigger_renders_server_username_and_password_from_secrets(
    h: Harness, password_broker: PasswordBroker, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_env(monkeypatch, "MQTT_HOST", "127.0.0.1")
    secret_env(monkeypatch, "MQTT_USER", password_broker.user)
    secret_env(monkeypatch, "MQTT_PASSWORD", password_broker.password)
    source = textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.payload }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: "tcp://{{{{ secret('MQTT_HOST') }}}}:{password_broker.port}"
            username: "{{{{ secret('MQTT_USER') }}}}"
            password: "{{{{ secret('MQTT_PASSWORD') }}}}"
            clientId: "{{{{ flow.id }}}}-client"
            topic: {name}/auth
            serdeType: STRING
        """)
    async with running_triggers(h, source) as th:
        await subscribed(h, th.flow)
        await run_cli(
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(password_broker.port),
            "-u",
            password_broker.user,
            "-P",
            password_broker.password,
            "-q",
            "1",
            "-t",
            f"{name}/auth",
            "-m",
            "let in",
        )
        [execution] = await th.wait_for(1)
        assert await logs_of(h, [execution]) == ["let in"]
    assert h.engine.resources.secrets.mask(f"pw is {password_broker.password}") == "pw is ******"


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (
            "http://broker",
            "invalid property after rendering: server: must be tcp://host:port or "
            "ssl://host:port (got 'http://broker')",
        ),
        (None, "secret 'MQTT_URL' is not set"),
    ],
)
async def test_a_templated_server_that_does_not_render_to_an_address_stops_the_trigger(
    h: Harness,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    secret: str | None,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger=TRIGGER_LOG)
    if secret is not None:
        secret_env(monkeypatch, "MQTT_URL", secret)
    else:
        monkeypatch.delenv("SECRET_MQTT_URL", raising=False)
    source = textwrap.dedent(f"""
        id: {name}
        namespace: mqtt.test
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.RealtimeTrigger
            server: "{{{{ secret('MQTT_URL') }}}}"
            topic: {name}/x
        """)
    async with running_triggers(h, source) as th:
        await eventually(logged(caplog, f"mqtt.test.{name} trigger mqtt stopped"))
        assert th.triggers.running(th.flow.uid) == 0
    [stopped] = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert stopped.startswith(f"mqtt.test.{name} trigger mqtt stopped: ")
    assert reason in stopped
