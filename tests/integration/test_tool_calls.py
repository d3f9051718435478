"""Tool calls end to end on a real broker: the official `openai` SDK at the gateway calls a
tool on a pinned model of each provider family (OpenAI, Anthropic, Gemini wire formats, the
simulator behind them) and sends the result back for the answer; a producer's RouteRequest
with tools goes through the pipeline, past a model that refuses tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from tests.integration.support import collect, make_settings, produce, request_body
from tests.integration.test_gateway import Running, billed, extension, gateway_settings
from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    start_simulator,
)
from tierline.schemas import RouteResponse
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import tail_consumer

WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
ASK: ChatCompletionMessageParam = {
    "role": "user",
    "content": "What is the weather in Oslo right now? call get_weather",
}
FAMILIES = {"gpt-4.1-nano": "openai", "claude-haiku-4-5": "anthropic"}
FAMILIES["gemini-2.5-flash-lite"] = "gemini"


@pytest.fixture
async def running(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> AsyncIterator[Running]:
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    settings.gateway = gateway_settings()
    pipeline = await start_pipeline(settings, roles=("router", "workers", "sink", "gateway"))
    running = Running(pipeline, settings, topic_prefix)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await asyncio.wait_for(pipeline.stop(), timeout=60)


async def test_the_openai_sdk_calls_a_tool_on_each_family_and_gets_the_answer_to_its_result(
    running: Running, clickhouse: Client
) -> None:
    client = running.client()
    ids: list[str] = []
    for model, family in FAMILIES.items():
        first = await client.chat.completions.create(
            model=model,
            messages=[ASK],
            tools=[WEATHER],
            tool_choice="auto",
            parallel_tool_calls=False,
            metadata={"feature": "tool-tests"},
        )
        assert isinstance(first, ChatCompletion) and first.model == model
        assert extension(first)["provider"] == family
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls", (model, choice)
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert calls is not None and len(calls) == 1
        call = calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        assert call.function.name == "get_weather" and call.id
        arguments = json.loads(call.function.arguments)
        assert set(arguments) == {"city", "unit"} and arguments["unit"] == "celsius"
        assert first.usage is not None and first.usage.completion_tokens > 0

        history: list[ChatCompletionMessageParam] = [
            ASK,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "4 C, wind from the north"},
        ]
        second = await client.chat.completions.create(
            model=model, messages=history, tools=[WEATHER], metadata={"feature": "tool-tests"}
        )
        answer = second.choices[0]
        assert answer.finish_reason == "stop" and not answer.message.tool_calls
        assert answer.message.content is not None
        assert "given the tool results: 4 C, wind from the north" in answer.message.content
        assert second.model == model
        ids += [first.id, second.id]

    # a forced tool, with the SDK's own dump of an answer passed back as history
    forced = await client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": "Hello"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    message = forced.choices[0].message
    assert message.tool_calls is not None and forced.choices[0].finish_reason == "tool_calls"
    passed_back: Any = message.model_dump(exclude_none=True)
    follow = await client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[
            {"role": "user", "content": "Hello"},
            passed_back,
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert "given the tool results: sunny" in (follow.choices[0].message.content or "")

    rows, distinct, spent = await billed(clickhouse, f"request_id IN ({_quoted(ids)})", 6)
    assert (rows, distinct) == (6, 6) and spent > Decimal(0)


def _quoted(ids: list[str]) -> str:
    return ", ".join(f"'{rid}'" for rid in ids)


async def test_a_kafka_request_with_tools_passes_over_a_model_without_them(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, tmp_path: Path
) -> None:
    # the economy tier's cheapest model refuses tools here (the catalog says it has them):
    # the walk hands the request to the next candidate
    profile = SimulatorProfile(
        seed=12, models={"gemini-2.5-flash-lite": ModelOverride(tools=False)}
    )
    simulator = await start_simulator(profile)
    settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, simulator.url, tmp_path)
    pipeline = await start_pipeline(settings, roles=("router", "workers"))
    try:
        responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
        tools = [WEATHER]
        rid = f"{topic_prefix}tools-1"
        hints = {"max_tier": "economy"}
        await produce(
            kafka_bootstrap,
            pipeline.topics.requests,
            [request_body(rid, str(ASK["content"]), params={"tools": tools}, hints=hints)],
        )
        first = await _answer(responses, rid)
        assert first.status == "ok", first.error
        assert first.finish_reason == "tool_calls" and first.tool_calls is not None
        assert first.model != "gemini-2.5-flash-lite" and first.tier == "economy"
        assert first.decision is not None
        refused = "gemini-2.5-flash-lite does not support tools (function calling): next candidate"
        assert refused in first.decision.reasons
        call = first.tool_calls[0]
        assert orjson.loads(call.function.arguments)["unit"] == "celsius"

        follow_id = f"{topic_prefix}tools-2"
        messages = [
            {"role": "user", "content": ASK["content"]},
            {"role": "assistant", "tool_calls": [call.model_dump(exclude_none=True)]},
            {"role": "tool", "tool_call_id": call.id, "content": "4 C"},
        ]
        body = orjson.loads(request_body(follow_id, "x", params={"tools": tools}, hints=hints))
        body["messages"] = messages
        await produce(kafka_bootstrap, pipeline.topics.requests, [orjson.dumps(body)])
        second = await _answer(responses, follow_id)
        assert second.status == "ok" and second.finish_reason == "stop"
        assert second.content is not None and "given the tool results: 4 C" in second.content
        await responses.stop()
    finally:
        await asyncio.wait_for(pipeline.stop(), timeout=60)
        await simulator.stop()


async def _answer(responses: Any, rid: str) -> RouteResponse:
    for _ in range(60):
        for record in await collect(responses, 1, timeout_s=1):
            response = RouteResponse.model_validate(orjson.loads(record.value))
            if response.id == rid:
                return response
    raise AssertionError(f"no answer to {rid}")
