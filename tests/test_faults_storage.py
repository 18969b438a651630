"""The storage directory (or the whole data disk) full or unwritable: the task that wanted
a file fails naming the file and the system's reason, and the daemon goes on.

A real disk runs out here: a small tmpfs mounted over the storage directory (or the data
directory), filled up with a file, made read-only by a remount; root ignores file modes,
so "Permission denied" comes from a `podium serve` started without CAP_DAC_OVERRIDE.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import subprocess
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.sdk.execution import Execution
from daemon.sdk.files import StorageError
from daemon.sdk.state import State
from tests.daemon_process import ServeProcess
from tests.harness import Harness, eventually, running_triggers
from tests.services import Mosquitto

NOSPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
READONLY = os.strerror(errno.EROFS)  # "Read-only file system"
DENIED = os.strerror(errno.EACCES)  # "Permission denied"
PAYLOAD = bytes(range(256)) * 1024  # 256 KiB: more than a full disk has, less than a free one


class Disk:
    """A tmpfs of `size` mounted over `path`: a disk a test may fill, make read-only and
    give back. Its methods block: from a test's event loop, call them via to_thread."""

    def __init__(self, path: Path, size: str = "4m") -> None:
        self.path = path
        self.size = size
        self.filler = path / ".filler"
        self.mounted = False

    def mount(self) -> Disk:
        self.path.mkdir(parents=True, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path))
        self.mounted = True
        return self

    def fill(self) -> None:
        """Write until the disk refuses: what is left is less than a page."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()

    def read_only(self, read_only: bool = True) -> None:
        _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(self.path))

    def unmount(self) -> None:
        if self.mounted:
            if subprocess.run(["umount", str(self.path)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(self.path)], check=True)
            self.mounted = False


def _mount(*argv: str) -> None:
    done = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(
            f"mount {' '.join(argv)} failed ({done.stderr.strip()}): these tests "
            "mount a small tmpfs, which needs root with CAP_SYS_ADMIN and the "
            "util-linux package (mount)"
        )


@pytest.fixture
def storage_disk(tmp_path: Path) -> Iterator[Disk]:
    """A 4 MiB disk under the `h` harness's storage directory (its store stays on /tmp)."""
    disk = Disk(tmp_path / "data" / "storage").mount()
    try:
        yield disk
    finally:
        disk.unmount()


@pytest.fixture
async def files_server() -> AsyncIterator[str]:
    """A local HTTP server: GET /payload.bin answers PAYLOAD."""

    async def payload(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/payload.bin", payload)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def stored_file(h: Harness, ex: Execution, task_id: str, name: str) -> Path:
    """Where the storage keeps `name` for the (only) run of `task_id`."""
    [run] = [tr for tr in ex.task_runs if tr.task_id == task_id]
    prefix = h.engine.resources.storage.execution_prefix(ex.namespace, ex.flow_id, ex.id)
    return (
        h.engine.resources.storage.blobs.root
        / f"{prefix}/tasks/{task_id}/{run.id}/{name}".lstrip("/")
    )


def leftovers(root: Path) -> list[str]:
    """Partial files a failed write left in storage (none, or a full disk stays full)."""
    return [str(p) for p in root.rglob("*.part")]


DOWNLOAD = """
    id: download
    namespace: faults
    tasks:
      - id: get
        type: io.kestra.plugin.core.http.Download
        uri: {url}/payload.bin
    """


async def test_download_into_a_full_storage_fails_naming_the_file_and_the_reason(
    h: Harness, storage_disk: Disk, files_server: str
) -> None:
    await asyncio.to_thread(storage_disk.fill)
    source = DOWNLOAD.format(url=files_server)
    ex = await h.run(source)
    assert ex.state.current == State.FAILED
    target = stored_file(h, ex, "get", "payload.bin")
    assert ex.error == f"task 'get': cannot write {target}: {NOSPACE}"
    assert await h.logs(ex, level="ERROR") == [f"cannot write {target}: {NOSPACE}"]
    assert await asyncio.to_thread(leftovers, storage_disk.path) == []

    await asyncio.to_thread(storage_disk.free)  # space is back: the same daemon goes on
    again = await h.run(source)
    assert again.state.current == State.SUCCESS, await h.logs(again)
    stored = await asyncio.to_thread(stored_file(h, again, "get", "payload.bin").read_bytes)
    assert stored == PAYLOAD


def script(*commands: str, output_files: str = '["*.bin"]') -> str:
    lines = "".join(f"      - {json.dumps(c)}\n" for c in commands)
    return (
        textwrap.dedent("""
        id: script
        namespace: faults
        tasks:
          - id: make
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            outputFiles: {output_files}
            commands:
        """).format(output_files=output_files)
        + lines
    )


async def test_script_output_files_on_a_full_storage_fail_the_task(
    h: Harness, storage_disk: Disk
) -> None:
    await asyncio.to_thread(storage_disk.fill)
    ex = await h.run(script("head -c 262144 /dev/zero > out.bin"))
    assert ex.state.current == State.FAILED
    target = stored_file(h, ex, "make", "out.bin")
    assert ex.error == f"task 'make': cannot write {target}: {NOSPACE}"
    [run] = ex.task_runs
    assert run.state.current == State.FAILED
    await asyncio.to_thread(storage_disk.free)
    again = await h.run(script("head -c 262144 /dev/zero > out.bin"))
    assert again.state.current == State.SUCCESS, await h.logs(again)


CONCAT = """
    id: concat
    namespace: faults
    inputs:
      - id: part
        type: FILE
    tasks:
      - id: join
        type: io.kestra.plugin.core.storage.Concat
        files: ["{{ inputs.part }}", "{{ inputs.part }}"]
        extension: .bin
    """


async def test_concat_and_file_inputs_on_a_full_storage(
    h: Harness, storage_disk: Disk, tmp_path: Path
) -> None:
    part = tmp_path / "part.bin"
    await asyncio.to_thread(part.write_bytes, PAYLOAD)
    flow = await h.flow(CONCAT)
    stored = await h.start(flow, {"part": str(part)})  # the input fits, then the disk fills
    assert (await h.engine.wait(stored.id)).state.current == State.SUCCESS
    await asyncio.to_thread(storage_disk.fill)

    ex = await h.run(flow, {"part": stored.inputs["part"]})
    assert ex.state.current == State.FAILED
    target = stored_file(h, ex, "join", "concat.bin")
    assert ex.error == f"task 'join': cannot write {target}: {NOSPACE}"

    # An uploaded FILE input that does not fit: no execution, the reason given at once.
    before = (await h.store.search_executions(namespace="faults"))[1]
    with pytest.raises(StorageError) as refused:
        await h.start(flow, {"part": str(part)})
    assert refused.value.errno == errno.ENOSPC
    message = str(refused.value)
    assert message.startswith(f"cannot write {storage_disk.path}/faults/concat/executions/")
    assert message.endswith(f"/inputs/part/part.bin: {NOSPACE}")
    assert (await h.store.search_executions(namespace="faults"))[1] == before
    assert await asyncio.to_thread(leftovers, storage_disk.path) == []

    await asyncio.to_thread(storage_disk.free)
    ex = await h.run(flow, {"part": str(part)})
    assert ex.state.current == State.SUCCESS, await h.logs(ex)


async def test_read_only_storage_fails_the_task_with_the_reason(
    h: Harness, storage_disk: Disk, files_server: str
) -> None:
    source = DOWNLOAD.format(url=files_server)
    first = await h.run(source)  # writable: faults/download/executions/... exists now
    assert first.state.current == State.SUCCESS, await h.logs(first)
    await asyncio.to_thread(storage_disk.read_only)
    try:
        ex = await h.run(source)
    finally:
        await asyncio.to_thread(storage_disk.read_only, False)
    assert ex.state.current == State.FAILED
    target = stored_file(h, ex, "get", "payload.bin")
    executions = storage_disk.path / "faults" / "download" / "executions"
    # mkdir names the first directory it could not make: the execution's own.
    assert ex.error == (f"task 'get': cannot write {target}: {READONLY} ({executions / ex.id})")
    again = await h.run(source)
    assert again.state.current == State.SUCCESS, await h.logs(again)


async def test_a_full_working_directory_fails_the_task_in_one_line(
    h: Harness, tmp_path: Path, files_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Tasks write their files in their working directory (data/tmp) before storing them:
    a full disk there fails the task with the reason and the directory, no traceback."""
    disk = await asyncio.to_thread(Disk(tmp_path / "data" / "tmp").mount)
    try:
        await asyncio.to_thread(disk.fill)
        ex = await h.run(DOWNLOAD.format(url=files_server))
    finally:
        await asyncio.to_thread(disk.unmount)
    assert ex.state.current == State.FAILED
    [run] = ex.task_runs
    workdir = disk.path / ex.id / run.id
    assert ex.error == f"task 'get': {NOSPACE} (in the task's working directory {workdir})"
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def test_mqtt_batch_waits_unacknowledged_while_storage_is_full(
    h: Harness, storage_disk: Disk, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The batching MQTT trigger stores each batch as a file: on a full disk its messages
    stay with the broker, unacknowledged, and the batch is stored once there is room."""
    caplog.set_level(logging.INFO, logger="daemon.engine.supervisor")
    name = f"t{uuid.uuid4().hex[:12]}"
    source = textwrap.dedent(f"""
        id: {name}
        namespace: faults
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.messagesCount }}}}"
        triggers:
          - id: mqtt
            type: io.kestra.plugin.mqtt.Trigger
            server: tcp://{mosquitto.host}:{mosquitto.port}
            clientId: {name}
            topic: {name}/b
            maxRecords: 3
        """)
    await asyncio.to_thread(storage_disk.fill)
    async with running_triggers(h, source) as th:
        key = f"trigger:faults:{name}:mqtt:session"
        await eventually(lambda: _stored_state(h, key), timeout=30)
        for n in range(3):
            await _publish(mosquitto, f"{name}/b", json.dumps({"n": n}))
        await eventually(lambda: _logged(caplog, "the batch of 3 messages waits"), timeout=30)
        [refusal] = [r.getMessage() for r in caplog.records if "waits" in r.getMessage()]
        assert refusal.startswith(
            f"faults.{name} trigger mqtt: cannot write "
            f"{storage_disk.path}/faults/{name}/triggers/mqtt/"
        )
        assert refusal.endswith(
            f".ion: {NOSPACE}; the batch of 3 messages waits unacknowledged, stored again in 1s"
        )
        assert th.executions == []
        await asyncio.to_thread(storage_disk.free)
        [execution] = await th.wait_for(1, timeout=60)
        for n in range(3, 6):
            await _publish(mosquitto, f"{name}/b", json.dumps({"n": n}))
        executions = await th.wait_for(2)
        payloads = []
        for execution in executions:
            assert execution.trigger is not None
            uri = execution.trigger["variables"]["uri"]
            text = await h.engine.resources.storage.read_text(uri)
            payloads += [json.loads(line)["payload"]["n"] for line in text.splitlines()]
        assert payloads == [0, 1, 2, 3, 4, 5]


async def _stored_state(h: Harness, key: str) -> bool:
    return await h.store.state.get(key) is not None


async def _publish(broker: Mosquitto, topic: str, message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
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
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


# -- the whole data disk full: the SQLite store refuses writes too ---------------------------


@pytest.fixture
async def data_disk(tmp_path: Path) -> AsyncIterator[tuple[Harness, Disk]]:
    """A harness whose data directory (store, storage, working directories) is a 4 MiB disk."""
    disk = await asyncio.to_thread(Disk(tmp_path / "small").mount)
    try:
        harness = await Harness.open(disk.path)
        try:
            yield harness, disk
        finally:
            await harness.close()
    finally:
        await asyncio.to_thread(disk.unmount)


def fills_the_disk(disk: Disk) -> str:
    """A task that fills the data disk, as a runaway task does, and succeeds."""
    return textwrap.dedent(f"""
        id: runaway
        namespace: faults
        tasks:
          - id: fill
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - head -c 100000000 /dev/zero > {disk.filler} || true
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: never
        """)


async def test_a_full_disk_under_the_store_fails_the_execution_and_the_daemon_goes_on(
    data_disk: tuple[Harness, Disk], caplog: pytest.LogCaptureFixture
) -> None:
    h, disk = data_disk
    caplog.set_level(logging.INFO)
    ex = await h.start(fills_the_disk(disk))
    ended = asyncio.ensure_future(h.engine.wait(ex.id))
    await eventually(lambda: _logged(caplog, "cannot be stored"), timeout=30)
    assert not ended.done()  # it waits for the store rather than vanish unrecorded
    await asyncio.to_thread(disk.free)
    async with asyncio.timeout(60):
        ex = await ended
    assert ex.state.current == State.FAILED
    assert ex.error is not None and "database or disk is full" in ex.error, ex.error
    stored = await h.stored(ex)
    assert stored["state"]["current"] == "FAILED"
    assert stored["error"] == ex.error
    # The task ended (WARNING: `head` complained on stderr) but its end was refused: stored
    # now all the same, and the next task never started.
    assert {r["taskId"]: r["state"]["current"] for r in stored["taskRunList"]} == {
        "fill": "WARNING"
    }
    again = await h.run("""
        id: next
        namespace: faults
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: the disk has room again
        """)
    assert again.state.current == State.SUCCESS
    assert await h.logs(again) == ["the disk has room again"]


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


# -- end to end: a real `podium serve` and its API ---------------------------------------------

# Root ignores file modes; without these capabilities it is refused like any other user.
WITHOUT_DAC_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")

UPLOAD_FLOW = """
id: upload
namespace: faults
inputs:
  - id: part
    type: FILE
tasks:
  - id: size
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.part }}"
"""


def upload(daemon: ServeProcess, name: str, content: bytes) -> tuple[int, Any]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="part"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return daemon.request(
        "POST",
        "/api/v1/executions/faults/upload",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def writable(root: Path, allowed: bool) -> None:
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        directory.chmod(0o700 if allowed else 0o500)


def ended(daemon: ServeProcess, flow_id: str) -> dict[str, Any]:
    started = daemon.create_execution("faults", flow_id)
    return daemon.wait_execution(started["id"], {"SUCCESS", "WARNING", "FAILED", "KILLED"})


def test_serve_fails_tasks_on_a_full_or_refused_storage_and_keeps_serving(tmp_path: Path) -> None:
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "script.yaml").write_text(script("head -c 262144 /dev/zero > out.bin"))
    (flows / "upload.yaml").write_text(UPLOAD_FLOW)
    disk = Disk(data / "storage").mount()
    daemon = ServeProcess(tmp_path, flows, data, wrapper=WITHOUT_DAC_OVERRIDE)
    try:
        daemon.start()
        prefix = f"cannot write {disk.path}/faults/script/executions/"

        disk.fill()
        full = ended(daemon, "script")
        assert full["state"]["current"] == "FAILED"
        assert full["error"].startswith(f"task 'make': {prefix}{full['id']}/tasks/make/")
        assert full["error"].endswith(f"/out.bin: {NOSPACE}")
        status, refused = upload(daemon, "part.bin", PAYLOAD)
        assert status == 507, refused
        assert refused["message"].startswith(
            f"Insufficient Storage: cannot write {disk.path}/faults/upload/executions/"
        )
        assert refused["message"].endswith(f"/inputs/part/part.bin: {NOSPACE}")

        disk.free()
        writable(disk.path, False)  # space again, but no longer ours to write
        denied = ended(daemon, "script")
        assert denied["state"]["current"] == "FAILED"
        assert denied["error"].startswith(f"task 'make': {prefix}{denied['id']}/tasks/make/")
        assert denied["error"].endswith(
            f"/out.bin: {DENIED} ({disk.path}/faults/script/executions/{denied['id']})"
        )

        writable(disk.path, True)
        fine = ended(daemon, "script")
        assert fine["state"]["current"] == "SUCCESS", fine
        status, accepted = upload(daemon, "part.bin", PAYLOAD)
        assert status == 200, accepted
        assert (
            daemon.wait_execution(accepted["id"], {"SUCCESS", "FAILED"})["state"]["current"]
            == "SUCCESS"
        )
        assert "Traceback" not in daemon.output()
    finally:
        stopped = daemon.stop() if daemon.proc is not None else 0
        disk.unmount()
    assert stopped == 0, daemon.output()
    assert daemon.lines[-1] == "INFO podium: stopped: 2 executions done, 2 failed, 0 cancelled"


def runaway_flow(filler: Path) -> str:
    """A task that fills the disk, then logs more than the store's WAL can take without
    new space: a WAL already checkpointed is rewritten in place, so a store often keeps
    working on a full disk for a while, and this one must not."""
    return textwrap.dedent(f"""
        id: runaway
        namespace: faults
        tasks:
          - id: fill
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
            commands:
              - head -c 100000000 /dev/zero > {filler} || true
              - seq 1 15000
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: never
        """)


def test_serve_survives_a_full_disk_under_its_sqlite_store(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    disk = Disk(tmp_path / "data", size="8m").mount()
    (flows / "runaway.yaml").write_text(runaway_flow(disk.filler))
    (flows / "hello.yaml").write_text(
        textwrap.dedent("""
        id: hello
        namespace: faults
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: room again
        """)
    )
    daemon = ServeProcess(tmp_path, flows, disk.path)
    try:
        daemon.start()
        started = daemon.create_execution("faults", "runaway")
        daemon.wait_line("its final state FAILED cannot be stored")
        # Reads still work while the disk is full: the API answers, with what was stored.
        assert daemon.request("GET", "/health")[0] == 200
        assert daemon.execution(started["id"])["state"]["current"] == "RUNNING"
        status, refused = daemon.request(
            "POST", "/api/v1/executions/faults/hello", b"{}", {"Content-Type": "application/json"}
        )
        assert (status, refused) == (
            503,
            {"message": "Service Unavailable: the store is unavailable"},
        )

        disk.free()
        failed = daemon.wait_execution(started["id"], {"FAILED"})
        assert "database or disk is full" in failed["error"], failed["error"]
        assert [(r["taskId"], r["state"]["current"]) for r in failed["taskRunList"]] == [
            ("fill", "WARNING")
        ]
        assert ended(daemon, "hello")["state"]["current"] == "SUCCESS"
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        stopped = daemon.stop() if daemon.proc is not None else 0
        disk.unmount()
    assert stopped == 0, daemon.output()


async def test_a_file_that_found_the_storage_full_runs_once_there_is_room(
    h: Harness, storage_disk: Disk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file trigger copies each file into storage before its execution exists: on a
    full disk there is no execution yet, and the next scan tries the file again."""
    from daemon.config.settings import Settings

    caplog.set_level(logging.INFO)
    inbox = tmp_path / "inbox"
    await asyncio.to_thread(inbox.mkdir)
    source = textwrap.dedent(f"""
        id: drops
        namespace: faults
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ trigger.files[0].name }}}}"
        triggers:
          - id: scan
            type: io.kestra.plugin.fs.local.Trigger
            from: {inbox}
            interval: PT0.2S
            stableFor: PT0S
        """)
    settings = Settings(data_dir=h.engine.data_dir, allowed_paths=[inbox])
    await asyncio.to_thread(storage_disk.fill)
    async with running_triggers(h, source, settings) as th:
        await asyncio.to_thread((inbox / "big.csv").write_bytes, PAYLOAD)
        await eventually(lambda: _logged(caplog, "retried at the next scan (PT0.2S)"))
        assert th.executions == []
        await asyncio.to_thread(storage_disk.free)
        [execution] = await th.wait_for(1, timeout=60)
        assert execution.trigger is not None
        [found] = execution.trigger["variables"]["files"]
        assert found["name"] == "big.csv"
        await asyncio.to_thread((inbox / "later.csv").write_text, "x")
        executions = await th.wait_for(2, timeout=60)
        names = [e.trigger["variables"]["files"][0]["name"] for e in executions if e.trigger]
        assert names == ["big.csv", "later.csv"], "big.csv ran once"
