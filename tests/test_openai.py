"""io.kestra.plugin.openai.ChatCompletion against a local stand-in of OpenAI's API, as
kestra-io/plugin-openai's ChatCompletion builds its request (messages and prompt, sampling
properties, functions as tools, functionCall, jsonResponseSchema) and runs its @Example
flows (a completion's text logged; a function call's arguments read with jq)."""

from __future__ import annotations

import json

import pytest

from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tests.harness import Harness
from tests.vendor_api import Answer, VendorApi, vendor  # noqa: F401 - the fixture

PATH = "/v1/chat/completions"


def completion(message: dict[str, object]) -> Answer:
    return Answer(
        body=json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
            }
        )
    )


@pytest.fixture
def openai(vendor: VendorApi, monkeypatch: pytest.MonkeyPatch) -> VendorApi:  # noqa: F811
    monkeypatch.setenv("OPENAI_BASE_URL", f"{vendor.url}/v1")
    return vendor


def flow(tasks: str) -> str:
    return f"id: openai_chat\nnamespace: company.team\ntasks:\n{tasks}"


async def test_a_prompt_completion_is_logged_downstream(h: Harness, openai: VendorApi) -> None:
    """ChatCompletion's first @Example: the prompt as a user message, the defaults sent,
    `choices[0].message.content` read by the next task; the token counts as metrics."""
    openai.answers[PATH] = [completion({"role": "assistant", "content": "Moving data."})]
    ex = await h.run(
        flow("""
  - id: completion
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: sk-test
    model: gpt-4o
    prompt: "What is data orchestration in {{ flow.namespace }}?"
  - id: log_output
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.completion.choices[0].message.content }}"
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    (request,) = openai.at(PATH)
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.json() == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "What is data orchestration in company.team?"}],
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    assert await h.logs(ex) == ["Moving data."]
    out = ex.task_runs[0].outputs or {}
    assert (out["id"], out["object"], out["model"]) == (
        "chatcmpl-1",
        "chat.completion",
        "gpt-4o-2024-08-06",
    )
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    await h.store.flush()
    counted = {m["name"]: m["value"] for m in await h.store.metrics(ex.id)}
    assert counted == {
        "usage.prompt.tokens": 12,
        "usage.completion.tokens": 7,
        "usage.total.tokens": 19,
    }


async def test_functions_are_tools_and_their_call_is_read_with_jq(
    h: Harness, openai: VendorApi
) -> None:
    """ChatCompletion's third @Example (respond_to_review): each function a tool whose
    parameters are a JSON schema (enum, required), `tool_choice` auto; the arguments of
    the call read back with jq and fromjson."""
    arguments = {"response_urgency": "reply_later", "response_text": "Thank you!"}
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "respond_to_review", "arguments": json.dumps(arguments)},
    }
    openai.answers[PATH] = [
        completion({"role": "assistant", "content": None, "tool_calls": [call]})
    ]
    ex = await h.run(
        flow("""
  - id: prioritize_response
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: yourOpenAIapiKey
    model: gpt-4o
    messages:
      - role: user
        content: I love your product and would purchase it again!
    functions:
      - name: respond_to_review
        description: Determines how urgently a reply is required.
        parameters:
          - name: response_urgency
            type: string
            description: How urgently this customer review needs a reply.
            required: true
            enumValues:
              - reply_immediately
              - reply_later
          - name: response_text
            type: string
            description: The text to post online in response to this review.
            required: true
      - name: no_parameters_left_out
        description: A function without parameters is not sent.
  - id: response_urgency
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ outputs.prioritize_response | jq('.choices[0].message.tool_calls[0].function.arguments
      | fromjson | .response_urgency') | first }}
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    body = openai.at(PATH)[0].json()
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "respond_to_review",
                "description": "Determines how urgently a reply is required.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "response_urgency": {
                            "type": "string",
                            "description": "How urgently this customer review needs a reply.",
                            "enum": ["reply_immediately", "reply_later"],
                        },
                        "response_text": {
                            "type": "string",
                            "description": "The text to post online in response to this review.",
                        },
                    },
                    "required": ["response_urgency", "response_text"],
                },
            },
        }
    ]
    assert ex.task_runs[1].outputs == {"value": "reply_later"}


async def test_messages_roles_sampling_and_structured_output(h: Harness, openai: VendorApi) -> None:
    """Roles system and assistant kept, any other one sent as user; the prompt after the
    messages; maxTokens is max_completion_tokens; jsonResponseSchema a strict json_schema
    named kestra_schema; a function named in functionCall is the tool_choice."""
    openai.answers[PATH] = [completion({"role": "assistant", "content": '{"ok": true}'})]
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    ex = await h.run(
        flow(f"""
  - id: chat
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: sk-test
    model: gpt-4o-mini
    messages:
      - {{role: system, content: Be brief.}}
      - {{role: assistant, content: Hello.}}
      - {{role: developer, content: Hi.}}
    prompt: Answer in JSON.
    temperature: 0.2
    topP: 0.9
    n: 2
    stop: ["END"]
    maxTokens: 50
    presencePenalty: 0.5
    frequencyPenalty: 0.1
    logitBias: {{"50256": -100}}
    user: "{{{{ flow.id }}}}"
    jsonResponseSchema: '{json.dumps(schema)}'
    functionCall: check
    functions:
      - name: check
        parameters:
          - {{name: ok, type: boolean, description: fine}}
""")
    )
    assert ex.state.current == State.SUCCESS, ex.error
    body = openai.at(PATH)[0].json()
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Hi."},
        {"role": "user", "content": "Answer in JSON."},
    ]
    assert {k: body[k] for k in ("temperature", "top_p", "n", "stop", "user")} == {
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 2,
        "stop": ["END"],
        "user": "openai_chat",
    }
    assert body["max_completion_tokens"] == 50
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, 0.1)
    assert body["logit_bias"] == {"50256": -100}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "kestra_schema", "strict": True, "schema": schema},
    }
    assert body["tool_choice"] == {"type": "function", "function": {"name": "check"}}


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            "    functionCall: nowhere\n    functions:\n      - name: check\n"
            "        parameters: [{name: ok, type: boolean, description: fine}]\n",
            "task 'chat': Requested function 'nowhere' for `functionCall` is not provided",
        ),
        (
            "    functionCall: check\n",
            "task 'chat': Cannot specify a function name for `functionCall` ('check')",
        ),
        ("    jsonResponseSchema: not json\n", "task 'chat': jsonResponseSchema is not JSON"),
    ],
)
async def test_bad_function_calls_and_schemas_fail_before_any_request(
    h: Harness, openai: VendorApi, extra: str, error: str
) -> None:
    ex = await h.run(
        flow(
            "  - id: chat\n    type: io.kestra.plugin.openai.ChatCompletion\n"
            f"    apiKey: k\n    model: m\n    prompt: p\n{extra}"
        )
    )
    assert ex.state.current == State.FAILED
    assert (ex.error or "").startswith(error), ex.error
    assert openai.at(PATH) == []


async def test_an_api_error_fails_the_task_with_openais_message(
    h: Harness, openai: VendorApi
) -> None:
    openai.answers[PATH] = [
        Answer(
            status=401,
            body=json.dumps({"error": {"message": "Incorrect API key provided: k."}}),
        )
    ]
    ex = await h.run(
        flow(
            "  - id: chat\n    type: io.kestra.plugin.openai.ChatCompletion\n"
            "    apiKey: k\n    model: m\n    prompt: p\n"
        )
    )
    assert ex.state.current == State.FAILED
    assert ex.error == "task 'chat': OpenAI answered 401: Incorrect API key provided: k."


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ("    apiKey: k\n    model: m\n", "Either `messages` or `prompt` must be set"),
        ("    apiKey: k\n    prompt: p\n", "model"),
        ("    model: m\n    prompt: p\n", "apiKey"),
        ("    apiKey: k\n    model: m\n    prompt: p\n    n: 0\n", "n"),
    ],
)
def test_malformed_tasks_are_refused_when_the_flow_loads(task: str, problem: str) -> None:
    with pytest.raises(FlowError, match=problem):
        load_flow(flow(f"  - id: chat\n    type: io.kestra.plugin.openai.ChatCompletion\n{task}"))
