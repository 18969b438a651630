"""Issue #17's "Must show", files part: three `podium serve` nodes, each in its own network
namespace with its own data directory and no filesystem in common, keep their files in
object storage (moto's S3 server, reached over the link addresses like PostgreSQL); a
flow handing a file down twenty tasks, each on another node than the one before, ends
SUCCESS with every file in the bucket; and it still does when the object store drops off
the network for 20 s mid-run.

Kestra's counterpart: workers on separate hosts sharing one internal storage
(https://kestra.io/docs/configuration#internal-storage, the S3 storage plug-in
kestra-io/storage-s3), and the outputFiles -> inputFiles handoff of plugin-scripts'
CommandsTest; workerGroup.key is its enterprise worker-group property.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import taxi_csv
from daemon.config.storage import StorageSettings
from daemon.store.internal_storage import Storage, open_blobs
from tests import services
from tests.daemon_process import ServeProcess
from tests.netns import Namespace, network_namespaces, postgres_on_links
from tests.s3_proxy import CuttableRelay
from tests.worker_nodes import FINAL, query, runs_per_node, start_node, stop_all, wait_job

STEPS = 20
GROUPS = ("g1", "g2", "g3")


@pytest.fixture
def namespaces() -> Iterator[list[Namespace]]:
    """Routed: the taxi flow's download server and PostgreSQL are one address for all."""
    with network_namespaces(routed=True) as made:
        yield made


@pytest.fixture
def reachable_postgres(namespaces: list[Namespace]) -> Iterator[services.PostgresServer]:
    with postgres_on_links(namespaces) as server:
        yield server


@pytest.fixture
def moto_on_links(namespaces: list[Namespace]) -> Iterator[services.MotoS3]:
    """moto's S3 server listening on every address of the host, the links' ends included
    (its objects live in its process: this one is the test's own)."""
    root = Path(tempfile.mkdtemp(prefix="podium-moto-"))
    server = services.MotoS3(root=root, host="0.0.0.0")
    try:
        server.start()
        server.create_bucket()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def relay_flow(flow_id: str, steps: int, pause: str = "0") -> str:
    """`steps` tasks in a row, step i on worker group g(i mod 3 + 1): each reads the file
    the step before wrote (on another node) and writes its own with one line more."""
    tasks = []
    for i in range(steps):
        previous = f"outputs.step{i - 1}.outputFiles['out{i - 1}.txt']"
        given = f'    inputFiles:\n      in.txt: "{{{{ {previous} }}}}"\n' if i else ""
        copy = "cat in.txt > out{i}.txt; " if i else ""
        tasks.append(
            f"  - id: step{i}\n"
            "    type: io.kestra.plugin.scripts.shell.Commands\n"
            f"    workerGroup:\n      key: {GROUPS[i % 3]}\n"
            "    taskRunner:\n      type: io.kestra.plugin.core.runner.Process\n"
            "    retry:\n      type: constant\n      interval: PT1S\n      maxAttempts: 5\n"
            f"{given}"
            f"    outputFiles: [out{i}.txt]\n"
            "    commands:\n"
            f"      - {copy.format(i=i)}echo {i} on $(hostname -I | cut -d' ' -f1) >> out{i}.txt; "
            f"sleep {pause}\n"
        )
    last = steps - 1
    tasks.append(
        "  - id: result\n    type: io.kestra.plugin.core.debug.Return\n"
        f"    format: \"{{{{ read(outputs.step{last}.outputFiles['out{last}.txt']) }}}}\"\n"
    )
    return f"id: {flow_id}\nnamespace: cluster.files\ntasks:\n" + "".join(tasks)


def storage_env(endpoint: str, moto: services.MotoS3, retries: int = 6) -> dict[str, str]:
    return {
        "PODIUM_STORAGE_TYPE": "s3",
        "PODIUM_STORAGE_ENDPOINT": endpoint,
        "PODIUM_STORAGE_REGION": "us-east-1",
        "PODIUM_STORAGE_BUCKET": moto.bucket,
        "PODIUM_STORAGE_PREFIX": "cluster",
        "PODIUM_STORAGE_ACCESS_KEY": moto.access_key,
        "PODIUM_STORAGE_SECRET_KEY": moto.secret_key,
        "PODIUM_STORAGE_PATH_STYLE": "true",
        "PODIUM_STORAGE_RETRIES": str(retries),
    }


def bucket_files(
    moto: services.MotoS3, flow_id: str, execution_id: str, scratch: Path
) -> dict[str, str]:
    """The execution's objects as the bucket lists them (key -> text), read from the host."""
    settings = StorageSettings(
        type="s3",
        endpoint=f"http://127.0.0.1:{moto.port}",
        region="us-east-1",
        bucket=moto.bucket,
        prefix="cluster",
        access_key=moto.access_key,
        secret_key=moto.secret_key,
        path_style=True,
    )

    async def listing() -> dict[str, str]:
        storage = Storage(open_blobs(settings, scratch, None), scratch / "cache")
        try:
            namespace = "zoomcamp" if flow_id.startswith("04_") else "cluster.files"
            prefix = storage.execution_prefix(namespace, flow_id, execution_id)
            keys = await storage.blobs.keys(prefix)
            return {k: await storage.read_text(f"kestra:///{k}") for k in keys}
        finally:
            await storage.close()

    return asyncio.run(listing())


def start_nodes(
    tmp_path: Path,
    namespaces: list[Namespace],
    server: services.PostgresServer,
    flows: Path,
    env_for: dict[int, dict[str, str]],
    grouped: bool = True,
    slots: int = 2,
) -> list[ServeProcess]:
    """Node i in namespace i (worker group g(i+1) when `grouped`), with its own data and
    flows directories."""
    nodes: list[ServeProcess] = []
    for i, ns in enumerate(namespaces):
        own_flows = flows if i == 0 else tmp_path / f"empty-flows-{i}"
        own_flows.mkdir(exist_ok=True)
        dsn = f"postgresql://postgres@{ns.host_address}:{server.port}/postgres"
        node = start_node(
            tmp_path, dsn, own_flows, f"node{i + 1}", "--host", "0.0.0.0", "--insecure-no-auth",
            "--worker-slots", str(slots), *(("--worker-group", GROUPS[i]) if grouped else ()),
            env=env_for[i], wrapper=("ip", "netns", "exec", ns.name),
        )  # fmt: skip
        node.host = ns.address
        nodes.append(node)
    return nodes


def local_storage_files(tmp_path: Path) -> list[Path]:
    """Files any node kept in a `storage` directory of its own data directory."""
    return [p for p in tmp_path.glob("data-node*/storage/**/*") if p.is_file()]


def check_relay(final: dict[str, object], steps: int) -> list[str]:
    assert final["state"]["current"] == "SUCCESS", final  # type: ignore[index]
    result = next(tr for tr in final["taskRunList"] if tr["taskId"] == "result")  # type: ignore[attr-defined]
    lines = result["outputs"]["value"].splitlines()
    assert [line.split()[0] for line in lines] == [str(i) for i in range(steps)]
    return lines


@pytest.mark.timeout(300)
def test_three_nodes_hand_a_file_down_twenty_tasks_through_the_bucket(
    tmp_path: Path,
    namespaces: list[Namespace],
    reachable_postgres: services.PostgresServer,
    moto_on_links: services.MotoS3,
) -> None:
    moto = moto_on_links
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "relay.yaml").write_text(relay_flow("relay", STEPS))
    env_for = {
        i: storage_env(f"http://{ns.host_address}:{moto.port}", moto)
        for i, ns in enumerate(namespaces)
    }
    nodes = start_nodes(tmp_path, namespaces, reachable_postgres, flows, env_for)
    try:
        execution = nodes[1].create_execution("cluster.files", "relay")["id"]
        final = nodes[0].wait_execution(execution, FINAL, 180)
        lines = check_relay(final, STEPS)
        # each step wrote its line on its own node's address: the file crossed the nodes
        assert [line.split()[2] for line in lines] == [
            namespaces[i % 3].address for i in range(STEPS)
        ]
        per_node = runs_per_node(reachable_postgres.dsn, execution)
        assert per_node == {"node1": 7, "node2": 7, "node3": 6}, per_node
        objects = bucket_files(moto, "relay", execution, tmp_path / "probe")
        outputs = {k.rsplit("/", 1)[1]: v for k, v in objects.items() if "/out" in k}
        assert sorted(outputs) == sorted(f"out{i}.txt" for i in range(STEPS)), sorted(objects)
        assert outputs[f"out{STEPS - 1}.txt"].splitlines() == lines
        assert local_storage_files(tmp_path) == []  # nothing in any data directory
    finally:
        with contextlib.suppress(Exception):
            stop_all(nodes)


@pytest.mark.timeout(400)
def test_the_object_store_off_the_network_for_20_s_delays_the_run_and_loses_nothing(
    tmp_path: Path,
    namespaces: list[Namespace],
    reachable_postgres: services.PostgresServer,
    moto_on_links: services.MotoS3,
) -> None:
    """Each node reaches the store through a relay the test cuts for 20 s while step 3 of
    9 runs: its upload, the next step's download and the executor's reads fail, are tried
    again (storage retries with backoff, then the task's `retry`), and the execution ends
    SUCCESS with all nine files in the bucket."""
    moto = moto_on_links
    steps = 9
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "slow.yaml").write_text(relay_flow("slow", steps, pause="1"))
    relays = [CuttableRelay(ns.host_address, moto.port) for ns in namespaces]
    for relay in relays:
        relay.start()
    env_for = {
        i: storage_env(f"http://{ns.host_address}:{relays[i].port}", moto, retries=10)
        for i, ns in enumerate(namespaces)
    }
    nodes = start_nodes(tmp_path, namespaces, reachable_postgres, flows, env_for)
    try:
        execution = nodes[0].create_execution("cluster.files", "slow")["id"]
        wait_job(reachable_postgres.dsn, execution, "step3", timeout=120)
        for relay in relays:
            relay.cut()
        cut_at = time.monotonic()
        time.sleep(20)
        still = nodes[0].execution(execution)
        assert still["state"]["current"] == "RUNNING", still
        for relay in relays:
            relay.restore()
        assert time.monotonic() - cut_at >= 20
        final = nodes[0].wait_execution(execution, FINAL, 240)
        check_relay(final, steps)
        objects = bucket_files(moto, "slow", execution, tmp_path / "probe")
        outputs = sorted(k.rsplit("/", 1)[1] for k in objects if "/out" in k)
        assert outputs == sorted(f"out{i}.txt" for i in range(steps))
        logs = "".join(node.output() for node in nodes)
        retried = [
            line for line in logs.splitlines() if "storage: " in line and "trying again" in line
        ]
        assert retried, logs[-3000:]  # the cut was felt, and ridden out
        done = query(
            reachable_postgres.dsn,
            "SELECT DISTINCT task_id FROM task_jobs WHERE execution_id = $1 AND state = 'DONE'",
            execution,
        )
        assert sorted(row["task_id"] for row in done) == sorted(f"step{i}" for i in range(steps))
    finally:
        with contextlib.suppress(Exception):
            stop_all(nodes)
        for relay in relays:
            relay.cut()


TAXI_ROWS = 5000
TAXI_MONTHS = (("yellow", "2019-01"), ("green", "2019-01"))


@contextlib.contextmanager
def taxi_release(taxi_files: dict[str, bytes]) -> Iterator[int]:
    """The gzipped months on every host address (a stand-in for the GitHub release)."""

    class Release(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = taxi_files.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Release)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(300)
def test_three_nodes_run_the_taxi_flow_with_its_files_in_the_bucket(
    tmp_path: Path,
    namespaces: list[Namespace],
    reachable_postgres: services.PostgresServer,
    moto_on_links: services.MotoS3,
) -> None:
    """The seed's flows/04_postgres_taxi.yaml, unchanged: the downloaded CSV is an output
    file in S3, the CopyIn reads it back (on whichever node takes it), and purge_files
    removes it from the bucket. Yellow and green run at once, over three nodes."""
    moto = moto_on_links
    flows = tmp_path / "flows"
    flows.mkdir()
    seed = Path(__file__).resolve().parent.parent / "flows" / "04_postgres_taxi.yaml"
    (flows / "taxi.yaml").write_text(seed.read_text())
    files = {
        f"{c}/{c}_tripdata_{m}.csv.gz": taxi_csv.csv_bytes(c, m, TAXI_ROWS, gzipped=True)
        for c, m in TAXI_MONTHS
    }
    host = namespaces[0].host_address  # routed: every namespace reaches it
    database = f"{host}:{reachable_postgres.port}/postgres"
    env = {
        **storage_env(f"http://{host}:{moto.port}", moto),
        "ENV_PG_URL": f"jdbc:postgresql://{database}",
        "ENV_PG_USERNAME": "postgres",
        "ENV_PG_PASSWORD": "unused-with-trust-auth",
    }
    with taxi_release(files) as port:
        nodes = start_nodes(
            tmp_path, namespaces, reachable_postgres, flows, dict.fromkeys(range(3), env),
            grouped=False, slots=1,
        )  # fmt: skip
        try:
            started = []
            for colour, month in TAXI_MONTHS:
                year, mm = month.split("-")
                body = (
                    "".join(
                        f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                        for k, v in {
                            "taxi": colour,
                            "year": year,
                            "month": mm,
                            "base_url": f"http://{host}:{port}",
                        }.items()
                    )
                    + "--b--\r\n"
                )
                status, doc = nodes[0].request(
                    "POST", "/api/v1/executions/zoomcamp/04_postgres_taxi", body.encode(),
                    {"Content-Type": "multipart/form-data; boundary=b"},
                )  # fmt: skip
                assert status == 200, doc
                started.append(doc["id"])
            per_node: dict[str, int] = {}
            for execution in started:
                final = nodes[0].wait_execution(execution, FINAL, 180)
                assert final["state"]["current"] == "SUCCESS", final
                ran = [tr["taskId"] for tr in final["taskRunList"]]
                assert ran[-1] == "purge_files"
                copied = next(
                    tr
                    for tr in final["taskRunList"]
                    if tr["taskId"].endswith("_copy_in_to_staging_table")
                )
                assert copied["outputs"] == {"rowCount": TAXI_ROWS}
                for name, n in runs_per_node(reachable_postgres.dsn, execution).items():
                    per_node[name] = per_node.get(name, 0) + n
                assert bucket_files(moto, "04_postgres_taxi", execution, tmp_path / "probe") == {}
            print(f"taxi task runs per node: {per_node}")
            assert set(per_node) == {"node1", "node2", "node3"}, per_node
            for table in ("yellow_tripdata", "green_tripdata"):
                rows = query(reachable_postgres.dsn, f"SELECT count(*) AS n FROM public.{table}")
                assert rows[0]["n"] == TAXI_ROWS
            assert local_storage_files(tmp_path) == []
        finally:
            with contextlib.suppress(Exception):
                stop_all(nodes)
