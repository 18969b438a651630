"""Where webhook triggers attach: one route in the API, one handler per (flow, key).

The server owns the route `/api/v1/executions/webhook/{namespace}/{flowId}/{key}`;
a Webhook trigger attaches its handler while it runs and detaches when cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookRegistry:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str, str], Handler] = {}

    def attach(
        self, namespace: str, flow_id: str, key: str, handler: Handler
    ) -> Callable[[], None]:
        """Route requests for this flow and key to `handler`; returns the detach function."""
        slot = (namespace, flow_id, key)
        if slot in self._handlers:
            raise ValueError(
                f"a webhook with key {key!r} is already attached to {namespace}.{flow_id}"
            )
        self._handlers[slot] = handler

        def detach() -> None:
            if self._handlers.get(slot) is handler:
                del self._handlers[slot]

        return detach

    def find(self, namespace: str, flow_id: str, key: str) -> Handler | None:
        return self._handlers.get((namespace, flow_id, key))
