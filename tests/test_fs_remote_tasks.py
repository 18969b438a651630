"""The FTP, FTPS and SFTP tasks against real servers (tests/remote_servers.py, each in a
process of its own on a free port): an aioftp server, plain, with implicit TLS and with
AUTH TLS, and an asyncssh SFTP server taking a password or a key.

Kestra's behaviour comes from kestra-io/plugin-fs: vfs/VfsService.java (list, download,
upload, delete, move), vfs/List.java, Download.java, Downloads.java, Upload.java,
Uploads.java, Delete.java, Move.java, ftp/FtpService.java, ftps/FtpsService.java,
sftp/SftpService.java, and the ftp/sftp ListTest, DownloadsTest, UploadsTest, DeleteTest,
MoveTest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, problems
from tests.remote_helpers import (
    Running,
    ed25519_openssh_key,
    rsa_pem_key,
    self_signed,
    serving,
)

HOME = "/home/foo"


@dataclass
class Remote:
    """A server a flow's tasks log into: `pkg` names the task types, `props` the
    connection's properties as a flow writes them, `home` the user's home on disk."""

    pkg: str
    scheme: str
    props: dict[str, Any]
    home: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def task(self, task_id: str, name: str, **properties: Any) -> str:
        lines = {"id": task_id, "type": f"io.kestra.plugin.fs.{self.pkg}.{name}"}
        body = {**lines, **self.props, **properties}
        return "  - " + "\n    ".join(f"{k}: {_yaml(v)}" for k, v in body.items())


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and "\n" in value:
        return "|\n" + textwrap.indent(value, " " * 6)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def flow(*tasks: str) -> str:
    return "id: remote\nnamespace: test\ntasks:\n" + "\n".join(tasks) + "\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def key_rsa() -> Any:
    return rsa_pem_key("secret words")


@pytest.fixture(scope="module")
def key_ed25519() -> Any:
    return ed25519_openssh_key()


@pytest.fixture(scope="module")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("ftp")
    with serving("ftp", root, "--home", HOME) as server:
        yield server


@pytest.fixture(scope="module")
def ftps_explicit(
    tmp_path_factory: pytest.TempPathFactory, certs: tuple[Path, Path]
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("ftps")
    cert, key = certs
    args = ["--home", HOME, "--cert", str(cert), "--key", str(key), "--tls", "explicit"]
    with serving("ftp", root, *args) as server:
        yield server


@pytest.fixture(scope="module")
def ftps_implicit(
    tmp_path_factory: pytest.TempPathFactory, certs: tuple[Path, Path]
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("ftpsi")
    cert, key = certs
    args = ["--home", HOME, "--cert", str(cert), "--key", str(key), "--tls", "implicit"]
    with serving("ftp", root, *args) as server:
        yield server


@pytest.fixture(scope="module")
def sftp_server(
    tmp_path_factory: pytest.TempPathFactory, key_rsa: Any, key_ed25519: Any
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("sftp")
    keys = root.parent / f"{root.name}.keys"
    keys.write_text(key_rsa.public + "\n" + key_ed25519.public + "\n")
    args = ["--home", HOME, "--password", "bar", "--authorized-key", str(keys)]
    with serving("sftp", root, *args) as server:
        yield server


@pytest.fixture(scope="module")
def pasv_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An FTP server whose PASV replies name 127.0.0.2, where it does not listen."""
    root = tmp_path_factory.mktemp("pasv")
    with serving("ftp", root, "--pasv-address", "127.0.0.2") as server:
        yield server


@pytest.fixture(scope="module")
def kex_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An SFTP server with one key exchange, ecdh-sha2-nistp256."""
    root = tmp_path_factory.mktemp("kex")
    args = ["--password", "bar", "--kex", "ecdh-sha2-nistp256"]
    with serving("sftp", root, *args) as server:
        yield server


@pytest.fixture(scope="module")
def jump_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An SSH server forwarding connections, for user `jumper`, password `jp`."""
    root = tmp_path_factory.mktemp("jump")
    args = ["--user", "jumper", "--password", "jp", "--forwarding"]
    with serving("sftp", root, *args) as server:
        yield server


@pytest.fixture(scope="module")
def proxy_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """SOCKS5 and HTTP CONNECT, no credentials; what it connects to in `root/log`."""
    root = tmp_path_factory.mktemp("proxy")
    with serving("proxy", root, "--log", str(root / "log")) as server:
        yield server


@pytest.fixture(scope="module")
def proxy_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The same proxy, for user `pu` and password `pp`."""
    root = tmp_path_factory.mktemp("proxya")
    args = ["--log", str(root / "log"), "--user", "pu", "--password", "pp"]
    with serving("proxy", root, *args) as server:
        yield server


async def tunnels(proxy: Running) -> list[str]:
    """What the proxy connected to so far."""
    log = proxy.root / "log"
    return await asyncio.to_thread(lambda: log.read_text().splitlines() if log.exists() else [])


KINDS = ["ftp", "ftps", "ftps-implicit", "sftp", "sftp-key"]


@pytest.fixture
def remote(request: pytest.FixtureRequest) -> Remote:
    kind: str = request.param
    base = {"host": "127.0.0.1", "username": "foo"}
    if kind == "ftp":
        server = request.getfixturevalue("ftp_server")
        return Remote(
            "ftp", "ftp", {**base, "port": server.port, "password": "bar"}, server.root / HOME[1:]
        )
    if kind.startswith("ftps"):
        server = request.getfixturevalue("ftps_implicit" if "implicit" in kind else "ftps_explicit")
        props = {**base, "port": server.port, "password": "bar"}
        props["insecureTrustAllCertificates"] = True
        if "implicit" in kind:
            props["mode"] = "IMPLICIT"
        return Remote("ftps", "ftps", props, server.root / HOME[1:])
    server = request.getfixturevalue("sftp_server")
    props = {**base, "port": str(server.port)}
    if kind == "sftp-key":
        key = request.getfixturevalue("key_rsa")
        props.update(keyfile=key.private, passphrase="secret words")
    else:
        props["password"] = "bar"
    return Remote("sftp", "sftp", props, server.root / HOME[1:])


def runs(execution: Execution) -> dict[str, Any]:
    return {tr.task_id: tr for tr in execution.task_runs}


def outputs(execution: Execution) -> dict[str, dict[str, Any]]:
    return {tr.task_id: dict(tr.outputs or {}) for tr in execution.task_runs}


async def stored(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


def unique() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def put(path: Path, data: str) -> None:
    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)

    await asyncio.to_thread(write)


async def exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


async def read(path: Path) -> str:
    return await asyncio.to_thread(path.read_text)


async def contents(directory: Path) -> list[str]:
    """The contents of the files in a directory, sorted."""
    return await asyncio.to_thread(lambda: sorted(p.read_text() for p in directory.iterdir()))


async def names(directory: Path) -> list[str]:
    """The names of the files under a directory, its subdirectories' too, sorted."""
    return await asyncio.to_thread(
        lambda: sorted(p.name for p in directory.rglob("*") if p.is_file())
    )


async def failure(h: Harness, execution: Execution) -> str:
    assert execution.state.current == State.FAILED, execution.state.current
    return "\n".join(await h.logs(execution, "ERROR"))


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("remote", KINDS, indirect=True)
async def test_upload_then_download_round_trips_through_storage(h: Harness, remote: Remote) -> None:
    """Upload.java + Download.java (VfsService.upload/download): a kestra:// file goes to the
    server under `to` (directories created), and Download brings it back into storage with
    its checksum (SHA_256 by default); `from`/`to` are URIs without credentials or port."""
    d = unique()
    execution = await h.run(
        flow(
            "  - id: write\n    type: io.kestra.plugin.core.storage.Write\n"
            '    content: "héllo, remote\\n"\n    extension: .txt',
            remote.task(
                "up", "Upload", **{"from": "{{ outputs.write.uri }}", "to": f"/{d}/in/a.txt"}
            ),
            remote.task("down", "Download", **{"from": f"{d}/in/a.txt"}),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    out = outputs(execution)
    assert out["up"]["to"] == f"{remote.scheme}://127.0.0.1/{d}/in/a.txt"
    assert out["up"]["from"] == out["write"]["uri"]
    assert await read(remote.home / d / "in" / "a.txt") == "héllo, remote\n"
    down = out["down"]
    assert down["from"] == f"{remote.scheme}://127.0.0.1/{d}/in/a.txt"
    assert down["to"].startswith("kestra:///") and down["to"].endswith("/a.txt")
    assert await stored(h, down["to"]) == "héllo, remote\n"
    assert down["checksum"] == hashlib.sha256("héllo, remote\n".encode()).hexdigest()
    assert "bar" not in "\n".join(await h.logs(execution))


@pytest.mark.parametrize("remote", KINDS, indirect=True)
async def test_list_filters_on_the_whole_path_and_goes_down_when_recursive(
    h: Harness, remote: Remote
) -> None:
    """ListTest / VfsService.list: files only (no directories), `regExp` matched on the full
    path as the flow writes it, `recursive` to descend; Kestra's File fields."""
    d = unique()
    for name in ("a.csv", "b.txt", "sub/c.csv"):
        await put(remote.home / d / name, f"data of {name}")
    execution = await h.run(
        flow(
            remote.task("flat", "List", **{"from": f"/{d}/", "regExp": r".*\.csv"}),
            remote.task(
                "deep", "List", **{"from": f"/{d}", "regExp": rf".*/{d}/.*\.csv", "recursive": True}
            ),
            remote.task("all", "List", **{"from": d, "recursive": True, "sort": "NAME_DESC"}),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    out = outputs(execution)
    (flat,) = out["flat"]["files"]
    assert flat["path"] == f"/{d}/a.csv"
    assert flat["name"] == "a.csv"
    assert flat["fileType"] == "FILE"
    assert flat["size"] == len("data of a.csv")
    assert flat["updatedDate"] is not None and flat["updatedDate"].endswith("Z")
    assert sorted(f["path"] for f in out["deep"]["files"]) == [f"/{d}/a.csv", f"/{d}/sub/c.csv"]
    assert [f["name"] for f in out["all"]["files"]] == ["c.csv", "b.txt", "a.csv"]


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_list_keeps_max_files_and_says_so(h: Harness, remote: Remote) -> None:
    """List.java: more files than `maxFiles` are cut to it, with a warning."""
    d = unique()
    for i in range(4):
        await put(remote.home / d / f"f{i}.txt", "x")
    execution = await h.run(
        flow(remote.task("ls", "List", **{"from": f"/{d}", "maxFiles": 3, "sort": "NAME_ASC"}))
    )
    assert [f["name"] for f in outputs(execution)["ls"]["files"]] == ["f0.txt", "f1.txt", "f2.txt"]
    assert "Too many files to process (4), limiting to 3" in await h.logs(execution)


@pytest.mark.parametrize("remote", ["ftp", "ftps", "sftp"], indirect=True)
async def test_downloads_stores_each_file_then_moves_them(h: Harness, remote: Remote) -> None:
    """DownloadsTest / Downloads.java: each file listed goes to storage (`path` becomes its
    kestra:// URI, `outputFiles` maps names to URIs), then MOVE takes them to
    `moveDirectory`; a file already there is kept (podium puts the new one beside it)."""
    d = unique()
    await put(remote.home / d / "in" / "a.csv", "1,2\n")
    await put(remote.home / d / "in" / "b.csv", "3,4\n")
    await put(remote.home / d / "archive" / "a.csv", "older\n")
    execution = await h.run(
        flow(
            remote.task(
                "dl",
                "Downloads",
                **{"from": f"/{d}/in/", "action": "MOVE", "moveDirectory": f"/{d}/archive/"},
            ),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    out = outputs(execution)["dl"]
    by_name = {f["name"]: f for f in out["files"]}
    assert set(by_name) == {"a.csv", "b.csv"}
    assert await stored(h, by_name["a.csv"]["path"]) == "1,2\n"
    assert out["outputFiles"] == {n: f["path"] for n, f in by_name.items()}
    assert not await exists(remote.home / d / "in" / "a.csv")
    assert await read(remote.home / d / "archive" / "a.csv") == "older\n"
    assert await read(remote.home / d / "archive" / "a-1.csv") == "1,2\n"
    assert await read(remote.home / d / "archive" / "b.csv") == "3,4\n"


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_downloads_delete_and_none(h: Harness, remote: Remote) -> None:
    """Downloads.java: DELETE removes what was downloaded; NONE (or no action) leaves it."""
    d = unique()
    await put(remote.home / d / "x" / "a.txt", "a")
    await put(remote.home / d / "y" / "b.txt", "b")
    execution = await h.run(
        flow(
            remote.task("del", "Downloads", **{"from": f"/{d}/x", "action": "DELETE"}),
            remote.task("keep", "Downloads", **{"from": f"/{d}/y", "action": "NONE"}),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert not await exists(remote.home / d / "x" / "a.txt")
    assert await exists(remote.home / d / "y" / "b.txt")
    (kept,) = outputs(execution)["keep"]["files"]
    assert await stored(h, kept["path"]) == "b"


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_uploads_takes_a_list_a_map_or_a_stored_list_of_uris(
    h: Harness, remote: Remote
) -> None:
    """UploadsTest / Uploads.java: `from` as a list of URIs, a map of destination names to
    URIs, or a URI of a stored file listing URIs; each goes into `to`; `files` are the
    remote URIs."""
    d = unique()
    write = "  - id: {0}\n    type: io.kestra.plugin.core.storage.Write\n    content: {0}"
    listing = (
        "  - id: listing\n    type: io.kestra.plugin.core.storage.Write\n"
        '    content: "\\"{{ outputs.one.uri }}\\"\\n\\"{{ outputs.two.uri }}\\"\\n"'
    )
    execution = await h.run(
        flow(
            write.format("one"),
            write.format("two"),
            listing,
            remote.task(
                "by_list",
                "Uploads",
                to=f"/{d}/list",
                **{"from": ["{{ outputs.one.uri }}", "{{ outputs.two.uri }}"]},
            ),
            remote.task(
                "by_map",
                "Uploads",
                to=f"/{d}/map/",
                **{"from": {"first.txt": "{{ outputs.one.uri }}"}},
            ),
            remote.task(
                "by_file", "Uploads", to=f"/{d}/file", **{"from": "{{ outputs.listing.uri }}"}
            ),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    out = outputs(execution)
    assert len(out["by_list"]["files"]) == 2
    assert out["by_map"]["files"] == [f"{remote.scheme}://127.0.0.1/{d}/map/first.txt"]
    assert await read(remote.home / d / "map" / "first.txt") == "one"
    assert await contents(remote.home / d / "list") == ["one", "two"]
    assert await contents(remote.home / d / "file") == ["one", "two"]


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_delete_a_file_a_tree_and_by_reg_exp(h: Harness, remote: Remote) -> None:
    """DeleteTest / VfsService.delete: a file; a missing one is `deleted: false` (an error
    with `errorOnMissing`); a directory with `recursive`; with `regExp` the matching files
    under a directory, their URIs in `uris`."""
    d = unique()
    for name in ("one.txt", "tree/a/b.txt", "re/x.csv", "re/y.txt", "re/sub/z.csv"):
        await put(remote.home / d / name, name)
    execution = await h.run(
        flow(
            remote.task("file", "Delete", uri=f"/{d}/one.txt"),
            remote.task("missing", "Delete", uri=f"/{d}/nothing.txt"),
            remote.task("tree", "Delete", uri=f"/{d}/tree", recursive=True),
            remote.task("re", "Delete", uri=f"/{d}/re", regExp=r".*\.csv"),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    out = outputs(execution)
    base = f"{remote.scheme}://127.0.0.1/{d}"
    assert out["file"] == {"uri": f"{base}/one.txt", "deleted": True, "uris": []}
    assert out["missing"] == {"uri": f"{base}/nothing.txt", "deleted": False, "uris": []}
    assert out["tree"]["deleted"] is True
    assert out["re"] == {"uri": f"{base}/re", "deleted": True, "uris": [f"{base}/re/x.csv"]}
    assert not await exists(remote.home / d / "tree")
    assert await names(remote.home / d / "re") == ["y.txt", "z.csv"]
    failed = await h.run(
        flow(remote.task("strict", "Delete", uri=f"/{d}/nothing.txt", errorOnMissing=True))
    )
    assert f"Unable to find file '{base}/nothing.txt'" in await failure(h, failed)


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_move_renames_creates_directories_and_refuses_to_overwrite(
    h: Harness, remote: Remote
) -> None:
    """MoveTest / VfsService.move: into a directory that does not exist yet (created), to a
    directory (`/` at the end keeps the name); an existing target only with `overwrite`."""
    d = unique()
    await put(remote.home / d / "a.txt", "A")
    await put(remote.home / d / "b.txt", "B")
    await put(remote.home / d / "c.txt", "C")
    await put(remote.home / d / "new" / "b.txt", "old B")
    execution = await h.run(
        flow(
            remote.task("rename", "Move", **{"from": f"/{d}/a.txt", "to": f"/{d}/x/y/z.txt"}),
            remote.task("into", "Move", **{"from": f"/{d}/c.txt", "to": f"/{d}/new/"}),
            remote.task(
                "over", "Move", overwrite=True, **{"from": f"/{d}/b.txt", "to": f"/{d}/new/b.txt"}
            ),
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    out = outputs(execution)
    base = f"{remote.scheme}://127.0.0.1/{d}"
    assert out["rename"] == {"from": f"{base}/a.txt", "to": f"{base}/x/y/z.txt"}
    assert out["into"]["to"] == f"{base}/new/c.txt"
    assert await read(remote.home / d / "x" / "y" / "z.txt") == "A"
    assert await read(remote.home / d / "new" / "b.txt") == "B"
    await put(remote.home / d / "d.txt", "D")
    refused = await h.run(
        flow(remote.task("clash", "Move", **{"from": f"/{d}/d.txt", "to": f"/{d}/new/c.txt"}))
    )
    assert "already exists in the remote server" in await failure(h, refused)
    assert await read(remote.home / d / "new" / "c.txt") == "C"
    missing = await h.run(flow(remote.task("gone", "Move", **{"from": f"/{d}/no", "to": "/x"})))
    assert f"Unable to find file '{base}/no'" in await failure(h, missing)


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_upload_refuses_to_overwrite_unless_told(h: Harness, remote: Remote) -> None:
    """Upload.java (`overwrite`, default false): an existing file is an error saying how to
    replace it; with `overwrite: true` it is replaced. `from` must be a kestra:// URI."""
    d = unique()
    await put(remote.home / d / "f.txt", "old")
    write = "  - id: write\n    type: io.kestra.plugin.core.storage.Write\n    content: new"
    refused = await h.run(
        flow(
            write,
            remote.task("up", "Upload", to=f"/{d}/f.txt", **{"from": "{{ outputs.write.uri }}"}),
        )
    )
    assert "Set `overwrite: true` to replace it" in await failure(h, refused)
    replaced = await h.run(
        flow(
            write,
            remote.task(
                "up",
                "Upload",
                to=f"/{d}/f.txt",
                overwrite=True,
                **{"from": "{{ outputs.write.uri }}"},
            ),
        )
    )
    assert replaced.state.current == State.SUCCESS, await h.logs(replaced)
    assert await read(remote.home / d / "f.txt") == "new"
    local = await h.run(flow(remote.task("up", "Upload", **{"from": "/etc/hostname"})))
    assert "must be a Kestra internal storage URI" in await failure(h, local)


# -- connection properties -----------------------------------------------------------------


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_root_dir_false_reads_paths_from_the_servers_root(h: Harness, remote: Remote) -> None:
    """FtpService/SftpService setUserDirIsRoot: with `rootDir: false` a path is read from the
    server's `/`, not from the home directory."""
    d = unique()
    await put(remote.home / d / "f.txt", "abs")
    execution = await h.run(
        flow(remote.task("ls", "List", rootDir=False, **{"from": f"{HOME}/{d}"}))
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert [f["path"] for f in outputs(execution)["ls"]["files"]] == [f"{HOME}/{d}/f.txt"]


@pytest.mark.parametrize("remote", ["ftp", "sftp"], indirect=True)
async def test_a_wrong_password_fails_at_once_without_showing_it(
    h: Harness, remote: Remote
) -> None:
    """A refused login is a failure that retrying cannot mend: no retry, the server's
    answer in the log, the password masked."""
    props = {**remote.props, "password": "not-the-password"}
    props.pop("keyfile", None)
    wrong = Remote(remote.pkg, remote.scheme, props, remote.home)
    task = wrong.task("ls", "List", **{"from": "/"})
    task += "\n    retry:\n      type: constant\n      interval: PT0.01S\n      maxAttempts: 3"
    execution = await h.run(flow(task))
    message = await failure(h, execution)
    assert "cannot log in" in message
    assert len(runs(execution)["ls"].attempts) == 1
    assert "not-the-password" not in "\n".join(await h.logs(execution))


@pytest.mark.parametrize("pkg", ["ftp", "ftps", "sftp"])
async def test_an_unreachable_server_is_a_clear_failure(h: Harness, pkg: str) -> None:
    """A port nobody listens on: the task fails, naming the server."""
    props = {"host": "127.0.0.1", "port": 1, "username": "foo", "password": "bar"}
    remote = Remote(pkg, pkg, props, Path())
    execution = await h.run(flow(remote.task("ls", "List", **{"from": "/"})))
    assert f"{pkg}://127.0.0.1:1: cannot log in" in await failure(h, execution)


async def test_ftps_refuses_a_certificate_it_cannot_trust(
    h: Harness, ftps_explicit: Running
) -> None:
    """FtpsService: the server's certificate is checked unless insecureTrustAllCertificates
    (a self-signed one is refused, saying how to accept it for a test server)."""
    props = {"host": "127.0.0.1", "port": ftps_explicit.port, "username": "foo", "password": "bar"}
    execution = await h.run(
        flow(Remote("ftps", "ftps", props, Path()).task("ls", "List", **{"from": "/"}))
    )
    message = await failure(h, execution)
    assert "certificate is not trusted" in message and "insecureTrustAllCertificates" in message


async def test_ftps_with_a_clear_data_channel(h: Harness, ftps_explicit: Running) -> None:
    """FtpsInterface dataChannelProtectionLevel C: PROT C, the data connections in clear while
    the control connection stays TLS; S and E (not in RFC 4217) are refused with a reason."""
    home = ftps_explicit.root / HOME[1:]
    d = unique()
    await put(home / d / "f.txt", "clear")
    props = {
        "host": "127.0.0.1",
        "port": ftps_explicit.port,
        "username": "foo",
        "password": "bar",
        "insecureTrustAllCertificates": True,
    }
    remote = Remote("ftps", "ftps", props, home)
    execution = await h.run(
        flow(
            remote.task("d", "Download", dataChannelProtectionLevel="C", **{"from": f"/{d}/f.txt"})
        )
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert await stored(h, outputs(execution)["d"]["to"]) == "clear"
    refused = await h.run(
        flow(remote.task("d", "List", dataChannelProtectionLevel="S", **{"from": "/"}))
    )
    assert "dataChannelProtectionLevel S is not supported" in await failure(h, refused)


async def test_ftp_active_mode_is_refused_with_the_reason(h: Harness, ftp_server: Running) -> None:
    """FtpInterface passiveMode: false asks for active FTP, which podium does not offer."""
    props = {
        "host": "127.0.0.1",
        "port": ftp_server.port,
        "username": "foo",
        "password": "bar",
        "passiveMode": False,
    }
    execution = await h.run(
        flow(Remote("ftp", "ftp", props, Path()).task("ls", "List", **{"from": "/"}))
    )
    assert "active FTP" in await failure(h, execution)


async def test_remote_ip_verification_ignores_the_address_a_pasv_reply_names(
    h: Harness, pasv_server: Running
) -> None:
    """FtpInterface remoteIpVerification (default true): the data connection goes to the
    server's own address even when its PASV reply names another (a NAT'd server, or a
    bounce attempt); with false, to the address named (here one nobody listens on)."""
    await put(pasv_server.root / "f.txt", "x")
    props = {"host": "127.0.0.1", "port": pasv_server.port, "username": "foo", "password": "bar"}
    remote = Remote("ftp", "ftp", props, pasv_server.root)
    verified = await h.run(flow(remote.task("ls", "List", **{"from": "/"})))
    assert verified.state.current == State.SUCCESS, await h.logs(verified)
    assert [f["name"] for f in outputs(verified)["ls"]["files"]] == ["f.txt"]
    trusting = await h.run(
        flow(remote.task("ls", "List", remoteIpVerification=False, **{"from": "/"}))
    )
    assert "cannot list /" in await failure(h, trusting)


@pytest.mark.parametrize("kind", ["rsa-pem", "ed25519-openssh"])
async def test_sftp_logs_in_with_a_key(
    h: Harness, sftp_server: Running, key_rsa: Any, key_ed25519: Any, kind: str
) -> None:
    """SftpService: `keyfile` is the key's text (PEM as `ssh-keygen -m PEM` writes it, with
    its `passphrase`; OpenSSH's own format works too), public key authentication only."""
    props: dict[str, Any] = {"host": "127.0.0.1", "port": sftp_server.port, "username": "foo"}
    if kind == "rsa-pem":
        props.update(keyfile=key_rsa.private, passphrase="secret words")
    else:
        props["keyfile"] = key_ed25519.private
    d = unique()
    home = sftp_server.root / HOME[1:]
    await put(home / d / "k.txt", "by key")
    remote = Remote("sftp", "sftp", props, home)
    execution = await h.run(flow(remote.task("d", "Download", **{"from": f"/{d}/k.txt"})))
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert await stored(h, outputs(execution)["d"]["to"]) == "by key"
    logs = "\n".join(await h.logs(execution))
    assert "secret words" not in logs and "PRIVATE KEY" not in logs


async def test_sftp_a_bad_key_or_passphrase_is_a_clear_failure(
    h: Harness, sftp_server: Running, key_rsa: Any
) -> None:
    """A keyfile that is no key, or the wrong passphrase: an error naming `keyfile`."""
    base = {"host": "127.0.0.1", "port": sftp_server.port, "username": "foo"}
    for props in (
        {**base, "keyfile": "not a key"},
        {**base, "keyfile": key_rsa.private, "passphrase": "wrong"},
    ):
        task = Remote("sftp", "sftp", props, Path()).task("ls", "List", **{"from": "/"})
        execution = await h.run(flow(task))
        assert "keyfile is not a usable private key" in await failure(h, execution)


async def test_sftp_key_exchange_algorithm_is_the_only_one_offered(
    h: Harness, kex_server: Running
) -> None:
    """SftpInterface keyExchangeAlgorithm: the one key exchange offered; a server without it
    refuses the connection, saying there is none in common."""
    base = {"host": "127.0.0.1", "port": kex_server.port, "username": "foo", "password": "bar"}
    remote = Remote("sftp", "sftp", base, kex_server.root)
    kex = "ecdh-sha2-nistp256"
    ok = await h.run(flow(remote.task("ls", "List", keyExchangeAlgorithm=kex, **{"from": "/"})))
    assert ok.state.current == State.SUCCESS, await h.logs(ok)
    other = await h.run(
        flow(remote.task("ls", "List", keyExchangeAlgorithm="curve25519-sha256", **{"from": "/"}))
    )
    assert "cannot log in" in await failure(h, other)
    unknown = await h.run(
        flow(remote.task("ls", "List", keyExchangeAlgorithm="rot13", **{"from": "/"}))
    )
    assert "rot13" in await failure(h, unknown)


# -- proxies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pkg", "proxy_type"), [("ftp", "SOCKS"), ("ftp", "HTTP"), ("sftp", "SOCKS5"), ("sftp", "HTTP")]
)
async def test_connections_go_through_the_proxy(
    h: Harness,
    ftp_server: Running,
    sftp_server: Running,
    proxy_open: Running,
    proxy_auth: Running,
    pkg: str,
    proxy_type: str,
) -> None:
    """FtpService (java.net.Proxy SOCKS/HTTP: control and data connections) and SftpService
    (JSch SOCKS5/HTTP with the proxy's user and password): the server is reached through
    the proxy, which saw every connection."""
    server = sftp_server if pkg == "sftp" else ftp_server
    proxy = proxy_auth if pkg == "sftp" else proxy_open
    props: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": "foo",
        "password": "bar",
        "proxyType": proxy_type,
        "proxyPort": proxy.port,
    }
    if pkg == "sftp":
        props.update(proxyAddress="127.0.0.1", proxyUsername="pu", proxyPassword="pp")
    else:
        props["proxyHost"] = "127.0.0.1"
    d = unique()
    home = server.root / HOME[1:]
    await put(home / d / "p.txt", "proxied")
    before = len(await tunnels(proxy))
    remote = Remote(pkg, pkg, props, home)
    execution = await h.run(flow(remote.task("d", "Download", **{"from": f"/{d}/p.txt"})))
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert await stored(h, outputs(execution)["d"]["to"]) == "proxied"
    seen = (await tunnels(proxy))[before:]
    kind = "SOCKS5" if proxy_type.startswith("SOCKS") else "HTTP"
    assert seen[0] == f"{kind} 127.0.0.1:{server.port}"
    if pkg == "ftp":  # the data connections went through it too
        assert len(seen) >= 2 and all(line.startswith(f"{kind} 127.0.0.1:") for line in seen)


async def test_sftp_stream_proxy_jumps_through_another_ssh_server(
    h: Harness, sftp_server: Running, jump_server: Running
) -> None:
    """SftpService PROXY_STREAM: the connection is carried by another SSH server (a jump
    host), logged into with the proxy's user and password (the deprecated names here)."""
    props = {
        "host": "127.0.0.1",
        "port": sftp_server.port,
        "username": "foo",
        "password": "bar",
        "proxyType": "STREAM",
        "proxyHost": "127.0.0.1",
        "proxyPort": jump_server.port,
        "proxyUser": "jumper",
        "proxyPassword": "jp",
    }
    d = unique()
    home = sftp_server.root / HOME[1:]
    await put(home / d / "j.txt", "jumped")
    remote = Remote("sftp", "sftp", props, home)
    execution = await h.run(flow(remote.task("d", "Download", **{"from": f"/{d}/j.txt"})))
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    assert await stored(h, outputs(execution)["d"]["to"]) == "jumped"


async def test_a_proxy_that_refuses_is_a_clear_failure(
    h: Harness, sftp_server: Running, proxy_auth: Running
) -> None:
    """Wrong proxy credentials: the task fails, saying the proxy refused."""
    props = {
        "host": "127.0.0.1",
        "port": sftp_server.port,
        "username": "foo",
        "password": "bar",
        "proxyType": "SOCKS5",
        "proxyAddress": "127.0.0.1",
        "proxyPort": proxy_auth.port,
        "proxyUsername": "pu",
        "proxyPassword": "no",
    }
    task = Remote("sftp", "sftp", props, Path()).task("ls", "List", **{"from": "/"})
    execution = await h.run(flow(task))
    assert "the SOCKS5 proxy refused the user name and password" in await failure(h, execution)


# -- malformed flows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ("port: abc", "port: must be a port number from 1 to 65535 (got 'abc')"),
        ("port: 70000", "port: must be a port number from 1 to 65535"),
        ("proxyType: FTP", "proxyType: Input should be 'DIRECT', 'HTTP' or 'SOCKS'"),
        ("mode: TLS", "unknown property 'mode'"),
        ("options: {socketTimeout: PT0S}", "options.socketTimeout: must be positive"),
        ("options: {dataTimeout: soon}", "options.dataTimeout: 'soon' is not an ISO-8601"),
        ("hots: x", "unknown property 'hots'"),
    ],
)
def test_malformed_ftp_properties_are_load_errors(properties: str, message: str) -> None:
    """Every property is checked when the flow loads, with its line and the reason."""
    source = (
        "id: f\nnamespace: n\ntasks:\n  - id: t\n    type: io.kestra.plugin.fs.ftp.List\n"
        f"    host: h\n    from: /\n    {properties}\n"
    )
    (found,) = problems(source)
    assert message in found, found


@pytest.mark.parametrize(
    ("task", "properties", "message"),
    [
        (
            "sftp.List",
            "proxyType: SOCKS",
            "proxyType: Input should be 'SOCKS5', 'STREAM' or 'HTTP'",
        ),
        ("ftps.List", "mode: TLS", "mode: Input should be 'IMPLICIT' or 'EXPLICIT'"),
        ("ftps.List", "dataChannelProtectionLevel: X", "dataChannelProtectionLevel: Input should"),
        ("sftp.Downloads", "action: MOVE", "MOVE needs 'moveDirectory'"),
        ("sftp.Downloads", "action: COPY", "action: Input should be 'MOVE', 'DELETE' or 'NONE'"),
        ("ftp.List", "maxFiles: 0", "maxFiles: Input should be greater than or equal to 1"),
        ("ftp.List", "sort: SIZE", "sort: Input should be"),
        ("ftp.Download", "checksumAlgorithm: CRC", "checksumAlgorithm: Input should be"),
    ],
)
def test_malformed_properties_of_each_protocol_are_load_errors(
    task: str, properties: str, message: str
) -> None:
    source = (
        f"id: f\nnamespace: n\ntasks:\n  - id: t\n    type: io.kestra.plugin.fs.{task}\n"
        f"    host: h\n    from: /in\n    {properties}\n"
    )
    (found,) = problems(source)
    assert message in found, found


def test_a_task_without_host_is_a_load_error() -> None:
    (found,) = problems(
        "id: f\nnamespace: n\ntasks:\n  - id: t\n    type: io.kestra.plugin.fs.sftp.List\n"
        "    from: /\n"
    )
    assert "host" in found and "required" in found.lower(), found


async def test_a_templated_port_that_renders_wrong_fails_the_task(h: Harness) -> None:
    """A `port` written as an expression is checked once rendered."""
    execution = await h.run(
        flow(
            "  - id: ls\n    type: io.kestra.plugin.fs.ftp.List\n    host: 127.0.0.1\n"
            "    port: \"{{ 'x' ~ 1 }}\"\n    from: /"
        )
    )
    assert "port: must be a port number" in await failure(h, execution)


async def test_checksum_validation(h: Harness, ftp_server: Running) -> None:
    """Download.java validateChecksum/checksumExpected/checksumAlgorithm: a mismatch fails
    (the file not stored); a match passes, case aside; validation without an expected
    value is an error."""
    d = unique()
    home = ftp_server.root / HOME[1:]
    await put(home / d / "c.txt", "sum me")
    props = {"host": "127.0.0.1", "port": ftp_server.port, "username": "foo", "password": "bar"}
    remote = Remote("ftp", "ftp", props, home)
    md5 = hashlib.md5(b"sum me").hexdigest()
    good = await h.run(
        flow(
            remote.task(
                "d",
                "Download",
                validateChecksum=True,
                checksumAlgorithm="MD5",
                checksumExpected=md5.upper(),
                **{"from": f"/{d}/c.txt"},
            )
        )
    )
    assert good.state.current == State.SUCCESS, await h.logs(good)
    assert outputs(good)["d"]["checksum"] == md5
    assert any("MD5' is deprecated" in line for line in await h.logs(good))
    bad = await h.run(
        flow(
            remote.task(
                "d",
                "Download",
                validateChecksum=True,
                checksumExpected="00",
                **{"from": f"/{d}/c.txt"},
            )
        )
    )
    assert "Checksum mismatch" in await failure(h, bad)
    empty = await h.run(
        flow(remote.task("d", "Download", validateChecksum=True, **{"from": f"/{d}/c.txt"}))
    )
    assert "no `checksumExpected` value" in await failure(h, empty)


async def test_a_missing_remote_file_is_a_failure_that_is_not_retried(
    h: Harness, sftp_server: Running
) -> None:
    props = {"host": "127.0.0.1", "port": sftp_server.port, "username": "foo", "password": "bar"}
    task = Remote("sftp", "sftp", props, Path()).task("d", "Download", **{"from": "/no/such"})
    task += "\n    retry:\n      type: constant\n      interval: PT0.01S\n      maxAttempts: 3"
    execution = await h.run(flow(task))
    assert "cannot download /no/such" in await failure(h, execution)
    assert len(runs(execution)["d"].attempts) == 1
