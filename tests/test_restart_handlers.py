"""A restarted execution runs its `errors` and `finally` handlers again, as Kestra's
ExecutionService.restart does: it drops the task runs of the flow's error handlers (and
of what ran inside them) before the execution runs again."""

from __future__ import annotations

from daemon.sdk.state import State
from tests.harness import Harness

FLOW = """
id: handled
namespace: ns
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ kv('broken', errorOnMissing=false) ?? true }}"
    errorMessage: still broken
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: inner
        type: io.kestra.plugin.core.log.Log
        message: inner
    finally:
      - id: inner_cleanup
        type: io.kestra.plugin.core.log.Log
        message: inner cleanup
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: "alert {{ execution.id }}"
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: cleanup
"""


async def test_errors_and_finally_run_again_after_a_restart_that_fails_again(h: Harness) -> None:
    failed = await h.run(FLOW)
    assert failed.state.current == State.FAILED
    first = {t.task_id: t.id for t in failed.task_runs}
    assert {"alert", "cleanup"} <= set(first)
    restarted = await h.engine.restart(failed.id)
    final = await h.engine.wait(restarted.id)
    assert final.state.current == State.FAILED
    runs = {t.task_id: t for t in final.task_runs}
    assert runs["alert"].id != first["alert"] and runs["cleanup"].id != first["cleanup"]
    assert runs["alert"].state.current == runs["cleanup"].state.current == State.SUCCESS
    assert [t.task_id for t in final.task_runs].count("alert") == 1
    stored = await h.store.get_execution(failed.id)
    assert stored is not None
    assert [t["taskId"] for t in stored["taskRunList"]].count("cleanup") == 1
    messages = await h.logs(final)
    assert messages.count(f"alert {failed.id}") == 2 and messages.count("cleanup") == 2


async def test_a_restart_that_succeeds_runs_finally_again_and_no_errors(h: Harness) -> None:
    failed = await h.run(FLOW)
    await h.store.kv.set("ns", "broken", False)
    final = await h.engine.wait((await h.engine.restart(failed.id)).id)
    assert final.state.current == State.SUCCESS
    ran = [t.task_id for t in final.task_runs]
    assert "alert" not in ran  # nothing failed this time
    assert ran.count("cleanup") == 1 and ran.count("inner_cleanup") == 1
    assert all(t.state.current == State.SUCCESS for t in final.task_runs)
