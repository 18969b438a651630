"""The service fixtures work: each test really uses its private service.

These are also the pattern for later end-to-end tests.
"""

from __future__ import annotations

import asyncio
import re

import aiodocker
import aiomqtt
import asyncpg

from tests.services import Chromium, Mosquitto


async def test_postgres_is_15_or_newer_and_runs_merge(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        version = await conn.fetchval("select version()")
        match = re.match(r"PostgreSQL (\d+)", version)
        assert match is not None, version
        assert int(match.group(1)) >= 15
        await conn.execute("create temp table kv (k text primary key, v int not null)")
        await conn.execute("insert into kv values ('a', 1)")
        await conn.execute(
            """
            merge into kv using (values ('a', 10), ('b', 20)) as src(k, v) on kv.k = src.k
            when matched then update set v = kv.v + src.v
            when not matched then insert values (src.k, src.v)
            """
        )
        rows = await conn.fetch("select k, v from kv order by k")
        assert [tuple(r) for r in rows] == [("a", 11), ("b", 20)]
    finally:
        await conn.close()


async def test_mosquitto_delivers_qos1_message(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as subscriber:
        await subscriber.subscribe("podium/test/qos1", qos=1)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as publisher:
            await publisher.publish("podium/test/qos1", b"hello", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(subscriber.messages))
    assert message.payload == b"hello"
    assert message.qos == 1


async def test_mosquitto_restart_keeps_persistent_sessions(mosquitto: Mosquitto) -> None:
    def subscriber() -> aiomqtt.Client:
        return aiomqtt.Client(
            mosquitto.host, mosquitto.port, identifier="podium-persist", clean_session=False
        )

    async with subscriber() as client:
        await client.subscribe("podium/test/persist", qos=1)
    await asyncio.to_thread(mosquitto.restart)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as publisher:
        await publisher.publish("podium/test/persist", b"queued", qos=1)
    async with subscriber() as client, asyncio.timeout(10):
        message = await anext(aiter(client.messages))
    assert message.payload == b"queued"


async def test_podman_runs_python_image(docker_host: str, python_image: str) -> None:
    async with aiodocker.Docker(url=docker_host) as docker:
        images = await docker.images.list()
        assert any(python_image in (image.get("RepoTags") or []) for image in images)
        container = await docker.containers.run(
            config={"Image": python_image, "Cmd": ["python3", "-c", "print(42)"]}
        )
        try:
            result = await container.wait(timeout=60)
            assert result["StatusCode"] == 0
            output = await container.log(stdout=True, stderr=True)
        finally:
            await container.delete(force=True)
    assert "".join(output).strip() == "42"


async def test_chromium_dumps_dom_of_data_url(chromium: Chromium) -> None:
    page = "data:text/html,<title>podium</title><p id=greeting>hello from podium</p>"
    proc = await asyncio.create_subprocess_exec(
        *chromium.argv("--dump-dom", page),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert '<p id="greeting">hello from podium</p>' in stdout.decode()
