"""The tools a request offers and the calls of its history are prompt tokens too."""

from __future__ import annotations

from typing import Any

from tierline.processors.pricing.tool_text import tool_text
from tierline.processors.providers.tokens import count_prompt_tokens, fits, upper_bound
from tierline.processors.routing.cost_cap import prompt_tokens
from tierline.schemas import RouteRequest

BIG = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the knowledge base. " * 200,
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


def request(**params: Any) -> RouteRequest:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Find the refund policy."},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "function": {"name": "search", "arguments": '{"q": "refunds"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Refunds within 30 days."},
    ]
    return RouteRequest.model_validate(
        {"id": "r1", "tenant": "acme", "messages": messages, "params": params}
    )


def test_tool_definitions_and_calls_are_counted() -> None:
    bare, tooled = request(), request(tools=[BIG])
    assert 'search({"q": "refunds"})' in tool_text(bare)
    assert "Search the knowledge base." in tool_text(tooled)
    for family in ("openai", "anthropic"):
        assert count_prompt_tokens(tooled, family) > count_prompt_tokens(bare, family) + 1000
    assert upper_bound(tooled) >= count_prompt_tokens(tooled, "anthropic")
    assert prompt_tokens(tooled) > prompt_tokens(bare) + 1000
    assert not fits(tooled, "anthropic", 1000)[0] and fits(bare, "anthropic", 1000)[0]
