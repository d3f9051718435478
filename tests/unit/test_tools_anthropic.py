"""Tool use in Anthropic Messages: our OpenAI-shaped tools to `tools`/`tool_choice`, tool
calls and results to `tool_use`/`tool_result` blocks, and the reply's `tool_use` blocks
back, against the docs' examples
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/handle-tool-calls,
https://platform.claude.com/docs/en/agents-and-tools/tool-use/parallel-tool-use)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.anthropic import AnthropicAdapter
from tierline.schemas import FunctionCall, RouteRequest, ToolCall, Usage

CATALOG = Catalog.from_config(
    {
        "models": {"claude-haiku-4-5": {"provider": "anthropic"}},
        "tiers": {t: ["claude-haiku-4-5"] for t in ("economy", "standard", "premium")},
    }
)
ADAPTER = AnthropicAdapter()
SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": SCHEMA,
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
#: the docs' response with a `tool_use` block (usage added: every reply carries it)
REFERENCE_REPLY: dict[str, Any] = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "model": "claude-opus-4-6",
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "role": "assistant",
    "content": [
        {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
    ],
    "usage": {"input_tokens": 384, "output_tokens": 92},
}


def body_of(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    request = RouteRequest.model_validate(
        {"id": "r1", "tenant": "acme", "messages": messages, "params": params}
    )
    return dict(orjson.loads(ADAPTER.build(CATALOG.model("claude-haiku-4-5"), request, "k").body))


ASK = [{"role": "user", "content": "What's the weather in SF and NYC, and what time is it?"}]


def test_tools_become_input_schemas() -> None:
    body = body_of(ASK, tools=[WEATHER, TIME])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": SCHEMA,
            "description": "Get the current weather in a given location",
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body  # Anthropic's default: auto, parallel calls allowed


@pytest.mark.parametrize(
    ("choice", "parallel", "sent"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            {"type": "tool", "name": "get_time"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_calls(choice: Any, parallel: bool | None, sent: Any) -> None:
    body = body_of(ASK, tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=parallel)
    assert body["tool_choice"] == sent


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_parallel_results_share_one_user_turn_and_a_user_message_joins_behind_them() -> None:
    body = body_of(
        [
            *ASK,
            {
                "role": "assistant",
                "content": "I'll check both.",
                "tool_calls": [
                    call("toolu_01", "get_weather", '{"location": "San Francisco, CA"}'),
                    call("toolu_02", "get_time", ""),
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "15 degrees"},
            {
                "role": "tool",
                "tool_call_id": "toolu_02",
                "content": [{"type": "text", "text": "9am"}],
            },
            {"role": "user", "content": "And tomorrow?"},
        ],
        tools=[WEATHER, TIME],
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "I'll check both."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"location": "San Francisco, CA"},
                },
                {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "9am"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


def test_arguments_that_are_not_a_json_object_are_sent_not_refused() -> None:
    body = body_of(
        [
            *ASK,
            {"role": "assistant", "tool_calls": [call("toolu_01", "get_weather", "Paris")]},
            {"role": "tool", "tool_call_id": "toolu_01", "content": ""},
        ],
        tools=[WEATHER],
    )
    assert body["messages"][1]["content"][0]["input"] == {"arguments": "Paris"}
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01"}]


def test_the_reference_tool_use_reply_is_normalized() -> None:
    reply = ADAPTER.parse(200, {"request-id": "req_1"}, orjson.dumps(REFERENCE_REPLY))
    assert reply.finish_reason == "tool_calls"
    assert reply.content == "I'll check the current weather in San Francisco for you."
    assert reply.tool_calls == (
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            function=FunctionCall(
                name="get_weather", arguments='{"location":"San Francisco, CA","unit":"celsius"}'
            ),
        ),
    )
    assert reply.usage == Usage(input_tokens=384, output_tokens=92)


def test_a_call_cut_off_by_max_tokens_stays_truncated() -> None:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY)) | {"stop_reason": "max_tokens"}
    reply = ADAPTER.parse(200, {}, orjson.dumps(data))
    assert reply.finish_reason == "length" and reply.truncated
