"""`podium executions list|show|logs`: the store's executions on the command line.

The list is a table with a header and aligned columns; `show` and `logs` take an id or any
unique prefix of one, as git takes a commit's (the list prints ids whole, so a prefix is
what a person copies or types).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from daemon.config.paths import default_data_dir
from daemon.sdk.errors import PodiumError
from daemon.sdk.state import State

if TYPE_CHECKING:
    from daemon.store.base import Store

STATES = tuple(state.value for state in State)
_COLUMNS = ("ID", "NAMESPACE", "FLOW", "STATE", "STARTED", "DURATION")
_PREFIX_PAGE = 1000


class AmbiguousId(PodiumError):
    """A prefix that names no execution, or several."""


def state_name(text: str) -> str:
    """`--state`: any case; an unknown one is refused with the valid ones listed."""
    name = text.upper()
    if name not in STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; valid states: {', '.join(STATES)}"
        )
    return name


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
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
    listing = sub.add_parser("list", parents=[stored], help="a table, newest first")
    listing.add_argument("--namespace", help="this namespace and the ones under it")
    listing.add_argument("--flow-id")
    listing.add_argument(
        "--state",
        action="append",
        type=state_name,
        metavar="STATE",
        help=f"repeatable; one of {', '.join(STATES)}",
    )
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", parents=[stored], help="an execution as JSON")
    show.add_argument("id", help="an execution id, or a unique prefix of one")
    logs = sub.add_parser("logs", parents=[stored], help="an execution's logs")
    logs.add_argument("id", help="an execution id, or a unique prefix of one")
    logs.add_argument("--level", default=None, help="minimum level (TRACE..ERROR)")


def table(docs: Sequence[dict[str, Any]]) -> list[str]:
    """The header and one aligned row per execution."""
    rows = [_COLUMNS, *(_row(doc) for doc in docs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def _row(doc: dict[str, Any]) -> tuple[str, ...]:
    state = doc["state"]
    start = (state.get("startDate") or "")[:19].replace("T", " ")
    duration = state.get("duration") or "-"
    if duration.startswith("PT") and duration.endswith("S") and "M" not in duration:
        duration = f"{float(duration[2:-1]):.2f}s"
    return (doc["id"], doc["namespace"], doc["flowId"], state["current"], start, duration)


async def resolve(store: Store, given: str) -> dict[str, Any]:
    """The execution whose id is `given`, or the only one whose id starts with it."""
    doc = await store.get_execution(given)
    if doc is not None:
        return doc
    found, _ = await store.search_executions(q=given, size=_PREFIX_PAGE)
    matches = sorted({d["id"] for d in found if d["id"].startswith(given)})
    if not matches:
        raise AmbiguousId(f"no execution id starts with {given!r}")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise AmbiguousId(f"{given!r} starts {len(matches)} execution ids ({shown}); type more")
    full = await store.get_execution(matches[0])
    if full is None:
        raise AmbiguousId(f"execution {matches[0]} was deleted meanwhile")
    return full


async def run(args: argparse.Namespace) -> int:
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
            if results:
                print("\n".join(table(results)))
            print(f"{len(results)} of {total} executions", file=sys.stderr)
            return 0
        try:
            doc = await resolve(store, args.id)
        except AmbiguousId as exc:
            print(f"podium: {exc}", file=sys.stderr)
            return 1
        if args.action == "show":
            print(json.dumps(doc, indent=2, default=str))
            return 0
        for line in await store.logs(doc["id"], min_level=args.level):
            task = line.get("taskId") or "-"
            print(f"{line['timestamp']} {line['level']:<5} {task}: {line['message']}")
        return 0
    finally:
        await store.close()
