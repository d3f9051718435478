"""Gemini generateContent: request building and reply parsing against the API reference's
example payloads, and real HTTP exchanges with the simulator, cached content billed exactly."""

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
from tierline.processors.providers.base import BilledReplyError
from tierline.processors.providers.call import call_model
from tierline.processors.providers.gemini import GeminiAdapter
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RouteRequest, Usage

CATALOG = Catalog.from_config(
    {
        "models": {
            "gemini-2.5-flash": {"provider": "gemini"},
            "gemini-2.5-flash-lite": {"provider": "gemini"},
            "gemini-2.5-pro": {"provider": "gemini"},
        },
        "tiers": {t: ["gemini-2.5-flash"] for t in ("economy", "standard", "premium")},
    }
)
ADAPTER = GeminiAdapter()
BASE = "https://generativelanguage.googleapis.com"


def request(messages: list[dict[str, Any]], **params: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {"id": "r1", "tenant": "acme", "messages": messages, "params": params}
    )


def build(req: RouteRequest, key: str | None = "AIza-test") -> tuple[str, dict[str, str], Any]:
    call = ADAPTER.build(CATALOG.model("gemini-2.5-flash"), req, key)
    return call.url, call.headers, orjson.loads(call.body)


# --------------------------------------------------------------------------- request


def test_contents_parts_system_instruction_and_roles() -> None:
    url, headers, body = build(
        request(
            [
                {"role": "system", "content": "You are a cat. Your name is Neko."},
                {"role": "user", "content": "Hello there"},
                {"role": "assistant", "content": "Meow. Hello."},
                {"role": "user", "content": "How many paws do you have?"},
            ],
            max_tokens=200,
            temperature=1.2,
            top_p=0.9,
            stop=["END"],
        )
    )
    assert url == f"{BASE}/v1beta/models/gemini-2.5-flash:generateContent"
    assert headers["x-goog-api-key"] == "AIza-test"
    assert body == {
        "systemInstruction": {"parts": [{"text": "You are a cat. Your name is Neko."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hello there"}]},
            {"role": "model", "parts": [{"text": "Meow. Hello."}]},
            {"role": "user", "parts": [{"text": "How many paws do you have?"}]},
        ],
        "generationConfig": {
            "maxOutputTokens": 200,
            "temperature": 1.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


def test_json_output_and_schema() -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    _, _, body = build(request([{"role": "user", "content": "x"}], response_format=fmt))
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    _, _, body = build(
        request([{"role": "user", "content": "x"}], response_format={"type": "json_object"})
    )
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


def test_images_and_tools_become_parts() -> None:
    _, _, body = build(
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Caption this."},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"q": 1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": "42"},
            ]
        )
    )
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Caption this."},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}},
                {"fileData": {"fileUri": "https://example.com/a.png", "mimeType": "image/png"}},
            ],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": 1}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "lookup", "response": {"content": "42"}}}],
        },
    ]


# --------------------------------------------------------------------------- reply

# The generateContent reference's example response, with context caching and thinking usage.
REFERENCE_REPLY = {
    "candidates": [
        {
            "content": {
                "parts": [{"text": "I have four paws, "}, {"text": "like every cat."}],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
            "avgLogprobs": -0.28,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 12045,
        "candidatesTokenCount": 120,
        "totalTokenCount": 12545,
        "cachedContentTokenCount": 11980,
        "thoughtsTokenCount": 380,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12045}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 11980}],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mAitaLmkHPPlz7IPvtfUqQ4",
}


def reply_with(**changes: Any) -> bytes:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY))
    data.update(changes)
    return orjson.dumps(data)


def candidate(**changes: Any) -> bytes:
    data = orjson.loads(orjson.dumps(REFERENCE_REPLY))
    data["candidates"][0].update(changes)
    return orjson.dumps(data)


def test_reference_reply_with_cached_content_and_thoughts_is_priced_exactly() -> None:
    # Implicit caching (https://ai.google.dev/gemini-api/docs/caching) reports its hits in
    # usageMetadata.cachedContentTokenCount, part of promptTokenCount ("When cached_content
    # is set, this is still the total effective prompt size", the UsageMetadata reference);
    # Google publishes no numeric example, so the counts are the reference reply's.
    reply = ADAPTER.parse(200, {}, reply_with())
    assert reply.content == "I have four paws, like every cat."
    assert reply.finish_reason == "stop"
    assert reply.request_id == "mAitaLmkHPPlz7IPvtfUqQ4"
    # promptTokenCount includes the cached part; thoughts are billed as output
    assert reply.usage == Usage(input_tokens=12045, cached_input_tokens=11980, output_tokens=500)
    # gemini-2.5-flash: $0.30 in, $0.03 cached, $2.50 out per 1M
    #   65 * 3e-7 = 0.0000195; 11,980 * 3e-8 = 0.0003594; 500 * 2.5e-6 = 0.00125
    price = CATALOG.model("gemini-2.5-flash").price
    assert cost_of(reply.usage, price) == Decimal("0.001628900")


def test_thought_parts_are_not_the_answer() -> None:
    parts = [{"text": "Let me think...", "thought": True}, {"text": "Four."}]
    reply = ADAPTER.parse(200, {}, candidate(content={"parts": parts, "role": "model"}))
    assert reply.content == "Four."


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter")],
)
def test_finish_reasons_with_text(reason: str, finish: str) -> None:
    reply = ADAPTER.parse(200, {}, candidate(finishReason=reason))
    assert reply.finish_reason == finish


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST"])
def test_a_blocked_candidate_without_text_is_content_filtered(reason: str) -> None:
    blocked = {
        "finishReason": reason,
        "index": 0,
        "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ],
    }
    with pytest.raises(BilledReplyError) as caught:
        ADAPTER.parse(200, {}, reply_with(candidates=[blocked]))
    assert caught.value.error_type == ErrorType.CONTENT_FILTERED


def test_a_blocked_prompt_is_content_filtered() -> None:
    body = orjson.dumps(
        {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        }
    )
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, body)
    assert caught.value.error_type == ErrorType.CONTENT_FILTERED


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        reply_with(candidates=[]),
        candidate(content={"parts": [], "role": "model"}),
        candidate(finishReason="MALFORMED_FUNCTION_CALL"),
        reply_with(usageMetadata={"promptTokenCount": "8"}),
    ],
)
def test_empty_or_unparseable_replies_are_invalid_response(body: bytes) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(200, {}, body)
    assert caught.value.error_type == ErrorType.INVALID_RESPONSE


def google_error(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


def test_an_invalid_key_is_auth_although_the_status_is_400() -> None:
    body = google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    )
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(400, {}, body)
    assert caught.value.error_type == ErrorType.AUTH


def test_resource_exhausted_waits_as_long_as_retry_info_says() -> None:
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota.",
        [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
        ],
    )
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(429, {}, body)
    assert caught.value.error_type == ErrorType.RATE_LIMITED
    assert caught.value.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("status", "name", "message", "expected"),
    [
        (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers", ErrorType.AUTH),
        (404, "NOT_FOUND", "models/gemini-9 is not found", ErrorType.AUTH),
        (500, "INTERNAL", "An internal error has occurred.", ErrorType.SERVER_ERROR),
        (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
            ErrorType.OVERLOADED,
        ),
        (504, "DEADLINE_EXCEEDED", "Deadline expired.", ErrorType.TIMEOUT),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            ErrorType.CONTEXT_TOO_LONG,
        ),
        (400, "INVALID_ARGUMENT", "contents is not specified", ErrorType.BAD_REQUEST),
    ],
)
def test_errors_are_typed(status: int, name: str, message: str, expected: ErrorType) -> None:
    with pytest.raises(ProviderError) as caught:
        ADAPTER.parse(status, {}, google_error(status, name, message))
    assert caught.value.error_type == expected


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=5, cache_min_tokens=0))
    yield running
    await running.stop()


async def test_implicit_cache_reads_through_the_simulator_are_billed_exactly(
    sim: RunningSimulator,
) -> None:
    model = CATALOG.with_simulator(sim.url).model("gemini-2.5-flash-lite")
    assert model.api_base == sim.url
    system = "s" * 400  # 100 tokens + 3: the prefix the simulator caches once seen

    def chat(user: str) -> RouteRequest:
        return request([{"role": "system", "content": system}, {"role": "user", "content": user}])

    async with httpx.AsyncClient() as client:
        first = await call_model(
            client, ADAPTER, model, chat("a" * 36 + "[sim:output_tokens=20]"), "sim-key", 5.0
        )
        second = await call_model(
            client, ADAPTER, model, chat("b" * 36 + "[sim:output_tokens=20]"), "sim-key", 5.0
        )
    # ceil((400 + 58) / 4) = 115, + 3 per message (system and user) = 121
    assert first.usage == Usage(input_tokens=121, output_tokens=20)
    assert second.usage == Usage(input_tokens=121, cached_input_tokens=103, output_tokens=20)
    assert first.content.startswith("Simulated reply from gemini-2.5-flash-lite")
    assert first.request_id
    # gemini-2.5-flash-lite: $0.10 in, $0.01 cached, $0.40 out per 1M
    # first: 121 * 1e-7 + 20 * 4e-7 = 0.0000121 + 0.000008
    assert cost_of(first.usage, model.price) == Decimal("0.000020100")
    # second: 18 * 1e-7 + 103 * 1e-8 + 20 * 4e-7 = 0.0000018 + 0.00000103 + 0.000008
    assert cost_of(second.usage, model.price) == Decimal("0.000010830")


async def test_simulated_gemini_faults_are_typed(sim: RunningSimulator) -> None:
    model = CATALOG.with_simulator(sim.url).model("gemini-2.5-flash")
    async with httpx.AsyncClient() as client:
        for directive, kind in [
            ("[sim:error=503]", ErrorType.OVERLOADED),
            ("[sim:rate_limit=2]", ErrorType.RATE_LIMITED),
            ("[sim:refusal]", ErrorType.CONTENT_FILTERED),
            ("[sim:garbage=empty]", ErrorType.INVALID_RESPONSE),
        ]:
            chat = request([{"role": "user", "content": f"hello {directive}"}])
            with pytest.raises(ProviderError) as caught:
                await call_model(client, ADAPTER, model, chat, "sim-key", 5.0)
            assert caught.value.error_type == kind, directive
            if kind == ErrorType.RATE_LIMITED:
                assert caught.value.retry_after_s == 2.0
        chat = request([{"role": "user", "content": "hi"}])
        for key in (None, "sim-invalid-key"):
            with pytest.raises(ProviderError) as caught:
                await call_model(client, ADAPTER, model, chat, key, 5.0)
            assert caught.value.error_type == ErrorType.AUTH
