"""The storage's retries: an object store or database that goes away for a while, and a
download whose connection breaks mid-file.

Kestra's S3 storage leans on the AWS SDK's retries (storage-s3's S3Storage uses the SDK
client with its default retry policy); podium's are its own (daemon/store/blobs.py) so
that the three backends behave alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from daemon.config.storage import MIB, StorageSettings
from daemon.store.internal_storage import Storage, open_blobs
from tests import services
from tests.harness import eventually

CUT_AFTER = 2 * MIB + 12345


class TcpGate:
    """A TCP relay on a port of its own in front of a server: `close()` stops listening and
    drops every connection through it (clients then get "connection refused", as from a
    server that went away), `open()` listens on the same port again. The server behind it
    keeps running and keeps its state, so what comes back is the same server."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self.port = services.free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(64 * 1024):
                    dst.write(chunk)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@pytest.fixture
async def s3_gate(moto_s3: services.MotoS3) -> AsyncIterator[TcpGate]:
    """The session's S3 server behind a gate: the bucket is there whenever the gate opens
    (a restarted moto would lose it, and a write retried before it was created again
    would meet NoSuchBucket rather than the outage under test)."""
    gate = TcpGate(moto_s3.host, moto_s3.port)
    await gate.open()
    try:
        yield gate
    finally:
        await gate.close()


@pytest.fixture
def private_postgres() -> Iterator[services.PostgresServer]:
    with services.postgres_server() as server:
        yield server


def s3_settings(moto: services.MotoS3, endpoint: str | None = None) -> StorageSettings:
    return StorageSettings(
        type="s3",
        endpoint=endpoint or moto.endpoint,
        region="us-east-1",
        bucket=moto.bucket,
        access_key=moto.access_key,
        secret_key=moto.secret_key,
        path_style=True,
        retries=8,
    )


async def retried(caplog: pytest.LogCaptureFixture) -> bool:
    return any("trying again" in r.getMessage() for r in caplog.records)


async def test_s3_away_for_a_while_then_back_the_write_goes_through(
    moto_s3: services.MotoS3, s3_gate: TcpGate, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "daemon.store.blobs")
    endpoint = f"http://127.0.0.1:{s3_gate.port}"
    settings = s3_settings(moto_s3, endpoint).model_copy(update={"prefix": "away"})
    storage = Storage(open_blobs(settings, tmp_path, None), tmp_path / "c")
    try:
        await s3_gate.close()
        put = asyncio.create_task(storage.put(b"kept", prefix="/ns/f", name="a.txt"))
        await eventually(lambda: retried(caplog))
        assert not put.done()
        await s3_gate.open()
        uri = await put
        assert await storage.read_text(uri) == "kept"
    finally:
        await storage.close()


async def test_postgres_away_for_a_while_then_back_the_write_goes_through(
    private_postgres: services.PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "daemon.store.blobs")
    settings = StorageSettings(type="postgres", dsn=private_postgres.dsn, retries=8)
    storage = Storage(open_blobs(settings, tmp_path, None), tmp_path / "c")
    try:
        await storage.put(b"first", prefix="/ns/f", name="a.txt")  # the pool is open
        await asyncio.to_thread(private_postgres.stop)
        put = asyncio.create_task(storage.put(b"second", prefix="/ns/f", name="b.txt"))
        await eventually(lambda: retried(caplog))
        assert not put.done()
        await asyncio.to_thread(private_postgres.start)
        uri = await put
        assert await storage.read_text(uri) == "second"
        assert await storage.read_text("kestra:///ns/f/a.txt") == "first"
    finally:
        await storage.close()


@pytest.fixture
async def cutting_proxy(moto_s3: services.MotoS3) -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP proxy to moto that breaks the first full download after CUT_AFTER bytes;
    yields its URL and the Range/If-Match of each GET it forwarded."""
    seen: list[str] = []
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        body = await request.read()
        url = f"{moto_s3.endpoint}{request.rel_url}"
        async with session.request(
            request.method, url, headers=headers, data=io.BytesIO(body)
        ) as reply:
            if request.method == "GET" and request.path.endswith(".bin"):
                seen.append(f"{request.headers.get('Range')} {request.headers.get('If-Match')}")
            response = web.StreamResponse(status=reply.status, headers=reply.headers)
            await response.prepare(request)
            sent = 0
            async for chunk in reply.content.iter_chunked(64 * 1024):
                if request.method == "GET" and len(seen) == 1 and sent + len(chunk) > CUT_AFTER:
                    await response.write(chunk[: CUT_AFTER - sent])
                    assert request.transport is not None
                    request.transport.close()  # the connection drops mid-file
                    return response
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
            return response

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", seen
    finally:
        await runner.cleanup()
        await session.close()


async def test_a_download_cut_mid_file_resumes_where_it_stopped(
    moto_s3: services.MotoS3, cutting_proxy: tuple[str, list[str]], tmp_path: Path
) -> None:
    endpoint, seen = cutting_proxy
    settings = s3_settings(moto_s3, endpoint).model_copy(update={"prefix": "cut"})
    storage = Storage(open_blobs(settings, tmp_path, None), tmp_path / "c")
    data = os.urandom(5 * MIB)
    try:
        uri = await storage.put(data, prefix="/ns/f", name="big.bin")
        received = hashlib.sha256()
        async for chunk in storage.open(uri):
            received.update(chunk)
        assert received.hexdigest() == hashlib.sha256(data).hexdigest()
        first, second = seen
        assert first.startswith("None ")  # the whole file asked for
        resumed_at = int(second.split()[0].removeprefix("bytes=").rstrip("-"))
        assert 0 < resumed_at <= CUT_AFTER  # asked again from where it stopped...
        assert second.split()[1].strip('"') != "None"  # ...of the same version (If-Match)
    finally:
        await storage.close()
