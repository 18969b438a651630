"""Queries across executions for the dashboard and the logs page: executions of a period
in brief (state, flow, start and end, no documents), and log lines of every execution
searched by text, level, namespace, flow and the executions' start time. Each store
implements them as `store.insights`, beside `store.kv` and `store.state`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from daemon.store.base import check_page, level_number, sortable_time


@dataclass(frozen=True)
class Window:
    """Which executions: a namespace (and the ones under it), a flow, a start period
    (half-open: after <= startDate < before), all checked and in the stores' forms."""

    namespace: str | None = None
    flow_id: str | None = None
    after: str | None = None
    before: str | None = None

    @classmethod
    def of(
        cls,
        namespace: str | None = None,
        flow_id: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> Window:
        return cls(
            namespace, flow_id, sortable_time(after, "after"), sortable_time(before, "before")
        )


@dataclass(frozen=True)
class LogQuery:
    window: Window
    text: str | None  # found in the message, any case
    level: int | None  # this level and above
    limit: int
    offset: int


class Insights(ABC):
    async def execution_briefs(self, window: Window) -> list[dict[str, Any]]:
        """Every execution started in the window, oldest first, as `id`, `namespace`,
        `flowId`, `state`, `startDate` and `endDate` (sortable UTC text) only."""
        return await self._briefs(window)

    async def search_logs(
        self,
        window: Window,
        *,
        text: str | None = None,
        min_level: str | None = None,
        page: int = 1,
        size: int = 50,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of log lines of the window's executions, newest first, and the total."""
        check_page(page, size)
        query = LogQuery(
            window, text.lower() if text else None, level_number(min_level), size, (page - 1) * size
        )
        return await self._logs(query)

    @abstractmethod
    async def _briefs(self, window: Window) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def _logs(self, query: LogQuery) -> tuple[list[dict[str, Any]], int]: ...
