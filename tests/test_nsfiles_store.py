"""Namespace files in the store, against SQLite and PostgreSQL alike (the fixtures of
test_store.py): Kestra's `Namespace` storage contract (core InternalNamespaceTest:
putFile with conflicts, children, delete, move, createDirectory) kept in the database so
that every node of a cluster reads the same tree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import NotFound
from daemon.sdk.nsfiles import CHUNK_SIZE, FileConflict, NamespaceFileError
from daemon.store import Store, StoreError
from tests.cluster_helpers import fresh_database
from tests.test_store import IMPLEMENTATIONS, Factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """As test_store.py's: the PostgreSQL server starts outside the event loop."""
    if request.param == "postgresql":
        return request.param, request.getfixturevalue("postgres_dsn")
    return request.param, None


@pytest.fixture
async def make_store(
    backend: tuple[str, str | None], tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Factory]:
    name, server = backend
    build = IMPLEMENTATIONS[name]
    if server is None:
        yield lambda: build(str(tmp_path / "data"), clock)
        return
    async with fresh_database(server) as dsn:
        yield lambda: build(dsn, clock)


@pytest.fixture
async def store(make_store: Factory) -> AsyncIterator[Store]:
    async with make_store() as opened:
        yield opened


NS = "company.team"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def content(store: Store, path: str, namespace: str = NS) -> bytes:
    return b"".join([c async for c in store.namespace_files.read(namespace, path)])


async def test_a_file_streams_in_and_out_in_chunks_with_its_metadata(
    store: Store, clock: FakeClock
) -> None:
    """InternalNamespaceTest.putFile/getFileContent: a file larger than a chunk comes back
    byte for byte, read chunk by chunk; its parents exist as directories."""
    files = store.namespace_files
    big = bytes(range(256)) * (CHUNK_SIZE // 256) * 2 + b"tail"
    info = await files.write(NS, "data/big.bin", chunks(big[:1000], big[1000:]))
    assert info is not None and info.size == len(big) and info.path == "/data/big.bin"
    read = [c async for c in files.read(NS, "/data/big.bin")]
    assert len(read) == 3 and all(len(c) <= CHUNK_SIZE for c in read)
    assert b"".join(read) == big
    stat = await files.stat(NS, "/data/big.bin")
    assert stat is not None and not stat.is_directory and stat.updated.startswith("2026-01-01")
    root = await files.list(NS)
    assert [(e.path, e.is_directory) for e in root] == [("/data", True)]
    assert [e.path for e in await files.list(NS, "/", recursive=True)] == [
        "/data",
        "/data/big.bin",
    ]
    await files.write(NS, "empty.txt", chunks())
    assert await content(store, "/empty.txt") == b""
    assert await files.namespaces() == [NS]


async def test_conflicts_overwrite_error_or_skip(store: Store, clock: FakeClock) -> None:
    """Kestra Namespace.Conflicts: OVERWRITE replaces (created kept), ERROR refuses, SKIP
    keeps the existing file and says so (None)."""
    files = store.namespace_files
    first = await files.write(NS, "/a.txt", chunks(b"one"))
    await clock.advance(60)
    second = await files.write(NS, "/a.txt", chunks(b"two!"))
    assert first is not None and second is not None
    assert second.created == first.created and second.updated > first.updated
    assert second.size == 4
    with pytest.raises(FileConflict, match=r"already exists at /a\.txt"):
        await files.write(NS, "/a.txt", chunks(b"three"), conflict="ERROR")
    assert await files.write(NS, "/a.txt", chunks(b"three"), conflict="SKIP") is None
    assert await content(store, "/a.txt") == b"two!"


async def test_directories_are_made_listed_and_refused_where_a_file_is(store: Store) -> None:
    """NamespaceFileController createDirectory/listNamespaceDirectoryFiles: an empty folder
    exists; a file cannot stand where a folder is, nor a folder below a file."""
    files = store.namespace_files
    await files.make_directory(NS, "/scripts/sql")
    await files.make_directory(NS, "/scripts/sql")  # again: nothing
    assert [e.path for e in await files.list(NS, "/scripts")] == ["/scripts/sql"]
    assert await files.list(NS, "/scripts/sql") == []
    with pytest.raises(NotFound):
        await files.list(NS, "/nope")
    await files.write(NS, "/readme.md", chunks(b"x"))
    with pytest.raises(FileConflict, match=r"/readme\.md is a file"):
        await files.write(NS, "/readme.md/x.txt", chunks(b"x"))
    with pytest.raises(FileConflict, match="a directory already exists at /scripts"):
        await files.write(NS, "/scripts", chunks(b"x"))
    with pytest.raises(NotFound):
        await files.list(NS, "/readme.md")
    assert await files.list("other.ns") == []  # the root of any namespace exists


async def test_delete_removes_an_entry_and_everything_below_it(store: Store) -> None:
    files = store.namespace_files
    for path in ("/a/b/one.txt", "/a/two.txt", "/ab.txt"):
        await files.write(NS, path, chunks(b"x"))
    assert await files.delete(NS, "/a") == ["/a", "/a/b", "/a/b/one.txt", "/a/two.txt"]
    assert [e.path for e in await files.list(NS, recursive=True)] == ["/ab.txt"]
    with pytest.raises(NotFound):
        await content(store, "/a/two.txt")
    assert await files.delete(NS, "/a") == []


async def test_move_renames_a_file_or_a_directory_with_its_content(store: Store) -> None:
    """NamespaceFileController moveFileDirectory."""
    files = store.namespace_files
    await files.write(NS, "/src/x/one.py", chunks(b"1"))
    await files.write(NS, "/src/two.py", chunks(b"2"))
    await files.move(NS, "/src", "/lib/code")
    assert [e.path for e in await files.list(NS, recursive=True)] == [
        "/lib",
        "/lib/code",
        "/lib/code/two.py",
        "/lib/code/x",
        "/lib/code/x/one.py",
    ]
    assert await content(store, "/lib/code/x/one.py") == b"1"
    assert [e.path for e in await files.list(NS, "/lib/code/x")] == ["/lib/code/x/one.py"]
    await files.move(NS, "/lib/code/two.py", "/two.py")
    assert await content(store, "/two.py") == b"2"
    with pytest.raises(FileConflict):
        await files.move(NS, "/lib/code/x/one.py", "/two.py")
    with pytest.raises(FileConflict, match="cannot be moved"):
        await files.move(NS, "/lib", "/lib/inner")
    with pytest.raises(NotFound):
        await files.move(NS, "/missing", "/elsewhere")


@pytest.mark.parametrize("path", ["../etc/passwd", "/a/../../b", "a/./b", "x\x00y", "n" * 256])
async def test_paths_leaving_the_namespace_or_malformed_are_refused(
    store: Store, path: str
) -> None:
    files = store.namespace_files
    with pytest.raises(NamespaceFileError):
        await files.write(NS, path, chunks(b"x"))
    with pytest.raises(NamespaceFileError):
        await files.stat(NS, path)
    assert await files.list(NS, recursive=True) == []


async def test_a_failed_upload_leaves_nothing_and_a_crashed_one_is_swept(
    store: Store, clock: FakeClock
) -> None:
    """An upload that fails half-way keeps the previous content and leaves no chunk; a
    blob left pending by a process that died is dropped once it is old enough."""
    files = store.namespace_files
    await files.write(NS, "/a.txt", chunks(b"before"))

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (CHUNK_SIZE + 10)
        raise OSError("client went away")

    with pytest.raises(OSError, match="client went away"):
        await files.write(NS, "/a.txt", broken())
    assert await content(store, "/a.txt") == b"before"
    await files._begin_blob("crashed")
    await files._put_chunk("crashed", 0, b"partial")
    assert await files.sweep() == 0  # young: an upload may still be running elsewhere
    await clock.advance(2 * 86400)
    assert await files.sweep() == 1
    assert await files._chunk("crashed", 0) is None


async def test_the_first_write_of_a_process_sweeps_what_a_crash_left(
    make_store: Factory, clock: FakeClock
) -> None:
    """Not the opening of the store: a read-only look at the executions opens it too."""
    async with make_store() as crashed:
        await crashed.namespace_files._begin_blob("crashed")
        await crashed.namespace_files._put_chunk("crashed", 0, b"partial")
    await clock.advance(2 * 86400)
    async with make_store() as restarted:
        files = restarted.namespace_files
        assert await files._chunk("crashed", 0) == b"partial"
        await files.write(NS, "/a.txt", chunks(b"x"))
        assert await files._chunk("crashed", 0) is None


async def test_a_file_replaced_while_being_read_is_an_error_not_a_mix(store: Store) -> None:
    files = store.namespace_files
    await files.write(NS, "/a.bin", chunks(b"a" * (CHUNK_SIZE * 2)))
    reader = files.read(NS, "/a.bin")
    assert await anext(reader) == b"a" * CHUNK_SIZE
    await files.write(NS, "/a.bin", chunks(b"b" * (CHUNK_SIZE * 2)))
    with pytest.raises(StoreError, match="changed while it was being read"):
        await anext(reader)


async def test_another_store_on_the_same_database_sees_the_files(make_store: Factory) -> None:
    """A restart, or another node of a cluster sharing the database."""
    async with make_store() as one, make_store() as two:
        await one.namespace_files.write(NS, "/shared.txt", chunks(b"hello"))
        assert await content(two, "/shared.txt") == b"hello"
        assert await two.namespace_files.delete(NS, "/shared.txt") == ["/shared.txt"]
        assert await one.namespace_files.stat(NS, "/shared.txt") is None
