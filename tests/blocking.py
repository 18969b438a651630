"""blockbuster, as every test uses it: any blocking call on a running event loop fails the
test, but for the calls podium makes on its loop on purpose, named here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from blockbuster import BlockBuster, blockbuster_ctx

ALLOWED = {
    # asyncpg parses its connect arguments synchronously, looking for ~/.pgpass and the
    # client SSL files in ~/.postgresql (stat, abspath, small reads of local files) on
    # every connect.
    "asyncpg/connect_utils.py": {"_parse_connect_dsn_and_args"},
    # The embedded store commits a loop turn's writes on the loop when the writer thread
    # is idle: a WAL append without fsync and never a wait for a lock (issue #18;
    # daemon/store/sqlite_io.py says why).
    "daemon/store/sqlite_io.py": {"_commit_here"},
}


@contextlib.contextmanager
def watching(modules: Sequence[str] | None = None) -> Iterator[BlockBuster]:
    with blockbuster_ctx(modules) as bb:
        for function in bb.functions.values():
            for filename, names in ALLOWED.items():
                function.can_block_in(filename, names)
        yield bb
