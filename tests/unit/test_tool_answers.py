"""The cascade's cheap check of an answer that calls tools: offered tools only, arguments
that are a JSON object matching the tool's schema; its text may be empty."""

from __future__ import annotations

from typing import Any

from tierline.processors.serving.answer_check import check_answer
from tierline.schemas import RouteRequest, RouteResponse

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "refund",
            "parameters": {
                "type": "object",
                "properties": {"order": {"type": "string"}, "cents": {"type": "integer"}},
                "required": ["order", "cents"],
            },
        },
    },
    {"type": "function", "function": {"name": "escalate"}},
]
REQUEST = RouteRequest.model_validate(
    {
        "id": "r1",
        "tenant": "acme",
        "messages": [{"role": "user", "content": "Refund order 17"}],
        "params": {"tools": TOOLS},
    }
)


def answer(name: str, arguments: str, **more: Any) -> RouteResponse:
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
    fields = {"id": "r1", "tenant": "acme", "status": "ok", "content": "", "tool_calls": [call]}
    return RouteResponse.model_validate(fields | {"finish_reason": "tool_calls"} | more)


def test_a_valid_call_passes_without_text() -> None:
    assert check_answer(REQUEST, answer("refund", '{"order": "17", "cents": 500}')) is None
    assert check_answer(REQUEST, answer("escalate", "{}")) is None


def test_a_bad_call_fails_the_check_saying_why() -> None:
    assert check_answer(REQUEST, answer("delete_all", "{}")) == (
        "called 'delete_all', a tool the request does not offer"
    )
    assert check_answer(REQUEST, answer("refund", '{"order": "17"')) == (
        "arguments of refund are not valid JSON"
    )
    assert check_answer(REQUEST, answer("refund", "[1]")) == (
        "arguments of refund are not a JSON object"
    )
    problem = check_answer(REQUEST, answer("refund", '{"order": "17"}'))
    assert problem is not None and problem.startswith("arguments of refund do not match its schema")
    cut = answer("refund", '{"order": "17", "cents": 5}', finish_reason="length")
    assert check_answer(REQUEST, cut) == "truncated (finish_reason=length)"
