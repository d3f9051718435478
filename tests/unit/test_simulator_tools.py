"""The simulator answers tool requests in each real wire format: a call when the prompt asks
"call <tool>" (or the tool choice forces one), arguments valid for the tool's schema, text
after the results; and it refuses the histories the real APIs refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.processors.simulator.tool_use import arguments_for

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1},
        "hourly": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "required": ["city", "unit", "days", "hourly"],
}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=2))
    yield running
    await running.stop()


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10, trust_env=False) as client:
        yield client


def test_arguments_satisfy_the_required_fields_of_a_simple_schema() -> None:
    assert arguments_for(SCHEMA, "m") == {
        "city": "city from m",
        "unit": "celsius",
        "days": 1,
        "hourly": True,
    }
    nested = {
        "properties": {"where": {"type": "object", "properties": {"lat": {"type": "number"}}}},
    }
    assert arguments_for(nested, "m") == {"where": {"lat": 0.5}}  # no `required`: every one
    assert arguments_for({}, "m") == {}


def openai_body(messages: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
        {"type": "function", "function": {"name": "get_time"}},
    ]
    return {"model": "gpt-4.1-nano", "messages": messages, "tools": tools} | more


async def openai(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})


ASK = {"role": "user", "content": "Weather in Oslo? call get_weather, then call get_time."}


async def test_openai_calls_what_the_prompt_asks_then_answers_the_results(
    http: httpx.AsyncClient,
) -> None:
    first = (await openai(http, openai_body([ASK]))).json()
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)
    assert orjson.loads(calls[0]["function"]["arguments"])["unit"] == "celsius"
    assert first["usage"]["completion_tokens"] > 0
    one = (await openai(http, openai_body([ASK], parallel_tool_calls=False))).json()
    assert len(one["choices"][0]["message"]["tool_calls"]) == 1

    history = [
        ASK,
        choice["message"],
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "4C and windy"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "09:12"},
    ]
    follow_up = (await openai(http, openai_body(history))).json()
    text = follow_up["choices"][0]["message"]["content"]
    assert follow_up["choices"][0]["finish_reason"] == "stop"
    assert "given the tool results: 4C and windy 09:12." in text
    assert "tool_calls" not in follow_up["choices"][0]["message"]


@pytest.mark.parametrize(
    ("choice", "called"),
    [
        ("none", []),
        ("required", ["get_weather"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
    ],
)
async def test_openai_tool_choice(http: httpx.AsyncClient, choice: Any, called: list[str]) -> None:
    plain = {"role": "user", "content": "Hello"}
    body = (await openai(http, openai_body([plain], tool_choice=choice))).json()
    message = body["choices"][0]["message"]
    assert [c["function"]["name"] for c in message.get("tool_calls") or []] == called
    no_ask = (await openai(http, openai_body([plain]))).json()["choices"][0]
    assert no_ask["finish_reason"] == "stop"


async def test_openai_refuses_histories_the_real_api_refuses(http: httpx.AsyncClient) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    unanswered = await openai(http, openai_body([ASK, assistant, ASK]))
    assert unanswered.status_code == 400
    assert "did not have response messages: call_1" in unanswered.json()["error"]["message"]
    stray = await openai(
        http, openai_body([ASK, {"role": "tool", "tool_call_id": "x", "content": ""}])
    )
    assert stray.status_code == 400 and "must be a response to a preceeding message" in stray.text
    no_tools = {"model": "gpt-4.1-nano", "messages": [ASK], "tool_choice": "required"}
    refused = await openai(http, no_tools)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tool_choice"


async def test_anthropic_tool_use_and_results(http: httpx.AsyncClient) -> None:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "tools": [{"name": "get_weather", "input_schema": SCHEMA}],
        "messages": [{"role": "user", "content": ASK["content"]}],
    }
    first = (await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)).json()
    assert first["stop_reason"] == "tool_use"
    (block,) = first["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["input"]["city"] == "city from claude-haiku-4-5"
    result = {"type": "tool_result", "tool_use_id": block["id"], "content": "4C"}
    body["messages"] += [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [result]},
    ]
    follow_up = (await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)).json()
    assert follow_up["stop_reason"] == "end_turn"
    assert "given the tool results: 4C." in follow_up["content"][0]["text"]

    forced = body | {"tool_choice": {"type": "tool", "name": "get_weather"}}
    again = (await http.post("/v1/messages", json=forced, headers=ANTHROPIC_HEADERS)).json()
    assert again["stop_reason"] == "tool_use"  # a forced choice calls every turn

    body["messages"][-1] = {"role": "user", "content": [result | {"tool_use_id": "toolu_x"}]}
    stray = await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert stray.status_code == 400 and "unexpected `tool_use_id`" in stray.text
    body["messages"][-1] = {"role": "user", "content": "no results"}
    missing = await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert missing.status_code == 400 and "without `tool_result` blocks" in missing.text
    body["tools"] = [{"name": "get_weather"}]
    schemaless = await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert schemaless.status_code == 400 and "input_schema: Field required" in schemaless.text


def gemini_body(contents: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    declarations = [{"name": "get_weather", "parametersJsonSchema": SCHEMA}]
    return {"contents": contents, "tools": [{"functionDeclarations": declarations}]} | more


async def gemini(http: httpx.AsyncClient, body: Any, path: str = GEMINI) -> httpx.Response:
    return await http.post(path, json=body, headers={"x-goog-api-key": "k"})


async def test_gemini_function_calls_and_responses(http: httpx.AsyncClient) -> None:
    ask = {"role": "user", "parts": [{"text": ASK["content"]}]}
    first = (await gemini(http, gemini_body([ask]))).json()
    candidate = first["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    (part,) = candidate["content"]["parts"]
    assert part["functionCall"]["name"] == "get_weather" and "thoughtSignature" not in part
    assert part["functionCall"]["args"]["days"] == 1
    answer = {"functionResponse": {"name": "get_weather", "response": {"content": "4C"}}}
    history = [ask, candidate["content"], {"role": "user", "parts": [answer]}]
    follow_up = (await gemini(http, gemini_body(history))).json()
    text = follow_up["candidates"][0]["content"]["parts"][0]["text"]
    assert "given the tool results: 4C." in text

    two = [ask, candidate["content"], {"role": "user", "parts": [answer, answer]}]
    mismatch = await gemini(http, gemini_body(two))
    assert mismatch.status_code == 400 and "number of function response parts" in mismatch.text
    none = gemini_body([ask], toolConfig={"functionCallingConfig": {"mode": "NONE"}})
    assert "text" in (await gemini(http, none)).json()["candidates"][0]["content"]["parts"][0]


async def test_gemini_3_signs_its_calls_and_wants_the_signature_back(
    http: httpx.AsyncClient,
) -> None:
    path = "/v1beta/models/gemini-3-flash-preview:generateContent"
    ask = {"role": "user", "parts": [{"text": ASK["content"]}]}
    first = (await gemini(http, gemini_body([ask]), path)).json()
    content = first["candidates"][0]["content"]
    assert content["parts"][0]["thoughtSignature"]
    answer = {"functionResponse": {"name": "get_weather", "response": {"content": "4C"}}}
    signed = [ask, content, {"role": "user", "parts": [answer]}]
    assert (await gemini(http, gemini_body(signed), path)).status_code == 200
    unsigned_call = {"functionCall": content["parts"][0]["functionCall"]}
    unsigned = [ask, {"role": "model", "parts": [unsigned_call]}, signed[2]]
    refused = await gemini(http, gemini_body(unsigned), path)
    assert refused.status_code == 400 and "missing a thought_signature" in refused.text
    sentinel = [
        ask,
        {"role": "model", "parts": [unsigned_call | {"thoughtSignature": "skip_x"}]},
        signed[2],
    ]
    assert (await gemini(http, gemini_body(sentinel), path)).status_code == 200


async def test_a_model_without_tools_answers_the_providers_400() -> None:
    profile = SimulatorProfile.model_validate({"models": {"gemma-3-27b-it": {"tools": False}}})
    running = await start_simulator(profile)
    try:
        async with httpx.AsyncClient(base_url=running.url, trust_env=False) as http:
            path = "/v1beta/models/gemma-3-27b-it:generateContent"
            ask = {"role": "user", "parts": [{"text": "hi"}]}
            refused = await gemini(http, gemini_body([ask]), path)
            assert refused.status_code == 400
            assert refused.json()["error"]["message"] == (
                "Function calling is not enabled for models/gemma-3-27b-it"
            )
            assert (await gemini(http, {"contents": [ask]}, path)).status_code == 200
    finally:
        await running.stop()
