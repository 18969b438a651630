"""PostgreSQL restarted under load, round after round, under two `podium serve` nodes
(issue #13, finding 5): prints per round and in total how many executions were stuck,
FAILED, lost or run twice. Every figure must be 0.

    .venv/bin/python bench/pg_restarts.py [--rounds 20] [--events 200]

A private PostgreSQL (the tests' fixture) and two nodes live for the whole run; each round
sends its events from a second process (tests/webhook_sender.py) and restarts PostgreSQL
(fast shutdown, start) once a third of them are stored. See tests/pg_restart_rounds.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402  (the tests' private PostgreSQL)
from tests.pg_restart_rounds import details, run_round, start_nodes  # noqa: E402
from tests.worker_nodes import stop_all  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--events", type=int, default=200, help="webhook events per round")
    args = parser.parse_args(argv)
    totals = {"events": 0, "stuck": 0, "FAILED": 0, "lost": 0, "twice": 0}
    unclean = 0
    with services.postgres_server() as server, tempfile.TemporaryDirectory() as work:
        nodes = start_nodes(Path(work), server.dsn)
        try:
            for number in range(1, args.rounds + 1):
                result = run_round(server, nodes, f"r{number}-", args.events)
                print(result.line(number), flush=True)
                totals["events"] += result.events
                totals["stuck"] += len(result.stuck)
                totals["FAILED"] += len(result.failed)
                totals["lost"] += len(result.lost)
                totals["twice"] += len(result.twice)
                if not result.clean:
                    unclean += 1
                    print(details(result, nodes), flush=True)
                if result.nodes_down:
                    break
        finally:
            stop_all(nodes)
    print(
        f"total: {args.rounds} restarts, {totals['events']} events: "
        f"stuck={totals['stuck']} FAILED={totals['FAILED']} lost={totals['lost']} "
        f"twice={totals['twice']}; rounds not clean: {unclean}"
    )
    return 0 if unclean == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
