"""Kestra's log deletions on a real port: an execution's lines, or some of them, and a
flow's lines (LogController.deleteLogsFromExecution / deleteLogsFromFlow)."""

from __future__ import annotations

from daemon.sdk.execution import Execution
from tests.api_helpers import call, serving
from tests.harness import Harness

TWO_TASKS = """
id: chatty
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: first says hi
  - id: second
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: second warns
"""


async def messages(h: Harness, execution: Execution) -> list[str]:
    return await h.logs(execution)


async def test_an_executions_lines_are_deleted_by_task_or_level(h: Harness) -> None:
    """LogController.deleteLogsFromExecution: taskId and minLevel narrow what goes; with no
    filter every line of the execution goes, another execution's stay."""
    one = await h.run(TWO_TASKS)
    other = await h.run(TWO_TASKS)
    async with serving(h) as url:
        status, body, _ = await call("DELETE", f"{url}/api/v1/logs/{one.id}?taskId=second")
        assert (status, body) == (200, "")
        assert await messages(h, one) == ["first says hi"]
        status, _, _ = await call("DELETE", f"{url}/api/v1/main/logs/{other.id}?minLevel=WARN")
        assert status == 200
        assert await messages(h, other) == ["first says hi"]
        [line] = await h.store.logs(other.id)
        status, _, _ = await call(
            "DELETE", f"{url}/api/v1/logs/{other.id}?taskRunId={line['taskRunId']}&attempt=1"
        )
        assert status == 200
        assert await messages(h, other) == ["first says hi"]  # it was attempt 0
        await call(
            "DELETE", f"{url}/api/v1/logs/{other.id}?taskRunId={line['taskRunId']}&attempt=0"
        )
        assert await messages(h, other) == []
        status, _, _ = await call("DELETE", f"{url}/api/v1/logs/{one.id}")
        assert status == 200
        assert await messages(h, one) == []
        status, _, _ = await call("DELETE", f"{url}/api/v1/logs/no-such-execution")
        assert status == 200  # as Kestra: nothing to delete is no error


async def test_a_flows_lines_are_deleted_and_only_that_flows(h: Harness) -> None:
    """LogController.deleteLogsFromFlow: the lines of the flow's executions; a flow of the
    same id in a sub-namespace keeps its own; with a triggerId only that trigger's lines
    go (an execution's lines name none)."""
    mine = await h.run(TWO_TASKS)
    nested = await h.run(TWO_TASKS.replace("namespace: company.team", "namespace: company.team.x"))
    async with serving(h) as url:
        status, _, _ = await call("DELETE", f"{url}/api/v1/logs/company.team/chatty?triggerId=t")
        assert status == 200
        assert await messages(h, mine) == ["first says hi", "second warns"]
        status, body, _ = await call("DELETE", f"{url}/api/v1/main/logs/company.team/chatty")
        assert (status, body) == (200, "")
        assert await messages(h, mine) == []
        assert await messages(h, nested) == ["first says hi", "second warns"]


async def test_malformed_log_deletions_are_400_and_delete_nothing(h: Harness) -> None:
    """LogController.deleteLogsFromExecution binds minLevel to a Level and attempt to an
    Integer: a value neither converts to is a 400, and nothing is deleted."""
    done = await h.run(TWO_TASKS)
    async with serving(h) as url:
        for query, message in (
            ("minLevel=LOUD", "Bad Request: minLevel 'LOUD' is not one of TRACE, DEBUG, "
             "INFO, WARN, ERROR"),
            ("attempt=first", "Bad Request: attempt must be a number, not 'first'"),
            ("attempt=-1", "Bad Request: attempt must be a number, not '-1'"),
        ):  # fmt: skip
            status, doc, _ = await call("DELETE", f"{url}/api/v1/logs/{done.id}?{query}")
            assert (status, doc) == (400, {"message": message}), query
    assert await messages(h, done) == ["first says hi", "second warns"]
