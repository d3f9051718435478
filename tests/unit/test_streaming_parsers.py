"""Streamed provider calls: the SSE decoder, each family's streaming request, and each
family's stream parser against the in-process simulator, where a streamed answer must add
up to the same request's unstreamed reply as the adapter parses it (content, tool calls,
finish reason, usage with cached tokens, request id), and a cut stream or an error event
must raise typed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import Catalog, ModelSpec, load_catalog
from tierline.processors.providers.base import BilledReplyError, ProviderReply
from tierline.processors.providers.registry import adapter_for
from tierline.processors.providers.streaming import (
    SseDecoder,
    SseEvent,
    StreamDelta,
    StreamParser,
    ToolCallDelta,
    stream_parser,
    streaming_call,
    supports_streaming,
)
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RouteRequest

# ---------------------------------------------------------------------------- the decoder

#: every rule at once: a BOM, comments, CRLF / LF / lone CR, multi-line data, a field
#: without a colon, a colon without a space, ids and retries ignored, a blank line
#: without data (which resets the event name)
STREAM = (
    "\ufeff: a comment\r\n"
    "event: first\r\n"
    "data: one\r\n"
    "data:two\r\n"
    "data:  three\r\n"
    "id: 7\r\n"
    "retry: 10\r\n"
    "\r\n"
    "event: nothing\n"
    "\n"
    "data\n"
    "\n"
    "data: lone\rdata: cr\r\r"
    ":ping\n"
    "event: last\n"
    'data: {"x": "é€😀"}\n'
    "\n"
).encode()
EXPECTED = [
    SseEvent("first", "one\ntwo\n three"),
    SseEvent("", ""),
    SseEvent("", "lone\ncr"),
    SseEvent("last", '{"x": "é€😀"}'),
]


def decode(chunks: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


def test_the_decoder_follows_the_whatwg_rules() -> None:
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_the_decoder_gives_the_same_events_however_the_bytes_are_split(size: int) -> None:
    # splits fall inside CRLFs, inside multi-byte characters and inside field names
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert decode(chunks) == EXPECTED


def test_the_decoder_dispatches_an_event_only_at_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n") == []
    assert decoder.feed(b"\n") == [SseEvent("a", "1")]
    assert decoder.feed(b"data: 2\r") == []
    assert decoder.feed(b"\n\r\n") == [SseEvent("", "2")]  # CRLF split after its CR


def test_close_gives_a_finished_event_and_drops_a_cut_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: whole\n") == []
    assert decoder.close() == [SseEvent("", "whole")]  # its lines ended, its blank line not
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"type": "content_bl') == []
    assert decoder.close() == []  # a line without its end may be cut: dropped
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [SseEvent("", "a")]
    assert decoder.close() == []


# ---------------------------------------------------------------------------- the requests

CATALOG = load_catalog()
KEY = "sim-key"


def route_request(text: str = "Say hello.", **params: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": "s1",
            "tenant": "acme",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": text},
            ],
            "params": params,
        }
    )


def test_openai_streams_with_the_usage_asked_for() -> None:
    model = CATALOG.model("gpt-4.1-nano")
    call = streaming_call(model, route_request(max_tokens=9), KEY)
    body = orjson.loads(call.body)
    unstreamed = adapter_for("openai").build(model, route_request(max_tokens=9), KEY)
    assert call.url == unstreamed.url and call.url.endswith("/chat/completions")
    assert body == orjson.loads(unstreamed.body) | {
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.headers["accept"] == "text/event-stream"


def test_mistral_streams_without_stream_options_and_qwen_keeps_its_extra_body() -> None:
    mistral = orjson.loads(
        streaming_call(CATALOG.model("mistral-small-latest"), route_request(), KEY).body
    )
    assert mistral["stream"] is True and "stream_options" not in mistral
    qwen = replace(CATALOG.model("deepseek-chat"), provider="qwen", model_id="qwen-plus")
    body = orjson.loads(streaming_call(qwen, route_request(), KEY).body)
    assert body["enable_thinking"] is False and body["stream_options"] == {"include_usage": True}


def test_anthropic_streams_with_the_flag_and_gemini_by_its_method() -> None:
    claude = CATALOG.model("claude-haiku-4-5")
    call = streaming_call(claude, route_request(), KEY)
    unstreamed = adapter_for("anthropic").build(claude, route_request(), KEY)
    assert call.url == unstreamed.url
    assert orjson.loads(call.body) == orjson.loads(unstreamed.body) | {"stream": True}
    assert call.headers["x-api-key"] == KEY
    gemini = CATALOG.model("gemini-2.5-flash-lite")
    call = streaming_call(gemini, route_request(), KEY)
    unstreamed = adapter_for("gemini").build(gemini, route_request(), KEY)
    assert call.url.endswith("/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse")
    assert call.body == unstreamed.body  # the method says it streams, not the body


def test_every_family_streams_and_an_unknown_one_is_refused() -> None:
    for family in ("openai", "deepseek", "mistral", "qwen", "ollama", "anthropic", "gemini"):
        assert supports_streaming(family), family
    assert not supports_streaming("nope")
    with pytest.raises(ValueError, match="nope"):
        stream_parser("nope")


# ---------------------------------------------------------------------------- the parsers


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=5, output_tokens=(20, 60)))
    yield running
    await running.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        yield http


def simulated(sim: RunningSimulator, name: str, model_id: str | None = None) -> ModelSpec:
    catalog: Catalog = CATALOG.with_simulator(sim.url)
    model = catalog.model(name)
    return replace(model, model_id=model_id) if model_id else model


async def unstreamed(
    client: httpx.AsyncClient, model: ModelSpec, request: RouteRequest
) -> ProviderReply:
    adapter = adapter_for(model.provider)
    call = adapter.build(model, request, KEY)
    reply = await client.post(call.url, content=call.body, headers=call.headers)
    return adapter.parse(reply.status_code, reply.headers, reply.content)


async def streamed(
    client: httpx.AsyncClient, model: ModelSpec, request: RouteRequest
) -> tuple[list[StreamDelta], StreamParser, Mapping[str, str]]:
    """The deltas of the streamed call, and its parser to finish."""
    call = streaming_call(model, request, KEY)
    decoder = SseDecoder()
    deltas: list[StreamDelta] = []
    async with client.stream("POST", call.url, content=call.body, headers=call.headers) as reply:
        assert reply.status_code == 200, await reply.aread()
        assert reply.headers["content-type"].startswith("text/event-stream")
        parser = stream_parser(model.provider, reply.headers)
        async for chunk in reply.aiter_bytes():
            for event in decoder.feed(chunk):
                deltas += parser.feed(event)
        for event in decoder.close():
            deltas += parser.feed(event)
    return deltas, parser, reply.headers


def joined_calls(deltas: list[StreamDelta]) -> list[tuple[str | None, str | None, str]]:
    """The deltas' tool calls put together by index: (id, name, arguments)."""
    calls: dict[int, list[Any]] = {}
    for delta in deltas:
        for piece in delta.tool_calls:
            call = calls.setdefault(piece.index, [None, None, ""])
            call[0] = call[0] or piece.id
            call[1] = call[1] or piece.name
            call[2] += piece.arguments
    return [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]


MODELS = [
    ("gpt-4.1-nano", None),
    ("deepseek-chat", None),
    ("mistral-small-latest", None),  # no stream_options: usage with the finish_reason
    ("claude-haiku-4-5", None),
    ("gemini-2.5-flash-lite", None),
    ("gemini-2.5-flash-lite", "gemini-3-flash-preview"),  # signs its function calls
]
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time"}},
]
ANSWERS = {
    "plain": route_request("Tell me about routing.", max_tokens=400),
    "capped": route_request("Tell me more.", max_tokens=7),
    "json": route_request("Label it.", response_format={"type": "json_object"}),
    "tools": route_request("Oslo? call get_weather, then call get_time.", tools=TOOLS),
}


@pytest.mark.parametrize(("name", "model_id"), MODELS, ids=lambda v: v or "")
@pytest.mark.parametrize("answer", list(ANSWERS))
async def test_a_stream_adds_up_to_the_unstreamed_reply(
    sim: RunningSimulator,
    client: httpx.AsyncClient,
    name: str,
    model_id: str | None,
    answer: str,
) -> None:
    model = simulated(sim, name, model_id)
    request = ANSWERS[answer]
    # streamed first: the simulator counts a body's streamed and unstreamed tries apart, so
    # either order gets the same fate
    deltas, parser, _ = await streamed(client, model, request)
    reply = await unstreamed(client, model, request)
    assert "".join(d.text for d in deltas) == reply.content
    assert joined_calls(deltas) == [
        (c.id, c.function.name, c.function.arguments) for c in reply.tool_calls
    ]
    finished = parser.finish()
    assert finished == reply
    assert finished.usage == reply.usage and finished.request_id == reply.request_id
    if answer == "tools":
        assert reply.finish_reason == "tool_calls"
        assert [c.function.name for c in reply.tool_calls] == ["get_weather", "get_time"]
        signed = (model_id or "").startswith("gemini-3")
        assert (reply.tool_calls[0].extra_content is not None) is signed
    else:
        assert reply.content and reply.finish_reason == ("length" if answer == "capped" else "stop")
    assert len(deltas) > 1  # it came in pieces


async def test_without_the_headers_the_request_id_is_the_one_in_the_events(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    model = simulated(sim, "gpt-4.1-nano")
    call = streaming_call(model, route_request(), KEY)
    reply = await client.post(call.url, content=call.body, headers=call.headers)
    parser = stream_parser("openai")
    decoder = SseDecoder()
    for event in [*decoder.feed(reply.content), *decoder.close()]:
        parser.feed(event)
    finished = parser.finish()
    assert finished.request_id is not None and finished.request_id.startswith("chatcmpl-")
    assert reply.headers["x-request-id"] != finished.request_id


def cached_request(text: str, *, marked: bool) -> RouteRequest:
    system: Any = "Policy. " * 700  # ~1,400 tokens: past the simulator's cache minimum
    if marked:
        system = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    return RouteRequest.model_validate(
        {
            "id": "c1",
            "tenant": "acme",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
            "params": {"max_tokens": 50},
        }
    )


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("gpt-4.1-nano", None),
        ("gpt-4.1-nano", "gpt-5.6-mini"),
        ("claude-haiku-4-5", None),
        ("gemini-2.5-flash-lite", None),
    ],
    ids=lambda v: v or "",
)
async def test_cached_and_cache_write_tokens_are_the_unstreamed_ones(
    client: httpx.AsyncClient, name: str, model_id: str | None
) -> None:
    request = cached_request("First question.", marked=name.startswith("claude"))
    again = cached_request("Second question.", marked=name.startswith("claude"))
    replies: list[list[ProviderReply]] = []
    for stream in (False, True):  # the same run on two simulators of one seed
        sim = await start_simulator(SimulatorProfile(seed=8))
        try:
            model = simulated(sim, name, model_id)
            got = []
            for req in (request, again):  # the first writes the prefix, the second reads it
                if stream:
                    _, parser, _ = await streamed(client, model, req)
                    got.append(parser.finish())
                else:
                    got.append(await unstreamed(client, model, req))
            replies.append(got)
        finally:
            await sim.stop()
    assert replies[0] == replies[1]
    (first, second) = replies[1]
    assert second.usage.cached_input_tokens > 0
    writes = first.usage.cache_write_tokens
    assert (writes > 0) is (name.startswith("claude") or model_id == "gpt-5.6-mini")


@pytest.mark.parametrize("name", ["gpt-4.1-nano", "mistral-small-latest", "gemini-2.5-flash-lite"])
async def test_a_cut_stream_does_not_finish(client: httpx.AsyncClient, name: str) -> None:
    sim = await start_simulator(SimulatorProfile(seed=1, stream_cut_rate=1.0))
    try:
        deltas, parser, headers = await streamed(client, simulated(sim, name), route_request())
    finally:
        await sim.stop()
    assert headers["x-simulator-stream"] == "cut"
    assert [d.text for d in deltas] and all(d.text for d in deltas)  # the first piece came
    with pytest.raises(ProviderError, match="stream ended before") as cut:
        parser.finish()
    assert cut.value.error_type == ErrorType.SERVER_ERROR and cut.value.kind.retryable


async def test_anthropic_cut_short_is_its_overloaded_error_event(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    model = simulated(sim, "claude-haiku-4-5")
    with pytest.raises(ProviderError) as overloaded:
        await streamed(client, model, route_request("Go. [sim:stream_cut]"))
    assert overloaded.value.error_type == ErrorType.OVERLOADED
    # and a stream that just ends, without its message_delta, does not finish
    parser = stream_parser("anthropic")
    call = streaming_call(model, route_request("Go."), KEY)
    body = (await client.post(call.url, content=call.body, headers=call.headers)).content
    events = SseDecoder().feed(body)
    assert [e.event for e in events][-2:] == ["message_delta", "message_stop"]
    for event in events[:-2]:
        parser.feed(event)
    with pytest.raises(ProviderError, match="stream ended before its message_delta"):
        parser.finish()


@pytest.mark.parametrize("name", ["gpt-4.1-nano", "claude-haiku-4-5", "gemini-2.5-flash-lite"])
async def test_a_refused_stream_is_the_adapters_content_filter_error(
    sim: RunningSimulator, client: httpx.AsyncClient, name: str
) -> None:
    model = simulated(sim, name)
    request = route_request("Something bad. [sim:refusal]")
    _, parser, _ = await streamed(client, model, request)
    with pytest.raises(BilledReplyError) as streamed_error:
        parser.finish()
    with pytest.raises(BilledReplyError) as unstreamed_error:
        await unstreamed(client, model, request)
    assert streamed_error.value.error_type == ErrorType.CONTENT_FILTERED
    assert streamed_error.value.error_type == unstreamed_error.value.error_type
    assert streamed_error.value.usage == unstreamed_error.value.usage


@pytest.mark.parametrize(
    ("family", "event", "expected"),
    [
        (
            "openai",
            SseEvent("", '{"error": {"message": "Rate limit exceeded", "code": 429}}'),
            ErrorType.RATE_LIMITED,
        ),
        (
            "openrouter",
            SseEvent("", '{"error": {"message": "Provider returned error", "code": 502}}'),
            ErrorType.SERVER_ERROR,
        ),
        (
            "anthropic",
            SseEvent(
                "error",
                '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            ),
            ErrorType.OVERLOADED,
        ),
        (
            "anthropic",
            SseEvent(
                "error",
                '{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}',
            ),
            ErrorType.RATE_LIMITED,
        ),
        (
            "gemini",
            SseEvent(
                "",
                '{"error": {"code": 503, "message": "The model is overloaded. Please try again'
                ' later.", "status": "UNAVAILABLE"}}',
            ),
            ErrorType.OVERLOADED,
        ),
        (
            "gemini",
            SseEvent("", '{"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}'),
            ErrorType.SERVER_ERROR,
        ),
    ],
)
def test_an_error_event_raises_typed(family: str, event: SseEvent, expected: ErrorType) -> None:
    with pytest.raises(ProviderError) as error:
        stream_parser(family).feed(event)
    assert error.value.error_type == expected


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini"])
def test_an_event_that_is_no_json_object_is_an_invalid_response(family: str) -> None:
    for data in ("{not json", "[1, 2]"):
        with pytest.raises(ProviderError) as error:
            stream_parser(family).feed(SseEvent("", data))
        assert error.value.error_type == ErrorType.INVALID_RESPONSE


def test_openai_tool_call_fragments_are_joined_by_index() -> None:
    """The shape of the API reference's streamed function call, with two calls
    interleaved and the usage in the last chunk (Mistral, Together)."""
    parser = stream_parser("openai")
    chunks: list[dict[str, Any]] = [
        {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            },
                            {
                                "index": 1,
                                "id": "call_b",
                                "type": "function",
                                "function": {"name": "get_time", "arguments": '{"tz"'},
                            },
                        ]
                    },
                }
            ],
        },
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
                }
            ],
        },
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 1, "function": {"arguments": ':"UTC"}'}}]},
                }
            ],
        },
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
                }
            ],
        },
        {
            "id": "c1",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        },
    ]
    deltas = [d for c in chunks for d in parser.feed(SseEvent("", orjson.dumps(c).decode()))]
    assert deltas[0].tool_calls == (
        ToolCallDelta(0, "call_a", "get_weather", ""),
        ToolCallDelta(1, "call_b", "get_time", '{"tz"'),
    )
    assert parser.feed(SseEvent("", "[DONE]")) == []
    reply = parser.finish()
    assert [(c.id, c.function.name, c.function.arguments) for c in reply.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Oslo"}'),
        ("call_b", "get_time", '{"tz":"UTC"}'),
    ]
    assert reply.finish_reason == "tool_calls" and reply.content == ""
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (30, 12)
    assert reply.request_id == "c1"


def test_openai_needs_the_usage_once_the_finish_reason_came() -> None:
    parser = stream_parser("openai")
    for chunk in (
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ):
        parser.feed(SseEvent("", orjson.dumps(chunk).decode()))
    with pytest.raises(ProviderError, match="stream ended before its usage"):
        parser.finish()
