"""`podium` on the command line: run a flow once, validate flows, look at executions, ask a
running daemon how it is."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from daemon.config.paths import default_data_dir
from daemon.engine.events import Event, LogAppended, TaskRunChanged
from daemon.sdk.errors import FlowError, InputError, PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.state import State

if TYPE_CHECKING:
    from daemon.flows.definition import Flow

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_KILLED = 0, 1, 2, 130


def summary_line(doc: dict[str, Any]) -> str:
    """One line per execution: id, namespace, flow, state, start, duration."""
    state = doc["state"]
    start = state.get("startDate") or ""
    duration = state.get("duration") or "-"
    if duration.startswith("PT") and duration.endswith("S"):
        duration = f"{float(duration[2:-1]):.2f}s"
    return (
        f"{doc['id']}  {doc['namespace']}  {doc['flowId']}  {state['current']:<9}  "
        f"{start}  {duration}"
    )


def _parser() -> argparse.ArgumentParser:
    data_help = (
        "where podium keeps its store and files (default: $PODIUM_DATA_DIR, else "
        "$XDG_DATA_HOME/podium, else ~/.local/share/podium; now "
        f"{default_data_dir()})"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None, help=data_help)

    parser = argparse.ArgumentParser(
        prog="podium",
        parents=[common],
        description="Event-driven pipeline daemon for Kestra-syntax YAML flows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="run a flow once, in-process")
    run.add_argument("flow", type=Path, help="the flow's YAML file")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an input value (repeatable)",
    )
    run.add_argument(
        "--json", action="store_true", help="print the final execution as JSON on stdout"
    )

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the daemon: flows, triggers, API (settings: podium.yaml, PODIUM_*, flags)",
    )
    serve.add_argument(
        "--flows",
        type=Path,
        default=None,
        dest="flows_dir",
        help="directory of flow files, watched for changes (default: flows)",
    )
    serve.add_argument(
        "--host",
        default=None,
        help="listen address (default 127.0.0.1 without basic-auth, else 0.0.0.0)",
    )
    serve.add_argument("--port", type=int, default=None, help="listen port (default 8080)")
    serve.add_argument(
        "--store", default=None, help="store URL or path (default: podium.db in the data dir)"
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (default: podium.yaml if present, or $PODIUM_CONFIG)",
    )

    validate = commands.add_parser(
        "validate", parents=[common], help="check flow files; every error as file:line:col"
    )
    validate.add_argument("paths", nargs="+", type=Path, help="flow files or directories")

    stored = argparse.ArgumentParser(add_help=False, parents=[common])
    stored.add_argument(
        "--store",
        default=None,
        help="the store to read: a postgresql:// URL or a SQLite file "
        "(default: $PODIUM_STORE, else the data directory's)",
    )
    executions = commands.add_parser(
        "executions", parents=[stored], help="list and inspect stored executions"
    )
    sub = executions.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", parents=[stored], help="one line per execution")
    listing.add_argument("--namespace")
    listing.add_argument("--flow-id")
    listing.add_argument("--state", action="append")
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", parents=[stored], help="an execution as JSON")
    show.add_argument("id")
    logs = sub.add_parser("logs", parents=[stored], help="an execution's logs")
    logs.add_argument("id")
    logs.add_argument("--level", default=None, help="minimum level (TRACE..ERROR)")

    status = commands.add_parser(
        "status",
        help="a running daemon's flows, triggers, running executions and last "
        "failures, from its API",
    )
    status.add_argument(
        "--url", default=None, help="the daemon's address (default: http://127.0.0.1:8080)"
    )
    status.add_argument(
        "--user", default=None, help="basic-auth user (default: $PODIUM_BASIC_AUTH_USERNAME)"
    )
    status.add_argument(
        "--password",
        default=None,
        help="basic-auth password (default: $PODIUM_BASIC_AUTH_PASSWORD)",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "status":
            return _status(args)
        args.data_dir = args.data_dir or default_data_dir()
        if args.command == "run":
            return asyncio.run(_run(args))
        if args.command == "validate":
            return _validate(args.paths)
        return asyncio.run(_executions(args))
    except KeyboardInterrupt:
        return EXIT_KILLED
    except PodiumError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return EXIT_FAILED


# -- podium serve -------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from daemon.app.serve import serve

    config = args.config or (
        Path(os.environ["PODIUM_CONFIG"]) if os.environ.get("PODIUM_CONFIG") else None
    )
    if config is None and Path("podium.yaml").is_file():
        config = Path("podium.yaml")
    overrides = {
        "data_dir": args.data_dir,
        "flows_dir": args.flows_dir,
        "host": args.host,
        "port": args.port,
        "store": args.store,
    }
    return serve(config, overrides)


# -- podium status ------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from daemon.app.status import DEFAULT_URL, Client, collect, render

    env = os.environ
    client = Client(
        args.url or DEFAULT_URL,
        args.user or env.get("PODIUM_BASIC_AUTH_USERNAME"),
        args.password or env.get("PODIUM_BASIC_AUTH_PASSWORD"),
    )
    status = collect(client)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(render(status))
    return EXIT_OK


# -- podium validate ----------------------------------------------------------------------


def flow_files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def _validate(paths: Sequence[Path]) -> int:
    from daemon.flows.loader import load_flow_file

    bad = 0
    files = flow_files(paths)
    for file in files:
        try:
            flow = load_flow_file(file)
        except FlowError as exc:
            bad += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        else:
            print(
                f"{file}: ok ({flow.namespace}.{flow.id}, {sum(1 for _ in flow.all_tasks())} tasks)"
            )
    if not files:
        print("podium: no flow files found", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_INVALID if bad else EXIT_OK


# -- podium run ---------------------------------------------------------------------------


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError([f"-i {pair!r}: expected NAME=VALUE"])
        values[name.strip()] = value
    return values


async def _run(args: argparse.Namespace) -> int:
    from daemon.engine.core import Engine
    from daemon.flows.loader import load_flow_file
    from daemon.store import open_store

    try:
        flow = await asyncio.to_thread(load_flow_file, args.flow)
        inputs = parse_inputs(args.input)
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    except InputError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return EXIT_INVALID
    store = open_store(args.data_dir)
    await store.open()
    engine = Engine(args.data_dir, store, lookup=_sibling_lookup(args.flow.parent))
    engine.catalog.add(flow)
    progress = Progress(sys.stderr if args.json else sys.stdout)
    engine.subscribe(progress.event)
    try:
        try:
            execution = await engine.submit(flow, inputs)
        except InputError as exc:
            print(f"podium: {exc}", file=sys.stderr)
            return EXIT_INVALID
        loop = asyncio.get_running_loop()
        kills: set[asyncio.Task[bool]] = set()

        def on_interrupt() -> None:
            kills.add(loop.create_task(engine.kill(execution.id)))

        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        loop.add_signal_handler(signal.SIGTERM, on_interrupt)
        final = await engine.wait(execution.id)
        await store.flush()
        if args.json:
            doc = final.to_json()
            doc["logs"] = await store.logs(final.id)
            json.dump(doc, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            progress.summary(final)
    finally:
        await engine.close()
        await store.close()
    if final.state.current == State.KILLED:
        return EXIT_KILLED
    return EXIT_OK if final.state.current in (State.SUCCESS, State.WARNING) else EXIT_FAILED


def _sibling_lookup(directory: Path) -> Callable[[str, str], Flow | None]:
    """Subflows of a `podium run` are looked up among the flow files beside it."""
    from daemon.flows.loader import load_flow_file

    def lookup(namespace: str, flow_id: str) -> Flow | None:
        for file in flow_files([directory]):
            try:
                flow = load_flow_file(file)
            except FlowError:
                continue
            if flow.uid == (namespace, flow_id):
                return flow
        return None

    return lookup


class Progress:
    """Live lines while a flow runs: each task's end with its state and duration, and logs."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()

    def event(self, event: Event) -> None:
        if isinstance(event, LogAppended):
            line = event.line
            where = line.get("taskId") or "-"
            self._line(f"  {line['level']:<5} {where}: {line['message']}")
        elif isinstance(event, TaskRunChanged):
            task_run = event.task_run
            state = task_run.state.current
            if state.terminated or (state == State.RUNNING and self.tty):
                label = task_run.task_id + (f"[{task_run.value}]" if task_run.value else "")
                duration = ""
                if state.terminated:
                    seconds = (
                        task_run.state.histories[-1][1] - task_run.state.start
                    ).total_seconds()
                    duration = f" {seconds:.2f}s"
                self._line(f"{self._paint(state)} {label}{duration}")

    def summary(self, execution: Execution) -> None:
        state = execution.state.current
        seconds = time.monotonic() - self.started
        line = (
            f"{self._paint(state)} execution {execution.id} of {execution.namespace}."
            f"{execution.flow_id} in {seconds:.2f}s"
        )
        if execution.error:
            line += f": {execution.error}"
        self._line(line)
        if execution.outputs:
            self._line(f"outputs: {json.dumps(execution.outputs, default=str)}")

    def _paint(self, state: State) -> str:
        text = f"{state.value:<9}"
        if not self.tty:
            return text
        colour = {
            State.SUCCESS: 32,
            State.WARNING: 33,
            State.FAILED: 31,
            State.KILLED: 31,
            State.RUNNING: 36,
        }.get(state, 0)
        return f"\x1b[{colour}m{text}\x1b[0m"

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


# -- podium executions --------------------------------------------------------------------


async def _executions(args: argparse.Namespace) -> int:
    from daemon.store import open_store

    store = open_store(
        args.store or os.environ.get("PODIUM_STORE") or args.data_dir or default_data_dir()
    )
    await store.open()
    try:
        if args.action == "list":
            results, total = await store.search_executions(
                namespace=args.namespace, flow_id=args.flow_id, states=args.state, size=args.limit
            )
            for found in results:
                print(summary_line(found))
            print(f"{len(results)} of {total} executions", file=sys.stderr)
            return EXIT_OK
        doc = await store.get_execution(args.id)
        if doc is None:
            print(f"podium: execution {args.id} not found", file=sys.stderr)
            return EXIT_FAILED
        if args.action == "show":
            print(json.dumps(doc, indent=2, default=str))
            return EXIT_OK
        for line in await store.logs(args.id, min_level=args.level):
            task = line.get("taskId") or "-"
            print(f"{line['timestamp']} {line['level']:<5} {task}: {line['message']}")
        return EXIT_OK
    finally:
        await store.close()
