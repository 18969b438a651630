"""The FTP, FTPS and SFTP polling triggers against real servers (tests/remote_servers.py).

Kestra's behaviour comes from kestra-io/plugin-fs: vfs/Trigger.java (list, download, one
execution with `files`, then the action; `maxFiles`; `on` and changeType CREATE/UPDATE),
vfs/models/File.java, the ftp/sftp TriggerTest (AbstractFileTriggerTest: MOVE, DELETE,
files not taken twice) and each protocol's Trigger.java @Example.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, eventually, problems, running_triggers
from tests.remote_helpers import Running, self_signed, serving
from tests.test_trigger_fs import Lines
from tests.test_trigger_fs import lines as lines  # the fixture

HOME = "/home/foo"


@pytest.fixture(scope="module")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serving("ftp", tmp_path_factory.mktemp("ftp"), "--home", HOME) as server:
        yield server


@pytest.fixture(scope="module")
def ftps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    cert, key = self_signed(tmp_path_factory.mktemp("certs"))
    args = ["--home", HOME, "--cert", str(cert), "--key", str(key), "--tls", "explicit"]
    with serving("ftp", tmp_path_factory.mktemp("ftps"), *args) as server:
        yield server


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    args = ["--home", HOME, "--password", "bar"]
    with serving("sftp", tmp_path_factory.mktemp("sftp"), *args) as server:
        yield server


@pytest.fixture(scope="module")
def rsa_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An SFTP server whose host key signs with ssh-rsa (SHA-1) only."""
    args = ["--home", HOME, "--password", "bar", "--host-key", "ssh-rsa"]
    args += ["--host-key-algs", "ssh-rsa"]
    with serving("sftp", tmp_path_factory.mktemp("rsa"), *args) as server:
        yield server


@pytest.fixture(params=["ftp", "ftps", "sftp"])
def server(request: pytest.FixtureRequest) -> tuple[str, Running]:
    return request.param, request.getfixturevalue(f"{request.param}_server")


TASKS = """
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.files | length }} file(s)"
"""


def trigger_flow(pkg: str, port: int, body: str, tasks: str = TASKS) -> str:
    props = f"host: 127.0.0.1\nport: {port}\nusername: foo\npassword: bar\n"
    if pkg == "ftps":
        props += "insecureTrustAllCertificates: true\n"
    trigger = textwrap.indent(props + textwrap.dedent(body).strip(), "    ")
    return (
        f"id: watch\nnamespace: test\n{tasks}\ntriggers:\n  - id: poll\n"
        f"    type: io.kestra.plugin.fs.{pkg}.Trigger\n{trigger}\n"
    )


def files_of(execution: Execution) -> list[dict[str, Any]]:
    assert execution.trigger is not None
    found: list[dict[str, Any]] = execution.trigger["variables"]["files"]
    return found


def unique() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def put(path: Path, data: str) -> None:
    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)

    await asyncio.to_thread(write)


async def listing(directory: Path) -> list[str]:
    return await asyncio.to_thread(
        lambda: sorted(p.name for p in directory.iterdir()) if directory.exists() else []
    )


async def until(probe: Any, expected: Any, timeout: float = 10) -> None:
    """Wait (bounded) until `await probe()` is `expected`: the server's side of an action,
    which runs after the execution was created."""

    async def holds() -> bool:
        return bool(await probe() == expected)

    await eventually(holds, f"the server's files becoming {expected}", timeout=timeout)


async def stored(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


async def test_one_execution_per_batch_then_the_files_are_moved(
    h: Harness, server: tuple[str, Running]
) -> None:
    """vfs/Trigger.java + AbstractFileTriggerTest (MOVE): the files found make one
    execution, `trigger.files` holding each (Kestra's File: `path` the stored copy's URI,
    `changeType` CREATE), then they go to `moveDirectory`; a file added later is the only
    one of the next execution: none is taken twice."""
    pkg, srv = server
    d = unique()
    home = srv.root / HOME[1:]
    await put(home / d / "in" / "a.csv", "a\n")
    await put(home / d / "in" / "b.csv", "b\n")
    await put(home / d / "in" / "skip.txt", "not a csv\n")
    source = trigger_flow(
        pkg,
        srv.port,
        f"""
        from: {d}/in/
        regExp: ".*\\\\.csv"
        interval: PT0.2S
        action: MOVE
        moveDirectory: /{d}/archive/
        """,
    )
    async with running_triggers(h, source) as th:
        (first,) = await th.wait_for(1)
        docs = sorted(files_of(first), key=lambda f: f["name"])
        assert [f["name"] for f in docs] == ["a.csv", "b.csv"]
        a = docs[0]
        assert a["path"].startswith("kestra:///test/watch/triggers/poll/")
        assert a["uri"] == a["path"]
        assert await stored(h, a["path"]) == "a\n"
        assert a["changeType"] == "CREATE"
        assert a["remotePath"] == f"/{d}/in/a.csv"
        assert a["fileType"] == "FILE" and a["size"] == 2
        assert a["sha256"] == "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7"
        await put(home / d / "in" / "c.csv", "c\n")
        second = (await th.wait_for(2))[1]
        assert [f["name"] for f in files_of(second)] == ["c.csv"]
        done = await th.finished()
        await until(lambda: listing(home / d / "archive"), ["a.csv", "b.csv", "c.csv"])
    assert [e.state.current for e in done] == [State.SUCCESS, State.SUCCESS]
    assert await listing(home / d / "in") == ["skip.txt"]
    assert await listing(home / d / "archive") == ["a.csv", "b.csv", "c.csv"]


async def test_delete_removes_the_files_once_their_execution_exists(
    h: Harness, sftp_server: Running
) -> None:
    """AbstractFileTriggerTest (DELETE): the files are gone from the server after."""
    d = unique()
    home = sftp_server.root / HOME[1:]
    await put(home / d / "x.json", "{}")
    source = trigger_flow("sftp", sftp_server.port, f"from: /{d}\ninterval: PT0.2S\naction: DELETE")
    async with running_triggers(h, source) as th:
        (execution,) = await th.wait_for(1)
        assert [f["name"] for f in files_of(execution)] == ["x.json"]
        await until(lambda: listing(home / d), [])


async def test_none_keeps_the_files_and_fires_only_for_new_or_changed_content(
    h: Harness, ftp_server: Running, lines: Lines
) -> None:
    """vfs/Trigger.java with action NONE and `on` CREATE_OR_UPDATE: files stay; the next
    polls take only a new file (CREATE) or one whose content changed (UPDATE), never one
    processed before, even after the trigger restarts (podium: by content)."""
    d = unique()
    home = ftp_server.root / HOME[1:]
    await put(home / d / "one.txt", "1")
    source = trigger_flow("ftp", ftp_server.port, f"from: /{d}\ninterval: PT0.2S\naction: NONE")
    async with running_triggers(h, source) as th:
        (first,) = await th.wait_for(1)
        assert [(f["name"], f["changeType"]) for f in files_of(first)] == [("one.txt", "CREATE")]
        await put(home / d / "two.txt", "2")
        second = (await th.wait_for(2))[1]
        assert [(f["name"], f["changeType"]) for f in files_of(second)] == [("two.txt", "CREATE")]
        await put(home / d / "one.txt", "1, changed")
        third = (await th.wait_for(3))[2]
        assert [(f["name"], f["changeType"]) for f in files_of(third)] == [("one.txt", "UPDATE")]
        assert await stored(h, files_of(third)[0]["path"]) == "1, changed"
    before = len([line for line in lines.lines if "was processed before" in line])
    async with running_triggers(h, source) as again:
        await lines.wait_for("was processed before", before + 2)
        assert again.executions == []
    assert await listing(home / d) == ["one.txt", "two.txt"]


async def test_max_files_makes_batches(h: Harness, sftp_server: Running) -> None:
    """vfs/Trigger.java `maxFiles`: no execution carries more files than that."""
    d = unique()
    home = sftp_server.root / HOME[1:]
    for i in range(5):
        await put(home / d / f"f{i}.txt", str(i))
    source = trigger_flow(
        "sftp",
        sftp_server.port,
        f"from: /{d}\ninterval: PT0.2S\naction: DELETE\nmaxFiles: 2\nsort: NAME_ASC",
    )
    async with running_triggers(h, source) as th:
        executions = await th.wait_for(3)
    batches = [[f["name"] for f in files_of(e)] for e in executions]
    assert batches == [["f0.txt", "f1.txt"], ["f2.txt", "f3.txt"], ["f4.txt"]]


async def test_recursive_finds_files_below_but_not_in_the_move_directory(
    h: Harness, ftp_server: Running
) -> None:
    """vfs/Trigger.java `recursive`: subdirectories too; the files MOVEd into a
    `moveDirectory` under `from` are not taken again."""
    d = unique()
    home = ftp_server.root / HOME[1:]
    await put(home / d / "top.txt", "t")
    await put(home / d / "sub" / "deep.txt", "d")
    source = trigger_flow(
        "ftp",
        ftp_server.port,
        f"from: /{d}\nrecursive: true\ninterval: PT0.2S\naction: MOVE\nmoveDirectory: /{d}/done",
    )
    async with running_triggers(h, source) as th:
        (execution,) = await th.wait_for(1)
        paths = sorted(f["remotePath"] for f in files_of(execution))
        assert paths == [f"/{d}/sub/deep.txt", f"/{d}/top.txt"]
        await until(lambda: listing(home / d / "done"), ["deep.txt", "top.txt"])
        await asyncio.sleep(0.5)  # a few more polls: nothing more may fire
        assert len(th.executions) == 1
    assert await listing(home / d / "done") == ["deep.txt", "top.txt"]


async def test_an_unreachable_server_is_logged_once_and_polling_goes_on(
    h: Harness, tmp_path: Path, lines: Lines
) -> None:
    """A server that is down is said once (not at every poll); once it is back, its files
    start an execution as usual."""
    port_holder = await asyncio.to_thread(_free_port)
    root = tmp_path / "srv"
    await put(root / "late.txt", "late")
    source = trigger_flow("ftp", port_holder, "from: /\ninterval: PT0.1S\naction: DELETE")
    async with running_triggers(h, source) as th:
        await lines.wait_for(f"ftp://127.0.0.1:{port_holder}: cannot log in")
        await asyncio.sleep(0.5)  # several polls
        assert len([line for line in lines.lines if "cannot log in" in line]) == 1
        server = await asyncio.to_thread(_start_ftp, root, port_holder)
        try:
            (execution,) = await th.wait_for(1)
            assert [f["name"] for f in files_of(execution)] == ["late.txt"]
            await lines.wait_for("answers again")
        finally:
            await asyncio.to_thread(server.close)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Started:
    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def close(self) -> None:
        self.manager.__exit__(None, None, None)


def _start_ftp(root: Path, port: int) -> _Started:
    manager = serving("ftp", root, "--port", str(port))
    manager.__enter__()
    return _Started(manager)


async def test_a_refused_login_is_logged_and_masked(
    h: Harness, sftp_server: Running, lines: Lines
) -> None:
    """A wrong password: the trigger says so in the daemon's log and goes on polling; the
    password itself never appears."""
    source = trigger_flow("sftp", sftp_server.port, "from: /\ninterval: PT0.1S\naction: NONE")
    source = source.replace("password: bar", "password: sesame-wrong")
    async with running_triggers(h, source) as th:
        (line,) = await lines.wait_for("cannot log in")
        assert "refused the login" in line and "sesame-wrong" not in line
        assert th.executions == []


async def test_ssh_rsa_host_keys_only_with_enable_ssh_rsa1(
    h: Harness, rsa_only_server: Running, lines: Lines
) -> None:
    """vfs/Trigger.java enableSshRsa1 (default false): a server whose host key signs with
    ssh-rsa (SHA-1) only is refused, unless the trigger enables it."""
    d = unique()
    await put(rsa_only_server.root / HOME[1:] / d / "r.txt", "rsa")
    body = f"from: /{d}\ninterval: PT0.1S\naction: DELETE"
    async with running_triggers(h, trigger_flow("sftp", rsa_only_server.port, body)):
        await lines.wait_for("no key exchange in common")
    enabled = trigger_flow("sftp", rsa_only_server.port, body + "\nenableSshRsa1: true")
    async with running_triggers(h, enabled) as th:
        (execution,) = await th.wait_for(1)
        assert [f["name"] for f in files_of(execution)] == ["r.txt"]


async def test_kestras_for_each_example_runs_on_the_files(h: Harness, ftp_server: Running) -> None:
    """ftp/Trigger.java @Example 1 (ForEach over `trigger.files`, Return of each `.path`),
    pointed at the test's server: one task run per file, each value a stored copy."""
    d = unique()
    home = ftp_server.root / HOME[1:]
    await put(home / d / "in" / "e1.txt", "1")
    await put(home / d / "in" / "e2.txt", "2")
    tasks = """
tasks:
  - id: for_each_file
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ trigger.files }}"
    tasks:
      - id: return
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value | jq('.path') }}"
"""
    body = f"from: /{d}/in/\ninterval: PT0.2S\naction: MOVE\nmoveDirectory: /{d}/archive/"
    async with running_triggers(h, trigger_flow("ftp", ftp_server.port, body, tasks)) as th:
        await th.wait_for(1)
        (execution,) = await th.finished()
    assert execution.state.current == State.SUCCESS
    # Kestra's jq() gives the list of the filter's results: one path each
    found = [
        json.loads(tr.outputs["value"]) for tr in execution.task_runs if tr.task_id == "return"
    ]
    values = [value for (value,) in found]
    assert len(values) == 2 and all(v.startswith("kestra:///") for v in values)
    assert sorted([await stored(h, v) for v in values]) == ["1", "2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("from: /in", "missing required property 'action'"),
        ("from: /in\naction: MOVE", "MOVE needs 'moveDirectory'"),
        ("from: /in\naction: NONE\nregExp: '(unclosed'", "invalid regExp"),
        ("from: /in\naction: NONE\ninterval: PT0S", "interval: must be positive"),
        ("from: /in\naction: NONE\ninterval: often", "interval: 'often' is not an ISO-8601"),
        ("from: /in\naction: NONE\non: DELETE", "on: Input should be 'CREATE', 'UPDATE'"),
        ("from: /in\naction: NONE\nmaxFiles: 0", "maxFiles: Input should be greater than"),
        ("action: NONE", "missing required property 'from'"),
        ("from: /in\naction: NONE\nproxyType: SOCKS5", "proxyType: Input should be"),
    ],
)
def test_malformed_triggers_are_load_errors(body: str, message: str) -> None:
    """Each property of vfs/Trigger.java checked when the flow loads (Kestra's `action` is
    @NotNull: it has no default)."""
    (found,) = problems(trigger_flow("ftp", 21, body))
    assert message in found, found


def test_a_trigger_with_a_port_that_is_no_port_is_a_load_error() -> None:
    (found,) = problems(trigger_flow("sftp", "nope", "from: /in\naction: NONE"))  # type: ignore[arg-type]
    message = "port: must be a port number from 1 to 65535"
    assert message in found, found


async def test_a_templated_from_is_rendered_when_the_trigger_starts(
    h: Harness, sftp_server: Running
) -> None:
    """The trigger's properties are dynamic: rendered once, when it starts."""
    d = unique()
    await put(sftp_server.root / HOME[1:] / f"test-{d}" / "v.txt", "v")
    source = trigger_flow(
        "sftp",
        sftp_server.port,
        f'from: "/{{{{ flow.namespace }}}}-{d}"\ninterval: PT0.2S\naction: DELETE',
    )
    async with running_triggers(h, source) as th:
        (execution,) = await th.wait_for(1)
    assert files_of(execution)[0]["remotePath"] == f"/test-{d}/v.txt"
