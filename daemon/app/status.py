"""`podium status`: one screen about a running daemon, read from its HTTP API.

It asks the API rather than opening the store so that it shows what the daemon itself
holds in memory (loaded flows, triggers' next fire times, what runs on it) and works
against a daemon on another machine or on PostgreSQL. Plain `urllib`: the command makes
a handful of requests and exits, and must start fast.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from daemon.sdk.errors import PodiumError

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 10.0  # seconds per request
FAILURES = 5  # last failed executions shown
RUNNING_SHOWN = 20  # running executions listed (all are counted)
PAGE = 1000  # the API's largest page


class Unreachable(PodiumError):
    """No daemon answers at the URL, or it refuses us: one line says which."""


@dataclass(frozen=True)
class Client:
    url: str
    username: str | None = None
    password: str | None = None

    def get(
        self, path: str, query: Mapping[str, Any] | None = None, *, also: int | None = None
    ) -> Any:
        """The JSON answer; `also` is one more status whose body is the answer."""
        target = self.url.rstrip("/") + path
        if query:
            target += "?" + urllib.parse.urlencode(query, doseq=True)
        headers = {"Accept": "application/json"}
        if self.username is not None:
            token = f"{self.username}:{self.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        request = urllib.request.Request(target, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == also:
                try:
                    return json.loads(exc.read())
                except ValueError:
                    pass
            if exc.code == 401:
                raise Unreachable(
                    f"the daemon at {self.url} wants credentials: set "
                    "PODIUM_BASIC_AUTH_USERNAME and PODIUM_BASIC_AUTH_PASSWORD, or pass "
                    "--user and --password"
                ) from None
            raise Unreachable(
                f"the daemon at {self.url} answered {exc.code} to GET {path}: {_message(exc)}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach the daemon at {self.url} ({reason})") from None
        except ValueError:
            raise Unreachable(
                f"{self.url} does not look like podium: GET {path} did not answer JSON"
            ) from None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return str(exc.reason)
    return str(body.get("message")) if isinstance(body, dict) else str(exc.reason)


def _all(client: Client, path: str, query: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every result of a paged search."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        found = client.get(path, {**(query or {}), "page": page, "size": PAGE})
        out.extend(found["results"])
        if not found["results"] or len(out) >= found["total"]:
            return out
        page += 1


def collect(client: Client) -> dict[str, Any]:
    """What `--json` prints; the text screen is made from the same document."""
    health = client.get("/health", also=503)  # 503: starting, or stopping
    flows = _all(client, "/api/v1/flows/search")
    disabled = [f"{f['namespace']}.{f['id']}" for f in flows if f.get("disabled")]
    try:
        found = _all(client, "/api/v1/triggers/search")
    except Unreachable:  # a daemon without a flows directory has no trigger endpoints
        found = []
    triggers = [
        {
            "namespace": t["triggerContext"]["namespace"],
            "flowId": t["triggerContext"]["flowId"],
            "triggerId": t["triggerContext"]["triggerId"],
            "type": t["triggerContext"].get("type"),
            "disabled": t["triggerContext"].get("disabled", False),
            "nextExecutionDate": t["triggerContext"].get("nextExecutionDate"),
            "lastEventDate": t["triggerContext"].get("date"),
            "lastExecutionId": t["triggerContext"].get("executionId"),
        }
        for t in found
    ]
    running = client.get(
        "/api/v1/executions/search", {"state": ["RUNNING", "PAUSED"], "size": RUNNING_SHOWN}
    )
    failed = client.get("/api/v1/executions/search", {"state": "FAILED", "size": FAILURES})
    try:  # a cluster's task runs held back for a worker group no live node serves
        waiting = client.get("/api/v1/workers/waiting")["results"]
    except Unreachable:  # a daemon from before worker groups
        waiting = []
    return {
        "url": client.url,
        "status": health.get("status"),
        "version": health.get("version"),
        "flows": {"count": len(flows), "disabled": disabled},
        "triggers": triggers,
        "running": {
            "count": running["total"],
            "executions": [
                {
                    "id": e["id"],
                    "namespace": e["namespace"],
                    "flowId": e["flowId"],
                    "state": e["state"]["current"],
                    "startDate": e["state"].get("startDate"),
                }
                for e in running["results"]
            ],
        },
        "failures": [_failure(client, e) for e in failed["results"]],
        "waiting": waiting,
    }


def _failure(client: Client, summary: dict[str, Any]) -> dict[str, Any]:
    """The failed task is the first failed task run that is not a parent of another one
    (a flowable task fails because a child did)."""
    doc = client.get(f"/api/v1/executions/{urllib.parse.quote(summary['id'], safe='')}")
    runs = doc.get("taskRunList") or []
    failed = [r for r in runs if r["state"]["current"] == "FAILED"]
    parents = {r.get("parentTaskRunId") for r in failed}
    leaf = next((r for r in failed if r["id"] not in parents), None)
    task = leaf["taskId"] if leaf else None
    error = doc.get("error")
    if error and task and error.startswith(f"task '{task}': "):
        error = error[len(f"task '{task}': ") :]
    return {
        "id": doc["id"],
        "namespace": doc["namespace"],
        "flowId": doc["flowId"],
        "taskId": task,
        "error": error,
        "date": doc["state"].get("endDate"),
    }


def render(status: Mapping[str, Any], now: datetime | None = None, width: int | None = None) -> str:
    """The document as one screen of text."""
    now = now or datetime.now(UTC)
    width = width or shutil.get_terminal_size((100, 24)).columns
    lines = [f"podium {status['version']} at {status['url']}: {status['status']}"]
    flows = status["flows"]
    disabled = flows["disabled"]
    lines.append(
        f"Flows: {flows['count']}"
        + (f" ({len(disabled)} disabled: {', '.join(disabled)})" if disabled else "")
    )
    triggers = status["triggers"]
    lines.append(f"Triggers: {len(triggers)}")
    for t in triggers:
        kind = str(t["type"] or "").rsplit(".", 1)[-1]
        if t["disabled"]:
            when = "disabled"
        elif t["nextExecutionDate"]:
            when = f"next {_when(t['nextExecutionDate'], now)}"
        elif t["lastEventDate"]:
            when = f"last event {_when(t['lastEventDate'], now)}"
        else:
            when = "no event yet"
        lines.append(f"  {t['namespace']}.{t['flowId']} {t['triggerId']} ({kind}): {when}")
    running = status["running"]
    lines.append(f"Running executions: {running['count']}")
    for e in running["executions"]:
        lines.append(
            f"  {e['id']}  {e['namespace']}.{e['flowId']}  {e['state']} since "
            f"{_when(e['startDate'], now)}"
        )
    if running["count"] > len(running["executions"]):
        lines.append(f"  ... and {running['count'] - len(running['executions'])} more")
    waiting = status.get("waiting") or []
    if waiting:  # only in a cluster whose worker group is down: one line each
        lines.append(f"Waiting for a worker group: {len(waiting)}")
    for w in waiting:
        lines.append(
            f"  {w['executionId']}  task {w['taskId']} waits for worker group "
            f"{w['workerGroup']} since {_when(w['since'], now)}"
        )
    failures = status["failures"]
    lines.append("Last failures:" if failures else "Last failures: none")
    for f in failures:
        task = f"task {f['taskId']}" if f["taskId"] else "no task"
        lines.append(
            f"  {_when(f['date'], now)}  {f['namespace']}.{f['flowId']}  {task}: "
            f"{f['error'] or '-'}  ({f['id']})"
        )
    return "\n".join(_cut(line, width) for line in lines)


def _when(iso: str | None, now: datetime) -> str:
    """A date as UTC to the second, with how long ago or how soon."""
    if not iso:
        return "-"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - now).total_seconds()
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"{text} ({'in ' if seconds > 0 else ''}{_span(abs(seconds))}"
        f"{'' if seconds > 0 else ' ago'})"
    )


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _cut(line: str, width: int) -> str:
    line = " ".join(line.split("\n"))
    return line if len(line) <= width else line[: max(width - 3, 10)] + "..."
