"""Streamed completions through the gateway with the official `openai` SDK, per family.

`stream=True` against a pinned model of each wire format (OpenAI, Anthropic, Gemini
behind the simulator): the SDK reads `chat.completion.chunk`s as the workers publish
them, the text and the tool calls they add up to, the finishing chunk with tierline's
extension, the usage chunk, and the bill in ClickHouse.
"""

from __future__ import annotations

import json
from decimal import Decimal

from clickhouse_connect.driver.client import Client
from openai.types.chat import ChatCompletionChunk

from tests.integration.test_gateway import HELLO, Running, billed
from tests.integration.test_tool_calls import ASK, FAMILIES, WEATHER, running

__all__ = ["running"]  # the fixture, shared with the tool-call tests


async def test_the_openai_sdk_streams_text_and_tool_calls_from_each_family(
    running: Running, clickhouse: Client
) -> None:
    client = running.client()
    ids = []
    for model, family in FAMILIES.items():
        stream = await client.chat.completions.create(
            model=model,
            messages=[*HELLO, {"role": "user", "content": "Answer in three sentences."}],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=80,
            metadata={"feature": "stream-tests"},
        )
        chunks = [chunk async for chunk in stream]
        assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
        assert chunks[0].choices[0].delta.role == "assistant"
        text = [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]
        assert len(text) >= 2, (model, len(text))  # streamed in pieces, not whole
        finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == "stop"
        extension = (finishing[0].model_extra or {})["tierline"]
        assert extension["provider"] == family and Decimal(extension["cost_usd"]) > 0
        usage = chunks[-1].usage
        assert usage is not None and chunks[-1].choices == []
        assert usage.completion_tokens > 0 and usage.total_tokens > usage.completion_tokens
        assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].model == model
        ids.append(chunks[0].id)

        tools = await client.chat.completions.create(
            model=model, messages=[ASK], tools=[WEATHER], stream=True
        )
        pieces = [c async for c in tools]
        calls = [t for c in pieces if c.choices for t in (c.choices[0].delta.tool_calls or [])]
        assert calls and calls[0].id and calls[0].function is not None
        assert calls[0].function.name == "get_weather"
        arguments = "".join(t.function.arguments or "" for t in calls if t.function is not None)
        assert set(json.loads(arguments)) == {"city", "unit"}, (model, arguments)
        reasons = [c.choices[0].finish_reason for c in pieces if c.choices]
        assert reasons[-1] == "tool_calls"

    where = "feature = 'stream-tests' AND request_id IN ({})".format(
        ", ".join(f"'{i}'" for i in ids)
    )
    assert (await billed(clickhouse, where, 3))[:2] == (3, 3)
