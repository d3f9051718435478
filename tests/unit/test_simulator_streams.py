"""The simulator's streamed answers, read raw: each format's events in the documented order
and shapes (OpenAI's chunks and `[DONE]`, the usage chunk only when asked; Anthropic's named
events; Gemini's SSE responses, or a JSON array without `alt=sse`), adding up to the same
body's unstreamed answer; faults answered unstreamed; cuts; the knobs and the stats.

The shapes are the providers' docs': https://platform.openai.com/docs/api-reference/chat-streaming,
https://platform.claude.com/docs/en/build-with-claude/streaming,
https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from tierline.processors.simulator import (
    ModelOverride,
    RunningSimulator,
    SimulatorProfile,
    parse_directives,
    start_simulator,
)
from tierline.processors.simulator.anthropic_wire import AnthropicWire
from tierline.processors.simulator.openai_wire import OpenAIWire

OPENAI = "/v1/chat/completions"
OPENAI_HEADERS = {"Authorization": "Bearer k"}
ANTHROPIC = "/v1/messages"
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "k"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def gemini_url(
    model: str = "gemini-2.5-flash", *, stream: bool = True, version: str = "v1beta"
) -> str:
    method = "streamGenerateContent" if stream else "generateContent"
    return f"/{version}/models/{model}:{method}"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=11, output_tokens=(30, 80)))
    yield running
    await running.stop()


@pytest.fixture
async def http(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10, trust_env=False) as client:
        yield client


def openai_body(text: str = "Tell me about routing.", **more: Any) -> dict[str, Any]:
    return {"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": text}]} | more


def anthropic_body(text: str = "Tell me about routing.", **more: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": text}],
    } | more


def gemini_body(text: str = "Tell me about routing.", **more: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]} | more


def compact(body: dict[str, Any]) -> bytes:
    """As tierline's adapters send a body: compact JSON, keys in order."""
    return orjson.dumps(body)


def events(raw: bytes) -> list[tuple[str, str]]:
    """(event name, data) of each event of a well-formed SSE body, LF or CRLF."""
    out = []
    for block in re.split(rb"\r?\n\r?\n", raw):
        if not block:
            continue
        name, data = "", []
        for line in block.decode().splitlines():
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        out.append((name, "\n".join(data)))
    return out


# ---------------------------------------------------------------------------- OpenAI


async def test_openai_streams_chunks_then_the_usage_then_done(http: httpx.AsyncClient) -> None:
    body = openai_body(stream=True, stream_options={"include_usage": True})
    reply = await http.post(OPENAI, content=compact(body), headers=OPENAI_HEADERS)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["x-simulator-stream"] == "whole"
    assert reply.headers["x-request-id"].startswith("req_")
    raw = events(reply.content)
    assert all(name == "" for name, _ in raw)  # OpenAI names no event
    assert raw[-1][1] == "[DONE]"
    chunks = [orjson.loads(data) for _, data in raw[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(c["usage"] is None for c in [first, *middle, finish])
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert usage["choices"] == []
    text = "".join(c["choices"][0]["delta"]["content"] for c in middle)
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    # the same body unstreamed: the same answer, the same usage
    whole = await http.post(OPENAI, content=compact(openai_body()), headers=OPENAI_HEADERS)
    answer = whole.json()
    assert text == answer["choices"][0]["message"]["content"]
    assert usage["usage"] == answer["usage"]
    assert first["id"] == answer["id"]
    assert reply.headers["x-request-id"] == whole.headers["x-request-id"]


async def test_openai_sends_the_usage_chunk_only_when_asked(http: httpx.AsyncClient) -> None:
    for options in (None, {"include_usage": False}):
        body = openai_body(stream=True) | ({"stream_options": options} if options else {})
        reply = await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)
        chunks = [orjson.loads(d) for _, d in events(reply.content)[:-1]]
        assert all("usage" not in c and c["choices"] for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_mistral_puts_the_usage_in_its_last_chunk(http: httpx.AsyncClient) -> None:
    body = openai_body(model="mistral-small-latest", stream=True)
    raw = events((await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)).content)
    chunks = [orjson.loads(d) for _, d in raw[:-1]]
    assert raw[-1][1] == "[DONE]"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert all("usage" not in c for c in chunks[:-1])


async def test_openai_streams_tool_calls_as_fragments_of_their_arguments(
    http: httpx.AsyncClient,
) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
        {"type": "function", "function": {"name": "get_time"}},
    ]
    ask = "Oslo? call get_weather, then call get_time."
    body = openai_body(ask, tools=tools)
    streamed = await http.post(
        OPENAI, content=compact(body | {"stream": True}), headers=OPENAI_HEADERS
    )
    chunks = [orjson.loads(d) for _, d in events(streamed.content)[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant" and deltas[0]["content"] is None
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for piece in delta.get("tool_calls", []):
            if "id" in piece:  # a call's head: id, type, name, empty arguments
                assert piece["type"] == "function" and piece["function"]["arguments"] == ""
                calls[piece["index"]] = {"id": piece["id"], "name": piece["function"]["name"]}
                calls[piece["index"]]["arguments"] = ""
            else:
                assert set(piece) == {"index", "function"}
                calls[piece["index"]]["arguments"] += piece["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    answer = (await http.post(OPENAI, content=compact(body), headers=OPENAI_HEADERS)).json()
    expected = answer["choices"][0]["message"]["tool_calls"]
    assert [calls[i] for i in sorted(calls)] == [
        {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in expected
    ]
    fragments = sum(1 for d in deltas for p in d.get("tool_calls", []) if "id" not in p)
    assert fragments > len(expected)  # the arguments were split


# ---------------------------------------------------------------------------- Anthropic

#: message_start, then each block's start/deltas/stop (a ping once a block has started, or
#: after message_start when there is none), message_delta, message_stop
ANTHROPIC_ORDER = re.compile(
    r"message_start (ping )?"
    r"(content_block_start (ping )?(content_block_delta )+content_block_stop )*"
    r"message_delta message_stop "
)


@pytest.mark.parametrize("tools", [False, True])
async def test_anthropic_streams_the_documented_events_in_order(
    http: httpx.AsyncClient, tools: bool
) -> None:
    more: dict[str, Any] = {}
    text = "Tell me about routing."
    if tools:
        more = {"tools": [{"name": "get_weather", "input_schema": SCHEMA}]}
        text = "Some text first? call get_weather"
    body = anthropic_body(text, **more)
    streamed = await http.post(
        ANTHROPIC, content=compact(body | {"stream": True}), headers=ANTHROPIC_HEADERS
    )
    assert streamed.status_code == 200
    raw = events(streamed.content)
    names = [name for name, _ in raw]
    assert ANTHROPIC_ORDER.fullmatch("".join(f"{n} " for n in names)), names
    assert names.count("ping") == 1
    data = [orjson.loads(d) for _, d in raw]
    assert all(d["type"] == name for d, name in zip(data, names, strict=True))
    whole = await http.post(ANTHROPIC, content=compact(body), headers=ANTHROPIC_HEADERS)
    message = whole.json()
    start = data[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["id"] == message["id"]
    assert start["usage"] == message["usage"] | {"output_tokens": 1}
    assert data[-2]["delta"]["stop_reason"] == message["stop_reason"]
    assert data[-2]["usage"] == {"output_tokens": message["usage"]["output_tokens"]}
    # the blocks put together are the message's content
    blocks: dict[int, dict[str, Any]] = {}
    for event in data:
        if event["type"] == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"]) | {"json": ""}
        elif event["type"] == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta"
                block["json"] += delta["partial_json"]
    content = []
    for _, block in sorted(blocks.items()):
        if block["type"] == "tool_use":
            assert block["input"] == {}
            block["input"] = orjson.loads(block["json"])
        del block["json"]
        content.append(block)
    assert content == message["content"]
    assert any(b["type"] == "tool_use" for b in content) is tools


async def test_anthropic_refusal_streams_no_block(http: httpx.AsyncClient) -> None:
    body = anthropic_body("Bad. [sim:refusal]", stream=True)
    raw = events((await http.post(ANTHROPIC, json=body, headers=ANTHROPIC_HEADERS)).content)
    assert [n for n, _ in raw] == ["message_start", "ping", "message_delta", "message_stop"]
    assert orjson.loads(raw[2][1])["delta"]["stop_reason"] == "refusal"


# ---------------------------------------------------------------------------- Gemini


@pytest.mark.parametrize("version", ["v1beta", "v1"])
async def test_gemini_streams_responses_the_last_with_finish_and_usage(
    http: httpx.AsyncClient, version: str
) -> None:
    body = compact(gemini_body())
    streamed = await http.post(
        gemini_url(version=version) + "?alt=sse", content=body, headers=GEMINI_HEADERS
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "text/event-stream"
    assert b"\r\n\r\n" in streamed.content  # Google's line ends
    responses = [orjson.loads(d) for name, d in events(streamed.content) if name == ""]
    *pieces, last = responses
    assert pieces and all("finishReason" not in r["candidates"][0] for r in pieces)
    assert last["candidates"][0]["finishReason"] == "STOP"
    whole = await http.post(
        gemini_url(stream=False, version=version), content=body, headers=GEMINI_HEADERS
    )
    answer = whole.json()
    assert last["usageMetadata"] == answer["usageMetadata"]
    text = "".join(p["text"] for r in responses for p in r["candidates"][0]["content"]["parts"])
    assert text == answer["candidates"][0]["content"]["parts"][0]["text"]
    assert {r["responseId"] for r in responses} == {answer["responseId"]}


async def test_gemini_without_alt_sse_streams_one_json_array(http: httpx.AsyncClient) -> None:
    tools = [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": SCHEMA}]}]
    body = compact(gemini_body("Oslo? call get_weather", tools=tools))
    model = "gemini-3-flash-preview"
    streamed = await http.post(gemini_url(model), content=body, headers=GEMINI_HEADERS)
    assert streamed.headers["content-type"].startswith("application/json")
    responses = streamed.json()
    assert isinstance(responses, list) and len(responses) == 2
    call, last = responses
    answer = (
        await http.post(gemini_url(model, stream=False), content=body, headers=GEMINI_HEADERS)
    ).json()
    # a function call comes whole, with its thought signature
    assert call["candidates"][0]["content"]["parts"] == answer["candidates"][0]["content"]["parts"]
    assert last["candidates"][0]["finishReason"] == "STOP"


# ---------------------------------------------------------------------------- one fate


async def test_a_body_streamed_and_not_draws_the_same_fate_try_by_try(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    body = openai_body("Retry me.")
    texts: dict[bool, list[str]] = {False: [], True: []}
    for _ in range(2):
        for stream in (True, False):
            sent = body | {"stream": True} if stream else body
            reply = await http.post(OPENAI, content=compact(sent), headers=OPENAI_HEADERS)
            assert reply.headers["x-simulator-attempt"] == str(len(texts[stream]))
            if stream:
                chunks = [orjson.loads(d) for _, d in events(reply.content)[:-1]]
                texts[True].append(
                    "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
                )
            else:
                texts[False].append(reply.json()["choices"][0]["message"]["content"])
    assert texts[True] == texts[False]
    assert texts[True][0] != texts[True][1]  # a retry draws afresh, streamed or not


async def test_a_body_that_mentions_stream_is_answered_whole(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    for body in (
        openai_body('How does "stream" work?'),
        openai_body(stream=False),
        anthropic_body("stream"),
    ):
        path, headers = (
            (ANTHROPIC, ANTHROPIC_HEADERS) if "max_tokens" in body else (OPENAI, OPENAI_HEADERS)
        )
        reply = await http.post(path, json=body, headers=headers)
        assert reply.headers["content-type"] == "application/json"
        assert "x-simulator-stream" not in reply.headers
    assert sim.stats.streams == {}


# ---------------------------------------------------------------------------- faults


async def test_faults_answer_as_unstreamed_before_any_event(http: httpx.AsyncClient) -> None:
    cases = [
        (OPENAI, openai_body("[sim:error=503]", stream=True), OPENAI_HEADERS, 503),
        (OPENAI, openai_body("[sim:rate_limit=0.5]", stream=True), OPENAI_HEADERS, 429),
        (OPENAI, openai_body(stream=True), {}, 401),
        (OPENAI, openai_body("[sim:bogus]", stream=True), OPENAI_HEADERS, 400),
        (ANTHROPIC, anthropic_body("[sim:error=529]", stream=True), ANTHROPIC_HEADERS, 529),
        (
            ANTHROPIC,
            {"model": "claude-haiku-4-5", "stream": True, "messages": []},
            ANTHROPIC_HEADERS,
            400,
        ),
        (gemini_url() + "?alt=sse", gemini_body("[sim:error=500]"), GEMINI_HEADERS, 500),
        (gemini_url() + "?alt=sse", gemini_body(), {}, 403),
        (gemini_url() + "?alt=sse", {"contents": []}, GEMINI_HEADERS, 400),
    ]
    for path, body, headers, status in cases:
        reply = await http.post(path, json=body, headers=headers)
        assert reply.status_code == status, (path, body, reply.text)
        assert reply.headers["content-type"].startswith("application/json"), path
        assert "error" in reply.json()
        assert "x-simulator-stream" not in reply.headers
    rate_limited = await http.post(OPENAI, json=cases[1][1], headers=OPENAI_HEADERS)
    assert rate_limited.headers["retry-after"] == "0.5"


async def test_garbage_asked_streamed_is_no_event_stream(http: httpx.AsyncClient) -> None:
    body = openai_body("[sim:garbage=html]", stream=True)
    reply = await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)
    assert reply.status_code == 200 and reply.content.startswith(b"<html>")


async def test_a_cut_stream_stops_after_its_first_content_chunk() -> None:
    sim = await start_simulator(SimulatorProfile(seed=3, stream_cut_rate=1.0))
    try:
        async with httpx.AsyncClient(base_url=sim.url, timeout=10, trust_env=False) as http:
            body = openai_body(stream=True, stream_options={"include_usage": True})
            cut = await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)
            assert cut.status_code == 200 and cut.headers["x-simulator-stream"] == "cut"
            assert cut.headers["connection"] == "close"
            chunks = [orjson.loads(d) for _, d in events(cut.content)]  # no [DONE]
            assert [c["choices"][0]["delta"].get("content") for c in chunks][0] == ""
            assert len(chunks) == 2 and chunks[1]["choices"][0]["delta"]["content"]
            cut = await http.post(
                ANTHROPIC, json=anthropic_body(stream=True), headers=ANTHROPIC_HEADERS
            )
            raw = events(cut.content)
            assert [n for n, _ in raw] == [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "error",
            ]
            assert orjson.loads(raw[-1][1]) == {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            cut = await http.post(
                gemini_url() + "?alt=sse", json=gemini_body(), headers=GEMINI_HEADERS
            )
            responses = [orjson.loads(d) for _, d in events(cut.content)]
            assert len(responses) == 1 and "finishReason" not in responses[0]["candidates"][0]
            # unstreamed requests are never cut
            whole = await http.post(OPENAI, json=openai_body(), headers=OPENAI_HEADERS)
            assert whole.json()["choices"][0]["finish_reason"] == "stop"
        assert sim.stats.streams_cut == 3
        assert sim.stats.by_outcome == {"ok": 4}
    finally:
        await sim.stop()


async def test_cuts_are_drawn_from_seed_body_and_attempt() -> None:
    async def cuts(seed: int) -> list[str]:
        profile = SimulatorProfile(
            seed=seed, stream_cut_rate=0.5, stream_chunk_ms=0, output_tokens=(8, 16)
        )
        sim = await start_simulator(profile)
        try:
            async with httpx.AsyncClient(base_url=sim.url, timeout=10, trust_env=False) as http:
                got = []
                for n in range(16):
                    body = openai_body(f"Question {n % 8}.", stream=True)  # each body twice
                    reply = await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)
                    got.append(reply.headers["x-simulator-stream"])
                return got
        finally:
            await sim.stop()

    first = await cuts(4)
    assert first == await cuts(4)
    assert {"cut", "whole"} == set(first)
    assert first != await cuts(5)


async def test_the_stream_cut_directive(http: httpx.AsyncClient, sim: RunningSimulator) -> None:
    assert parse_directives("x [sim:stream_cut] y").stream_cut
    assert not parse_directives("x").stream_cut
    body = openai_body("Go [sim:stream_cut]", stream=True)
    reply = await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)
    assert reply.headers["x-simulator-stream"] == "cut"
    plain = await http.post(OPENAI, json=openai_body("Go [sim:stream_cut]"), headers=OPENAI_HEADERS)
    assert plain.json()["choices"][0]["finish_reason"] == "stop"  # no effect unstreamed


# ---------------------------------------------------------------------------- knobs, stats


async def test_stream_chunk_tokens_sizes_the_chunks() -> None:
    profile = SimulatorProfile(
        seed=2,
        output_tokens=(40, 40),
        models={"gpt-4.1": ModelOverride(stream_chunk_tokens=1, stream_chunk_ms=0)},
    )
    sim = await start_simulator(profile)
    try:
        async with httpx.AsyncClient(base_url=sim.url, timeout=10, trust_env=False) as http:
            sizes = {}
            for model in ("gpt-4.1-nano", "gpt-4.1"):
                body = openai_body(model=model, stream=True)
                raw = events((await http.post(OPENAI, json=body, headers=OPENAI_HEADERS)).content)
                pieces = [
                    orjson.loads(d)["choices"][0]["delta"].get("content") for _, d in raw[1:-2]
                ]
                sizes[model] = {len(p) for p in pieces[:-1]}
            assert sizes == {"gpt-4.1-nano": {16}, "gpt-4.1": {4}}
    finally:
        await sim.stop()


def test_the_stream_knobs_are_validated() -> None:
    profile = SimulatorProfile()
    assert (profile.stream_chunk_ms, profile.stream_chunk_tokens, profile.stream_cut_rate) == (
        5.0,
        4,
        0.0,
    )
    behaviour = SimulatorProfile(
        stream_cut_rate=0.1, models={"m": ModelOverride(stream_chunk_ms=20)}
    ).resolve("m")
    assert (behaviour.stream_chunk_s, behaviour.stream_cut_rate) == (0.02, 0.1)
    for bad in ({"stream_cut_rate": 1.5}, {"stream_chunk_tokens": 0}, {"stream_chunk_ms": -1}):
        with pytest.raises(ValidationError):
            SimulatorProfile.model_validate(bad)


async def test_streams_are_counted_by_route_and_as_requests(
    sim: RunningSimulator, http: httpx.AsyncClient
) -> None:
    await http.post(OPENAI, json=openai_body(stream=True), headers=OPENAI_HEADERS)
    await http.post(OPENAI, json=openai_body(), headers=OPENAI_HEADERS)
    await http.post(OPENAI, json=openai_body(stream=True), headers={})  # refused: still a stream
    await http.post(ANTHROPIC, json=anthropic_body(stream=True), headers=ANTHROPIC_HEADERS)
    await http.post(gemini_url(), json=gemini_body(), headers=GEMINI_HEADERS)
    await http.post(gemini_url() + "?alt=sse", json=gemini_body(), headers=GEMINI_HEADERS)
    stats = sim.stats
    assert stats.streams == {"openai": 2, "anthropic": 1, "gemini": 2}
    assert stats.requests == 6
    assert stats.by_route == {"openai": 3, "anthropic": 1, "gemini": 2}
    assert stats.by_model == {"gpt-4.1-nano": 2, "claude-haiku-4-5": 1, "gemini-2.5-flash": 2}
    assert stats.by_status == {200: 5, 401: 1}
    served = (await http.get("/_sim/stats")).json()
    assert served["streams"] == {"openai": 2, "anthropic": 1, "gemini": 2}
    assert served["streams_cut"] == 0


def test_a_batch_item_cannot_stream() -> None:
    for wire, body in (
        (OpenAIWire(), openai_body(stream=True)),
        (AnthropicWire(), anthropic_body(stream=True)),
    ):
        refused = wire.parse_item(body, "", "0" * 32)
        assert isinstance(refused, web.Response) and refused.status == 400
