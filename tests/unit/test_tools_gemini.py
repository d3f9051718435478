"""Function calling in Gemini generateContent: our OpenAI-shaped tools to
`functionDeclarations`/`toolConfig`, tool calls and results to `functionCall`/
`functionResponse` parts, and the reply's `functionCall` parts back, against the docs'
examples (https://ai.google.dev/gemini-api/docs/function-calling,
https://ai.google.dev/api/caching#FunctionDeclaration,
https://ai.google.dev/gemini-api/docs/thought-signatures)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.gemini import SKIP_SIGNATURE, GeminiAdapter
from tierline.schemas import RouteRequest, Usage

CATALOG = Catalog.from_config(
    {
        "models": {
            "gemini-2.5-flash": {"provider": "gemini"},
            "gemini-3-flash-preview": {"provider": "gemini", "price": {"input": 1, "output": 1}},
        },
        "tiers": {t: ["gemini-2.5-flash"] for t in ("economy", "standard", "premium")},
    }
)
ADAPTER = GeminiAdapter()
MEETING = {
    "type": "object",
    "properties": {
        "attendees": {"type": "array", "items": {"type": "string"}},
        "date": {"type": "string", "description": "Date (e.g., '2024-07-29')"},
        "time": {"type": "string", "description": "Time (e.g., '15:00')"},
        "topic": {"type": "string"},
    },
    "required": ["attendees", "date", "time", "topic"],
}
SCHEDULE = {
    "type": "function",
    "function": {
        "name": "schedule_meeting",
        "description": "Schedules a meeting with specified attendees at a given time and date.",
        "parameters": MEETING,
    },
}
LIGHTS = {"type": "function", "function": {"name": "turn_on_lights"}}
#: the docs' reply to "Schedule a meeting with Bob and Alice for 03/27/2025 at 10:00 AM about
#: the Q3 planning"
REFERENCE_REPLY: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {
                        "functionCall": {
                            "name": "schedule_meeting",
                            "args": {
                                "attendees": ["Bob", "Alice"],
                                "date": "2025-03-27",
                                "time": "10:00",
                                "topic": "Q3 planning",
                            },
                        }
                    }
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 111, "candidatesTokenCount": 29, "totalTokenCount": 140},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "SvA4aPL5Lr7ivdIPyPLG2Q4",
}
ASK = [{"role": "user", "content": "Schedule a meeting with Bob and Alice about Q3 planning."}]


def body_of(messages: list[dict[str, Any]], model: str = "gemini-2.5-flash", **params: Any) -> Any:
    request = RouteRequest.model_validate(
        {"id": "r1", "tenant": "acme", "messages": messages, "params": params}
    )
    return orjson.loads(ADAPTER.build(CATALOG.model(model), request, "AIza-test").body)


def test_tools_become_function_declarations_with_json_schema_parameters() -> None:
    body = body_of(ASK, tools=[SCHEDULE, LIGHTS])
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "schedule_meeting",
                    "description": (
                        "Schedules a meeting with specified attendees at a given time and date."
                    ),
                    "parametersJsonSchema": MEETING,
                },
                {"name": "turn_on_lights"},
            ]
        }
    ]
    assert "toolConfig" not in body  # Gemini's default: AUTO


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "turn_on_lights"}},
            {"mode": "ANY", "allowedFunctionNames": ["turn_on_lights"]},
        ),
    ],
)
def test_tool_choice_becomes_the_function_calling_mode(choice: Any, config: Any) -> None:
    body = body_of(ASK, tools=[SCHEDULE, LIGHTS], tool_choice=choice, parallel_tool_calls=False)
    assert body["toolConfig"] == {"functionCallingConfig": config}


def history(extra_content: Any = None) -> list[dict[str, Any]]:
    first: dict[str, Any] = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "schedule_meeting", "arguments": '{"topic": "Q3"}'},
    }
    if extra_content is not None:
        first["extra_content"] = extra_content
    second = {"id": "call_2", "type": "function", "function": {"name": "turn_on_lights"}}
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [first, second]},
        {"role": "tool", "tool_call_id": "call_1", "content": "booked"},
        {"role": "tool", "tool_call_id": "call_2", "content": "lights on"},
    ]


def test_calls_and_results_become_parts_results_named_and_in_one_turn() -> None:
    body = body_of(history(), tools=[SCHEDULE, LIGHTS])
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "schedule_meeting", "args": {"topic": "Q3"}}},
                {"functionCall": {"name": "turn_on_lights", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "schedule_meeting",
                        "response": {"content": "booked"},
                    }
                },
                {
                    "functionResponse": {
                        "name": "turn_on_lights",
                        "response": {"content": "lights on"},
                    }
                },
            ],
        },
    ]


def test_thought_signatures_go_back_and_gemini_3_gets_the_sentinel_without_one() -> None:
    signed = {"google": {"thought_signature": "CiQBcsjafJ"}}
    parts = body_of(history(signed), tools=[SCHEDULE])["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "CiQBcsjafJ" and "thoughtSignature" not in parts[1]
    unsigned = body_of(history(), "gemini-3-flash-preview", tools=[SCHEDULE])
    assert unsigned["contents"][1]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in unsigned["contents"][1]["parts"][1]
    assert "thoughtSignature" not in body_of(history(), tools=[SCHEDULE])["contents"][1]["parts"][0]


def test_the_reference_function_call_reply_is_normalized() -> None:
    reply = ADAPTER.parse(200, {}, orjson.dumps(REFERENCE_REPLY))
    assert reply.finish_reason == "tool_calls" and reply.content == ""
    (call,) = reply.tool_calls
    assert call.id == "call_SvA4aPL5Lr7ivdIPyPLG2Q4_0" and call.function.name == "schedule_meeting"
    assert orjson.loads(call.function.arguments) == {
        "attendees": ["Bob", "Alice"],
        "date": "2025-03-27",
        "time": "10:00",
        "topic": "Q3 planning",
    }
    assert call.extra_content is None
    assert reply.usage == Usage(input_tokens=111, output_tokens=29)


def test_gemini_ids_and_signatures_are_kept() -> None:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY))
    parts = data["candidates"][0]["content"]["parts"]
    parts[0]["thoughtSignature"] = "CiQBcsjafJ"
    parts.append({"functionCall": {"id": "fc-7", "name": "turn_on_lights"}})
    reply = ADAPTER.parse(200, {}, orjson.dumps(data))
    first, second = reply.tool_calls
    assert first.extra_content == {"google": {"thought_signature": "CiQBcsjafJ"}}
    assert second.id == "fc-7" and second.function.arguments == "{}"
