"""Kestra's dbt plug-in (kestra-io/plugin-dbt): DbtCLI (any dbt commands) and the older
Build, Run, Test, Seed, Snapshot, Compile, Deps, Freshness and List tasks.

With the Process runner (podium's default), dbt runs from a virtual environment podium
makes once and keeps (`dependencies`, by default dbt-core with the DuckDB and PostgreSQL
adapters) under the data directory, or under $PODIUM_DBT_ENVIRONMENTS when set; with the
Docker runner, from the container image, as in Kestra. `profiles` is written as the
profiles.yml dbt reads (DBT_PROFILES_DIR), `projectDir` names the project (DBT_PROJECT_DIR).

After dbt ends, however it ends, `target/run_results.json` becomes one task run per node
under the task's own (Kestra's ResultParser): the node's unique id as its task id, CREATED
at its first timing, RUNNING when it executed, and its dbt status as the final state;
with a summary log line and dbt's message. The file (and manifest.json, with
`loadManifest`) is stored in `outputFiles`.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from daemon.sdk.context import ReportedRun, RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output
from daemon.sdk.properties import Dynamic, JsonText
from daemon.sdk.state import State
from tasks.scripts.base import ScriptTask
from tasks.scripts.process import Process

# dbt-core 1.11 and later build a parser wheel by downloading it from GitHub at install
# time, which a machine that reaches only package registries cannot do.
DEFAULT_DEPENDENCIES = ["dbt-core>=1.9,<1.11", "dbt-duckdb", "dbt-postgres"]
# No usage statistics sent home, no version check against the network.
QUIET = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_VERSION_CHECK": "false",
}
INSTALL_TIMEOUT = 900
# dbt's node statuses -> Kestra's states.
STATES = {
    "success": State.SUCCESS,
    "pass": State.SUCCESS,
    "warn": State.WARNING,
    "skipped": State.SKIPPED,
    "error": State.FAILED,
    "fail": State.FAILED,
    "runtime error": State.FAILED,
}


def environment(base: Path, dependencies: list[str]) -> Path:
    """The virtual environment with `dependencies`, made once (a lock keeps two task runs
    from making it at once). Blocking: run it off the event loop."""
    key = hashlib.sha256("\n".join(sorted(dependencies)).encode()).hexdigest()[:16]
    home = base / key
    ready = home / ".ready"
    if ready.exists():
        return home
    base.mkdir(parents=True, exist_ok=True)
    with (base / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return home
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        done = subprocess.run(
            [str(home / "bin" / "python"), "-m", "pip", "install", "-q", *dependencies],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise TaskFailed(f"cannot install {' '.join(dependencies)}: {done.stderr[-2000:]}")
        ready.write_text(" ".join(dependencies))
    return home


def reported_runs(results: dict[str, Any]) -> list[ReportedRun]:
    """One ReportedRun per node of a run_results.json."""
    runs = []
    for result in results.get("results") or []:
        timing = result.get("timing") or []
        starts = [_moment(t.get("started_at")) for t in timing]
        ends = [_moment(t.get("completed_at")) for t in timing]
        executes = [_moment(t.get("started_at")) for t in timing if t.get("name") == "execute"]
        status = str(result.get("status") or "").lower()
        state = STATES.get(status, State.FAILED)
        history: list[tuple[State, datetime]] = []
        if any(starts):
            history.append((State.CREATED, min(s for s in starts if s)))
        if any(executes):
            history.append((State.RUNNING, min(s for s in executes if s)))
        end = max((e for e in ends if e), default=None) or (history[-1][1] if history else None)
        if end is None:
            end = datetime.now().astimezone()
            history.append((State.CREATED, end))
        history.append((state, end))
        level = {State.FAILED: "ERROR", State.WARNING: "WARN"}.get(state, "INFO")
        summary = f"{result.get('unique_id')} => {result.get('status')}"
        if result.get("execution_time") is not None:
            summary += f" in {float(result['execution_time']):.2f}s"
        failures = result.get("failures")
        if failures:
            summary += f" ({failures} failure{'s' if failures != 1 else ''})"
        logs = [(level, summary)]
        if result.get("message"):
            logs.append((level, str(result["message"])))
        outputs = {
            k: v
            for k, v in (result.get("adapter_response") or {}).items()
            if k in ("rows_affected", "bytes_processed", "code")
        }
        runs.append(ReportedRun(str(result.get("unique_id")), history, outputs, logs))
    return runs


def _moment(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()


class DbtCLI(ScriptTask):
    """Kestra's DbtCLI: `commands` run in the working directory."""

    types = ("io.kestra.plugin.dbt.cli.DbtCLI",)

    commands: Annotated[list[str], Dynamic, JsonText] = Field(min_length=1)
    profiles: Annotated[str | None, Dynamic] = None
    project_dir: Annotated[str | None, Dynamic] = None
    parse_run_results: bool = True
    load_manifest: bool = False
    store_manifest: dict[str, Any] | None = None
    dependencies: Annotated[list[str], Dynamic, JsonText] = Field(
        default_factory=lambda: list(DEFAULT_DEPENDENCIES)
    )
    container_image: Annotated[str | None, Dynamic] = "ghcr.io/kestra-io/dbt"
    log_format: Literal["JSON", "TEXT", "DEFAULT"] | None = None
    fail_fast: Annotated[bool, Dynamic] = True
    internal_files: ClassVar[tuple[str, ...]] = ("profiles.yml",)

    async def main_commands(self, working_dir: Path) -> list[str]:
        return list(self.commands)

    async def run(self, ctx: RunContext) -> Output:
        working_dir = await ctx.working_dir()
        extra = {**QUIET, "DBT_PROFILES_DIR": str(working_dir)}
        if self.project_dir:
            extra["DBT_PROJECT_DIR"] = str(working_dir / self.project_dir)
        if self.profiles:
            await asyncio.to_thread((working_dir / "profiles.yml").write_text, self.profiles)
        if isinstance(self.task_runner, Process):
            base = os.environ.get("PODIUM_DBT_ENVIRONMENTS")
            root = Path(base) if base else ctx.data_path("dbt-environments")
            if not await asyncio.to_thread(lambda: root.exists() and any(root.glob("*/.ready"))):
                ctx.logger.info(f"installing {', '.join(self.dependencies)} (once)")
            home = await asyncio.to_thread(environment, root, list(self.dependencies))
            extra["PATH"] = f"{home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
            extra["VIRTUAL_ENV"] = str(home)
        task = self.model_copy(update={"env": {**extra, **(self.env or {})}})
        target = working_dir / (self.project_dir or ".") / "target"
        results_file = target / "run_results.json"
        await asyncio.to_thread(results_file.unlink, missing_ok=True)
        outputs: dict[str, Any] = {}
        try:
            outputs = dict(await ScriptTask.run(task, ctx) or {})
        finally:
            stored = await self._results(ctx, target)
            if stored:
                outputs["outputFiles"] = {**outputs.get("outputFiles", {}), **stored}
        return outputs

    async def _results(self, ctx: RunContext, target: Path) -> dict[str, str]:
        """run_results.json as child task runs, and the files stored; {} when dbt wrote none."""
        stored: dict[str, str] = {}
        results_file = target / "run_results.json"
        if self.parse_run_results and await asyncio.to_thread(results_file.exists):
            text = await asyncio.to_thread(results_file.read_text)
            try:
                runs = reported_runs(json.loads(text))
            except (ValueError, TypeError) as exc:
                ctx.logger.warning(f"cannot read dbt's run_results.json: {exc}")
            else:
                await ctx.report_task_runs(runs)
            stored["run_results.json"] = await ctx.put_file(results_file, "run_results.json")
        manifest = target / "manifest.json"
        if self.load_manifest and await asyncio.to_thread(manifest.exists):
            stored["manifest.json"] = await ctx.put_file(manifest, "manifest.json")
        return stored


class _DbtCommand(DbtCLI):
    """The older one-command tasks: their options become the dbt command line."""

    types = ()
    command: ClassVar[str] = ""
    commands: Annotated[list[str], Dynamic, JsonText] = Field(default_factory=list)
    dbt_path: str | None = None
    debug: bool = False
    warn_error: bool = False
    select: Annotated[list[str] | None, Dynamic, JsonText] = None
    selector: Annotated[str | None, Dynamic] = None
    exclude: Annotated[list[str] | None, Dynamic, JsonText] = None
    thread: int | None = None
    full_refresh: bool = False
    target: Annotated[str | None, Dynamic] = None

    async def main_commands(self, working_dir: Path) -> list[str]:
        import shlex

        args = ["dbt", *(["--debug"] if self.debug else []), *self.command.split()]
        if self.warn_error:
            args.insert(1, "--warn-error")
        if self.select:
            args += ["--select", *self.select]
        if self.selector:
            args += ["--selector", self.selector]
        if self.exclude:
            args += ["--exclude", *self.exclude]
        if self.thread:
            args += ["--threads", str(self.thread)]
        if self.full_refresh and self.command in ("build", "run", "seed"):
            args.append("--full-refresh")
        if self.target:
            args += ["--target", self.target]
        return [shlex.join(args)]


class Build(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Build",)
    command = "build"


class Run(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Run",)
    command = "run"


class Test(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Test",)
    command = "test"


class Seed(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Seed",)
    command = "seed"


class Snapshot(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Snapshot",)
    command = "snapshot"


class Compile(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Compile",)
    command = "compile"


class Deps(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Deps",)
    command = "deps"


class Freshness(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.Freshness",)
    command = "source freshness"


class List(_DbtCommand):
    types = ("io.kestra.plugin.dbt.cli.List",)
    command = "ls"
