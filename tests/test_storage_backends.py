"""One storage test suite, run on each backend: the local directory, S3 (moto's real S3
server) and PostgreSQL (a private server).

Kestra's counterpart is the shared `StorageTestSuite` of its storage plug-ins
(core/src/test/java/io/kestra/core/storage/StorageTestSuite.java): put, get, list,
exists, size, delete, deleteByPrefix and the refusal of paths that leave the storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.config.storage import MIB, StorageSettings
from daemon.engine.core import Engine
from daemon.engine.resources import EngineOptions
from daemon.flows.registry import default_plugins
from daemon.sdk.errors import NotFound
from daemon.sdk.files import StorageError
from daemon.sdk.state import State
from daemon.store import internal_storage, open_store
from daemon.store.blobs import READ_CHUNK
from daemon.store.internal_storage import Storage, open_blobs
from tests.harness import Harness
from tests.services import MotoS3, free_port

BACKENDS = ("local", "s3", "postgres")


def settings_for(kind: str, request: pytest.FixtureRequest) -> StorageSettings:
    """Settings of a fresh storage of `kind` (its own bucket prefix on S3)."""
    if kind == "s3":
        moto: MotoS3 = request.getfixturevalue("moto_s3")
        return StorageSettings(
            type="s3",
            endpoint=moto.endpoint,
            region="us-east-1",
            bucket=moto.bucket,
            prefix=f"suite-{uuid.uuid4().hex[:8]}/",
            access_key=moto.access_key,
            secret_key=moto.secret_key,
            path_style=True,
            part_size=5 * MIB,
        )
    if kind == "postgres":
        return StorageSettings(
            type="postgres", dsn=request.getfixturevalue("postgres_dsn"), part_size=5 * MIB
        )
    return StorageSettings()


@pytest.fixture(params=BACKENDS)
def storage_settings(request: pytest.FixtureRequest) -> StorageSettings:
    """Sync: a service fixture starts outside the event loop."""
    return settings_for(request.param, request)


@pytest.fixture
async def storage(storage_settings: StorageSettings, tmp_path: Path) -> AsyncIterator[Storage]:
    settings = storage_settings
    storage = Storage(open_blobs(settings, tmp_path, None), tmp_path / "cache")
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
def prefix() -> str:
    """A folder of its own for each test: the PostgreSQL tables are shared by the session."""
    return f"/ns{uuid.uuid4().hex[:10]}/flow/executions/{uuid.uuid4().hex[:12]}"


async def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


def _big_file(path: Path, size: int) -> str:
    """A file of `size` pseudo-random bytes (not a repeated pattern a bug could hide in);
    returns its sha256."""
    digest = hashlib.sha256()
    seed = hashlib.sha256(b"podium").digest()
    with path.open("wb") as out:
        written = 0
        block = 0
        while written < size:
            chunk = hashlib.shake_256(seed + block.to_bytes(8, "big")).digest(
                min(1 << 20, size - written)
            )
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            block += 1
    return digest.hexdigest()


async def test_put_bytes_then_read_back(storage: Storage, prefix: str) -> None:
    """Kestra StorageTestSuite.get/getWithScheme, exists and size."""
    uri = await storage.put(b"city,pop\nParis,2\n", prefix=f"{prefix}/tasks/t/r1", name="a.csv")
    assert uri == f"kestra://{prefix}/tasks/t/r1/a.csv"
    assert await storage.read_text(uri) == "city,pop\nParis,2\n"
    assert await storage.exists(uri)
    assert await storage.size(uri) == 17


async def test_a_file_larger_than_a_part_streams_both_ways(
    storage: Storage, prefix: str, tmp_path: Path
) -> None:
    """Kestra StorageTestSuite.put/get, on a file larger than one part: 12 MiB with 5 MiB
    parts is a multipart upload on S3, several chunks in PostgreSQL, read back in bounded
    chunks."""
    source = tmp_path / "big.bin"
    digest = await asyncio.to_thread(_big_file, source, 12 * MIB + 123)
    uri = await storage.put(source, prefix=prefix, name="big.bin")
    assert await storage.size(uri) == 12 * MIB + 123
    received = hashlib.sha256()
    chunks = 0
    async for chunk in storage.open(uri):
        assert 0 < len(chunk) <= READ_CHUNK
        received.update(chunk)
        chunks += 1
    assert received.hexdigest() == digest
    assert chunks >= 12


async def test_reading_from_an_offset_resumes_mid_file(
    storage: Storage, prefix: str, tmp_path: Path
) -> None:
    """What a resumed download asks for (no Kestra counterpart: its S3 client resumes)."""
    source = tmp_path / "mid.bin"
    await asyncio.to_thread(_big_file, source, 3 * MIB + 7)
    data = await asyncio.to_thread(source.read_bytes)
    uri = await storage.put(source, prefix=prefix, name="mid.bin")
    for offset in (1, MIB, 2 * MIB + 5, len(data) - 1):
        assert b"".join(await collect(storage.open(uri, offset))) == data[offset:]


async def test_an_empty_file_is_a_file(storage: Storage, prefix: str, tmp_path: Path) -> None:
    """Kestra StorageTestSuite.put of empty content (Write with content '')."""
    source = tmp_path / "empty.txt"
    await asyncio.to_thread(source.write_bytes, b"")
    uri = await storage.put(source, prefix=prefix, name="empty.txt")
    assert await storage.exists(uri)
    assert await storage.size(uri) == 0
    assert await storage.read_text(uri) == ""
    path = await storage.path(uri)
    assert await asyncio.to_thread(path.read_bytes) == b""


async def test_path_is_a_local_copy_that_follows_a_replaced_file(
    storage: Storage, prefix: str
) -> None:
    """Kestra StorageTestSuite.put over an existing file, then get."""
    uri = await storage.put(b"first", prefix=prefix, name="report.txt")
    path = await storage.path(uri)
    assert path.name == "report.txt"  # plug-ins use the name (extension, attachment name)
    assert await asyncio.to_thread(path.read_bytes) == b"first"
    await storage.put(b"second, longer", prefix=prefix, name="report.txt")
    again = await storage.path(uri)
    assert await asyncio.to_thread(again.read_bytes) == b"second, longer"
    assert await storage.read_text(uri) == "second, longer"


async def test_a_file_and_a_folder_of_the_same_name_are_both_readable(
    storage: Storage, prefix: str
) -> None:
    """Kestra StorageTestSuite.list (a file beside a folder): `.../out` a file and
    `.../out/x` another both exist in object storage, and their local copies must not
    collide."""
    outer = await storage.put(b"outer", prefix=prefix, name="out")
    if storage.blobs.local:  # a directory cannot also be a file: the local backend refuses
        with pytest.raises(StorageError):
            await storage.put(b"inner", prefix=f"{prefix}/out", name="x")
        return
    inner = await storage.put(b"inner", prefix=f"{prefix}/out", name="x")
    assert await asyncio.to_thread((await storage.path(outer)).read_bytes) == b"outer"
    assert await asyncio.to_thread((await storage.path(inner)).read_bytes) == b"inner"
    assert await asyncio.to_thread((await storage.path(outer)).read_bytes) == b"outer"


@pytest.fixture(params=["s3", "postgres"])
def remote_settings(request: pytest.FixtureRequest) -> StorageSettings:
    return settings_for(request.param, request)


async def test_the_local_copies_stay_under_the_cache_size(
    remote_settings: StorageSettings,
    tmp_path: Path,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Kestra counterpart (its tasks stream from storage). Copies of remote files are evicted
    least recently used first, the one just fetched
    kept; an evicted file is fetched again when a task wants it."""
    monkeypatch.setattr(internal_storage, "CACHE_GRACE", 0)
    blobs = open_blobs(remote_settings, tmp_path, None)
    storage = Storage(blobs, tmp_path / "cache", cache_size=15)
    try:
        first = await storage.put(b"0123456789", prefix=prefix, name="first.txt")
        second = await storage.put(b"abcdefghij", prefix=prefix, name="second.txt")
        first_copy = await storage.path(first)
        second_copy = await storage.path(second)  # 20 bytes > 15: the older copy goes
        assert not await asyncio.to_thread(first_copy.exists)
        assert await asyncio.to_thread(second_copy.read_bytes) == b"abcdefghij"
        again = await storage.path(first)
        assert await asyncio.to_thread(again.read_bytes) == b"0123456789"
        assert not await asyncio.to_thread(second_copy.exists)
    finally:
        await storage.close()


async def test_list_and_delete_a_prefix_leave_its_neighbours(storage: Storage, prefix: str) -> None:
    """Kestra StorageTestSuite.list and deleteByPrefix: an execution's files go; those of
    `<id>0` (same leading text) and of its flow stay."""
    mine = [
        await storage.put(b"1", prefix=f"{prefix}/tasks/a/r", name="one.txt"),
        await storage.put(b"2", prefix=f"{prefix}/tasks/b/r", name="two.txt"),
        await storage.put(b"3", prefix=f"{prefix}/inputs/file", name="in.csv"),
    ]
    neighbour = await storage.put(b"n", prefix=f"{prefix}0/tasks/a/r", name="one.txt")
    listed = await storage.blobs.keys(prefix)
    assert [f"kestra:///{k}" for k in listed] == sorted(mine)
    assert sorted(await storage.delete_prefix(prefix)) == sorted(mine)
    for uri in mine:
        assert not await storage.exists(uri)
    assert await storage.read_text(neighbour) == "n"
    assert await storage.delete_prefix(prefix) == []


async def test_delete_one_file(storage: Storage, prefix: str) -> None:
    """Kestra StorageTestSuite.delete and deleteNotFound."""
    uri = await storage.put(b"x", prefix=prefix, name="gone.txt")
    await storage.path(uri)  # a cached copy goes with it
    assert await storage.delete(uri) is True
    assert not await storage.exists(uri)
    assert await storage.delete(uri) is False
    with pytest.raises(NotFound):
        await storage.path(uri)


async def test_a_missing_file_is_not_found_everywhere(storage: Storage, prefix: str) -> None:
    """Kestra StorageTestSuite.getFileNotFound, sizeNotFound, exists (false)."""
    uri = f"kestra://{prefix}/tasks/t/r/missing.txt"
    assert not await storage.exists(uri)
    for call in (storage.size(uri), storage.path(uri), storage.read_text(uri)):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound):
        await collect(storage.open(uri))


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///ns/../../../etc/passwd",
        "kestra:///ns/flow/executions/x/../../../../etc/passwd",
        "kestra:///../secret",
        "kestra:///ns//double",
        "kestra:///ns/./dot",
        "kestra:///",
        "kestra://ns/no-third-slash",
        "s3://bucket/key",
        "/etc/passwd",
        "kestra:///ns/nul\x00byte",
        "kestra:///ns/back\\slash",
        "kestra:///ns/new\nline",
        "kestra:///" + "k" * 1100,
    ],
)
async def test_malformed_and_escaping_uris_name_no_file(storage: Storage, uri: str) -> None:
    """Kestra StorageTestSuite.getNoTraversal, existsNoTraversal, sizeNoTraversal."""
    assert not await storage.exists(uri)
    with pytest.raises(NotFound):
        await storage.read_text(uri)
    with pytest.raises(NotFound):
        await storage.path(uri)
    assert await storage.delete(uri) is False


async def test_names_are_cleaned_and_prefixes_checked(storage: Storage, prefix: str) -> None:
    """Kestra StorageTestSuite.putNoTraversal and deleteByPrefixNoTraversal."""
    uri = await storage.put(b"ok", prefix=prefix, name="../../a b?.txt")
    assert uri == f"kestra://{prefix}/.._.._a_b_.txt"  # one name, inside the prefix
    assert await storage.read_text(uri) == "ok"
    for bad_prefix in ("/ns/../../etc", "/ns//x", ""):
        with pytest.raises(ValueError):
            await storage.put(b"no", prefix=bad_prefix, name="f.txt")
    for bad_name in ("", ".", ".."):
        with pytest.raises(ValueError):
            await storage.put(b"no", prefix=prefix, name=bad_name)
    with pytest.raises(NotFound):
        await storage.delete_prefix("/ns/../..")


async def test_a_missing_source_file_is_the_callers_error_and_stores_nothing(
    storage: Storage, prefix: str, tmp_path: Path
) -> None:
    """Kestra: put from a stream that cannot be read stores nothing (StorageTestSuite.put)."""
    with pytest.raises(FileNotFoundError):
        await storage.put(tmp_path / "nope.csv", prefix=prefix, name="nope.csv")
    assert await storage.blobs.keys(prefix) == []


async def test_replacing_a_file_keeps_one_version(
    storage: Storage, prefix: str, tmp_path: Path
) -> None:
    """Kestra StorageTestSuite.put twice at one URI: the second content wins."""
    source = tmp_path / "v.bin"
    await asyncio.to_thread(_big_file, source, 6 * MIB)
    uri = await storage.put(source, prefix=prefix, name="v.bin")
    await storage.put(b"small now", prefix=prefix, name="v.bin")
    assert await storage.read_text(uri) == "small now"
    assert await storage.size(uri) == 9
    assert await storage.blobs.keys(prefix) == [uri.removeprefix("kestra:///")]


async def test_an_unusable_storage_fails_with_one_clear_error(
    storage_settings: StorageSettings, tmp_path: Path, prefix: str
) -> None:
    """Kestra: a storage that cannot be reached fails the task. Nothing listens where the
    storage should be (or the directory is a file): a StorageError naming where, after the
    retries, never a traceback of the client."""
    settings = storage_settings
    kind = settings.type
    port = free_port()
    if kind == "s3":
        settings = settings.model_copy(update={"endpoint": f"http://127.0.0.1:{port}"})
    elif kind == "postgres":
        settings = settings.model_copy(update={"dsn": f"postgresql://u@127.0.0.1:{port}/db"})
    else:
        blocker = tmp_path / "not-a-dir"
        await asyncio.to_thread(blocker.write_text, "")
        settings = settings.model_copy(update={"path": blocker})
    settings = settings.model_copy(update={"retries": 1})
    storage = Storage(open_blobs(settings, tmp_path, None), tmp_path / "cache")
    try:
        with pytest.raises(StorageError) as caught:
            await storage.put(b"data", prefix=prefix, name="f.txt")
        assert storage.where.split("://")[-1].split("/")[0] in str(caught.value)
        if kind != "local":
            with pytest.raises(StorageError):
                await storage.exists(f"kestra://{prefix}/f.txt")
    finally:
        await storage.close()


async def test_local_storage_refuses_a_symlink_out_of_its_directory(tmp_path: Path) -> None:
    """Kestra StorageTestSuite.getNoTraversal, through a symlink planted in the directory."""
    root = tmp_path / "storage"
    outside = tmp_path / "outside"
    await asyncio.to_thread(outside.mkdir)
    await asyncio.to_thread((outside / "secret.txt").write_text, "secret")
    await asyncio.to_thread(root.mkdir)
    await asyncio.to_thread(os.symlink, outside, root / "ns")
    storage = Storage(open_blobs(StorageSettings(path=root), tmp_path, None), tmp_path / "c")
    with pytest.raises(NotFound):
        await storage.read_text("kestra:///ns/secret.txt")
    assert not await storage.exists("kestra:///ns/secret.txt")


# -- the core tasks and functions over each backend ---------------------------------------


@pytest.fixture
async def engine_on(storage_settings: StorageSettings, tmp_path: Path) -> AsyncIterator[Harness]:
    """An engine (SQLite store) whose files live on the backend under test."""
    plugins = await asyncio.to_thread(default_plugins)
    store = open_store(tmp_path / "data")
    await store.open()
    options = EngineOptions(storage=storage_settings)
    h = Harness(Engine(tmp_path / "data", store, plugins=plugins, options=options), store)
    try:
        yield h
    finally:
        await h.close()


PURGE_FLOW = """
id: purge
namespace: storage.suite
inputs:
  - id: data
    type: FILE
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: "{{ read(inputs.data) }} and more"
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ outputs.write.uri }}"
  - id: check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.write.uri) }}|{{ fileExists(inputs.data) }}|{{ isFileEmpty(inputs.data) }}"
  - id: purge
    type: io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles
"""  # noqa: E501


async def test_inputs_outputs_functions_and_purge_on_each_backend(
    engine_on: Harness, tmp_path: Path
) -> None:
    """Kestra: PurgeCurrentExecutionFilesTest and the FILE input of InputsTest, with the
    file functions of FileExistsFunctionTest/IsFileEmptyFunctionTest."""
    h = engine_on
    source = tmp_path / "in.txt"
    await asyncio.to_thread(source.write_text, "uploaded")
    ex = await h.run(PURGE_FLOW, {"data": str(source)})
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    outputs = {run.task_id: run.outputs for run in ex.task_runs}
    assert outputs["size"] == {"size": len("uploaded and more")}
    assert outputs["check"] == {"value": "uploaded and more|true|false"}
    purged = set(outputs["purge"]["uris"])
    assert purged == {ex.inputs["data"], outputs["write"]["uri"]}
    storage = h.engine.resources.storage
    prefix = storage.execution_prefix(ex.namespace, ex.flow_id, ex.id)
    assert await storage.blobs.keys(prefix) == []
    assert not await storage.exists(ex.inputs["data"])
