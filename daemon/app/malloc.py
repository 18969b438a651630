"""Fewer malloc arenas for the long-running daemon.

glibc gives threads that allocate at the same time arenas of their own, up to eight per
core. The daemon's threads (the SQLite writer and checkpointer, the thread pool's workers,
where SQLite allocates without holding the GIL) each keep the memory they freed for later,
in pieces, and its resident size crept up over tens of thousands of executions
(bench/memory.py, 50,000 webhooks: +6.9 to +8.4 MB after warm-up and still rising; with
two arenas, +4.8 MB and flat from 20,000 on). Python's own objects are allocated under the
GIL and gain nothing from more arenas.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Call before any thread starts. An administrator's MALLOC_ARENA_MAX wins; a C library
    without `mallopt` (musl has no per-thread arenas) is left alone. True when set here."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_ARENA_MAX, arenas) != 1:
        log.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
        return False
    return True
