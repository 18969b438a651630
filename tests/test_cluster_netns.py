"""Issue #17's three machines, on one: three `podium serve` nodes, each in its own network
namespace (`ip netns add` + a veth pair, iproute2) with its own data directory, reaching
PostgreSQL only over the address of their link, share the task runs of executions.

Needs root (network namespaces) and iproute2; the test fails saying so otherwise.
Kestra's counterpart: its executor and workers on separate hosts, talking through the
queue (JDBC runner), https://kestra.io/docs/architecture/server-components.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.daemon_process import ServeProcess
from tests.netns import Namespace, ip, network_namespaces, postgres_on_links
from tests.worker_nodes import (
    FINAL,
    parallel_flow,
    query,
    runs_per_node,
    start_node,
    stop_all,
    wait_job,
)


@pytest.fixture
def namespaces() -> Iterator[list[Namespace]]:
    with network_namespaces() as made:
        yield made


@pytest.fixture
def reachable_postgres(namespaces: list[Namespace]) -> Iterator[services.PostgresServer]:
    with postgres_on_links(namespaces) as server:
        yield server


RELAY = (
    """\
id: relay
namespace: cluster.netns
tasks:
"""
    + "".join(
        f"""  - id: make{i}
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - >-
        echo '::{{"outputs": {{"n": {i}}}}}::'
  - id: double{i}
    type: io.kestra.plugin.scripts.shell.Commands
    dependsOn: [make{i}]
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - >-
        echo '::{{"outputs": {{"n": {{{{ outputs.make{i}.vars.n * 2 }}}}}}}}::'
"""
        for i in range(10)
    )
    + """  - id: total
    type: io.kestra.plugin.core.debug.Return
    dependsOn: [double0, double1, double2, double3, double4, double5, double6, double7,
      double8, double9]
    format: >-
      {{ outputs.double0.vars.n + outputs.double1.vars.n + outputs.double2.vars.n
      + outputs.double3.vars.n + outputs.double4.vars.n + outputs.double5.vars.n
      + outputs.double6.vars.n + outputs.double7.vars.n + outputs.double8.vars.n
      + outputs.double9.vars.n }}
"""
)


@pytest.mark.timeout(300)
def test_three_nodes_in_network_namespaces_share_the_task_runs(
    tmp_path: Path, namespaces: list[Namespace], reachable_postgres: services.PostgresServer
) -> None:
    server = reachable_postgres
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "fan.yaml").write_text(parallel_flow("cluster.netns", "fan", 12, "PT1S"))
    (flows / "relay.yaml").write_text(RELAY)
    nodes: list[ServeProcess] = []
    try:
        for i, ns in enumerate(namespaces):
            own_flows = flows if i == 0 else tmp_path / f"empty-flows-{i}"
            own_flows.mkdir(exist_ok=True)
            dsn = f"postgresql://postgres@{ns.host_address}:{server.port}/postgres"
            node = start_node(
                tmp_path, dsn, own_flows, f"node{i + 1}", "--host", "0.0.0.0", "--insecure-no-auth",
                "--worker-slots", "2", wrapper=("ip", "netns", "exec", ns.name),
            )  # fmt: skip
            node.host = ns.address
            nodes.append(node)
        # From inside a namespace the host's loopback PostgreSQL is out of reach: the nodes
        # talk to the database over their link only.
        probe = subprocess.run(
            ["ip", "netns", "exec", namespaces[1].name, "python3", "-c",
             "import socket,sys; s=socket.socket(); s.settimeout(2); "
             f"sys.exit(s.connect_ex(('127.0.0.1', {server.port})) == 0)"],
            capture_output=True, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, "a namespace reached the host's loopback"
        assert {n.host for n in nodes} == {ns.address for ns in namespaces}

        fan = nodes[1].create_execution("cluster.netns", "fan")["id"]
        relay = nodes[2].create_execution("cluster.netns", "relay")["id"]
        assert nodes[0].wait_execution(fan, FINAL, 120)["state"]["current"] == "SUCCESS"
        final = nodes[0].wait_execution(relay, FINAL, 120)
        assert final["state"]["current"] == "SUCCESS", final
        total = next(tr for tr in final["taskRunList"] if tr["taskId"] == "total")
        assert total["outputs"] == {"value": str(2 * sum(range(10)))}

        dsn = server.dsn
        per_node = runs_per_node(dsn, fan)
        assert set(per_node) == {"node1", "node2", "node3"}, per_node
        assert sum(per_node.values()) == 12
        relayed = runs_per_node(dsn, relay)
        assert sum(relayed.values()) == 20, relayed
        clients = query(
            dsn,
            "SELECT DISTINCT host(client_addr) AS a FROM pg_stat_activity "
            "WHERE client_addr IS NOT NULL",
        )
        assert {ns.address for ns in namespaces} <= {c["a"] for c in clients}
    finally:
        with contextlib.suppress(Exception):
            stop_all(nodes)


BEATS = """\
id: beats
namespace: cluster.netns
inputs:
  - id: dir
    type: STRING
tasks:
  - id: beat
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - >-
        for i in $(seq 1 40); do date +%s.%N >> {{ inputs.dir }}/beat-{{ taskrun.attemptsCount }};
        sleep 0.25; done
"""


@pytest.mark.timeout(300)
def test_a_worker_cut_off_the_network_stops_its_task_before_another_node_retakes_it(
    tmp_path: Path, namespaces: list[Namespace], reachable_postgres: services.PostgresServer
) -> None:
    """A partition, not a crash: the cut-off worker cannot hear it was declared dead, so it
    stops its attempt itself before the others may retake it; the attempt never runs on two
    nodes at once. Back on the network, it finds itself fenced and exits (status 70)."""
    server = reachable_postgres
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "beats.yaml").write_text(BEATS)
    marks = tmp_path / "marks"
    marks.mkdir()
    tag = namespaces[0].name[:-2]

    def start_in(i: int, name: str, *extra: str) -> ServeProcess:
        ns = namespaces[i]
        dsn = f"postgresql://postgres@{ns.host_address}:{server.port}/postgres"
        own_flows = flows if i == 0 else tmp_path / f"empty-flows-{i}"
        own_flows.mkdir(exist_ok=True)
        node = start_node(
            tmp_path, dsn, own_flows, name, "--host", "0.0.0.0", "--insecure-no-auth", *extra,
            wrapper=("ip", "netns", "exec", ns.name),
        )  # fmt: skip
        node.host = ns.address
        return node

    executor = start_in(0, "exec", "--role", "executor")
    cut = start_in(1, "cut", "--role", "worker")
    nodes = [executor, cut]
    try:
        boundary = "podiumtest"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="dir"\r\n\r\n'
            f"{marks}\r\n--{boundary}--\r\n"
        ).encode()
        status, doc = executor.request(
            "POST",
            "/api/v1/executions/cluster.netns/beats",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert status == 200, doc
        assert wait_job(server.dsn, doc["id"], "beat")["worker"] == "cut"
        nodes.append(start_in(2, "other", "--role", "worker"))
        ip("link", "set", f"{tag}h2", "down")  # the worker's only link to the database
        final = executor.wait_execution(doc["id"], FINAL, timeout=120)
        assert final["state"]["current"] == "SUCCESS", final
        beat = next(tr for tr in final["taskRunList"] if tr["taskId"] == "beat")
        assert [a["state"]["current"] for a in beat["attempts"]] == ["FAILED", "SUCCESS"]
        first = [float(t) for t in (marks / "beat-0").read_text().split()]
        second = [float(t) for t in (marks / "beat-1").read_text().split()]
        assert len(first) < 40, "the cut-off worker stopped its attempt"
        assert max(first) < min(second), "the two attempts never ran at the same time"
        jobs = query(
            server.dsn,
            "SELECT worker FROM task_jobs WHERE execution_id = $1 ORDER BY seq",
            doc["id"],
        )
        assert [j["worker"] for j in jobs] == ["cut", "other"]
        ip("link", "set", f"{tag}h2", "up")
        assert cut.proc is not None
        assert cut.proc.wait(timeout=60) == 70, cut.output()[-2000:]
        assert "was declared dead" in cut.output()
    finally:
        with contextlib.suppress(Exception):
            stop_all(nodes)
