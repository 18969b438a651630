"""A local aiohttp server standing in for a notification vendor's HTTP API (Google Chat,
Opsgenie, LINE, SendGrid, Sentry, Twilio...): it records every request as it came (method,
path, query, headers, raw body) and answers each path as a test tells it to."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

import tasks.notifications.delivery as delivery
import tests.test_notifications as notifications
from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tasks.notifications.summary import human_duration
from tests.harness import Harness

PUBLIC_URL = "http://podium.example:8080"
# What aiohttp's client adds to every request: the rest is what a task chose to send.
CLIENT_HEADERS = frozenset({"Host", "Accept", "Accept-Encoding", "User-Agent", "Content-Length"})


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("ascii"), keep_blank_values=True)

    @property
    def sent_headers(self) -> dict[str, str]:
        """The headers the task chose, without those every aiohttp request carries."""
        return {k: v for k, v in self.headers.items() if k not in CLIENT_HEADERS}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = "{}"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class VendorApi:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # path -> answers in turn, the last one repeating; 200 "{}" for a path not listed
    answers: dict[str, list[Answer]] = field(default_factory=dict)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "RETRY_DELAY", 0.01)


@pytest.fixture
async def vendor() -> AsyncIterator[VendorApi]:
    api = VendorApi()

    async def receive(request: web.Request) -> web.Response:
        api.received.append(
            Received(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        answers = api.answers.get(request.path, [Answer()])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receive)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield api
    await runner.cleanup()


def flow(body: str, flow_id: str = "alerting") -> str:
    return f"id: {flow_id}\nnamespace: company.team\n" + textwrap.dedent(body)


FAILING = flow(notifications.FAILING)  # `load` fails with "disk full on /data"


async def failed_execution(h: Harness) -> Execution:
    """An ended execution of company.team.alerting whose task `load` failed."""
    h.engine.options.public_url = PUBLIC_URL  # set by podium serve
    ex = await h.run(FAILING)
    assert ex.state.current == State.FAILED
    return ex


def took(ex: Execution) -> str:
    """The duration of an ended execution as the summaries write it."""
    assert ex.state.end is not None
    return human_duration(ex.state.end - ex.state.start)


def link(ex: Execution) -> str:
    return f"{PUBLIC_URL}/ui/executions/{ex.namespace}/{ex.flow_id}/{ex.id}"


def reporter(task: str) -> str:
    """A flow whose one task reports on the execution given as input `about`."""
    return flow(
        """
    inputs:
      - id: about
        type: STRING
    tasks:
"""
        + textwrap.indent(textwrap.dedent(task).strip("\n"), "      ")
        + '\n        executionId: "{{ inputs.about }}"\n',
        "reporter",
    )


async def report(h: Harness, task: str) -> tuple[Execution, Execution]:
    """(the failed execution, the reporter's, which ran `task` about it)."""
    failed = await failed_execution(h)
    ex = await h.run(reporter(task), {"about": failed.id})
    assert ex.state.current == State.SUCCESS, await errors_of(h, ex)
    return failed, ex


def facts(ex: Execution) -> dict[str, str]:
    """ExecutionSummary.facts() of the failed execution of FAILING."""
    return {
        "Namespace": "company.team",
        "Flow": "alerting",
        "Execution": ex.id,
        "State": "FAILED",
        "Duration": took(ex),
        "Failed task": "load",
    }


def summary_text(ex: Execution, custom_message: str | None = None) -> str:
    """ExecutionSummary.text() of the failed execution of FAILING."""
    lines = ["[company.team] alerting ➛ FAILED", f"Failed on task load after {took(ex)}"]
    if custom_message:
        lines += ["", custom_message]
    lines += ["", *(f"{name}: {value}" for name, value in facts(ex).items())]
    lines += ["", "Error: disk full on /data", "", link(ex)]
    return "\n".join(lines) + "\n"


def outputs(ex: Execution, task_id: str) -> dict[str, Any]:
    (run,) = [r for r in ex.task_runs if r.task_id == task_id]
    return run.outputs


async def errors_of(h: Harness, ex: Execution) -> list[str]:
    return await h.logs(ex, "ERROR")
