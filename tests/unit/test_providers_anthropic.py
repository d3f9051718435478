"""Anthropic Messages: request building and reply parsing against the API reference's
example payloads, and real HTTP exchanges with the simulator, cache writes and reads
billed exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.pricing.cost import cost_of
from tierline.processors.providers.anthropic import AnthropicAdapter
from tierline.processors.providers.base import BilledReplyError
from tierline.processors.providers.call import call_model
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RouteRequest, Usage

CATALOG = Catalog.from_config(
    {
        "models": {
            "claude-haiku-4-5": {"provider": "anthropic"},
            "claude-sonnet-4-5": {"provider": "anthropic"},
        },
        "tiers": {t: ["claude-haiku-4-5"] for t in ("economy", "standard", "premium")},
    }
)
ADAPTER = AnthropicAdapter()


def request(messages: list[dict[str, Any]], **params: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {"id": "r1", "tenant": "acme", "messages": messages, "params": params}
    )


def build(req: RouteRequest, key: str | None = "sk-ant-test") -> tuple[dict[str, str], Any]:
    call = ADAPTER.build(CATALOG.model("claude-haiku-4-5"), req, key)
    assert call.url == "https://api.anthropic.com/v1/messages"
    return call.headers, orjson.loads(call.body)


# --------------------------------------------------------------------------- request


def test_system_prompt_is_its_own_field_and_headers_carry_key_and_version() -> None:
    headers, body = build(
        request(
            [
                {"role": "system", "content": "You are a world-class poet."},
                {"role": "user", "content": "Hello, Claude"},
                {"role": "assistant", "content": "Hi! How can I help?"},
                {"role": "user", "content": "Write a haiku."},
            ],
            max_tokens=1024,
            temperature=1.5,
            top_p=0.9,
            stop="END",
        )
    )
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 1024,
        "system": "You are a world-class poet.",
        "messages": [
            {"role": "user", "content": "Hello, Claude"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Write a haiku."},
        ],
        "temperature": 1.0,  # Anthropic's range is 0..1; top_p is not sent beside it
        "stop_sequences": ["END"],
    }


def test_max_tokens_is_always_sent() -> None:
    _, body = build(request([{"role": "user", "content": "hi"}]))
    assert body["max_tokens"] == 8192  # capped default; haiku 4.5 allows 64,000


def test_content_parts_become_blocks_with_cache_control() -> None:
    _, body = build(
        request(
            [
                {
                    "role": "system",
                    "content": [
                        {
                            "type": "text",
                            "text": "Long manual...",
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                },
            ]
        )
    )
    # the 1-hour TTL goes through: it is billed at its own price (2x input, not 1.25x)
    assert body["system"] == [
        {
            "type": "text",
            "text": "Long manual...",
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks() -> None:
    _, body = build(
        request(
            [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_01",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_01", "content": "18C, clear"},
            ]
        )
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C, clear"}
            ],
        },
    ]


def test_json_modes() -> None:
    messages = [{"role": "system", "content": "Extract."}, {"role": "user", "content": "x"}]
    _, body = build(request(messages, response_format={"type": "json_object"}))
    assert body["system"] == "Extract.\n\nRespond with a single JSON object and nothing else."
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    _, body = build(request(messages, response_format=fmt))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert body["system"] == "Extract."


def test_a_lone_system_prompt_is_sent_as_the_user_turn() -> None:
    _, body = build(request([{"role": "system", "content": "Say hi."}]))
    assert "system" not in body
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi."}]}]


# --------------------------------------------------------------------------- reply

# The Messages reference's example, with the prompt caching guide's usage.
REFERENCE_REPLY = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 0,
        "output_tokens": 393,
    },
}


def reply_with(**changes: Any) -> bytes:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY))
    data.update(changes)
    return orjson.dumps(data)


def test_reference_reply_with_a_cache_write_is_priced_exactly() -> None:
    reply = ADAPTER.parse(200, {"request-id": "req_018EeWyXxfu5pfWkrYcMdjWG"}, reply_with())
    assert reply.content == "Hi! My name is Claude."
    assert reply.finish_reason == "stop"
    assert reply.request_id == "req_018EeWyXxfu5pfWkrYcMdjWG"
    assert reply.usage == Usage(input_tokens=188107, cache_write_tokens=188086, output_tokens=393)
    # claude-sonnet-4-5: $3 in, $3.75 cache write, $0.30 cache read, $15 out per 1M
    #   21 * 3e-6 = 0.000063; 188,086 * 3.75e-6 = 0.7053225; 393 * 1.5e-5 = 0.005895
    price = CATALOG.model("claude-sonnet-4-5").price
    assert cost_of(reply.usage, price) == Decimal("0.711280500")


def test_a_cache_read_is_priced_at_the_read_price() -> None:
    usage = {
        "input_tokens": 21,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 188086,
        "output_tokens": 393,
    }
    reply = ADAPTER.parse(200, {}, reply_with(usage=usage))
    assert reply.request_id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert reply.usage == Usage(input_tokens=188107, cached_input_tokens=188086, output_tokens=393)
    #   21 * 3e-6 = 0.000063; 188,086 * 3e-7 = 0.0564258; 393 * 1.5e-5 = 0.005895
    price = CATALOG.model("claude-sonnet-4-5").price
    assert cost_of(reply.usage, price) == Decimal("0.062383800")


# https://platform.claude.com/docs/en/build-with-claude/prompt-caching#1-hour-cache-duration:
# "The response will include detailed cache information like the following". The example's
# total (248) is not the sum of its parts (456 + 100), which the page says it equals.
DOCUMENTED_1H_USAGE = {
    "input_tokens": 2048,
    "cache_read_input_tokens": 1800,
    "cache_creation_input_tokens": 248,
    "output_tokens": 503,
    "cache_creation": {"ephemeral_5m_input_tokens": 456, "ephemeral_1h_input_tokens": 100},
}


def test_the_documented_one_hour_usage_prices_each_ttl_at_its_own_price() -> None:
    reply = ADAPTER.parse(200, {}, reply_with(usage=DOCUMENTED_1H_USAGE))
    # writes: the larger of the total (248) and the parts (456 + 100 = 556), so none goes
    # unbilled; the prompt is 2,048 + 1,800 + 556 = 4,404
    assert reply.usage == Usage(
        input_tokens=4404,
        cached_input_tokens=1800,
        cache_write_tokens=556,
        cache_write_1h_tokens=100,
        output_tokens=503,
    )
    # claude-sonnet-4-5 (the catalog's explicit prices, per 1M): $3 in, $0.30 read,
    # $3.75 5-minute write, $6 1-hour write, $15 out
    #   2,048 uncached * $3/M       = 0.006144
    #   1,800 read     * $0.30/M    = 0.000540
    #     456 5m write * $3.75/M    = 0.001710
    #     100 1h write * $6/M       = 0.000600   (2 x $3/M; a 5-minute price would say 0.000375)
    #     503 output   * $15/M      = 0.007545
    #                               = 0.016539
    price = CATALOG.model("claude-sonnet-4-5").price
    assert price.cache_write_1h == Decimal("6E-6")
    assert cost_of(reply.usage, price) == Decimal("0.016539000")


def test_a_consistent_one_hour_usage_reads_the_same() -> None:
    usage = {**DOCUMENTED_1H_USAGE, "cache_creation_input_tokens": 556}
    reply = ADAPTER.parse(200, {}, reply_with(usage=usage))
    assert reply.usage.cache_write_tokens == 556 and reply.usage.cache_write_1h_tokens == 100


def test_writes_the_ttl_split_leaves_out_are_five_minute_writes() -> None:
    # a total above the parts: the remainder is billed at the 5-minute price
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
        "cache_creation": {"ephemeral_1h_input_tokens": 100},
    }
    reply = ADAPTER.parse(200, {}, reply_with(usage=usage))
    assert reply.usage == Usage(
        input_tokens=310, cache_write_tokens=300, cache_write_1h_tokens=100, output_tokens=1
    )
    # claude-haiku-4-5: 10 * $1/M + 200 * $1.25/M + 100 * $2/M + 1 * $5/M
    #   = 0.00001 + 0.00025 + 0.0002 + 0.000005
    assert cost_of(reply.usage, CATALOG.model("claude-haiku-4-5").price) == Decimal("0.000465000")


@pytest.mark.parametrize("cache_creation", [None, {}])
def test_without_a_ttl_split_every_write_is_a_five_minute_write(cache_creation: Any) -> None:
    usage = {**DOCUMENTED_1H_USAGE, "cache_creation_input_tokens": 556}
    usage["cache_creation"] = cache_creation
    reply = ADAPTER.parse(200, {}, reply_with(usage=usage))
    assert reply.usage.cache_write_tokens == 556 and reply.usage.cache_write_1h_tokens == 0


@pytest.mark.parametrize(
    "cache_creation",
    [[456, 100], {"ephemeral_1h_input_tokens": -1}, {"ephemeral_5m_input_tokens": "4"}],
)
def test_a_malformed_ttl_split_is_an_invalid_response(cache_creation: Any) -> None:
    usage = {**DOCUMENTED_1H_USAGE, "cache_creation": cache_creation}
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, reply_with(usage=usage))
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ({"type": "ephemeral"}, {"type": "ephemeral"}),
        ({"type": "ephemeral", "ttl": "5m"}, {"type": "ephemeral", "ttl": "5m"}),
        ({"type": "ephemeral", "ttl": "1h"}, {"type": "ephemeral", "ttl": "1h"}),
        ({"type": "ephemeral", "ttl": "24h"}, {"type": "ephemeral"}),  # not Anthropic's
    ],
)
def test_cache_control_keeps_a_ttl_anthropic_takes(
    asked: dict[str, Any], sent: dict[str, Any]
) -> None:
    part = {"type": "text", "text": "manual", "cache_control": asked}
    _, body = build(request([{"role": "user", "content": [part]}]))
    assert body["messages"][0]["content"][0]["cache_control"] == sent


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "stop"),  # with no tool_use block its text is the answer; see test_tools_*
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    reply = ADAPTER.parse(200, {}, reply_with(stop_reason=stop_reason))
    assert reply.finish_reason == finish
    assert reply.truncated == (finish == "length")
    assert reply.content_filtered == (finish == "content_filter")


def test_a_refusal_without_text_is_content_filtered() -> None:
    with pytest.raises(BilledReplyError) as caught:
        ADAPTER.parse(200, {}, reply_with(content=[], stop_reason="refusal"))
    assert caught.value.error_type == ErrorType.CONTENT_FILTERED
    assert caught.value.usage.output_tokens == 393


@pytest.mark.parametrize(
    "body",
    [b"", b"{", reply_with(content="text"), reply_with(content=[]), reply_with(usage={})],
)
def test_empty_or_unparseable_replies_are_invalid_response(body: bytes) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, body)
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE


def anthropic_error(kind: str, message: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    )


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (529, "overloaded_error", "Overloaded", ErrorType.OVERLOADED),
        (429, "rate_limit_error", "Number of request tokens has exceeded", ErrorType.RATE_LIMITED),
        (401, "authentication_error", "invalid x-api-key", ErrorType.AUTH),
        (403, "permission_error", "no access", ErrorType.AUTH),
        (402, "billing_error", "credit balance too low", ErrorType.AUTH),
        (404, "not_found_error", "model: claude-9", ErrorType.AUTH),
        (413, "request_too_large", "Request exceeds the maximum size", ErrorType.CONTEXT_TOO_LONG),
        (500, "api_error", "Internal server error", ErrorType.SERVER_ERROR),
        (504, "timeout_error", "Request timed out", ErrorType.TIMEOUT),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            ErrorType.CONTEXT_TOO_LONG,
        ),
        (400, "invalid_request_error", "messages: Field required", ErrorType.BAD_REQUEST),
    ],
)
def test_errors_are_typed(status: int, kind: str, message: str, expected: ErrorType) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(status, {"retry-after": "3"}, anthropic_error(kind, message))
    assert caught.value.error_type == expected
    assert caught.value.retry_after_s == 3.0


def test_an_error_event_in_a_200_is_still_an_error() -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, anthropic_error("overloaded_error", "Overloaded"))
    assert caught.value.error_type == ErrorType.OVERLOADED


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=5, cache_min_tokens=0))
    yield running
    await running.stop()


def cached_chat(system: str, user: str, ttl: str | None = None) -> RouteRequest:
    marker = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return request(
        [
            {
                "role": "system",
                "content": [{"type": "text", "text": system, "cache_control": marker}],
            },
            {"role": "user", "content": user},
        ]
    )


async def test_cache_write_then_read_through_the_simulator_are_billed_exactly(
    sim: RunningSimulator,
) -> None:
    model = CATALOG.with_simulator(sim.url).model("claude-haiku-4-5")
    assert model.api_base == sim.url
    system = "s" * 400  # 100 tokens + 3: the prefix the simulator caches
    async with httpx.AsyncClient() as client:
        first = await call_model(
            client, ADAPTER, model, cached_chat(system, "a" * 36 + "[sim:output_tokens=20]"),
            "sim-key", 5.0,
        )  # fmt: skip
        second = await call_model(
            client, ADAPTER, model, cached_chat(system, "b" * 36 + "[sim:output_tokens=20]"),
            "sim-key", 5.0,
        )  # fmt: skip
    # ceil((400 + 58) / 4) = 115 characters' tokens, + 3 per message (system and user) = 121
    assert first.usage == Usage(input_tokens=121, cache_write_tokens=103, output_tokens=20)
    assert second.usage == Usage(input_tokens=121, cached_input_tokens=103, output_tokens=20)
    assert first.content.startswith("Simulated reply from claude-haiku-4-5")
    assert first.request_id and first.request_id.startswith("req_sim")
    # claude-haiku-4-5: $1 in, $1.25 cache write, $0.10 cache read, $5 out per 1M
    # first: 18 * 1e-6 + 103 * 1.25e-6 + 20 * 5e-6 = 0.000018 + 0.00012875 + 0.0001
    assert cost_of(first.usage, model.price) == Decimal("0.000246750")
    # second: 18 * 1e-6 + 103 * 1e-7 + 20 * 5e-6 = 0.000018 + 0.0000103 + 0.0001
    assert cost_of(second.usage, model.price) == Decimal("0.000128300")


async def test_a_one_hour_cache_write_through_the_simulator_is_billed_at_twice_input(
    sim: RunningSimulator,
) -> None:
    model = CATALOG.with_simulator(sim.url).model("claude-haiku-4-5")
    system = "h" * 400  # a prefix no other test caches
    async with httpx.AsyncClient() as client:
        first = await call_model(
            client, ADAPTER, model, cached_chat(system, "a" * 36 + "[sim:output_tokens=20]", "1h"),
            "sim-key", 5.0,
        )  # fmt: skip
    assert first.usage == Usage(
        input_tokens=121, cache_write_tokens=103, cache_write_1h_tokens=103, output_tokens=20
    )
    # claude-haiku-4-5: $1 in, $2 1-hour cache write, $5 out per 1M
    # 18 * 1e-6 + 103 * 2e-6 + 20 * 5e-6 = 0.000018 + 0.000206 + 0.0001
    assert cost_of(first.usage, model.price) == Decimal("0.000324000")


async def test_simulated_anthropic_faults_are_typed(sim: RunningSimulator) -> None:
    model = CATALOG.with_simulator(sim.url).model("claude-haiku-4-5")
    chat = [{"role": "user", "content": ""}]
    async with httpx.AsyncClient() as client:
        for directive, kind in [
            ("[sim:error=529]", ErrorType.OVERLOADED),
            ("[sim:rate_limit=0.25]", ErrorType.RATE_LIMITED),
            ("[sim:refusal]", ErrorType.CONTENT_FILTERED),
            ("[sim:garbage=html]", ErrorType.INVALID_RESPONSE),
        ]:
            chat[0]["content"] = f"hello {directive}"
            with pytest.raises(ProviderError) as caught:
                await call_model(client, ADAPTER, model, request(chat), "sim-key", 5.0)
            assert caught.value.error_type == kind, directive
            if kind == ErrorType.RATE_LIMITED:
                assert caught.value.retry_after_s == 0.25
        with pytest.raises(ProviderError) as caught:
            await call_model(client, ADAPTER, model, request(chat), None, 5.0)
        assert caught.value.error_type == ErrorType.AUTH
