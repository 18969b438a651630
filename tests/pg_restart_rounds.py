"""Rounds of webhook load on two real `podium serve` nodes while their PostgreSQL restarts:
what issue #13 (finding 5) measured, shared by the test (a few rounds, asserted) and
`bench/pg_restarts.py` (20 rounds, printed).

One round: a second process sends `events` webhook events round robin over the nodes,
each with its own Idempotency-Key (a request that fails is sent again with the same key);
once a third of them are stored, PostgreSQL gets a fast shutdown and starts again (as
`systemctl restart postgresql` does) while executions are being created, claimed and run.
Then every event's execution must end SUCCESS, with each task run once:

- stuck: an execution still unfinished `settle` seconds after the last event was sent;
- failed: an execution that ended in any state but SUCCESS;
- lost: an event without its execution (or one the sender gave up on);
- twice: an execution whose tasks ran more than once (more task runs or attempts).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from daemon.sdk.execution import derived_id
from tests import services
from tests.daemon_process import ROOT, ServeProcess
from tests.worker_nodes import NODE_ENV

FLOW = textwrap.dedent("""\
    id: hook
    namespace: cluster.restarts
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.3S
      - id: echo
        type: io.kestra.plugin.core.debug.Return
        format: "{{ trigger.body.n }}"
    triggers:
      - id: in
        type: io.kestra.plugin.core.trigger.Webhook
        key: restart-key
    """)
PATH = "/api/v1/executions/webhook/cluster.restarts/hook/restart-key"
TASKS = 2
TERMINAL = ("SUCCESS", "FAILED", "WARNING", "KILLED", "CANCELLED")


@dataclass
class Round:
    """What one round left behind; `clean` when nothing went wrong."""

    events: int
    stored: int = 0
    stuck: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    nodes_down: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.stuck or self.failed or self.lost or self.twice or self.nodes_down)

    def line(self, number: int) -> str:
        return (
            f"round {number:2d}: events={self.events} stored={self.stored} "
            f"stuck={len(self.stuck)} FAILED={len(self.failed)} lost={len(self.lost)} "
            f"twice={len(self.twice)} nodes_down={self.nodes_down} ({self.seconds:.1f}s)"
        )


def query(dsn: str, sql: str, *args: Any) -> list[Any]:
    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def start_nodes(workdir: Path, dsn: str, count: int = 2) -> list[ServeProcess]:
    flows = workdir / "flows"
    flows.mkdir(exist_ok=True)
    (flows / "hook.yaml").write_text(FLOW)
    nodes = []
    for _ in range(count):
        node = ServeProcess(workdir, flows, workdir / "data", env=NODE_ENV, args=("--store", dsn))
        nodes.append(node)
        node.start()
        node.wait_line("joined the cluster")
    return nodes


def _sender(nodes: list[ServeProcess], prefix: str, events: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "webhook_sender.py"),
            "--count",
            str(events),
            "--concurrency",
            "16",
            "--deadline",
            "150",
            "--prefix",
            prefix,
            "--path",
            PATH,
            *(f"http://127.0.0.1:{n.port}" for n in nodes),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _count(dsn: str) -> int:
    try:
        return int(query(dsn, "SELECT count(*) AS n FROM executions")[0]["n"])
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return 0  # the server is restarting


def run_round(
    server: services.PostgresServer,
    nodes: list[ServeProcess],
    prefix: str,
    events: int = 200,
    settle: float = 90.0,
) -> Round:
    """One round of load with one PostgreSQL restart in the middle of it."""
    dsn = server.dsn
    started = time.monotonic()
    before = _count(dsn)
    sender = _sender(nodes, prefix, events)
    deadline = time.monotonic() + 120
    while _count(dsn) < before + events // 3 and sender.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    server.restart()
    out, err = sender.communicate(timeout=300)
    sent: dict[str, Any] = json.loads(out) if out.strip() else {"failed": [f"sender: {err}"]}
    result = Round(events)
    result.lost.extend(sent["failed"])
    ids = {derived_id("cluster.restarts", "hook", "in", f"{prefix}{i}") for i in range(events)}
    end = time.monotonic() + settle
    while True:
        rows = query(dsn, "SELECT id, state FROM executions WHERE id = ANY($1)", list(ids))
        unfinished = [r["id"] for r in rows if r["state"] not in TERMINAL]
        if not unfinished or time.monotonic() > end:
            break
        time.sleep(0.25)
    result.stored = len(rows)
    result.stuck = unfinished
    result.failed = [f"{r['id']} {r['state']}" for r in rows if r["state"] in TERMINAL[1:]]
    result.lost.extend(sorted(ids - {r["id"] for r in rows}))
    runs = query(
        dsn,
        "SELECT execution_id, count(*) AS n, "
        "max(json_array_length(coalesce(doc->'attempts', '[]'::json))) AS attempts "
        "FROM task_runs WHERE execution_id = ANY($1) GROUP BY execution_id",
        list(ids),
    )
    result.twice = [r["execution_id"] for r in runs if r["n"] > TASKS or (r["attempts"] or 0) > 1]
    result.nodes_down = sum(1 for n in nodes if n.proc is None or n.proc.poll() is not None)
    result.seconds = time.monotonic() - started
    return result


def details(result: Round, nodes: list[ServeProcess]) -> str:
    """What to look at when a round was not clean: the first ids and the nodes' warnings."""
    lines = [
        f"stuck: {result.stuck[:5]}",
        f"failed: {result.failed[:5]}",
        f"lost: {result.lost[:5]}",
        f"twice: {result.twice[:5]}",
    ]
    for node in nodes:
        noisy = [ln for ln in node.lines if any(w in ln for w in ("WARNING", "ERROR", "CRIT"))]
        lines.append(f"node :{node.port} ({len(noisy)} warnings):")
        lines.extend(noisy[-15:])
    return "\n".join(lines)
