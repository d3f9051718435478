"""Tool calls through the gateway: OpenAI's tools, tool choice and tool messages become the
request's, and an answer's tool calls come back as the SDK's own types read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from tests.unit.policy_support import make_catalog
from tierline.processors.gateway.model_names import AUTO
from tierline.processors.gateway.openai_request import to_route_request
from tierline.processors.gateway.openai_response import chat_completion
from tierline.processors.gateway.statuses import GatewayError
from tierline.schemas import RouteRequest, RouteResponse, Tier, ToolCall, Usage

CATALOG = make_catalog()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
#: an assistant answer as the SDK dumps it, passed back as history
ANSWERED: dict[str, Any] = {
    "role": "assistant",
    "content": None,
    "refusal": None,
    "annotations": [],
    "audio": None,
    "function_call": None,
    "tool_calls": [CALL | {"extra_content": {"google": {"thought_signature": "c2ln"}}}],
}
ASK = {"role": "user", "content": "Weather in Oslo?"}


def translate(**body: Any) -> RouteRequest:
    body.setdefault("model", AUTO)
    body.setdefault("messages", [ASK])
    return to_route_request(body, request_id="r1", tenant="acme", catalog=CATALOG)


def refusal(**body: Any) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        translate(**body)
    return refused.value


def test_tools_tool_choice_and_parallel_tool_calls_pass_through() -> None:
    request = translate(
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    params = request.params
    assert params.tools is not None
    assert [t.model_dump(exclude_none=True) for t in params.tools] == [WEATHER]
    assert params.tool_choice is not None and not isinstance(params.tool_choice, str)
    assert params.tool_choice.function.name == "get_weather"
    assert params.parallel_tool_calls is False
    assert translate(tools=[], tool_choice="none").params.tools is None  # [] is no tools


def test_a_tool_round_trip_history_is_accepted() -> None:
    request = translate(
        tools=[WEATHER],
        messages=[ASK, ANSWERED, {"role": "tool", "tool_call_id": "call_abc", "content": "4C"}],
    )
    assistant, result = request.messages[1], request.messages[2]
    assert assistant.content is None and assistant.tool_calls is not None
    assert assistant.tool_calls[0].extra_content == {"google": {"thought_signature": "c2ln"}}
    assert result.role == "tool" and result.tool_call_id == "call_abc"
    no_calls = translate(messages=[ASK, {"role": "assistant", "content": "Hi", "tool_calls": []}])
    assert no_calls.messages[1].tool_calls is None


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
            "tools[0].function.name",
            "pattern",
        ),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "auto"),
        ({"tool_choice": "required"}, "params", "tool_choice needs tools"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "boolean"),
        (
            {"messages": [ASK, {"role": "tool", "content": "4C"}]},
            "messages[1]",
            "tool_call_id",
        ),
    ],
)
def test_wrong_tools_are_400s_naming_the_field(body: dict[str, Any], param: str, says: str) -> None:
    refused = refusal(**body)
    assert (refused.status, refused.code) == (400, "invalid_request")
    assert refused.param == param and says in refused.message


def test_the_deprecated_functions_api_stays_unsupported() -> None:
    for body in (
        {"functions": [{"name": "f"}]},
        {"function_call": "auto"},
        {"messages": [{"role": "function", "name": "f", "content": "1"}]},
    ):
        refused = refusal(**body)
        assert refused.code == "unsupported" and "tools" in refused.message


def test_an_answer_with_tool_calls_is_a_chat_completion_the_sdk_reads() -> None:
    response = RouteResponse.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "status": "ok",
            "content": "",
            "tool_calls": [CALL, CALL | {"id": "call_def", "extra_content": {"google": {}}}],
            "finish_reason": "tool_calls",
            "model": "e1",
            "provider": "openai",
            "tier": Tier.ECONOMY,
            "usage": Usage(input_tokens=50, output_tokens=12),
            "created_at": datetime(2026, 11, 22, tzinfo=UTC),
        }
    )
    completion = ChatCompletion.model_validate(chat_completion(response))
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and [c.id for c in calls] == ["call_abc", "call_def"]
    first = calls[0]
    assert first.type == "function" and first.function.name == "get_weather"
    assert first.function.arguments == '{"city":"Oslo"}'
    assert (calls[1].model_extra or {})["extra_content"] == {"google": {}}
    # the message as the SDK dumps it is a valid next-turn history entry
    again = translate(
        tools=[WEATHER],
        messages=[
            ASK,
            choice.message.model_dump(),
            {"role": "tool", "tool_call_id": "call_abc", "content": "4C"},
            {"role": "tool", "tool_call_id": "call_def", "content": "5C"},
        ],
    )
    assert again.messages[1].tool_calls is not None and len(again.messages[1].tool_calls) == 2


def test_text_beside_tool_calls_is_kept() -> None:
    response = RouteResponse(
        id="r1",
        tenant="acme",
        status="ok",
        content="Let me check.",
        tool_calls=[ToolCall.model_validate(CALL)],
        finish_reason="tool_calls",
    )
    message = chat_completion(response)["choices"][0]["message"]
    assert message["content"] == "Let me check." and message["tool_calls"][0]["id"] == "call_abc"
