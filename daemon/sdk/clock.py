"""The one clock podium reads time from, so that tests can replace it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock:
    """Wall-clock time and sleeping; tests swap in `FakeClock`."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await self.sleep(delay)

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[None]:
        """`asyncio.timeout` on this clock: TimeoutError when the block runs `seconds`."""
        async with asyncio.timeout(seconds):
            yield


class FakeClock(Clock):
    """A clock that only moves when a test calls `advance`; sleepers wake in order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + timedelta(seconds=seconds), fut))
        try:
            await fut
        finally:
            self._sleepers = [(w, f) for w, f in self._sleepers if f is not fut]

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    async def advance_to_next(self) -> None:
        """Jump to the earliest sleeper's wake-up time (no-op when nobody sleeps)."""
        if self._sleepers:
            earliest = min(w for w, _ in self._sleepers)
            await self.advance(max((earliest - self._now).total_seconds(), 0))

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose time has come, in time order."""
        target = self._now + timedelta(seconds=seconds)
        while True:
            due = sorted((w, i) for i, (w, f) in enumerate(self._sleepers) if w <= target)
            if not due:
                break
            when, index = due[0]
            self._now = max(self._now, when)
            fut = self._sleepers.pop(index)[1]
            if not fut.done():
                fut.set_result(None)
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[None]:
        """The block is cancelled (TimeoutError) once fake time passes `seconds` from now."""
        task = asyncio.current_task()
        assert task is not None, "timeout() needs a running task"
        fired = False

        async def watchdog() -> None:
            nonlocal fired
            await self.sleep(seconds)
            fired = True
            task.cancel()

        dog = asyncio.ensure_future(watchdog())
        try:
            yield
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            dog.cancel()


def known_zone(value: str | None) -> str | None:
    """`value` when it names an IANA time zone (None passes), for the `timezone` property of
    schedules and windows; a ValueError saying what to write otherwise."""
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone: use an IANA name such as Europe/Paris") from None
    return value
