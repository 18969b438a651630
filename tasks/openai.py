"""OpenAI's Chat Completions (kestra-io/plugin-openai): `io.kestra.plugin.openai.ChatCompletion`.

As Kestra's ChatCompletion:
- `messages` (role `system`, `assistant`, anything else `user`) and/or `prompt` (sent
  last, as a user message); one of them is needed;
- `model`, `temperature` and `topP` (default 1.0), `n` (1), `stop`, `maxTokens` (sent as
  `max_completion_tokens`), `presencePenalty`, `frequencyPenalty`, `logitBias`, `user`;
- `functions` become tools (a function without `parameters` is left out): each parameter
  a JSON-schema property (`type`, `description`, `enumValues` as `enum`, `required`);
  `functionCall` is `auto` (default), `none`, or the name of one of the functions;
- `jsonResponseSchema` (JSON text) asks for structured output (`json_schema` named
  `kestra_schema`, strict);
- outputs `id`, `object`, `model`, `choices` (as the API returns them, so
  `choices[0].message.content` and `...tool_calls[0].function.arguments` read as in
  Kestra) and `usage`; the token counts are also the counters `usage.prompt.tokens`,
  `usage.completion.tokens` and `usage.total.tokens`.

The API is https://api.openai.com/v1 unless the daemon's environment sets
`OPENAI_BASE_URL` (as OpenAI's own clients read it): an OpenAI-compatible endpoint or a
proxy.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

from pydantic import Field, model_validator

from daemon.sdk.context import RunContext
from daemon.sdk.errors import TaskFailed
from daemon.sdk.plugin import Output, Task
from daemon.sdk.properties import Dynamic, JsonText, Model

DEFAULT_BASE_URL = "https://api.openai.com/v1"
REQUEST_TIMEOUT = 600.0  # seconds: OpenAI's clients wait up to 10 minutes by default
ERROR_EXCERPT = 500


class ChatMessage(Model):
    role: str
    content: str | None = None
    name: str | None = None


class FunctionParameter(Model):
    name: str
    description: str
    type: str
    enum_values: list[str] | None = None
    required: bool = False


class ChatFunction(Model):
    name: str
    description: str | None = None
    parameters: list[FunctionParameter] | None = None

    def tool(self) -> dict[str, Any]:
        """The function as the API's tool: its parameters as a JSON schema object."""
        properties: dict[str, Any] = {}
        for parameter in self.parameters or []:
            schema: dict[str, Any] = {"type": parameter.type, "description": parameter.description}
            if parameter.enum_values:
                schema["enum"] = parameter.enum_values
            properties[parameter.name] = schema
        required = [p.name for p in self.parameters or [] if p.required]
        function: dict[str, Any] = {
            "name": self.name,
            "parameters": {"type": "object", "properties": properties, "required": required},
        }
        if self.description is not None:
            function["description"] = self.description
        return {"type": "function", "function": function}


def _role(role: str) -> str:
    lowered = role.lower()
    return lowered if lowered in ("assistant", "system") else "user"


class ChatCompletion(Task):
    """Send a prompt or messages to OpenAI's Chat Completions API."""

    types = ("io.kestra.plugin.openai.ChatCompletion",)

    api_key: Annotated[str, Dynamic]
    model: Annotated[str, Dynamic]
    messages: Annotated[list[ChatMessage] | None, Dynamic, JsonText] = None
    prompt: Annotated[str | None, Dynamic] = None
    functions: Annotated[list[ChatFunction] | None, Dynamic] = None
    function_call: Annotated[str, Dynamic] = "auto"
    temperature: Annotated[float | None, Dynamic] = 1.0
    top_p: Annotated[float | None, Dynamic] = 1.0
    n: Annotated[int, Dynamic] = Field(default=1, ge=1)
    stop: Annotated[list[str] | None, Dynamic, JsonText] = None
    max_tokens: Annotated[int | None, Dynamic] = None
    presence_penalty: Annotated[float | None, Dynamic] = None
    frequency_penalty: Annotated[float | None, Dynamic] = None
    logit_bias: Annotated[dict[str, int] | None, Dynamic] = None
    json_response_schema: Annotated[str | None, Dynamic] = None
    user: Annotated[str | None, Dynamic] = None
    client_timeout: int = 10  # Kestra's, for its older client; kept so flows load

    @model_validator(mode="after")
    def _something_to_send(self) -> ChatCompletion:
        if self.messages is None and self.prompt is None:
            raise ValueError("Either `messages` or `prompt` must be set")
        return self

    def body(self) -> dict[str, Any]:
        """The request, as Kestra's ChatCompletion builds it."""
        messages = [{"role": _role(m.role), "content": m.content} for m in self.messages or []]
        if self.prompt is not None:
            messages.append({"role": "user", "content": self.prompt})
        body: dict[str, Any] = {"model": self.model, "messages": messages, "n": self.n}
        optional = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_completion_tokens": self.max_tokens,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "user": self.user,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.stop:
            body["stop"] = self.stop
        if self.logit_bias:
            body["logit_bias"] = self.logit_bias
        if self.json_response_schema is not None:
            body["response_format"] = self._response_format()
        tools = [f.tool() for f in self.functions or [] if f.parameters is not None]
        choice = self.function_call
        if tools:
            body["tools"] = tools
            if choice.lower() in ("auto", "none"):
                body["tool_choice"] = choice.lower()
            elif any(t["function"]["name"] == choice for t in tools):
                body["tool_choice"] = {"type": "function", "function": {"name": choice}}
            else:
                raise TaskFailed(
                    f"Requested function '{choice}' for `functionCall` is not provided in "
                    "`functions` list.",
                    non_retryable=True,
                )
        elif choice.lower() == "none":
            body["tool_choice"] = "none"
        elif choice.lower() != "auto":
            raise TaskFailed(
                f"Cannot specify a function name for `functionCall` ('{choice}') when no "
                "`functions` are provided.",
                non_retryable=True,
            )
        return body

    def _response_format(self) -> dict[str, Any]:
        try:
            schema = json.loads(self.json_response_schema or "")
        except json.JSONDecodeError as exc:
            raise TaskFailed(f"jsonResponseSchema is not JSON: {exc}", non_retryable=True) from None
        if not isinstance(schema, dict):
            raise TaskFailed("jsonResponseSchema must be a JSON object", non_retryable=True)
        return {
            "type": "json_schema",
            "json_schema": {"name": "kestra_schema", "strict": True, "schema": schema},
        }

    async def run(self, ctx: RunContext) -> Output:
        import aiohttp

        body = self.body()
        base = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        url = base.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(url, json=body, headers=headers) as response,
            ):
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TaskFailed(f"OpenAI at {base} could not be reached: {exc!r}") from None
        if status >= 400:
            raise TaskFailed(
                f"OpenAI answered {status}: {_error(text)}", non_retryable=status < 429
            )
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            raise TaskFailed(
                f"OpenAI answered {status} with no JSON: {text[:ERROR_EXCERPT]}"
            ) from None
        usage = answer.get("usage")
        if isinstance(usage, dict):
            for key, name in (
                ("prompt_tokens", "usage.prompt.tokens"),
                ("completion_tokens", "usage.completion.tokens"),
                ("total_tokens", "usage.total.tokens"),
            ):
                if isinstance(usage.get(key), int | float):
                    ctx.metric(name, "counter", usage[key])
        return {
            "id": answer.get("id"),
            "object": answer.get("object"),
            "model": answer.get("model"),
            "choices": answer.get("choices"),
            "usage": usage,
        }


def _error(text: str) -> str:
    """OpenAI's `error.message` when it gives one, else the start of the body."""
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text[:ERROR_EXCERPT]
    return str(message)
