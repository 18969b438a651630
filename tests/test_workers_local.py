"""The single-process side of issue #17's workers: `workerGroup` as Kestra's property (a
typed model, checked at load), ignored by a single daemon as Kestra's open-source edition
ignores it; and every shipped task's model crosses to a worker intact (pickled as the
task queue stores it)."""

from __future__ import annotations

import pickle
from pathlib import Path

from daemon.cluster.task_queue import Job, JobFlow
from daemon.flows.loader import load_flow
from daemon.sdk.plugin import FlowableTask, Task
from tests.harness import Harness, problems

ROOT = Path(__file__).resolve().parent.parent


async def test_a_single_daemon_runs_a_worker_group_task_itself(h: Harness) -> None:
    """Kestra OSS runs a task with `workerGroup` like any other (the EE property is
    accepted); a single podium, with no other node to send it to, does the same."""
    ended = await h.run(
        """
        id: gpu
        namespace: local.workers
        tasks:
          - id: fit
            type: io.kestra.plugin.core.debug.Return
            format: done
            workerGroup:
              key: gpu
              fallback: FAIL
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.01S
            workerGroup:
              key: gpu
        """
    )
    assert ended.state.current.value == "SUCCESS"
    assert [tr.state.current.value for tr in ended.task_runs] == ["SUCCESS", "SUCCESS"]


def test_a_malformed_worker_group_is_a_load_error() -> None:
    """Kestra's WorkerGroup: `key` is required, `fallback` one of WAIT, FAIL, CANCEL."""
    base = (
        "id: gpu\nnamespace: local.workers\ntasks:\n  - id: fit\n"
        "    type: io.kestra.plugin.core.debug.Return\n    format: done\n    workerGroup:\n"
    )
    found = problems(base + "      key: gpu\n      fallback: LATER\n")
    assert found == [
        "f.yaml:9:17: tasks[0].workerGroup.fallback: Input should be 'WAIT', 'FAIL' or "
        "'CANCEL' (got 'LATER')"
    ]
    found = problems(base + "      fallback: WAIT\n")
    assert found == ["f.yaml:8:7: tasks[0].workerGroup: missing required property 'key'"]
    found = problems(base + "      key: gpu\n      region: eu\n")
    assert len(found) == 1 and "region" in found[0], found


def _tasks(tasks: list[Task]) -> list[Task]:
    out: list[Task] = []
    for task in tasks:
        out.append(task)
        for name in ("tasks", "then", "else_", "errors", "finally_"):
            children = getattr(task, name, None)
            if isinstance(children, list) and all(isinstance(c, Task) for c in children):
                out.extend(_tasks(children))
    return out


def test_every_example_flow_task_crosses_to_a_worker_intact() -> None:
    """What a worker receives is what the executor would have run: the task model, its
    variables and its flow's reference, through pickle as in `task_jobs.payload`."""
    files = sorted((ROOT / "flows").glob("**/*.yaml"))
    assert files
    crossed = 0
    for path in files:
        flow = load_flow(path.read_text(), str(path))
        for task in _tasks([*flow.tasks, *flow.errors, *flow.finally_]):
            if isinstance(task, FlowableTask) or task.runs_on_executor:
                continue
            job = Job(
                task,
                {"inputs": {"n": 1}, "outputs": {}},
                {"id": "e"},
                {"id": "t"},
                JobFlow(flow.namespace, flow.id, flow.revision, dict(flow.labels), flow.inputs),
            )
            back = pickle.loads(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
            assert back.task == task and type(back.task) is type(task), path
            assert back.flow == job.flow
            crossed += 1
    assert crossed > 5, "the example flows have tasks that go to workers"
