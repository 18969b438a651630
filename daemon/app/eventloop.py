"""The event loop `podium serve` runs on: uvloop unless the `event-loop` setting says asyncio.

uvloop (libuv under asyncio's interface) does the loop's own work (ready callbacks, socket
reads and writes, timers) in C. On the webhook path, where each request is one execution,
it measured 5-15% more executions per second with bench/webhook.py (issue #18); podium's
own code runs the same on either loop. `asyncio` is there for an admin who wants the
standard library's loop (a debugger that expects it, a platform without uvloop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
EventLoopName = Literal["uvloop", "asyncio"]


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop named, None for asyncio's own. uvloop asked for and not
    installed (it is a dependency on Linux; a platform without it) falls back to asyncio."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("event-loop uvloop: uvloop is not installed, running on asyncio's loop")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], name: EventLoopName) -> T:
    """`asyncio.run(main)` on the loop named."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
