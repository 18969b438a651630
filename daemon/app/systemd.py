"""systemd's notify protocol (sd_notify) spoken directly: READY, STOPPING, WATCHDOG, STATUS.

Written to $NOTIFY_SOCKET as one datagram each; a no-op when not run by systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notification ("READY=1", "STOPPING=1", ...); False when there is no socket."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of WatchdogSec (as systemd advises) when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    with contextlib.suppress(ValueError):
        return int(usec) / 1_000_000 / 2
    return None


async def watchdog_pings(interval: float) -> None:
    """WATCHDOG=1 every `interval` seconds while the loop is alive (a hung loop stops them)."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
