"""Webhook trigger: one execution per call to /api/v1/executions/webhook/{ns}/{flowId}/{key}.

The API owns that route (and its twin with a path after the key, which this trigger refuses
with a 404 as Kestra's Webhook does: the path is for other webhook triggers, never a
trigger variable). While this trigger runs, its handler is attached for its flow and
key; cancelling the trigger (flow removed, changed or disabled) detaches it, and the route
then answers 404 as for a key that never existed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import Field, field_validator

from daemon.sdk.context import TriggerContext
from daemon.sdk.errors import InputError, NotFound, PodiumError
from daemon.sdk.plugin import Emit, Trigger
from daemon.sdk.properties import Dynamic, has_template
from daemon.sdk.services import WEBHOOK_SUBPATH

if TYPE_CHECKING:
    from aiohttp import web

    from daemon.sdk.execution import Execution

MAX_KEY_LENGTH = 256  # Kestra's @Size(max = 256)
# Credentials a caller may send along: kept out of the stored trigger variables.
MASKED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# A client that retries a POST sends the same Idempotency-Key: it gets the execution its
# first attempt created, on whichever node of a cluster it lands.
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_TEXT_SUBTYPES = ("json", "xml", "yaml", "csv", "x-www-form-urlencoded")


def _check_key(key: str) -> str:
    """Kestra's rule (at most 256 characters), and one URL segment, so no slash."""
    if not key:
        raise ValueError("key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"key is {len(key)} characters long; at most {MAX_KEY_LENGTH} are allowed")
    if "/" in key:
        raise ValueError("key must not contain '/': it is one segment of the webhook URL")
    return key


class Webhook(Trigger):
    """Kestra's Webhook: GET, POST or PUT on the flow's URL starts an execution.

    `trigger.body` is the body parsed as JSON when it is a JSON object or array, else its
    text (base64 for a binary content type); `trigger.headers` and `trigger.parameters`
    map each name to its list of values.
    """

    types = (
        "io.kestra.plugin.core.trigger.Webhook",
        "io.kestra.core.models.triggers.types.Webhook",
    )
    receives_webhooks = True

    key: Annotated[str, Dynamic]
    wait: bool = False
    return_outputs: bool = False
    response_content_type: Literal["application/json", "text/plain"] | None = None
    response_code: int | None = Field(default=None, ge=100, le=599)
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str) -> str:
        return value if has_template(value) else _check_key(value)

    async def run(self, emit: Emit, ctx: TriggerContext) -> None:
        flow = ctx.flow
        key = self._rendered_key(ctx)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, emit, ctx)

        try:
            detach = ctx.webhooks.attach(flow.namespace, flow.id, key, handle)
        except ValueError:
            # The registry's message names the key, and keys are secrets.
            raise PodiumError(
                f"another webhook of {flow.namespace}.{flow.id} already uses the same key"
            ) from None
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            detach()

    def _rendered_key(self, ctx: TriggerContext) -> str:
        """A templated key (e.g. from `envs`) is rendered once, when the trigger starts."""
        key = str(ctx.render(self.key))
        try:
            return _check_key(key.strip())
        except ValueError as exc:
            raise PodiumError(f"webhook trigger {self.id}: {exc}") from None

    async def _handle(
        self, request: web.Request, emit: Emit, ctx: TriggerContext
    ) -> web.StreamResponse:
        """Answers only once the execution is stored (and, with `wait`, has ended). A path
        after the key is refused as an unknown key is (Kestra's Webhook.evaluate: 404)."""
        from aiohttp import web

        if WEBHOOK_SUBPATH in request.match_info:
            ctx.count_rejected()
            raise NotFound("this webhook takes no path after its key")
        variables = await _request_variables(request)
        if not await self.admits(ctx, variables):  # Kestra: 204, "conditions not met"
            ctx.count_rejected()
            return web.Response(status=204)
        idempotency = request.headers.get("Idempotency-Key")
        if idempotency is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency):
            ctx.count_rejected()
            return _json(
                {"message": "Idempotency-Key must be 1 to 255 printable ASCII characters"}, 400
            )
        try:
            inputs = self._inputs(variables, ctx)
        except InputError:  # what `emit` refuses, the emitter counts
            ctx.count_rejected()
            raise
        execution = await emit(inputs, variables, key=idempotency)
        if not self.wait:
            return _json(self._response(execution, variables, ctx), 200)
        execution = await ctx.executions.wait(execution.id)
        status = self.response_code or (500 if execution.state.current.failed else 200)
        if not self.return_outputs:
            return _json(self._response(execution, variables, ctx), status)
        # The execution ended in memory, secrets in clear: masked as the store keeps them.
        outputs = ctx.secrets.masked(execution.outputs or {})
        if self.response_content_type == "text/plain":
            text = outputs if isinstance(outputs, str) else orjson.dumps(outputs).decode()
            return web.Response(text=text, status=status, content_type="text/plain")
        return _json(outputs, status)

    def _inputs(self, variables: Mapping[str, Any], ctx: TriggerContext) -> dict[str, Any]:
        """`inputs:` rendered with the request as `trigger`: only the flow's own text is a
        template, whatever the caller sent stays data."""
        if not self.inputs:
            return {}
        inputs: dict[str, Any] = ctx.render(self.inputs, {"trigger": variables})
        # The submitter copies a local path given to a FILE input: never from a caller.
        problems = [
            f"input '{spec.id}': a webhook passes a FILE input as a kestra:// URI only"
            for spec in ctx.flow.inputs
            if spec.type == "FILE"
            and isinstance(inputs.get(spec.id), str)
            and not inputs[spec.id].startswith("kestra://")
        ]
        if problems:
            raise InputError(problems)
        return inputs

    def _response(
        self, execution: Execution, variables: Mapping[str, Any], ctx: TriggerContext
    ) -> dict[str, Any]:
        """Kestra's WebhookResponse: the execution's identity, trigger, outputs and state,
        secrets masked (the outputs of an execution waited for are in clear in memory)."""
        return ctx.secrets.masked(
            {
                "id": execution.id,
                "namespace": execution.namespace,
                "flowId": execution.flow_id,
                "flowRevision": execution.flow_revision,
                "trigger": {"id": ctx.trigger_id, "type": self.types[0], "variables": variables},
                "outputs": execution.outputs,
                "labels": [{"key": k, "value": v} for k, v in execution.labels.items()],
                "state": execution.state.to_json(),
                "url": f"/ui/executions/{execution.namespace}/{execution.flow_id}/{execution.id}",
            }
        )


async def _request_variables(request: web.Request) -> dict[str, Any]:
    """`trigger.body`, `trigger.headers`, `trigger.parameters` of one request, as Kestra."""
    raw = await request.read()
    headers: dict[str, list[str]] = {}
    for name_bytes, value_bytes in request.raw_headers:
        name = name_bytes.decode("utf-8", "replace")
        value = (
            "******" if name.lower() in MASKED_HEADERS else value_bytes.decode("utf-8", "replace")
        )
        headers.setdefault(name, []).append(value)
    parameters: dict[str, list[str]] = {}
    for name, value in request.query.items():
        parameters.setdefault(name, []).append(value)
    typed = "Content-Type" in request.headers
    body = _body(raw, request.content_type if typed else None, request.charset)
    return {"body": body, "headers": headers, "parameters": parameters}


def _body(raw: bytes, content_type: str | None, charset: str | None) -> Any:
    """JSON object or array when it parses (whatever the content type, as Kestra), else
    the text; a binary body as base64, since trigger variables carry text."""
    if not raw:
        return None
    if content_type is not None and not _is_text(content_type):
        return base64.b64encode(raw).decode("ascii")
    try:
        text = raw.decode(charset or "utf-8", "replace")
    except LookupError:  # an unknown charset name
        text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
        orjson.dumps(parsed)  # what the store cannot keep (a 2**64 number) stays text
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        return text
    return parsed if isinstance(parsed, dict | list) else text


def _is_text(content_type: str) -> bool:
    kind, _, subtype = content_type.partition("/")
    return kind == "text" or any(name in subtype for name in _TEXT_SUBTYPES)


def _json(data: Any, status: int) -> web.Response:
    from aiohttp import web

    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )
