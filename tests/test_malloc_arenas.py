"""`podium serve` limits glibc's malloc arenas (issue #18: resident memory flat over 50,000
executions; bench/memory.py). Counted with glibc's own malloc_info(3), in a fresh process
whose threads allocate at the same time, as SQLite does without the GIL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.daemon_process import ROOT

PROBE = textwrap.dedent(
    """
    import ctypes, sqlite3, sys, threading
    from daemon.app.malloc import limit_malloc_arenas

    print(limit_malloc_arenas() if sys.argv[1] == "limit" else None)
    start = threading.Barrier(8)

    def work():
        start.wait()
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", (("x" * 100,) for _ in range(20000)))
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    libc = ctypes.CDLL(None)
    libc.open_memstream.restype = ctypes.c_void_p
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(buf), ctypes.byref(size)))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(ctypes.string_at(buf, size.value).decode().count("<heap nr="))
    """
)


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    returned, heaps = done.stdout.split()
    return returned, int(heaps)


def test_threads_allocating_at_once_share_two_arenas() -> None:
    assert _arenas("limit") == ("True", 2)


def test_without_the_limit_they_would_not() -> None:
    """What the first test would see without the call: the count can tell them apart."""
    returned, heaps = _arenas("none")
    assert returned == "None" and heaps > 2


def test_an_administrators_malloc_arena_max_is_left_as_it_is() -> None:
    """MALLOC_ARENA_MAX (a systemd `Environment=`) is glibc's own setting: it wins."""
    assert _arenas("limit", MALLOC_ARENA_MAX="4")[0] == "False"
