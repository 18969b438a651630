"""Issue #17, task runs on any node: real `podium serve` processes on a private PostgreSQL
take the task runs of one execution from the task queue (`task_jobs`), by worker slots
and worker groups, and a worker or executor killed mid-task loses nothing and runs nothing
twice at once.

Kestra's counterparts: the Worker and Executor components and their
`WorkerTaskResult` exchange (core/src/main/java/io/kestra/core/runners), the worker-group
docs (https://kestra.io/docs/enterprise/scalability/worker-group) and its fallback
(https://kestra.io/docs/migration-guide/0.20.0/worker-group-fallback).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import services
from tests.daemon_process import ROOT, ServeProcess
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
def flows(tmp_path: Path) -> Path:
    path = tmp_path / "flows"
    path.mkdir()
    return path


@pytest.mark.timeout(240)
def test_parallel_tasks_of_one_execution_spread_over_three_nodes(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra: tasks of one execution are taken by whichever worker is free."""
    (flows / "fan.yaml").write_text(parallel_flow("cluster.workers", "fan", 12, "PT1S"))
    nodes = [
        start_node(tmp_path, database, flows, f"n{i}", "--worker-slots", "2") for i in range(3)
    ]
    try:
        started = nodes[0].create_execution("cluster.workers", "fan")
        final = nodes[0].wait_execution(started["id"], FINAL, timeout=120)
        assert final["state"]["current"] == "SUCCESS", final
        naps = [tr for tr in final["taskRunList"] if tr["taskId"].startswith("nap")]
        assert len(naps) == 12 and all(len(tr["attempts"]) == 1 for tr in naps)
        per_node = runs_per_node(database, started["id"])
        assert sum(per_node.values()) == 12, f"each task run ran once: {per_node}"
        assert set(per_node) == {"n0", "n1", "n2"}, f"every node took task runs: {per_node}"
        assert max(per_node.values()) < 12
    finally:
        stop_all(nodes)


GROUPS = """\
id: train
namespace: cluster.workers
tasks:
  - id: prepare
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.1S
  - id: fit
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.1S
    workerGroup:
      key: gpu
"""


@pytest.mark.timeout(240)
def test_a_worker_group_task_runs_only_on_its_group_and_waits_while_it_is_down(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra EE worker groups: a task with `workerGroup.key` runs only on workers started
    with that group; by default (fallback WAIT) it waits while none is up."""
    (flows / "train.yaml").write_text(GROUPS)
    plain = start_node(tmp_path, database, flows, "plain")
    gpu = start_node(tmp_path, database, flows, "gpu", "--role", "worker", "--worker-group", "gpu")
    nodes = [plain, gpu]
    try:
        ids = [plain.create_execution("cluster.workers", "train")["id"] for _ in range(4)]
        for execution_id in ids:
            assert plain.wait_execution(execution_id, FINAL)["state"]["current"] == "SUCCESS"
        rows = query(database, "SELECT task_id, worker FROM task_jobs")
        assert {(r["task_id"], r["worker"]) for r in rows} == {
            ("prepare", "plain"),
            ("fit", "gpu"),
        }, "grouped tasks on the group's node, the others on the node without a group"
        assert len(rows) == 8

        gpu.kill()
        waiting = plain.create_execution("cluster.workers", "train")["id"]
        deadline = time.monotonic() + 60
        while not query(
            database,
            "SELECT 1 FROM logs WHERE execution_id = $1 AND message LIKE $2",
            waiting,
            "waiting for a node of worker group 'gpu'%",
        ):
            assert time.monotonic() < deadline, "no log line says the task waits for its group"
            time.sleep(0.1)
        assert plain.execution(waiting)["state"]["current"] == "RUNNING"
        # visible to the API (what the UI reads) and to `podium status`, from any node
        status, doc = plain.request("GET", "/api/v1/workers/waiting")
        assert status == 200, doc
        fit = next(tr for tr in plain.execution(waiting)["taskRunList"] if tr["taskId"] == "fit")
        [entry] = doc["results"]
        assert (doc["total"], entry["executionId"], entry["taskRunId"]) == (1, waiting, fit["id"])
        assert (entry["taskId"], entry["workerGroup"]) == ("fit", "gpu")
        shown = subprocess.run(
            [sys.executable, "-m", "daemon", "status", "--url", plain.url("")],
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        at = lines.index("Waiting for a worker group: 1")
        assert lines[at + 1].startswith(f"  {waiting}  task fit waits for worker group gpu since ")
        gpu = start_node(
            tmp_path, database, flows, "gpu", "--role", "worker", "--worker-group", "gpu"
        )
        nodes.append(gpu)
        final = plain.wait_execution(waiting, FINAL)
        assert final["state"]["current"] == "SUCCESS", final
        assert runs_per_node(database, waiting) == {"plain": 1, "gpu": 1}
        assert plain.request("GET", "/api/v1/workers/waiting")[1] == {"results": [], "total": 0}
    finally:
        stop_all(nodes)


@pytest.mark.timeout(240)
def test_the_waiting_list_answers_503_while_the_database_is_away(
    tmp_path: Path, flows: Path
) -> None:
    """What the store's endpoints answer while PostgreSQL is away (test_faults_storage:
    503, "the store is unavailable"); the worker groups' waiting list answered 500."""
    (flows / "train.yaml").write_text(GROUPS)
    with services.postgres_server() as server:
        node = start_node(tmp_path, server.dsn, flows, "plain")
        try:
            empty = (200, {"results": [], "total": 0})
            assert node.request("GET", "/api/v1/workers/waiting") == empty
            server.stop()
            assert node.request("GET", "/api/v1/workers/waiting") == (
                503,
                {"message": "Service Unavailable: the store is unavailable"},
            )
            server.start()
            deadline = time.monotonic() + 60
            while node.request("GET", "/api/v1/workers/waiting") != empty:
                assert time.monotonic() < deadline, "the list never came back with the database"
                time.sleep(0.2)
        finally:
            stop_all([node])


FALLBACKS = """\
id: fallbacks
namespace: cluster.workers
tasks:
  - id: fit
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.1S
    workerGroup:
      key: nowhere
      fallback: FAIL
"""


@pytest.mark.timeout(120)
def test_worker_group_fallback_fail_and_cancel_when_no_node_serves_the_group(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra's WorkerGroupFallback: FAIL fails the task run, CANCEL kills the execution,
    when no worker of the group is up; WAIT (the default) fails after `worker-group-wait`."""
    flow = FALLBACKS
    (flows / "fail.yaml").write_text(flow.replace("id: fallbacks", "id: fail"))
    (flows / "cancel.yaml").write_text(
        flow.replace("id: fallbacks", "id: cancel").replace("fallback: FAIL", "fallback: CANCEL")
    )
    (flows / "wait.yaml").write_text(
        flow.replace("id: fallbacks", "id: wait").replace("      fallback: FAIL\n", "")
    )
    node = start_node(tmp_path, database, flows, "alone", env={"PODIUM_WORKER_GROUP_WAIT": "PT1S"})
    try:
        failed = node.wait_execution(node.create_execution("cluster.workers", "fail")["id"], FINAL)
        assert failed["state"]["current"] == "FAILED"
        assert "no node of worker group 'nowhere' is up" in failed["error"], failed
        killed = node.wait_execution(
            node.create_execution("cluster.workers", "cancel")["id"], FINAL
        )
        assert killed["state"]["current"] == "KILLED", killed
        gave_up = node.wait_execution(node.create_execution("cluster.workers", "wait")["id"], FINAL)
        assert gave_up["state"]["current"] == "FAILED"
        assert "no node of worker group 'nowhere' came up within" in gave_up["error"], gave_up
    finally:
        node.stop()


SLOW_ONCE = """\
id: slow
namespace: cluster.workers
inputs:
  - id: dir
    type: STRING
tasks:
  - id: work
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - echo "attempt {{ taskrun.attemptsCount }}" >> {{ inputs.dir }}/work
      - if [ "{{ taskrun.attemptsCount }}" = "0" ]; then sleep 30; fi
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


def start_slow(node: ServeProcess, marks: Path) -> str:
    boundary = "podiumtest"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="dir"\r\n\r\n'
        f"{marks}\r\n--{boundary}--\r\n"
    ).encode()
    status, doc = node.request(
        "POST",
        "/api/v1/executions/cluster.workers/slow",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200, doc
    return str(doc["id"])


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_task_has_its_task_run_retaken_by_another(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra resubmits the WorkerTask of a dead worker; podium retries the interrupted
    attempt per the task's retry (once without one) on another worker."""
    (flows / "slow.yaml").write_text(SLOW_ONCE)
    marks = tmp_path / "marks"
    marks.mkdir()
    executor = start_node(tmp_path, database, flows, "exec", "--role", "executor")
    workers = {
        name: start_node(tmp_path, database, flows, name, "--role", "worker")
        for name in ("w1", "w2")
    }
    nodes = [executor, *workers.values()]
    try:
        execution_id = start_slow(executor, marks)
        job = wait_job(database, execution_id, "work")
        victim = workers[job["worker"]]
        deadline = time.monotonic() + 30
        while not (marks / "work").exists():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        victim.kill()  # SIGKILL, mid-task
        final = executor.wait_execution(execution_id, FINAL, timeout=120)
        assert final["state"]["current"] == "SUCCESS", final
        assert (marks / "work").read_text() == "attempt 0\nattempt 1\n"
        work = next(tr for tr in final["taskRunList"] if tr["taskId"] == "work")
        assert [a["state"]["current"] for a in work["attempts"]] == ["FAILED", "SUCCESS"]
        jobs = query(
            database,
            "SELECT worker, result::text AS result FROM task_jobs "
            "WHERE execution_id = $1 AND task_id = 'work' ORDER BY seq",
            execution_id,
        )
        survivor = next(name for name in workers if name != job["worker"])
        assert [j["worker"] for j in jobs] == [job["worker"], survivor]
        assert f"its worker node {job['worker']} stopped" in jobs[0]["result"]
        logs = query(database, "SELECT message FROM logs WHERE execution_id = $1", execution_id)
        assert any("attempt 1 was interrupted: its worker node" in r["message"] for r in logs)
    finally:
        stop_all(nodes)


@pytest.mark.timeout(240)
def test_an_executor_killed_while_a_worker_runs_its_task_does_not_run_it_twice(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra: the executor's state moves with the execution, the worker's task run goes
    on; the new executor waits for that attempt instead of starting another."""
    (flows / "slow.yaml").write_text(SLOW_ONCE.replace("sleep 30", "sleep 15"))
    marks = tmp_path / "marks"
    marks.mkdir()
    first = start_node(tmp_path, database, flows, "e1", "--role", "executor")
    worker = start_node(tmp_path, database, flows, "w", "--role", "worker")
    nodes = [first, worker]
    try:
        execution_id = start_slow(first, marks)
        wait_job(database, execution_id, "work")
        second = start_node(tmp_path, database, flows, "e2", "--role", "executor")
        nodes.append(second)
        assert first.execution(execution_id)["state"]["current"] == "RUNNING"
        first.kill()
        final = second.wait_execution(execution_id, FINAL, timeout=120)
        assert final["state"]["current"] == "SUCCESS", final
        assert (marks / "work").read_text() == "attempt 0\n", "the attempt ran once"
        work = next(tr for tr in final["taskRunList"] if tr["taskId"] == "work")
        assert len(work["attempts"]) == 1
        owner = query(database, "SELECT owner FROM executions WHERE id = $1", execution_id)
        assert owner[0]["owner"] == "e2"
    finally:
        stop_all(nodes)


@pytest.mark.timeout(120)
def test_a_killed_execution_stops_its_task_on_the_worker(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra's kill reaches the worker running the task run (WorkerTaskKill)."""
    (flows / "slow.yaml").write_text(SLOW_ONCE.replace("sleep 30", "sleep 307"))
    marks = tmp_path / "marks"
    marks.mkdir()
    executor = start_node(tmp_path, database, flows, "exec", "--role", "executor")
    worker = start_node(
        tmp_path, database, flows, "w", "--role", "worker", env={"PODIUM_SHUTDOWN_GRACE": "PT1S"}
    )
    try:
        execution_id = start_slow(executor, marks)
        wait_job(database, execution_id, "work")
        deadline = time.monotonic() + 30
        while not (marks / "work").exists():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        status, _ = executor.request("DELETE", f"/api/v1/executions/{execution_id}/kill")
        assert status in (200, 202, 204)
        final = executor.wait_execution(execution_id, FINAL)
        assert final["state"]["current"] == "KILLED"
        state = query(database, "SELECT state FROM task_jobs WHERE execution_id = $1", execution_id)
        assert [r["state"] for r in state] == ["CANCELLED"]
        deadline = time.monotonic() + 30
        while subprocess.run(["pgrep", "-f", "sleep 307"], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the worker still runs the killed task"
            time.sleep(0.1)
    finally:
        stop_all([executor, worker])


@pytest.mark.timeout(60)
def test_a_worker_only_node_serves_health_and_metrics_and_nothing_else(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra's worker component has no API; podium's answers /health and /metrics only."""
    worker = start_node(tmp_path, database, flows, "w", "--role", "worker", "--worker-slots", "3")
    try:
        assert worker.request("GET", "/health")[0] == 200
        status, scraped = worker.request("GET", "/metrics")
        assert status == 200
        assert "podium_worker_slots 3.0" in scraped
        assert "podium_worker_task_runs_running 0.0" in scraped
        for path in ("/api/v1/flows/search", "/ui/", "/api/v1/executions/search"):
            assert worker.request("GET", path)[0] == 404, path
        row = query(database, "SELECT role, worker_slots FROM nodes WHERE id = 'w'")
        assert dict(row[0]) == {"role": "worker", "worker_slots": 3}
        assert "joined the cluster as worker (3 worker slots)" in worker.output()
    finally:
        worker.stop()


def test_a_worker_role_without_a_postgresql_store_is_refused(tmp_path: Path) -> None:
    """A worker takes task runs from a cluster: alone on SQLite it has nowhere to take them
    from, so the daemon says so instead of idling."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--data-dir", str(tmp_path), "--port", "0",
         "--flows", str(tmp_path), "--role", "worker"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "role worker is for a node of a cluster: it needs a PostgreSQL store" in (
        done.stdout + done.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--role", "boss"), "invalid choice: 'boss'"),
        (("--worker-slots", "-1"), "worker-slots: Input should be greater than or equal to 0"),
        (("--worker-slots", "many"), "invalid int value: 'many'"),
    ],
)
def test_malformed_worker_settings_are_clear_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--data-dir", str(tmp_path), "--port", "0",
         "--flows", str(tmp_path), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


def test_worker_groups_from_the_environment_are_a_comma_separated_list() -> None:
    from daemon.config.settings import load_settings

    settings = load_settings(None, {}, {"PODIUM_WORKER_GROUPS": "gpu, licence"})
    assert settings.worker_groups == ["gpu", "licence"]
    assert load_settings(None, {"worker_groups": ["a"]}, {}).worker_groups == ["a"]


@pytest.mark.timeout(180)
def test_a_worker_stopped_with_sigterm_lets_its_task_finish_within_the_grace_period(
    tmp_path: Path, database: str, flows: Path
) -> None:
    """Kestra's worker `terminationGracePeriod`: on SIGTERM a worker takes nothing more
    and lets what runs finish (podium's `shutdown-grace`), then exits."""
    (flows / "slow.yaml").write_text(SLOW_ONCE.replace("sleep 30", "sleep 3"))
    marks = tmp_path / "marks"
    marks.mkdir()
    executor = start_node(tmp_path, database, flows, "exec", "--role", "executor")
    worker = start_node(tmp_path, database, flows, "w", "--role", "worker")
    try:
        execution_id = start_slow(executor, marks)
        wait_job(database, execution_id, "work")
        assert worker.stop() == 0
        final = executor.wait_execution(execution_id, FINAL)
        assert final["state"]["current"] == "SUCCESS", final
        assert (marks / "work").read_text() == "attempt 0\n"
        assert query(database, "SELECT id FROM nodes WHERE id = 'w'") == [], "it left"
    finally:
        stop_all([executor, worker])
