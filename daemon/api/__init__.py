"""The daemon's HTTP API: Kestra's paths and JSON shapes under `/api/v1`, plus `/health`.

Routes are grouped per area (executions, flows, logs, live events, triggers, KV, webhooks)
in `Routes` tables that `server.create_app` applies explicitly, in an order that matters
(see `daemon.api.execution_routes`); the OpenAPI document is built from the same tables. Errors
answer Kestra's JSON shape, `{"message": "Reason: detail"}`, which Kestra's clients
already know how to show.

Everything but `/health` and the webhook route needs the configured basic-auth credentials.
The webhook key is a secret: it is masked wherever a path is logged.
"""
