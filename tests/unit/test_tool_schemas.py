"""Tools in the request contract: OpenAI's shape, validated where it is produced."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tierline.schemas import ChatMessage, RouteRequest, RouteResponse, decode, encode

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


def request(params: dict[str, Any], messages: list[dict[str, Any]] | None = None) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": messages or [{"role": "user", "content": "Weather in Paris?"}],
            "params": params,
        }
    )


def test_tools_tool_choice_and_parallel_tool_calls_round_trip_on_the_wire() -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    sent = request({"tools": [WEATHER], "tool_choice": named, "parallel_tool_calls": False})
    back = decode(RouteRequest, encode(sent))
    assert back == sent
    params = back.params
    assert params.tools is not None and params.tools[0].function.name == "get_weather"
    assert params.tool_choice is not None and not isinstance(params.tool_choice, str)
    assert params.tool_choice.function.name == "get_weather"
    assert params.parallel_tool_calls is False
    for choice in ("auto", "none", "required"):
        assert request({"tools": [WEATHER], "tool_choice": choice}).params.tool_choice == choice
    no_args = {"type": "function", "function": {"name": "now"}}
    assert request({"tools": [no_args]}).params.tools is not None


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"tools": [WEATHER | {"type": "custom"}]}, "function"),
        ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "pattern"),
        ({"tools": [{"type": "function", "function": {"name": "9lives"}}]}, "pattern"),
        ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "pattern"),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
                ]
            },
            "type object",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"properties": ["a"]}},
                    }
                ]
            },
            "properties",
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"required": "a"}}}
                ]
            },
            "required",
        ),
        ({"tools": [WEATHER, WEATHER]}, "repeated: get_weather"),
        ({"tools": []}, "at least 1"),
        ({"tool_choice": "required"}, "tool_choice needs tools"),
        (
            {
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            },
            "not in tools",
        ),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "f", "colour": "red"}}]}, "Extra"),
    ],
)
def test_bad_tools_are_refused_with_a_reason(params: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        request(params)
    assert says in str(refused.value)


def test_tool_choice_none_needs_no_tools() -> None:
    assert request({"tool_choice": "none"}).params.tool_choice == "none"


def test_the_history_carries_tool_calls_and_tool_results() -> None:
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    }
    sent = request(
        {"tools": [WEATHER]},
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": "18C, clear"},
        ],
    )
    assistant, result = sent.messages[1], sent.messages[2]
    assert assistant.tool_calls is not None and assistant.tool_calls[0].id == "call_abc123"
    assert result.tool_call_id == "call_abc123" and result.text() == "18C, clear"
    assert decode(RouteRequest, encode(sent)) == sent


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"role": "tool", "content": "18C"}, "needs the tool_call_id"),
        ({"role": "user", "content": "hi", "tool_call_id": "c1"}, "belongs to tool messages"),
        (
            {
                "role": "user",
                "content": "hi",
                "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
            },
            "belong to assistant messages",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}, "x": 1}]},
            "Extra inputs",
        ),
        ({"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}, "id"),
    ],
)
def test_tool_fields_only_where_they_belong(message: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ChatMessage.model_validate(message)
    assert says in str(refused.value)


def test_a_response_carries_tool_calls_only_when_there_are_some() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    answer = RouteResponse.model_validate(
        {"id": "r1", "tenant": "acme", "status": "ok", "content": "", "tool_calls": [call]}
    )
    assert decode(RouteResponse, encode(answer)) == answer
    assert answer.tool_calls is not None and answer.tool_calls[0].function.arguments == "{}"
    plain = RouteResponse(id="r1", tenant="acme", status="ok", content="hi")
    assert b"tool_calls" not in encode(plain)
