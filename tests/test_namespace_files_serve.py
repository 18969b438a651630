"""Namespace files end to end against a real `podium serve`: pushed with the CLI (as
`kestra namespace files update` pushes them), read and written with Kestra's own Python
SDK (`kestrapy`, under the `main` tenant as it calls), and used by the example flow
flows/namespace_files.yaml (WorkingDirectory + namespaceFiles + UploadFiles + read())."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kestrapy import KestraClient
from kestrapy.base_api import BaseApi
from kestrapy.exceptions import NotFoundException

from tests.daemon_process import ROOT, ServeProcess
from tests.test_cluster_serve import NODE_ENV
from tests.test_kestrapy import _strict

NS = "podium.examples"
EXAMPLE = ROOT / "flows" / "namespace_files"


@pytest.fixture(autouse=True)
def strict_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer validates against kestrapy's own models (see tests/test_kestrapy.py)."""
    monkeypatch.setattr(BaseApi, "_construct_model", staticmethod(_strict))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[ServeProcess]:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "flows" / "namespace_files.yaml", flows)
    process = ServeProcess(tmp_path, flows, tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


def push(daemon: ServeProcess, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "namespace", "files", "update", NS, str(folder),
         "--url", daemon.url(""), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_cli_push_kestrapy_round_trip_and_the_example_flow(
    daemon: ServeProcess, tmp_path: Path
) -> None:
    """Kestra docs "Namespace Files" (CLI `kestra namespace files update`, the API) and
    NamespaceFileControllerTest through kestrapy's FilesApi."""
    pushed = push(daemon, EXAMPLE)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.splitlines() == [
        "uploaded /scripts/big_orders.py",
        f"1 uploaded, 0 deleted in namespace {NS}",
    ]

    client = KestraClient(host=daemon.url(""), timeout=30)
    files = client.files
    root = files.list_namespace_directory_files(NS, tenant="main")
    assert [(f.file_name, f.type.value) for f in root] == [("scripts", "Directory")]
    script = (EXAMPLE / "scripts" / "big_orders.py").read_bytes()
    assert files.file_content(NS, "/scripts/big_orders.py", tenant="main") == script
    stats = files.file_metadatas(NS, tenant="main", path="/scripts/big_orders.py")
    assert stats.size == len(script) and stats.type.value == "File"
    files.create_namespace_file(NS, "/data/hello.txt", tenant="main", file_content=b"hi there")
    assert files.file_content(NS, "/data/hello.txt", tenant="main") == b"hi there"
    assert files.search_namespace_files(NS, q="hello", tenant="main") == ["/data/hello.txt"]
    files.move_file_directory(NS, "/data", "/archive", tenant="main")
    files.delete_file_directory(NS, "/archive/hello.txt", tenant="main")
    with pytest.raises(NotFoundException):
        files.file_content(NS, "/archive/hello.txt", tenant="main")

    execution = daemon.create_execution(NS, "namespace_files")
    done = daemon.wait_execution(execution["id"], {"SUCCESS", "FAILED", "WARNING"})
    assert done["state"]["current"] == "SUCCESS", done
    report = files.file_content(NS, "/reports/big_orders.csv", tenant="main").decode()
    assert report.splitlines() == [
        "order_id,customer,amount",
        "1,ada,120",
        "3,alan,250",
        "5,grace,310",
    ]
    status, logs = daemon.request("GET", f"/api/v1/logs/{execution['id']}")
    assert status == 200
    message = next(line["message"] for line in logs if line["taskId"] == "log_result")
    assert "3 orders of at least 100" in message and "5,grace,310" in message


def test_cli_update_with_delete_mirrors_the_folder_under_its_prefix(
    daemon: ServeProcess, tmp_path: Path
) -> None:
    """`kestra namespace files update --delete`: files under the prefix that the folder
    no longer has are deleted; files elsewhere in the namespace are kept."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "sub").mkdir(parents=True)
    (first / "a.sql").write_text("select 1")
    (first / "sub" / "b.sql").write_text("select 2")
    (first / ".hidden").write_text("never pushed")
    second.mkdir()
    (second / "a.sql").write_text("select 3")
    assert push(daemon, EXAMPLE).returncode == 0
    assert push(daemon, first, "--to", "/queries").returncode == 0
    result = push(daemon, second, "--to", "/queries", "--delete")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "uploaded /queries/a.sql",
        "deleted /queries/sub/b.sql",
        f"1 uploaded, 1 deleted in namespace {NS}",
    ]
    status, found = daemon.request("GET", f"/api/v1/namespaces/{NS}/files/search?q=")
    assert (status, found) == (200, ["/queries/a.sql", "/scripts/big_orders.py"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "/../x"), "--to: '/../x' is not a path inside the namespace"),
        (("--url", "http://127.0.0.1:9"), "cannot reach podium at http://127.0.0.1:9"),
    ],
)
def test_cli_update_refuses_bad_input_with_one_line(
    daemon: ServeProcess, args: tuple[str, ...], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "namespace", "files", "update", NS, str(EXAMPLE), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("podium: ") and message in result.stderr, result.stderr
    missing = push(daemon, EXAMPLE / "nope")
    assert missing.returncode == 1 and "is not a folder" in missing.stderr


def test_two_nodes_on_one_postgresql_share_the_files(tmp_path: Path, database: str) -> None:
    """A cluster shares one tree: written through one node (its own data directory), read
    and deleted through the other."""
    flows = tmp_path / "flows"
    flows.mkdir()
    nodes = [
        ServeProcess(tmp_path, flows, tmp_path / name, env=NODE_ENV, args=("--store", database))
        for name in ("a", "b")
    ]
    try:
        for node in nodes:
            node.start().wait_line("joined the cluster")
        one, two = (KestraClient(host=node.url(""), timeout=30).files for node in nodes)
        one.create_namespace_file(NS, "/shared/data.csv", tenant="main", file_content=b"a,b\n")
        assert two.file_content(NS, "/shared/data.csv", tenant="main") == b"a,b\n"
        two.delete_file_directory(NS, "/shared/data.csv", tenant="main")
        assert one.list_namespace_directory_files(NS, tenant="main") == []
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
