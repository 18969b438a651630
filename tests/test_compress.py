"""compress tasks: archives (ZIP, TAR with GZIP/BZIP2/XZ/ZSTD) and single files.

Kestra's behaviour comes from kestra-io/plugin-compress: ArchiveCompressTest,
ArchiveDecompressTest, FileCompressTest and FileDecompressTest (every algorithm and
compression round trip).
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from daemon.sdk.state import State
from tests.harness import Harness

DATA = b"id,name\n" + b"".join(b"%d,row %d\n" % (n, n) for n in range(5000))


async def put(h: Harness, data: bytes, name: str) -> str:
    storage = h.engine.resources.storage
    return await storage.put(data, prefix="/test/in", name=name)


async def read(h: Harness, uri: str) -> bytes:
    path = await h.engine.resources.storage.path(uri)
    return await asyncio.to_thread(path.read_bytes)


@pytest.mark.parametrize(
    ("algorithm", "compression"),
    [
        ("ZIP", None),
        ("TAR", None),
        ("TAR", "GZIP"),
        ("TAR", "BZIP2"),
        ("TAR", "XZ"),
        ("TAR", "ZSTD"),
    ],
)
async def test_archive_round_trip(h: Harness, algorithm: str, compression: str | None) -> None:
    """ArchiveCompressTest / ArchiveDecompressTest: members by name, nested paths kept."""
    first, second = await put(h, DATA, "a.csv"), await put(h, b"second", "b.txt")
    option = f"\n    compression: {compression}" if compression else ""
    execution = await h.run(
        f"""
id: archive
namespace: test
tasks:
  - id: pack
    type: io.kestra.plugin.compress.ArchiveCompress
    algorithm: {algorithm}{option}
    from:
      data/a.csv: "{first}"
      b.txt: "{second}"
  - id: unpack
    type: io.kestra.plugin.compress.ArchiveDecompress
    algorithm: {algorithm}{option}
    from: "{{{{ outputs.pack.uri }}}}"
"""
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    files = execution.task_runs[1].outputs["files"]
    assert sorted(files) == ["b.txt", "data/a.csv"]
    assert await read(h, files["data/a.csv"]) == DATA
    assert await read(h, files["b.txt"]) == b"second"


@pytest.mark.parametrize(
    ("compression", "tool"),
    [("GZIP", "gzip"), ("BZIP2", "bzip2"), ("XZ", "xz"), ("ZSTD", "zstd")],
)
async def test_file_compress_is_read_by_the_command_line_tool(
    h: Harness, compression: str, tool: str
) -> None:
    """FileCompressTest / FileDecompressTest: the file a command line tool decompresses,
    and back."""
    uri = await put(h, DATA, "data.csv")
    execution = await h.run(
        f"""
id: file
namespace: test
tasks:
  - id: pack
    type: io.kestra.plugin.compress.FileCompress
    compression: {compression}
    from: "{uri}"
  - id: unpack
    type: io.kestra.plugin.compress.FileDecompress
    compression: {compression}
    from: "{{{{ outputs.pack.uri }}}}"
"""
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    packed = await read(h, execution.task_runs[0].outputs["uri"])
    done = await asyncio.to_thread(
        subprocess.run, [tool, "-dc"], input=packed, capture_output=True, check=True
    )
    assert done.stdout == DATA
    assert await read(h, execution.task_runs[1].outputs["uri"]) == DATA


async def test_an_archive_escaping_its_directory_is_refused(h: Harness) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    uri = await put(h, buffer.getvalue(), "evil.tar")
    execution = await h.run(
        f"""
id: evil
namespace: test
tasks:
  - id: unpack
    type: io.kestra.plugin.compress.ArchiveDecompress
    algorithm: TAR
    from: "{uri}"
"""
    )
    assert execution.state.current == State.FAILED
    assert any("outside the directory" in line for line in await h.logs(execution))


async def test_a_corrupt_file_fails_clearly(h: Harness) -> None:
    uri = await put(h, b"not gzip at all", "x.gz")
    execution = await h.run(
        f"""
id: corrupt
namespace: test
tasks:
  - id: unpack
    type: io.kestra.plugin.compress.FileDecompress
    compression: GZIP
    from: "{uri}"
"""
    )
    assert execution.state.current == State.FAILED
    assert any("cannot decompress" in line for line in await h.logs(execution))
