"""`podium` on the command line: run a flow once, validate flows, look at executions, ask a
running daemon how it is."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.app import executions_cli, namespace_cli, validate_cli
from daemon.app.progress import Progress
from daemon.app.validate_cli import (
    RUN_SETTINGS,
    config_file,
    flow_files,
    plugin_defaults,
    settings_of,
)
from daemon.config.paths import default_data_dir
from daemon.sdk.errors import FlowError, InputError, PodiumError
from daemon.sdk.state import State

if TYPE_CHECKING:
    from daemon.flows.definition import Flow, PluginDefault
    from daemon.flows.registry import Plugins

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_KILLED = 0, 1, 2, 130
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell shows for a writer whose reader left


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
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="allow listening beyond loopback without basic-auth credentials: anyone who "
        "reaches the port can run flows (default: refused; $PODIUM_INSECURE_NO_AUTH)",
    )
    serve.add_argument(
        "--store", default=None, help="store URL or path (default: podium.db in the data dir)"
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (default: podium.yaml if present, or $PODIUM_CONFIG)",
    )
    serve.add_argument(
        "--role",
        choices=("all", "executor", "worker"),
        default=None,
        help="cluster role: executor (runs executions), worker (takes task runs, serves "
        "only /health and /metrics) or all (default)",
    )
    serve.add_argument(
        "--worker-slots",
        type=int,
        default=None,
        help="task runs this node's workers take from the cluster at once (default 8)",
    )
    serve.add_argument(
        "--worker-group",
        action="append",
        default=None,
        dest="worker_groups",
        help="take only task runs of this worker group (workerGroup.key); repeatable",
    )

    validate_cli.add_parser(commands, common)

    executions_cli.add_parsers(commands, common)
    namespace_cli.add_parsers(commands)

    schema = commands.add_parser(
        "schema",
        parents=[common],
        help="print the JSON Schema of flow files (for editors: podium schema > flow.schema.json)",
    )
    schema.add_argument("--output", "-o", type=Path, help="write it to this file instead")

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
        if args.command == "schema":
            return _schema(args.output)
        if args.command == "namespace":
            return namespace_cli.run(args)
        args.data_dir = args.data_dir or default_data_dir()
        if args.command == "run":
            return asyncio.run(_run(args))
        if args.command == "validate":
            return validate_cli.run(args)
        return asyncio.run(executions_cli.run(args))
    except KeyboardInterrupt:
        return EXIT_KILLED
    except PodiumError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return EXIT_FAILED


# -- podium serve -------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from daemon.app.serve import serve

    config = config_file(args.config)
    overrides = {
        "data_dir": args.data_dir,
        "flows_dir": args.flows_dir,
        "host": args.host,
        "port": args.port,
        "store": args.store,
        "role": args.role,
        "worker_slots": args.worker_slots,
        "worker_groups": args.worker_groups,
        "insecure_no_auth": args.insecure_no_auth,
    }
    try:
        return serve(config, overrides)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        port = args.port or os.environ.get("PODIUM_PORT") or "the configured port"
        print(
            f"podium: cannot listen: port {port} is already in use (another podium?); "
            "choose another with --port, PODIUM_PORT or `port:` in podium.yaml",
            file=sys.stderr,
        )
        return EXIT_FAILED


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


# -- podium schema ------------------------------------------------------------------------


def _schema(output: Path | None) -> int:
    from daemon.flows.schema import flow_schema

    text = json.dumps(flow_schema(), indent=2) + "\n"
    if output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
        return EXIT_OK
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK


def _quiet_stdout() -> None:
    """stdout's reader went away: point it at /dev/null so the final flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# -- podium validate ----------------------------------------------------------------------


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
    from daemon.engine.resources import EngineOptions
    from daemon.flows.loader import load_flow_file
    from daemon.flows.registry import run_plugins
    from daemon.store import open_store

    options = EngineOptions()
    # the settings machinery costs start-up: only when there is something for it to read
    if any(k in RUN_SETTINGS or k.startswith("PODIUM_STORAGE_") for k in os.environ):
        try:  # `{{ globals.x }}`, the storage and plugin-defaults, as `podium serve` reads them
            settings = settings_of(None)
            options = EngineOptions(
                globals=dict(settings.globals),
                storage=settings.storage,
                plugin_defaults=plugin_defaults(settings),
            )
        except PodiumError as exc:
            print(f"podium: {exc}", file=sys.stderr)
            return EXIT_INVALID
    plugins = await asyncio.to_thread(run_plugins)
    defaults = options.plugin_defaults
    try:
        flow = await asyncio.to_thread(load_flow_file, args.flow, plugins, None, defaults)
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
    engine = Engine(
        args.data_dir,
        store,
        plugins=plugins,
        lookup=_sibling_lookup(args.flow.parent, plugins, defaults),
        options=options,
    )
    engine.catalog.add(flow)
    loop = asyncio.get_running_loop()
    kills: set[asyncio.Task[bool]] = set()
    started: list[str] = []

    def stop() -> None:
        """Ctrl-C, SIGTERM, or nobody left reading the output: kill the run."""
        if started:
            kills.add(loop.create_task(engine.kill(started[0])))

    progress = Progress(sys.stderr if args.json else sys.stdout, on_closed=stop)
    engine.subscribe(progress.event)
    try:
        try:
            # A run asked for by hand, as the API's: the flow's `checks` apply.
            execution = await engine.submit(flow, inputs, checks=True)
        except InputError as exc:
            print(f"podium: {exc}", file=sys.stderr)
            return EXIT_INVALID
        started.append(execution.id)
        if progress.closed:
            stop()
        loop.add_signal_handler(signal.SIGINT, stop)
        loop.add_signal_handler(signal.SIGTERM, stop)
        final = await engine.wait(execution.id)
        await store.flush()
        if args.json:
            doc = engine.resources.masked(final.to_json())  # as stored: secrets masked
            doc["logs"] = await store.logs(final.id)
            try:
                json.dump(doc, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
                sys.stdout.flush()
            except BrokenPipeError:
                _quiet_stdout()
        else:
            progress.summary(final, engine.resources.masked)
    finally:
        await engine.close()
        await store.close()
    if progress.closed:
        return EXIT_PIPE_CLOSED
    if final.state.current == State.KILLED:
        return EXIT_KILLED
    return EXIT_OK if final.state.current in (State.SUCCESS, State.WARNING) else EXIT_FAILED


def _sibling_lookup(
    directory: Path, plugins: Plugins, defaults: Sequence[PluginDefault]
) -> Callable[[str, str], Flow | None]:
    """Subflows of a `podium run` are looked up among the flow files beside it."""
    from daemon.flows.loader import load_flow_file

    def lookup(namespace: str, flow_id: str) -> Flow | None:
        for file in flow_files([directory]):
            try:
                flow = load_flow_file(file, plugins, None, defaults)
            except FlowError:
                continue
            if flow.uid == (namespace, flow_id):
                return flow
        return None

    return lookup
