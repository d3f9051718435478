"""OpenAI Chat Completions: request building and reply parsing against the API reference's
example payloads, and a real HTTP exchange with the simulator, billed exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from tierline.processors.errors import ProviderError
from tierline.processors.pricing.catalog import Catalog, ModelSpec
from tierline.processors.pricing.cost import cost_of
from tierline.processors.providers.base import BilledReplyError
from tierline.processors.providers.call import call_model
from tierline.processors.providers.openai import OpenAIAdapter
from tierline.processors.providers.registry import adapter_for
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RouteRequest, Usage

CATALOG = Catalog.from_config(
    {
        "models": {
            "gpt-4.1-nano": {"provider": "openai"},
            "gpt-4o": {"provider": "openai"},
            "gpt-5-mini": {"provider": "openai"},
            "gpt-5.6": {"provider": "openai"},
        },
        "tiers": {t: ["gpt-4.1-nano"] for t in ("economy", "standard", "premium")},
    }
)
ADAPTER = OpenAIAdapter()


def request(**params: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": "r1",
            "tenant": "acme",
            "messages": [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello!"},
            ],
            "params": params,
        }
    )


def body_of(model: str, req: RouteRequest, key: str | None = "sk-test") -> dict[str, Any]:
    call = ADAPTER.build(CATALOG.model(model), req, key)
    assert call.url == "https://api.openai.com/v1/chat/completions"
    return dict(orjson.loads(call.body))


# --------------------------------------------------------------------------- request


def test_request_matches_the_reference_shape() -> None:
    req = request(
        max_tokens=64, temperature=0.2, stop=["\n"], response_format={"type": "json_object"}
    )
    call = ADAPTER.build(CATALOG.model("gpt-4.1-nano"), req, "sk-test")
    assert call.headers["authorization"] == "Bearer sk-test"
    assert call.headers["content-type"] == "application/json"
    assert orjson.loads(call.body) == {
        "model": "gpt-4.1-nano",
        "messages": [
            {"role": "developer", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello!"},
        ],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "stop": ["\n"],
        "response_format": {"type": "json_object"},
    }


def test_reasoning_models_get_no_sampling_parameters() -> None:
    body = body_of("gpt-5-mini", request(max_tokens=64, temperature=0, top_p=0.5, stop="x"))
    assert body["max_completion_tokens"] == 64
    assert "temperature" not in body and "top_p" not in body and "stop" not in body


def test_no_key_means_no_authorization_header() -> None:
    call = ADAPTER.build(CATALOG.model("gpt-4.1-nano"), request(), None)
    assert "authorization" not in call.headers


# --------------------------------------------------------------------------- reply

# The chat completion object of the API reference (prompt caching guide's usage).
REFERENCE_REPLY = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
}


def test_reference_reply_is_normalized_and_priced_exactly() -> None:
    reply = ADAPTER.parse(200, {"x-request-id": "req_abc"}, orjson.dumps(REFERENCE_REPLY))
    assert reply.content == "Hello! How can I assist you today?"
    assert reply.finish_reason == "stop" and not reply.truncated and not reply.content_filtered
    assert reply.request_id == "req_abc"
    assert reply.usage == Usage(input_tokens=2006, cached_input_tokens=1920, output_tokens=300)
    # gpt-4o: $2.50 in, $1.25 cached in, $10 out per 1M tokens
    #   86 uncached * 2.5e-6 = 0.000215; 1,920 cached * 1.25e-6 = 0.0024; 300 * 1e-5 = 0.003
    assert cost_of(reply.usage, CATALOG.model("gpt-4o").price) == Decimal("0.005615000")


# https://developers.openai.com/api/docs/guides/prompt-caching#requirements: "The following
# Chat Completions usage example shows both fields. In this response, 1,920 tokens were
# read from cache and no tokens were written"; GPT-5.6 and later bill writes at 1.25x input.
DOCUMENTED_CACHE_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def usage_reply(usage: dict[str, Any]) -> bytes:
    return orjson.dumps({**REFERENCE_REPLY, "model": "gpt-5.6", "usage": usage})


def test_the_documented_cache_usage_is_read_and_priced() -> None:
    reply = ADAPTER.parse(200, {}, usage_reply(DOCUMENTED_CACHE_USAGE))
    assert reply.usage == Usage(input_tokens=2006, cached_input_tokens=1920, output_tokens=300)
    # gpt-5.6 (the catalog's prices, per 1M): $5 in, $0.50 cached, $6.25 cache write, $30 out
    #      86 uncached * $5/M     = 0.00043
    #   1,920 read     * $0.50/M  = 0.00096
    #     300 output   * $30/M    = 0.009
    #                             = 0.01039
    assert cost_of(reply.usage, CATALOG.model("gpt-5.6").price) == Decimal("0.010390000")


def test_cache_writes_are_read_and_billed_at_the_catalog_write_price() -> None:
    # the same prompt's first call: the 1,920-token prefix written to the cache, not read
    details = {"cached_tokens": 0, "cache_write_tokens": 1920}
    usage = {**DOCUMENTED_CACHE_USAGE, "prompt_tokens_details": details}
    reply = ADAPTER.parse(200, {}, usage_reply(usage))
    assert reply.usage == Usage(input_tokens=2006, cache_write_tokens=1920, output_tokens=300)
    price = CATALOG.model("gpt-5.6").price
    assert price.cache_write == Decimal("6.25E-6")  # 1.25 x $5/M, as the catalog lists it
    #      86 uncached * $5/M     = 0.00043
    #   1,920 written  * $6.25/M  = 0.012
    #     300 output   * $30/M    = 0.009
    #                             = 0.02143
    assert cost_of(reply.usage, price) == Decimal("0.021430000")


def test_before_gpt_5_6_a_reported_write_costs_plain_input() -> None:
    # gpt-4o lists no cache-write price: writes are free there beyond the input they are
    details = {"cached_tokens": 0, "cache_write_tokens": 1920}
    usage = {**DOCUMENTED_CACHE_USAGE, "prompt_tokens_details": details}
    reply = ADAPTER.parse(200, {}, usage_reply(usage))
    # 2,006 * $2.50/M + 300 * $10/M = 0.005015 + 0.003
    assert cost_of(reply.usage, CATALOG.model("gpt-4o").price) == Decimal("0.008015000")


def with_choice(**changes: Any) -> bytes:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY))
    data["choices"][0].update(changes)
    return orjson.dumps(data)


def test_length_means_truncated() -> None:
    reply = ADAPTER.parse(200, {}, with_choice(finish_reason="length"))
    assert reply.finish_reason == "length" and reply.truncated


def test_the_body_id_is_the_request_id_without_the_header() -> None:
    reply = ADAPTER.parse(200, {}, orjson.dumps(REFERENCE_REPLY))
    assert reply.request_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"


def test_tool_calls_need_no_text() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    reply = ADAPTER.parse(200, {}, with_choice(message=message, finish_reason="tool_calls"))
    assert reply.finish_reason == "tool_calls" and reply.content == ""


@pytest.mark.parametrize(
    ("choice", "kind"),
    [
        ({"finish_reason": "content_filter", "message": {"content": None}}, "content_filtered"),
        (
            {"message": {"role": "assistant", "content": None, "refusal": "I can't help."}},
            "content_filtered",
        ),
        ({"message": {"role": "assistant", "content": ""}}, "invalid_response"),
        ({"finish_reason": "length", "message": {"content": ""}}, "invalid_response"),
    ],
)
def test_an_empty_answer_is_an_error_that_keeps_its_bill(choice: dict[str, Any], kind: str) -> None:
    with pytest.raises(BilledReplyError) as caught:
        ADAPTER.parse(200, {}, with_choice(**choice))
    assert caught.value.error_type == ErrorType(kind)
    assert caught.value.usage.input_tokens == 2006


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>502</html>", b'{"choices": []}', b'{"choices": [{"message": {}}]}', b"[1]"],
)
def test_unparseable_replies_are_invalid_response(body: bytes) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, body)
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE


def test_a_reply_without_usage_cannot_be_billed_so_is_invalid() -> None:
    data = dict(REFERENCE_REPLY)
    del data["usage"]
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, orjson.dumps(data))
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE


# --------------------------------------------------------------------------- errors


def error_body(message: str, type_: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


CONTEXT = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 130000 tokens. Please reduce the length of the messages."
)
QUOTA = "You exceeded your current quota, please check your plan and billing details."
ERRORS = [
    (401, "Incorrect API key provided: sk-a****1234.", "invalid_api_key", ErrorType.AUTH),
    (429, "Rate limit reached for gpt-4o", "rate_limit_exceeded", ErrorType.RATE_LIMITED),
    (429, QUOTA, "insufficient_quota", ErrorType.AUTH),
    (400, CONTEXT, "context_length_exceeded", ErrorType.CONTEXT_TOO_LONG),
    (400, "Invalid value: 'tool'.", "invalid_value", ErrorType.BAD_REQUEST),
    (404, "The model `gpt-9` does not exist", "model_not_found", ErrorType.AUTH),
    (500, "The server had an error while processing your request.", None, ErrorType.SERVER_ERROR),
    (503, "The server is overloaded or not ready yet.", None, ErrorType.OVERLOADED),
]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(s, error_body(m, "invalid_request_error", c), k) for s, m, c, k in ERRORS]
    + [(502, b"<html><center><h1>502 Bad Gateway</h1></center></html>", ErrorType.SERVER_ERROR)],
)
def test_errors_are_typed(status: int, body: bytes, kind: ErrorType) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(status, {}, body)
    assert caught.value.error_type == kind
    assert caught.value.status == status


def test_retry_after_ms_wins_over_retry_after() -> None:
    body = error_body("Rate limit reached", "requests", "rate_limit_exceeded")
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(429, {"retry-after": "1", "retry-after-ms": "250"}, body)
    assert caught.value.retry_after_s == 0.25
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(429, {"retry-after": "2"}, body)
    assert caught.value.retry_after_s == 2.0


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=5, cache_min_tokens=0))
    yield running
    await running.stop()


def chat(system: str, user: str) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": "r",
            "tenant": "acme",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
    )


async def test_a_call_through_the_simulator_is_normalized_and_billed_exactly(
    sim: RunningSimulator,
) -> None:
    model: ModelSpec = CATALOG.with_simulator(sim.url).model("gpt-4.1-nano")
    system = "s" * 400  # 100 tokens, the cacheable prefix once seen
    async with httpx.AsyncClient() as client:
        first = await call_model(
            client, adapter_for("openai"), model, chat(system, "a" * 36 + "[sim:output_tokens=7]"),
            "sim-key", 5.0,
        )  # fmt: skip
        second = await call_model(
            client, adapter_for("openai"), model, chat(system, "b" * 36 + "[sim:output_tokens=7]"),
            "sim-key", 5.0,
        )  # fmt: skip
    # the simulator counts ceil(chars / 4) + 3 per message: (400 + 57) / 4 -> 115, + 6 = 121
    assert first.usage == Usage(input_tokens=121, output_tokens=7)
    assert first.content == "Simulated reply from gpt-4.1"  # 7 tokens of 4 characters
    assert first.finish_reason == "stop" and first.request_id
    # the system prompt (100 tokens + 3) is read from the cache the second time
    assert second.usage == Usage(input_tokens=121, cached_input_tokens=103, output_tokens=7)
    # gpt-4.1-nano: $0.10 in, $0.025 cached, $0.40 out per 1M
    # first: 121 * 1e-7 + 7 * 4e-7 = 0.0000121 + 0.0000028
    assert cost_of(first.usage, model.price) == Decimal("0.000014900")
    # second: 18 * 1e-7 + 103 * 2.5e-8 + 7 * 4e-7 = 0.0000018 + 0.000002575 + 0.0000028
    assert cost_of(second.usage, model.price) == Decimal("0.000007175")


async def test_gpt_5_6_cache_writes_through_the_simulator_are_billed_exactly(
    sim: RunningSimulator,
) -> None:
    model = CATALOG.with_simulator(sim.url).model("gpt-5.6")
    system = "w" * 400  # a prefix no other test caches
    async with httpx.AsyncClient() as client:
        first = await call_model(
            client, ADAPTER, model, chat(system, "a" * 36 + "[sim:output_tokens=7]"), "sim-key", 5.0
        )
        second = await call_model(
            client, ADAPTER, model, chat(system, "b" * 36 + "[sim:output_tokens=7]"), "sim-key", 5.0
        )
    # the system prompt (100 tokens + 3) is written to the cache first, then read
    assert first.usage == Usage(input_tokens=121, cache_write_tokens=103, output_tokens=7)
    assert second.usage == Usage(input_tokens=121, cached_input_tokens=103, output_tokens=7)
    # gpt-5.6: $5 in, $6.25 cache write, $0.50 cached, $30 out per 1M
    # first: 18 * 5e-6 + 103 * 6.25e-6 + 7 * 3e-5 = 0.00009 + 0.00064375 + 0.00021
    assert cost_of(first.usage, model.price) == Decimal("0.000943750")
    # second: 18 * 5e-6 + 103 * 5e-7 + 7 * 3e-5 = 0.00009 + 0.0000515 + 0.00021
    assert cost_of(second.usage, model.price) == Decimal("0.000351500")


async def test_simulated_faults_are_typed_over_http(sim: RunningSimulator) -> None:
    model = CATALOG.with_simulator(sim.url).model("gpt-4.1-nano")
    async with httpx.AsyncClient() as client:
        for directive, kind in [
            ("[sim:rate_limit=0.5]", ErrorType.RATE_LIMITED),
            ("[sim:error=503]", ErrorType.OVERLOADED),
            ("[sim:refusal]", ErrorType.CONTENT_FILTERED),
            ("[sim:garbage=truncated]", ErrorType.INVALID_RESPONSE),
        ]:
            with pytest.raises(ProviderError) as caught:
                await call_model(
                    client, ADAPTER, model, chat("sys", f"hi {directive}"), "sim-key", 5.0
                )
            assert caught.value.error_type == kind, directive
        with pytest.raises(ProviderError) as caught:
            await call_model(client, ADAPTER, model, chat("sys", "hi"), "sim-invalid-key", 5.0)
        assert caught.value.error_type == ErrorType.AUTH
