"""Retry policies as frozen values: when (and whether) to try a failed task again."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, Field

from daemon.sdk.clock import Clock
from daemon.sdk.durations import Duration
from daemon.sdk.properties import Model


class RetryModel(Model):
    """Kestra's `retry:` block; turned into a frozen `RetryPolicy` by the executor."""

    type: Literal["constant", "exponential", "random"]
    interval: Duration | None = None
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        alias="maxAttempt",
        validation_alias=AliasChoices("maxAttempts", "maxAttempt"),
    )
    max_duration: Duration | None = None
    max_interval: Duration | None = None
    min_interval: Duration | None = None
    delay_factor: float | None = None
    warning_on_retry: bool = False
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"


@dataclass(frozen=True)
class RetryPolicy:
    type: str
    interval: timedelta = timedelta(seconds=1)
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    max_interval: timedelta | None = None
    min_interval: timedelta | None = None
    delay_factor: float | None = None
    warning_on_retry: bool = False

    @classmethod
    def from_model(cls, model: RetryModel) -> RetryPolicy:
        return cls(
            type=model.type,
            interval=model.interval or timedelta(seconds=1),
            max_attempts=model.max_attempts,
            max_duration=model.max_duration,
            max_interval=model.max_interval,
            min_interval=model.min_interval,
            delay_factor=model.delay_factor,
            warning_on_retry=model.warning_on_retry,
        )

    def next_delay(self, attempts_done: int, elapsed: timedelta) -> float | None:
        """Seconds to wait before the next attempt, or None when the policy is exhausted.

        `maxAttempts` counts every attempt, the first one included.
        """
        if self.max_attempts is not None and attempts_done >= self.max_attempts:
            return None
        if self.max_attempts is None and self.max_duration is None:
            return None
        if self.type == "exponential":
            factor = self.delay_factor if self.delay_factor is not None else 2.0
            delay = self.interval.total_seconds() * factor ** (attempts_done - 1)
            if self.max_interval is not None:
                delay = min(delay, self.max_interval.total_seconds())
        elif self.type == "random":
            low = (self.min_interval or timedelta(0)).total_seconds()
            high = (self.max_interval or self.interval).total_seconds()
            delay = random.uniform(low, max(low, high))
        else:
            delay = self.interval.total_seconds()
        if (
            self.max_duration is not None
            and elapsed.total_seconds() + delay > self.max_duration.total_seconds()
        ):
            return None
        return delay


class Backoff:
    """Growing pauses between attempts at something that keeps failing (a broker, a
    database): `first`, then doubled (by `factor`) up to `maximum`, until `reset`."""

    def __init__(
        self, first: float, maximum: float, *, factor: float = 2.0, clock: Clock | None = None
    ) -> None:
        self.first = first
        self.maximum = maximum
        self.factor = factor
        self._clock = clock
        self._next = first
        self.attempts = 0  # pauses taken since the last reset

    @property
    def upcoming(self) -> float:
        """The pause the next `sleep` takes."""
        return self._next

    def next_delay(self) -> float:
        """The pause to take now; the one after it grows."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        self.attempts += 1
        return delay

    async def sleep(self, at_most: float | None = None) -> None:
        delay = self.next_delay()
        if at_most is not None:
            delay = min(delay, at_most)
        if self._clock is not None:
            await self._clock.sleep(delay)
        else:
            await asyncio.sleep(delay)

    def reset(self) -> None:
        """It worked: the next failure starts from `first` again."""
        self._next = self.first
        self.attempts = 0
