"""Where webhook triggers attach: one route in the API, one handler per (flow, key).

The server owns the route `/api/v1/executions/webhook/{namespace}/{flowId}/{key}`;
a Webhook trigger attaches its handler while it runs and detaches when cancelled.
The key is the webhook's only credential: a request's key is compared with each key of
its flow in constant time (`hmac.compare_digest`), never by a dict lookup whose time
would tell how much of a guess was right.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookRegistry:
    def __init__(self) -> None:
        # (namespace, flow id) -> key -> handler
        self._handlers: dict[tuple[str, str], dict[str, Handler]] = {}

    def attach(
        self, namespace: str, flow_id: str, key: str, handler: Handler
    ) -> Callable[[], None]:
        """Route requests for this flow and key to `handler`; returns the detach function."""
        keys = self._handlers.setdefault((namespace, flow_id), {})
        if key in keys:
            raise ValueError(
                f"a webhook with key {key!r} is already attached to {namespace}.{flow_id}"
            )
        keys[key] = handler

        def detach() -> None:
            current = self._handlers.get((namespace, flow_id), {})
            if current.get(key) is handler:
                del current[key]
                if not current:
                    del self._handlers[(namespace, flow_id)]

        return detach

    def find(self, namespace: str, flow_id: str, key: str) -> Handler | None:
        """The handler whose key is `key`; every key of the flow is compared, each in
        constant time, so the answer takes as long whichever key (if any) matched."""
        given = key.encode("utf-8", "surrogateescape")
        found: Handler | None = None
        for candidate, handler in self._handlers.get((namespace, flow_id), {}).items():
            if hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), given):
                found = handler
        return found
