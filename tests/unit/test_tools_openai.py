"""Tool calls in OpenAI Chat Completions (and its compatible family): request and reply,
against the API reference's function-calling example
(https://platform.openai.com/docs/api-reference/chat/create)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.compat import DIALECTS
from tierline.processors.providers.openai import OpenAIAdapter
from tierline.schemas import ErrorType, FunctionCall, RouteRequest, ToolCall, Usage

CATALOG = Catalog.from_config(
    {
        "models": {
            "gpt-4.1-nano": {"provider": "openai"},
            "o3-mini": {"provider": "openai"},
            "deepseek-chat": {"provider": "deepseek"},
            "mistral-small-latest": {"provider": "mistral"},
        },
        "tiers": {t: ["gpt-4.1-nano"] for t in ("economy", "standard", "premium")},
    }
)
ADAPTER = OpenAIAdapter()
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state, e.g. San Francisco, CA",
                },
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
#: the API reference's function-calling example reply
REFERENCE_REPLY: dict[str, Any] = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1699896916,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{\n"location": "Boston, MA"\n}',
                        },
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What's the weather like in Boston today?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {"name": "get_current_weather", "arguments": '{"location": "Boston"}'},
                "extra_content": {"google": {"thought_signature": "c2ln"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_abc123", "content": "22 celsius, sunny"},
]


def body_of(model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    request = RouteRequest.model_validate(
        {"id": "r1", "tenant": "acme", "messages": messages, "params": params}
    )
    spec = CATALOG.model(model)
    adapter = OpenAIAdapter(DIALECTS[spec.provider])
    return dict(orjson.loads(adapter.build(spec, request, "sk-test").body))


def test_tools_and_the_tool_history_are_sent_as_openai_reads_them() -> None:
    body = body_of(
        "gpt-4.1-nano",
        HISTORY,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_current_weather"}},
        parallel_tool_calls=False,
    )
    assert body["tools"] == [WEATHER]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_current_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"] == [
        HISTORY[0],
        {  # Gemini's thought signature is not OpenAI's to read
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "arguments": '{"location": "Boston"}',
                    },
                }
            ],
        },
        HISTORY[2],
    ]


def test_tool_fields_are_sent_only_with_tools_and_parallel_never_to_the_o_series() -> None:
    plain = body_of("gpt-4.1-nano", HISTORY[:1], parallel_tool_calls=True, tool_choice="none")
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(plain)
    reasoning = body_of("o3-mini", HISTORY[:1], tools=[WEATHER], parallel_tool_calls=False)
    assert reasoning["tools"] == [WEATHER] and "parallel_tool_calls" not in reasoning
    compatible = body_of("deepseek-chat", HISTORY, tools=[WEATHER], tool_choice="required")
    assert compatible["tool_choice"] == "required" and compatible["messages"][2] == HISTORY[2]


def test_the_reference_tool_call_reply_is_normalized() -> None:
    reply = ADAPTER.parse(200, {}, orjson.dumps(REFERENCE_REPLY))
    assert reply.finish_reason == "tool_calls" and reply.content == ""
    assert reply.tool_calls == (
        ToolCall(
            id="call_abc123",
            function=FunctionCall(
                name="get_current_weather", arguments='{\n"location": "Boston, MA"\n}'
            ),
        ),
    )
    assert reply.usage == Usage(input_tokens=82, output_tokens=17)


def with_message(message: dict[str, Any], finish_reason: str = "tool_calls") -> bytes:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY))
    data["choices"][0].update(message=message, finish_reason=finish_reason)
    return orjson.dumps(data)


def test_parallel_calls_text_beside_them_and_a_stop_finish_still_end_in_tool_calls() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": '{"x":1}'}},
    ]
    message = {"role": "assistant", "content": "Checking both.", "tool_calls": calls}
    reply = ADAPTER.parse(200, {}, with_message(message, finish_reason="stop"))
    assert reply.finish_reason == "tool_calls" and reply.content == "Checking both."
    assert [(c.id, c.function.name) for c in reply.tool_calls] == [("call_1", "a"), ("call_2", "b")]


def test_compatible_members_quirks_arguments_as_an_object_and_no_id() -> None:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_current_weather", "arguments": {"a": 1}}}],
    }
    reply = ADAPTER.parse(200, {}, with_message(message))
    assert reply.tool_calls[0].id == "call_0"
    assert reply.tool_calls[0].function.arguments == '{"a":1}'


def test_a_legacy_function_call_is_read_as_one_tool_call() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "get_current_weather", "arguments": '{"location": "Oslo"}'},
    }
    reply = ADAPTER.parse(200, {}, with_message(message, finish_reason="function_call"))
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls[0].function.name == "get_current_weather"


def test_a_tool_calls_finish_without_calls_or_text_is_invalid() -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, with_message({"role": "assistant", "content": None}))
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE
    text = ADAPTER.parse(200, {}, with_message({"role": "assistant", "content": "Hi"}))
    assert text.finish_reason == "stop" and text.tool_calls == ()


@pytest.mark.parametrize(
    "call",
    [{"id": "c1", "function": {"arguments": "{}"}}, {"id": "c1"}, "call"],
)
def test_a_malformed_tool_call_is_an_invalid_response(call: Any) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, with_message({"role": "assistant", "tool_calls": [call]}))
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE


def test_mistral_gets_nine_character_call_ids_the_same_in_call_and_result() -> None:
    body = body_of("mistral-small-latest", HISTORY, tools=[WEATHER])
    sent = body["messages"][1]["tool_calls"][0]["id"]
    assert len(sent) == 9 and sent.isalnum() and sent != "call_abc123"
    assert body["messages"][2]["tool_call_id"] == sent
    own = [
        HISTORY[0],
        {"role": "assistant", "tool_calls": [{"id": "D681PevKs", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "D681PevKs", "content": "1"},
    ]
    assert body_of("mistral-small-latest", own)["messages"][2]["tool_call_id"] == "D681PevKs"
